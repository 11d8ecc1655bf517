//! A real outage: a private `redis-server` (started and killed by this test, on its own port)
//! goes away and comes back. Calls answer `Unavailable` quickly while it is down, the store
//! recovers by itself, and a `LayeredCache` stops serving from memory while deaf.

use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use buzzgate_domain::StoreError;
use buzzgate_domain::ids::UserId;
use buzzgate_domain::ports::{RateLimiter, RateWindow, TokenCache};
use buzzgate_domain::token::TokenKind;
use buzzgate_store_redis::{LayeredCache, RedisStore};
use buzzgate_testkit::{self as fx, now};
use time::Duration;

struct Server {
    child: Child,
}

impl Server {
    fn start(port: u16) -> Option<Server> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Server { child })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only the child this test started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn connect_retrying(url: &str) -> Option<RedisStore> {
    for _ in 0..50 {
        if let Ok(s) = RedisStore::connect(url, "bgtest:outage:").await {
            return Some(s);
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_unavailable_then_recovers() {
    let port = free_port();
    let Some(server) = Server::start(port) else {
        buzzgate_testkit::skip::<()>("redis", "no redis-server binary to run a private server");
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let store = connect_retrying(&url)
        .await
        .expect("private redis-server starts");
    let layered = LayeredCache::new(store.clone(), StdDuration::from_secs(60))
        .await
        .unwrap();
    let (_, token) = fx::token(TokenKind::Access, UserId(1), None, None);
    layered
        .put(&token, now() + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(layered.local_len(), 1);

    drop(server);
    let started = Instant::now();
    for _ in 0..3 {
        let err = store
            .count("k", RateWindow::containing(now(), 60), 1)
            .await
            .unwrap_err();
        fx::assert_unavailable_soon(&err, started, StdDuration::from_secs(10));
    }
    // The circuit is open: the next calls fail at once instead of each waiting on the
    // reconnect attempts (a cluster stays fast on its fallbacks while Redis is down).
    let quick = Instant::now();
    for _ in 0..100 {
        let err = store
            .count("k", RateWindow::containing(now(), 60), 1)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
    assert!(
        quick.elapsed() < buzzgate_store_redis::OUTAGE_COOLDOWN,
        "100 calls while the circuit is open took {:?}",
        quick.elapsed()
    );
    // The listener lost its subscription: the local layer is dropped and not trusted.
    let deadline = Instant::now() + StdDuration::from_secs(2);
    while layered.local_len() > 0 {
        assert!(
            Instant::now() < deadline,
            "local entries survive a lost subscription"
        );
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    assert!(matches!(
        layered.get(&token.hash).await,
        Err(StoreError::Unavailable(_))
    ));

    let _server = Server::start(port).expect("restart");
    let deadline = Instant::now() + StdDuration::from_secs(15);
    loop {
        match store.count("k", RateWindow::containing(now(), 60), 1).await {
            Ok(n) => {
                assert!(n >= 1);
                break;
            }
            Err(StoreError::Unavailable(_)) => {
                assert!(Instant::now() < deadline, "the store never reconnected");
                tokio::time::sleep(StdDuration::from_millis(100)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    // The fresh server lost everything; the cache answers from Redis again.
    assert_eq!(layered.get(&token.hash).await.unwrap(), None);
    layered
        .put(&token, now() + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(layered.get(&token.hash).await.unwrap(), Some(token));
}
