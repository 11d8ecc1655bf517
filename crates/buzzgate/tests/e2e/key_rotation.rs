//! `buzzgate key rotate` keeps old id_tokens verifiable (issue 15): a node signs an id_token,
//! the real binary rotates the key file, the node restarts on the same file, and its JWKS
//! then publishes both keys: the old id_token verifies by its `kid`, new ones carry the new
//! `kid`. Signatures are checked with RustCrypto's P-256, as a relying party would.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::Value;

use crate::harness::{Backend, Env, env, query_param};

fn part(jwt: &str, i: usize) -> Value {
    serde_json::from_slice(&B64.decode(jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

/// Verifies `jwt` against the key of the JWKS its header names; returns that `kid`.
fn verify(jwt: &str, jwks: &Value) -> String {
    let kid = part(jwt, 0)["kid"].as_str().expect("kid").to_owned();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS {jwks}"));
    assert_eq!(jwk["alg"], "ES256");
    let mut sec1 = vec![4u8];
    sec1.extend(B64.decode(jwk["x"].as_str().unwrap()).unwrap());
    sec1.extend(B64.decode(jwk["y"].as_str().unwrap()).unwrap());
    let key = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let sig = Signature::from_slice(&B64.decode(sig).unwrap()).unwrap();
    key.verify(input.as_bytes(), &sig)
        .unwrap_or_else(|e| panic!("the id_token does not verify against kid {kid}: {e}"));
    kid
}

async fn id_token(env: &Env, user: &str) -> String {
    let u = env.user(user, 0).await;
    let app = env.app(u, false, None).await;
    let cookie = env.login(user).await;
    let (loc, verifier) = env
        .consent(&cookie, &app, "1", Some("n-rotate"), None)
        .await;
    let code = query_param(&loc, "code").unwrap();
    let (s, t) = env.exchange(&app, &code, verifier.as_str()).await;
    assert_eq!(s, 200, "{t}");
    let jwt = t["id_token"].as_str().expect("id_token").to_owned();
    assert_eq!(part(&jwt, 1)["nonce"], "n-rotate");
    jwt
}

fn rotate(key_file: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_buzzgate"))
        .args(["key", "rotate"])
        .env_remove("BUZZGATE_CONFIG")
        .env("BUZZGATE_SIGNING_KEY_FILE", key_file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "key rotate fails: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_keeps_old_id_tokens_verifiable() {
    let dir = std::env::temp_dir().join(format!("bg-e2e-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("signing-key.pem");
    let key_path = key_file.display().to_string();
    let on_the_file = |c: &mut buzzgate::Config| c.signing_key_file = key_path.clone();

    // Before: one key, which signs.
    let mut first = env(Backend::Sqlite, on_the_file).await.unwrap();
    let jwks: Value = first.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    let old_jwt = id_token(&first, "olga").await;
    let old_kid = verify(&old_jwt, &jwks);
    first.running.take().unwrap().stop().await.unwrap();

    // The real binary rotates the file, and says which kids are new and retired.
    let text = rotate(&key_file);
    assert!(
        text.contains(&format!("retired key: kid={old_kid}")),
        "{text}"
    );
    let new_kid = text
        .split("new signing key: kid=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no new kid in: {text}"))
        .to_owned();
    assert_ne!(new_kid, old_kid);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // After the restart: both keys published, the old id_token still verifies by its kid,
    // and new id_tokens are signed with the new key.
    let on_the_file = |c: &mut buzzgate::Config| c.signing_key_file = key_path.clone();
    let second = env(Backend::Sqlite, on_the_file).await.unwrap();
    let jwks: Value = second.get_json("/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![new_kid.as_str(), old_kid.as_str()], "{jwks}");
    assert_eq!(verify(&old_jwt, &jwks), old_kid);
    let new_jwt = id_token(&second, "pavel").await;
    assert_eq!(verify(&new_jwt, &jwks), new_kid);
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}
