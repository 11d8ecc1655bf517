//! The `buzzgate` binary as a library: configuration, the composition root, and the CLI
//! commands, so end-to-end tests run exactly what the binary runs.

pub mod admin_cli;
pub mod check;
pub mod cli;
pub mod compose;
pub mod config;
pub mod keys;
pub mod metered;
pub mod tls;
pub mod traces;

use std::net::SocketAddr;

pub use compose::{Node, build};
pub use config::Config;

/// A server running in this process (tests, and `serve`).
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    /// The MCP listener's address, when `BUZZGATE_MCP_LISTEN` is set.
    pub mcp_addr: Option<SocketAddr>,
    pub node_core: buzzgate_domain::service::Buzzgate,
    listeners: Vec<Listening>,
    sweeper: Option<tokio::task::JoinHandle<()>>,
}

/// One listener being served until its shutdown fires.
#[derive(Debug)]
struct Listening {
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Listening {
    fn serve(listener: tokio::net::TcpListener, app: axum::Router) -> Listening {
        let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(buzzgate_http::serve(listener, app, async move {
            let _ = rx.await;
        }));
        Listening { shutdown, task }
    }

    fn serve_tls(
        listener: tokio::net::TcpListener,
        tls: std::sync::Arc<tokio_rustls::rustls::ServerConfig>,
        app: axum::Router,
    ) -> Listening {
        let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tls::serve(listener, tls, app, async move {
            let _ = rx.await;
        }));
        Listening { shutdown, task }
    }

    /// Over TLS when `tls` is given, else plain HTTP.
    fn serve_maybe_tls(
        listener: tokio::net::TcpListener,
        tls: Option<&std::sync::Arc<tokio_rustls::rustls::ServerConfig>>,
        app: axum::Router,
    ) -> Listening {
        match tls {
            Some(tls) => Listening::serve_tls(listener, tls.clone(), app),
            None => Listening::serve(listener, app),
        }
    }
}

/// The TLS configuration of the node's listeners when `BUZZGATE_TLS_CERT_FILE` and
/// `BUZZGATE_TLS_KEY_FILE` are set: one, watched for renewals, shared by every listener
/// ([`tls::server_config`]).
fn tls_config(
    cfg: &Config,
) -> Result<Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>, String> {
    match (&cfg.tls_cert_file, &cfg.tls_key_file) {
        (Some(cert), Some(key)) => Ok(Some(tls::server_config(cert, key, cfg.tls_reload_every())?)),
        _ => Ok(None),
    }
}

/// Stops every listener, draining in-flight requests.
async fn stop_all(listeners: Vec<Listening>) -> std::io::Result<()> {
    let mut tasks = Vec::new();
    for l in listeners {
        let _ = l.shutdown.send(());
        tasks.push(l.task);
    }
    for t in tasks {
        t.await.unwrap_or_else(|e| Err(std::io::Error::other(e)))?;
    }
    Ok(())
}

async fn bind(addr: &str, what: &str) -> Result<(tokio::net::TcpListener, SocketAddr), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    Ok((listener, bound))
}

fn mcp_settings(cfg: &Config) -> buzzgate_mcp::McpSettings {
    buzzgate_mcp::McpSettings {
        allowed_hosts: cfg
            .mcp_allowed_hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

impl Running {
    /// Stops accepting, drains in-flight requests, and waits for the server tasks.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(s) = self.sweeper.take() {
            s.abort();
        }
        stop_all(std::mem::take(&mut self.listeners)).await
    }
}

/// Proxy mode (`buzzgate proxy`, docs/mcp.md): seed 000's REST and MCP adapters in front of
/// an upstream, without a database.
#[derive(Debug)]
pub struct RunningProxy {
    pub addr: SocketAddr,
    pub mcp_addr: SocketAddr,
    listeners: Vec<Listening>,
}

impl RunningProxy {
    pub async fn stop(self) -> std::io::Result<()> {
        stop_all(self.listeners).await
    }
}

