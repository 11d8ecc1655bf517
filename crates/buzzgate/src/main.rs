//! `buzzgate`: serve, migrate, and administer an authorization server.

use std::process::ExitCode;

use buzzgate::cli::{Cli, Command};
use buzzgate::config::{Config, LogFormat};
use buzzgate::traces::Traces;
use clap::Parser;

/// mimalloc instead of the system allocator: glibc keeps the 19 MiB each Argon2 password
/// check allocates in its per-thread arenas after it is freed (16 sign-ins took a node from
/// 11 to 128 MiB resident); mimalloc returns such blocks to the system (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Settings first: they say how to log (BUZZGATE_LOG_FORMAT). Loading them logs nothing;
    // its errors go to standard error as plain words either way.
    let cfg = match Config::load(cli.config.as_deref(), |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("buzzgate: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("buzzgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Traces are exported by a serving node only, when BUZZGATE_OTLP_ENDPOINT is set
    // (docs/operations.md, "Traces"); their posts run on this runtime.
    let traces = match &cli.command {
        Command::Serve => match Traces::new(&cfg, rt.handle().clone()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("buzzgate: configuration error: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    init_logging(cfg.log_format, traces.as_ref());
    // `config check` has its own statuses: 0 fine, 1 a service unreachable or refusing, 2 a
    // URL that cannot be parsed (docs/operations.md, "Admin CLI").
    if let Command::Config(buzzgate::cli::ConfigCmd::Check) = cli.command {
        return ExitCode::from(rt.block_on(buzzgate::check::run(&cfg)));
    }
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve => serve(&cfg, traces).await,
            Command::Proxy {
                upstream,
                upstream_prefix,
            } => proxy(&cfg, &upstream, &upstream_prefix).await,
            Command::Healthcheck { url, timeout } => {
                buzzgate::cli::healthcheck(&cfg, url.as_deref(), timeout).await
            }
            other => buzzgate::cli::run_admin(&cfg, other).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("buzzgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error as `format` says, filtered by `RUST_LOG` (`traces::log_filter`:
/// never the MCP SDK's requests nor the spans made for traces). With `traces`, a second layer
/// exports the spans made for traces, and only them (`buzzgate::traces`).
fn init_logging(format: LogFormat, traces: Option<&Traces>) {
    let filter = buzzgate::traces::log_filter(std::env::var("RUST_LOG").ok().as_deref());
    if let Some(traces) = traces {
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
        let logs = match format {
            LogFormat::Json => logs
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_filter(filter)
                .boxed(),
            LogFormat::Text => logs
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_filter(filter)
                .boxed(),
        };
        tracing_subscriber::registry()
            .with(logs)
            .with(traces.layer())
            .init();
        return;
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // One object per line: the event's fields, its span and every enclosing span's
        // fields (the request span's `request_id`, method and path; docs/operations.md).
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

async fn serve(cfg: &Config, traces: Option<Traces>) -> Result<(), String> {
    let running = buzzgate::start(cfg).await?;
    if let Some(mcp) = running.mcp_addr {
        tracing::info!(addr = %mcp, "MCP is listening at /mcp");
    }
    tracing::info!(
        addr = %running.addr,
        issuer = %cfg.issuer,
        database = if cfg.is_postgres() { "postgres" } else { "sqlite" },
        redis = cfg.redis_url.is_some(),
        traces = cfg.otlp_endpoint.as_deref().unwrap_or("off"),
        "buzzgate is listening"
    );
    shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    let stopped = running.stop().await.map_err(|e| e.to_string());
    // The spans of the last requests, exported before the process ends (at most 5 s).
    if let Some(traces) = traces {
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    stopped
}

async fn proxy(cfg: &Config, upstream: &str, prefix: &str) -> Result<(), String> {
    let running = buzzgate::start_proxy(cfg, upstream, prefix).await?;
    tracing::info!(
        rest = %running.addr,
        mcp = %running.mcp_addr,
        upstream,
        "buzzgate proxy is listening"
    );
    shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    running.stop().await.map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
