//! `buzzgate healthcheck` as a container runtime runs it (docs/operations.md): exit 0 while a
//! node is ready, 1 with the reason when nothing answers.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn healthcheck(listen: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_buzzgate"))
        .arg("healthcheck")
        .env_remove("BUZZGATE_CONFIG")
        .env("BUZZGATE_LISTEN", listen)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn healthcheck_reports_a_ready_node_and_a_missing_one() {
    let dir = std::env::temp_dir().join(format!("bghealth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _node = Node(
        Command::new(env!("CARGO_BIN_EXE_buzzgate"))
            .arg("serve")
            .env_remove("BUZZGATE_CONFIG")
            .env("BUZZGATE_LISTEN", &listen)
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.join("bg.db").display()),
            )
            .env("BUZZGATE_SIGNING_KEY_FILE", dir.join("key.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let (code, text) = loop {
        let (code, text) = healthcheck(&listen);
        if code == 0 || started.elapsed() > Duration::from_secs(20) {
            break (code, text);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("ready (http://{listen}/readyz)")),
        "{text}"
    );
    // A wildcard listen address is asked on loopback.
    let (code, text) = healthcheck(&format!("0.0.0.0:{port}"));
    assert_eq!(code, 0, "{text}");
    // Nobody listening: exit 1 and say which URL did not answer.
    let closed = format!("127.0.0.1:{}", free_port());
    let (code, text) = healthcheck(&closed);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("http://{closed}/readyz did not answer")),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
