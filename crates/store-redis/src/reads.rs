//! The read caches' fan-out (`buzzgate_local::ReadFanout`): a write through one node publishes
//! the app or consent it changed on a Redis channel, and every node's listener drops its copy,
//! so another node sees a rotated secret, a deleted app or a lowered cap in milliseconds
//! instead of after the caches' TTL (docs/security.md, "Caches and other nodes"). Best effort:
//! a lost message, or a listener that is resubscribing, costs at most that TTL, and a
//! listener that lost its subscription drops every cached read.

use std::pin::Pin;
use std::time::Duration as StdDuration;

use buzzgate_domain::ports::StoreResult;
use buzzgate_local::{ReadCaches, ReadFanout, ReadKey};
use futures::{Stream, StreamExt};
use redis::AsyncCommands;

use crate::RedisStore;

impl RedisStore {
    fn reads_channel(&self) -> String {
        format!("{}reads", self.prefix)
    }

    /// Subscribes to the read-cache channel; returns once the subscription is active.
    async fn subscribe_reads(&self) -> StoreResult<Pin<Box<dyn Stream<Item = String> + Send>>> {
        Ok(Box::pin(self.subscribe(self.reads_channel()).await?))
    }
}

/// Publishes each write on the store's read channel, without making the writer wait.
#[derive(Debug, Clone)]
pub struct RedisReadFanout(pub RedisStore);

impl ReadFanout for RedisReadFanout {
    fn publish(&self, key: ReadKey) {
        let store = self.0.clone();
        tokio::spawn(async move {
            let mut conn = store.conn();
            let channel = store.reads_channel();
            if let Err(e) = store
                .run(conn.publish::<_, _, ()>(channel, key.encode()))
                .await
            {
                tracing::warn!(error = %e, "read cache fan-out not published; other nodes catch up within the cache TTL");
            }
        });
    }
}

/// Applies other nodes' writes to `caches` for as long as the runtime runs: subscribes (once
/// subscribed, returns the task's handle), drops what each message names, and after a lost
/// subscription drops everything and subscribes again with backoff.
pub async fn listen_reads(
    store: RedisStore,
    caches: ReadCaches,
) -> StoreResult<tokio::task::JoinHandle<()>> {
    let first = store.subscribe_reads().await?;
    Ok(tokio::spawn(async move {
        let mut stream = first;
        loop {
            while let Some(msg) = stream.next().await {
                if !caches.alive() {
                    return;
                }
                if let Some(key) = ReadKey::decode(&msg) {
                    caches.forget(&key);
                }
            }
            caches.forget_all();
            let mut delay = StdDuration::from_millis(50);
            stream = loop {
                tokio::time::sleep(delay).await;
                if !caches.alive() {
                    return;
                }
                match store.subscribe_reads().await {
                    Ok(s) => break s,
                    Err(_) => delay = (delay * 2).min(StdDuration::from_secs(5)),
                }
            };
            // Deaf for a while: anything may have changed.
            caches.forget_all();
        }
    }))
}
