//! The `buzzgate` binary as a library: configuration, the composition root, and the CLI
//! commands, so end-to-end tests run exactly what the binary runs.

pub mod cli;
pub mod compose;
pub mod config;

use std::net::SocketAddr;

pub use compose::{Node, build};
pub use config::Config;

/// A server running in this process (tests, and `serve`).
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub node_core: buzzgate_domain::service::Buzzgate,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    sweeper: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, drains in-flight requests, and waits for the server task.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.sweeper.take() {
            s.abort();
        }
        (&mut self.task)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Binds `cfg.listen` (port 0 picks a free one) and serves the node until [`Running::stop`].
/// An issuer left to its default (`http://<listen>`) names the address actually bound.
pub async fn start(cfg: &Config) -> Result<Running, String> {
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut cfg = cfg.clone();
    if cfg.issuer == format!("http://{}", cfg.listen) {
        cfg.issuer = format!("http://{addr}");
    }
    let cfg = &cfg;
    let node = build(cfg, true).await?;
    let app = buzzgate_http::router(node.state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(buzzgate_http::serve(listener, app, async move {
        let _ = rx.await;
    }));
    let sweeper = (cfg.sweep_interval_seconds > 0).then(|| {
        compose::spawn_sweeper(
            node.core.clone(),
            std::time::Duration::from_secs(cfg.sweep_interval_seconds),
        )
    });
    Ok(Running {
        addr,
        node_core: node.core,
        shutdown: Some(tx),
        task,
        sweeper,
    })
}
