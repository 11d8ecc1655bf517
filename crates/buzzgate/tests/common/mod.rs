//! Shared by the tests that run the real binary (`env!("CARGO_BIN_EXE_buzzgate")`) as an
//! operator would: a fresh working directory with its SQLite database and signing key, the
//! binary with those settings, a command's output, a served node stopped on drop, a free port.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on (at the moment of asking).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An empty directory of this test process, `<prefix>-<pid>-<tag>` under the temp dir.
pub fn fresh_dir(prefix: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The binary over `dir`: its SQLite database `bg.db` and signing key `signing-key.pem`,
/// without a configuration file or Redis from the environment.
pub fn buzzgate(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_buzzgate"));
    c.env_remove("BUZZGATE_CONFIG")
        .env_remove("REDIS_URL")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("bg.db").display()),
        )
        .env("BUZZGATE_SIGNING_KEY_FILE", dir.join("signing-key.pem"));
    c
}

/// Runs `cmd` to its end with `stdin` written to it: (exit status, stdout, stderr).
pub fn output(cmd: &mut Command, stdin: Option<&str>) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A process of the binary (a served node, a follower), killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `healthcheck` (status, output) until it exits 0 or 20 s have passed; its last answer.
pub fn until_ready(mut healthcheck: impl FnMut() -> (i32, String)) -> (i32, String) {
    let started = Instant::now();
    loop {
        let (code, text) = healthcheck();
        if code == 0 || started.elapsed() > Duration::from_secs(20) {
            return (code, text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