/// Starts proxy mode: REST on `cfg.listen`, MCP on `cfg.mcp_listen` (default
/// `127.0.0.1:9090`), both forwarding to `upstream` (its OAuth endpoints under `prefix`).
/// With TLS configured both serve HTTPS (MCP unless `BUZZGATE_MCP_TLS=off`), as under `serve`.
pub async fn start_proxy(
    cfg: &Config,
    upstream: &str,
    prefix: &str,
) -> Result<RunningProxy, String> {
    let base = url::Url::parse(upstream)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| format!("--upstream must be an http(s) URL, got `{upstream}`"))?;
    let mut config = buzzgate_mcp::UpstreamConfig::new(base.as_str());
    config.prefix = format!("/{}", prefix.trim_matches('/'));
    config.connect_timeout = std::time::Duration::from_secs(cfg.upstream_connect_timeout_seconds);
    config.timeout = std::time::Duration::from_secs(cfg.upstream_timeout_seconds);
    let authorize = config.url("authorize");
    let upstream = std::sync::Arc::new(buzzgate_mcp::Upstream::new(config)?);
    let bound = cfg.bound_client();
    let tls = tls_config(cfg)?;
    let (rest, addr) = bind(&cfg.listen, "REST").await?;
    let mcp_listen = cfg
        .mcp_listen
        .clone()
        .unwrap_or_else(|| "127.0.0.1:9090".into());
    let (mcp, mcp_addr) = bind(&mcp_listen, "MCP").await?;
    let rest_app = buzzgate_mcp::proxy::router(upstream.clone(), bound.clone(), &authorize);
    let mcp_app = buzzgate_mcp::router(upstream, bound, &mcp_settings(cfg));
    Ok(RunningProxy {
        addr,
        mcp_addr,
        listeners: vec![
            Listening::serve_maybe_tls(rest, tls.as_ref(), rest_app),
            Listening::serve_maybe_tls(mcp, tls.as_ref().filter(|_| cfg.mcp_tls), mcp_app),
        ],
    })
}

/// Binds `cfg.listen` (port 0 picks a free one) and serves the node until [`Running::stop`].
/// An issuer left to its default (`http://<listen>`) names the address actually bound.
pub async fn start(cfg: &Config) -> Result<Running, String> {
    let tls = tls_config(cfg)?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut cfg = cfg.clone();
    if cfg.issuer == format!("{}://{}", cfg.scheme(), cfg.listen) {
        cfg.issuer = format!("{}://{addr}", cfg.scheme());
    }
    let cfg = &cfg;
    let node = build(cfg, true).await?;
    let mcp = match &cfg.mcp_listen {
        Some(l) => Some(bind(l, "MCP").await?),
        None => None,
    };
    let app = buzzgate_http::router(node.state.clone());
    let mut listeners = vec![Listening::serve_maybe_tls(listener, tls.as_ref(), app)];
    let mcp_addr = match mcp {
        Some((mcp, mcp_addr)) => {
            let backend = std::sync::Arc::new(buzzgate_mcp::InProcess::new(
                node.core.clone(),
                cfg.scope_as_array,
            ));
            let settings = mcp_settings(cfg);
            let public = if cfg.mcp_public_url.trim().is_empty() {
                format!("{}://{mcp_addr}", cfg.mcp_scheme())
            } else {
                cfg.mcp_public_url.trim().trim_end_matches('/').to_owned()
            };
            let account = buzzgate_mcp::account::router(node.core.clone(), &public, &settings)?;
            let app = buzzgate_mcp::router(backend, cfg.bound_client(), &settings).merge(account);
            // The MCP listener carries bearer tokens from across the network: over TLS,
            // with the main listener's certificate, unless BUZZGATE_MCP_TLS=off (docs/mcp.md).
            let mcp_tls = tls.as_ref().filter(|_| cfg.mcp_tls);
            listeners.push(Listening::serve_maybe_tls(mcp, mcp_tls, app));
            Some(mcp_addr)
        }
        None => None,
    };
    let sweeper = (cfg.sweep_interval_seconds > 0).then(|| {
        compose::spawn_sweeper(
            node.core.clone(),
            std::time::Duration::from_secs(cfg.sweep_interval_seconds),
        )
    });
    Ok(Running {
        addr,
        mcp_addr,
        node_core: node.core,
        listeners,
        sweeper,
    })
}
