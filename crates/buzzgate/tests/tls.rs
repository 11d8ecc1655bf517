//! HTTPS on the main listener (issue 15): `serve` with `BUZZGATE_TLS_CERT_FILE` and
//! `BUZZGATE_TLS_KEY_FILE` answers over TLS with that certificate and refuses plain HTTP;
//! `buzzgate healthcheck` asks it over https, trusting the configured certificate; one file
//! without the other is a configuration error in words. The certificate comes from the
//! `openssl` command (skipped with a line when it is missing).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Running, free_port, fresh_dir, until_ready};

/// The name in the certificate: not 127.0.0.1, so the healthcheck's loopback rule is tested.
const HOST: &str = "auth.example.test";

/// A self-signed P-256 server certificate for [`HOST`] (not a CA, as webpki wants of a leaf).
fn self_signed(dir: &Path) -> Option<()> {
    let conf = dir.join("openssl.cnf");
    std::fs::write(
        &conf,
        format!(
            "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n\
             [dn]\nCN = {HOST}\n\
             [ext]\nbasicConstraints = critical, CA:FALSE\nsubjectAltName = DNS:{HOST}\n\
             keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n"
        ),
    )
    .unwrap();
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .arg("-config")
        .arg(&conf)
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output();
    match out {
        Ok(o) if o.status.success() => Some(()),
        Ok(o) => panic!("openssl failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            eprintln!("SKIP tls: the openssl command is not available ({e})");
            None
        }
    }
}

fn buzzgate(dir: &Path, listen: &str) -> Command {
    let mut c = common::buzzgate(dir);
    c.env("BUZZGATE_LISTEN", listen)
        .env("BUZZGATE_TLS_CERT_FILE", dir.join("cert.pem"))
        .env("BUZZGATE_TLS_KEY_FILE", dir.join("key.pem"));
    c
}

/// Exit status and everything printed.
fn output(c: &mut Command) -> (i32, String) {
    let (code, out, err) = common::output(c, None);
    (code, format!("{out}{err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_https_with_the_configured_certificate() {
    let dir = fresh_dir("bgtls", "serve");
    if self_signed(&dir).is_none() {
        return;
    }
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");

    // One file without the other: a configuration error that says what is missing.
    let (code, text) = output(
        buzzgate(&dir, &listen)
            .arg("serve")
            .env_remove("BUZZGATE_TLS_KEY_FILE"),
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("BUZZGATE_TLS_CERT_FILE is set but BUZZGATE_TLS_KEY_FILE is not"),
        "{text}"
    );

    let _node = Running(
        buzzgate(&dir, &listen)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The healthcheck asks https://127.0.0.1:<port>/readyz, trusting the configured
    // certificate (whose name is not 127.0.0.1: loopback skips only the name check).
    let (code, text) = until_ready(|| output(buzzgate(&dir, &listen).arg("healthcheck")));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("ready (https://{listen}/readyz)")),
        "{text}"
    );

    // A client that trusts the certificate reaches the node by its name.
    let cert = std::fs::read(dir.join("cert.pem")).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .resolve(HOST, format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let res = client
        .get(format!("https://{HOST}:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // One that does not trust it is refused by its own TLS, and plain HTTP gets no answer.
    let untrusting = reqwest::Client::builder()
        .resolve(HOST, format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("https://{HOST}:{port}/healthz"))
            .send()
            .await
            .is_err()
    );
    let plain = reqwest::Client::new()
        .get(format!("http://{listen}/healthz"))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
