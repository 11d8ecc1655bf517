//! `buzzgate audit query` as an operator runs it: the real binary over a SQLite file, events
//! made by other commands, filters, JSON lines, and plain-words errors (docs/operations.md).

use std::process::{Command, Stdio};

struct Node {
    dir: std::path::PathBuf,
}

impl Node {
    fn new(tag: &str) -> Node {
        let dir = std::env::temp_dir().join(format!("bgaudit-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Node { dir }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_buzzgate"));
        cmd.args(args)
            .env_remove("BUZZGATE_CONFIG")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}/bg.db", self.dir.display()),
            )
            .env(
                "BUZZGATE_SIGNING_KEY_FILE",
                self.dir.join("key.pem").to_str().unwrap(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
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
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn audit_query_filters_and_prints_json_lines() {
    let node = Node::new("q");
    let (code, _, err) = node.run(
        &["user", "add", "alice", "--password-stdin"],
        Some("correct horse battery\n"),
    );
    assert_eq!(code, 0, "{err}");
    for name in ["One", "Two"] {
        let (code, _, err) = node.run(
            &[
                "client",
                "add",
                "--owner",
                "alice",
                "--name",
                name,
                "--redirect-uri",
                "https://app.example/cb",
            ],
            None,
        );
        assert_eq!(code, 0, "{err}");
    }
    let (code, out, err) = node.run(
        &[
            "audit",
            "query",
            "--kind",
            "client.created",
            "--user",
            "alice",
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(events.len(), 2, "{out}");
    assert!(events.iter().all(|e| e["kind"] == "client.created"));
    let (code, out, _) = node.run(
        &["audit", "query", "--limit", "1", "--offset", "1", "--json"],
        None,
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1);
    let (code, out, _) = node.run(&["audit", "query", "--since", "2999-01-01"], None);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "no events match");
    let (code, out, _) = node.run(&["audit", "query", "--kind", "client.created"], None);
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().filter(|l| l.contains("client.created")).count(),
        2,
        "{out}"
    );
    let (code, _, err) = node.run(&["audit", "query", "--kind", "nope"], None);
    assert_ne!(code, 0);
    assert!(err.contains("`kind` must be one of"), "{err}");
    let (code, _, err) = node.run(&["audit", "query", "--user", "nobody"], None);
    assert_ne!(code, 0);
    assert!(err.contains("No user is named nobody"), "{err}");
}
