//! `buzzgate healthcheck` as a container runtime runs it (docs/operations.md): exit 0 while a
//! node is ready, 1 with the reason when nothing answers.

mod common;

use std::process::Stdio;

use common::{Running, buzzgate, free_port, fresh_dir, output, until_ready};

fn healthcheck(dir: &std::path::Path, listen: &str) -> (i32, String) {
    let (code, out, err) = output(
        buzzgate(dir)
            .arg("healthcheck")
            .env("BUZZGATE_LISTEN", listen),
        None,
    );
    (code, format!("{out}{err}"))
}

#[test]
fn healthcheck_reports_a_ready_node_and_a_missing_one() {
    let dir = fresh_dir("bghealth", "ready");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _node = Running(
        buzzgate(&dir)
            .arg("serve")
            .env("BUZZGATE_LISTEN", &listen)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (code, text) = until_ready(|| healthcheck(&dir, &listen));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("ready (http://{listen}/readyz)")),
        "{text}"
    );
    // A wildcard listen address is asked on loopback.
    let (code, text) = healthcheck(&dir, &format!("0.0.0.0:{port}"));
    assert_eq!(code, 0, "{text}");
    // Nobody listening: exit 1 and say which URL did not answer.
    let closed = format!("127.0.0.1:{}", free_port());
    let (code, text) = healthcheck(&dir, &closed);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("http://{closed}/readyz did not answer")),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
