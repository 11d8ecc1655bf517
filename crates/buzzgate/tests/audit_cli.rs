//! `buzzgate audit query` as an operator runs it: the real binary over a SQLite file, events
//! made by other commands, filters, JSON lines, and plain-words errors (docs/operations.md).

mod common;

struct Node {
    dir: std::path::PathBuf,
}

impl Node {
    fn new(tag: &str) -> Node {
        Node {
            dir: common::fresh_dir("bgaudit", tag),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        common::output(common::buzzgate(&self.dir).args(args), stdin)
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
