//! HTTPS on the node (issue 15): `serve` with `BUZZGATE_TLS_CERT_FILE` and
//! `BUZZGATE_TLS_KEY_FILE` answers over TLS with that certificate and refuses plain HTTP;
//! `buzzgate healthcheck` asks it over https, trusting the configured certificate; one file
//! without the other is a configuration error in words. A renewed pair is served to new
//! connections within `BUZZGATE_TLS_RELOAD_MS` while open connections keep theirs, a broken one
//! is logged (without key material) and the pair in use stays, and the MCP listener serves the
//! same certificate (unless `BUZZGATE_MCP_TLS=off`). The certificates come from the `openssl`
//! command (skipped with a line when it is missing).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, free_port, fresh_dir, until_ready};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

/// The name in the certificates: not 127.0.0.1, so the healthcheck's loopback rule is tested.
const HOST: &str = "auth.example.test";

/// A self-signed P-256 server certificate for [`HOST`] (not a CA, as webpki wants of a leaf)
/// with the organization `org` in its subject (and a random serial, openssl's), written to
/// `<name>-cert.pem` and `<name>-key.pem` in `dir`.
fn self_signed(dir: &Path, name: &str, org: &str) -> Option<()> {
    let conf = dir.join(format!("{name}.cnf"));
    std::fs::write(
        &conf,
        format!(
            "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n\
             [dn]\nCN = {HOST}\nO = {org}\n\
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
        .arg(dir.join(format!("{name}-key.pem")))
        .arg("-out")
        .arg(dir.join(format!("{name}-cert.pem")))
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

/// Replaces `to` with `from`'s content the way renewals do: a new file renamed over it.
fn replace(dir: &Path, from: &str, to: &str) {
    let tmp = dir.join(format!(".{to}.new"));
    std::fs::copy(dir.join(from), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join(to)).unwrap();
}

/// Puts the pair `<name>-cert.pem`, `<name>-key.pem` in place as the node's, certificate first.
fn install(dir: &Path, name: &str) {
    replace(dir, &format!("{name}-cert.pem"), "cert.pem");
    replace(dir, &format!("{name}-key.pem"), "key.pem");
}

/// A fresh directory with one self-signed pair in place, or `None` without openssl (skipped).
fn dir_with_a_pair(case: &str) -> Option<PathBuf> {
    let dir = fresh_dir("bgtls", case);
    self_signed(&dir, "a", "First")?;
    install(&dir, "a");
    Some(dir)
}

/// The leaf certificate of `<name>-cert.pem`, DER.
fn leaf(dir: &Path, name: &str) -> Vec<u8> {
    CertificateDer::from_pem_file(dir.join(format!("{name}-cert.pem")))
        .unwrap()
        .to_vec()
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
    let Some(dir) = dir_with_a_pair("serve") else {
        return;
    };
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

/// A client that trusts `trusted` (certificate files in `dir`), reaches [`HOST`] at
/// 127.0.0.1, and reports the certificate each response came over.
fn client(dir: &Path, trusted: &[&str], port: u16) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_info(true)
        .timeout(Duration::from_secs(5))
        .resolve(HOST, format!("127.0.0.1:{port}").parse().unwrap());
    for name in trusted {
        let pem = std::fs::read(dir.join(format!("{name}-cert.pem"))).unwrap();
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// The certificate the server presented for `res`, DER.
fn presented(res: &reqwest::Response) -> Vec<u8> {
    res.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("the response carries the peer certificate")
        .to_vec()
}

/// The certificate a new connection to `port` is given (asking `path`, which answers 200).
async fn on_new_connection_to(dir: &Path, port: u16, path: &str) -> Vec<u8> {
    let res = client(dir, &["a", "b", "c"], port)
        .get(format!("https://{HOST}:{port}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    presented(&res)
}

/// The certificate a new connection to the main listener at `port` is given.
async fn on_new_connection(dir: &Path, port: u16) -> Vec<u8> {
    on_new_connection_to(dir, port, "/healthz").await
}

/// How much the node has logged so far.
fn logged(log: &Path) -> usize {
    std::fs::metadata(log).map_or(0, |m| m.len() as usize)
}

/// Waits up to 10 s for the log past `from` (bytes) to contain `text`; the log past `from`.
fn until_logged(log: &Path, from: usize, text: &str) -> String {
    let started = Instant::now();
    loop {
        let all = std::fs::read(log).unwrap_or_default();
        let got = String::from_utf8_lossy(all.get(from..).unwrap_or_default()).into_owned();
        if got.contains(text) || started.elapsed() > Duration::from_secs(10) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_reaches_new_connections_and_the_mcp_listener() {
    let dir = fresh_dir("bgtls", "renew");
    for (name, org) in [("a", "First"), ("b", "Second"), ("c", "Third")] {
        if self_signed(&dir, name, org).is_none() {
            return;
        }
    }
    let (a, b) = (leaf(&dir, "a"), leaf(&dir, "b"));
    assert_ne!(a, b);
    install(&dir, "a");
    let (port, mcp_port) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let log = dir.join("node.log");
    let _node = Running(
        buzzgate(&dir, &listen)
            .arg("serve")
            .env("BUZZGATE_TLS_RELOAD_MS", "200")
            .env("BUZZGATE_MCP_LISTEN", format!("127.0.0.1:{mcp_port}"))
            .env("BUZZGATE_MCP_ALLOWED_HOSTS", HOST)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let (code, text) = until_ready(|| output(buzzgate(&dir, &listen).arg("healthcheck")));
    assert_eq!(code, 0, "{text}");
    assert_eq!(on_new_connection(&dir, port).await, a);

    // A connection opened before the renewal (kept alive by this client).
    let open = client(&dir, &["a"], port);
    let res = open
        .get(format!("https://{HOST}:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(presented(&res), a);

    // Renewal: the new pair replaces the files; new connections get it within the interval
    // (200 ms here; a loaded machine is given a few).
    let from = logged(&log);
    replace(&dir, "b-key.pem", "key.pem");
    replace(&dir, "b-cert.pem", "cert.pem");
    let renewed = Instant::now();
    while on_new_connection(&dir, port).await != b {
        assert!(
            renewed.elapsed() < Duration::from_secs(3),
            "the renewed certificate was not served within 3 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = until_logged(&log, from, "read the TLS certificate again");
    assert!(text.contains("read the TLS certificate again"), "{text}");
    // The open connection is untouched: it still answers, over the old certificate.
    let res = open
        .get(format!("https://{HOST}:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(presented(&res), a, "the open connection was replaced");

    // The MCP listener answers over TLS with the same (renewed) certificate: its
    // protected-resource metadata names an https resource, and a call without a token is
    // sent to it with a 401.
    let mcp = client(&dir, &["b"], mcp_port);
    let res = mcp
        .get(format!(
            "https://{HOST}:{mcp_port}/.well-known/oauth-protected-resource/mcp/account"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(presented(&res), b);
    let meta: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        meta["resource"],
        format!("https://127.0.0.1:{mcp_port}/mcp/account"),
        "{meta}"
    );
    let res = mcp
        .post(format!("https://{HOST}:{mcp_port}/mcp/account"))
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let www = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(www.starts_with("Bearer "), "{www}");
    assert!(
        www.contains(&format!(
            "https://127.0.0.1:{mcp_port}/.well-known/oauth-protected-resource/mcp/account"
        )),
        "{www}"
    );
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{mcp_port}/mcp"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "the MCP listener answered plain HTTP: {plain:?}"
    );

    // A key that is not the certificate's: logged, and the renewed pair keeps serving.
    let from = logged(&log);
    replace(&dir, "c-key.pem", "key.pem");
    let text = until_logged(&log, from, "do not make a usable pair");
    assert!(text.contains("do not make a usable pair"), "{text}");
    assert!(text.contains("keeping the certificate in use"), "{text}");
    assert_eq!(on_new_connection(&dir, port).await, b);
    // A certificate file that holds no certificate: the same.
    std::fs::write(dir.join("garbage.pem"), "renewal went wrong\n").unwrap();
    let from = logged(&log);
    replace(&dir, "garbage.pem", "cert.pem");
    replace(&dir, "b-key.pem", "key.pem");
    let text = until_logged(&log, from, "no certificate in it");
    assert!(text.contains("no certificate in it"), "{text}");
    assert_eq!(on_new_connection(&dir, port).await, b);
    assert_eq!(
        on_new_connection_to(
            &dir,
            mcp_port,
            "/.well-known/oauth-protected-resource/mcp/account"
        )
        .await,
        b
    );
    // No key material in the log, whichever key was read.
    let text = std::fs::read_to_string(&log).unwrap();
    for name in ["a", "b", "c"] {
        let key = std::fs::read_to_string(dir.join(format!("{name}-key.pem"))).unwrap();
        for line in key.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!text.contains(line), "key material of {name} in the log");
        }
    }
    assert!(!text.contains("PRIVATE KEY"), "{text}");

    // Fixed again: served at once.
    install(&dir, "c");
    let c = leaf(&dir, "c");
    let fixed = Instant::now();
    while on_new_connection(&dir, port).await != c {
        assert!(
            fixed.elapsed() < Duration::from_secs(3),
            "the fixed pair was not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_listener_stays_plain_http_when_told_to() {
    let Some(dir) = dir_with_a_pair("mcp-off") else {
        return;
    };
    let (port, mcp_port) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let _node = Running(
        buzzgate(&dir, &listen)
            .arg("serve")
            .env("BUZZGATE_MCP_LISTEN", format!("127.0.0.1:{mcp_port}"))
            .env("BUZZGATE_MCP_TLS", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (code, text) = until_ready(|| output(buzzgate(&dir, &listen).arg("healthcheck")));
    assert_eq!(code, 0, "{text}");
    let res = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{mcp_port}/.well-known/oauth-protected-resource/mcp/account"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let meta: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        meta["resource"],
        format!("http://127.0.0.1:{mcp_port}/mcp/account"),
        "{meta}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
