//! Optional OpenTelemetry traces over OTLP/HTTP (docs/operations.md, "Traces").
//!
//! With `BUZZGATE_OTLP_ENDPOINT` set, `serve` adds a tracing-opentelemetry layer that sees
//! only the spans of [`TARGET`]: the edge's span of each request ([`request_spans`]: method,
//! route pattern, status, request id) and the store decorators' span of each port call
//! (`metered`: port and method names). The log layer never sees them (its filter turns the
//! target off) and the exporter never sees a log span or event, so what a log line holds and
//! what a trace holds are decided apart.
//!
//! Ended spans go into the SDK's bounded queue (`BatchSpanProcessor`: a full queue drops the
//! span, it never waits), which its own thread sends in batches through [`Post`], the
//! node's reqwest client running on the node's runtime. A collector that fails, hangs or is
//! down therefore costs a request nothing; lost spans are counted
//! (`buzzgate_traces_failed_spans_total`) and logged at most once a minute ([`Counted`]).
//! `serve` flushes the queue when it stops ([`Traces::shutdown`]).
//!
//! Unset, none of this exists: no layer, no edge middleware, and the spans of [`TARGET`] are
//! disabled at their call sites by the log filter, so they neither allocate nor record.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, Request};
use buzzgate_http::edge::RequestSpans;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_http::{Bytes, HeaderExtractor, HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

use crate::config::Config;

/// The `tracing` target of every span that is exported, and of nothing else.
pub const TARGET: &str = "buzzgate_otel";

/// Spans in batches the collector did not take (refused, unreachable, too slow).
pub const FAILED_SPANS: &str = "buzzgate_traces_failed_spans_total";

/// How long one post to the collector may take (connecting: [`CONNECT_TIMEOUT`]).
const POST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The most of a collector's answer that is read (an OTLP answer is a few bytes).
const MAX_ANSWER: usize = 64 * 1024;
/// How long stopping waits for the last batch to be exported.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Export failures are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The exporter of a node, kept by `serve` to flush at shutdown.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Traces {
    /// The exporter to `cfg.otlp_endpoint` (`None` when unset); its posts run on `runtime`.
    /// The standard `OTEL_EXPORTER_OTLP_HEADERS` (and `_TRACES_HEADERS`) add headers to each
    /// post, `OTEL_BSP_*` size the queue and batches, `OTEL_RESOURCE_ATTRIBUTES` adds to the
    /// resource.
    pub fn new(cfg: &Config, runtime: tokio::runtime::Handle) -> Result<Option<Traces>, String> {
        let Some(endpoint) = &cfg.otlp_endpoint else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(POST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("BUZZGATE_OTLP_ENDPOINT: cannot build the HTTP client: {e}"))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(Post { http, runtime })
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.as_str())
            .build()
            .map_err(|e| format!("BUZZGATE_OTLP_ENDPOINT: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(Counted::new(exporter))
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                cfg.otlp_sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(cfg.otel_service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("buzzgate");
        Ok(Some(Traces { provider, tracer }))
    }

    /// The layer that turns the spans of [`TARGET`] (and only those) into OpenTelemetry
    /// spans, with no attribute but their own fields (no code location, thread or timings).
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_level(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target(TARGET, tracing::Level::INFO))
    }

    /// Exports what is queued and stops the exporter, waiting at most 5 s. Blocks: call it
    /// from a blocking thread while the runtime still runs (the posts need it).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(error = %e, "traces: the last spans may not have been exported");
        }
    }
}

/// The log layer's filter: `RUST_LOG` (default `info`) with the MCP SDK at `warn` unless
/// `RUST_LOG` names it (it logs tool arguments, codes and secrets at debug: docs/mcp.md), and
/// the spans made for traces always off, so that with traces unset they are disabled where
/// they are made (nothing allocated) and with traces set only the exporter sees them.
pub fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::EnvFilter {
    let mut directives = rust_log.unwrap_or("info").to_owned();
    if !directives.contains("rmcp") {
        directives.push_str(",rmcp=warn");
    }
    directives.push_str(&format!(",{TARGET}=off"));
    tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("info,rmcp=warn,{TARGET}=off"))
    })
}

/// The edge's span maker when traces are on (`None` otherwise: the edge adds nothing).
pub fn request_spans(cfg: &Config) -> Option<RequestSpans> {
    cfg.otlp_endpoint.as_ref()?;
    Some(RequestSpans(Arc::new(request_span)))
}

/// A request's server span, named `METHOD route` as OpenTelemetry's HTTP conventions say:
/// the method, the route pattern the router matched (never the path a caller sent, its
/// query, headers or body), and the caller's trace as its parent when `traceparent` names
/// one. The edge records the status and the request id when the answer is ready.
fn request_span(req: &Request<Body>, route: Option<&str>) -> tracing::Span {
    let method = method_name(req.method());
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        otel.name = name.as_str(),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        buzzgate.request_id = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
    if parent.span().span_context().is_valid() {
        // Fails only when no layer sees the span (traces are being shut down): no parent then.
        let _ = span.set_parent(parent);
    }
    span
}

/// The method as OpenTelemetry names it: the standard ones, else `_OTHER` (a bounded set).
fn method_name(m: &Method) -> &'static str {
    buzzgate_http::edge::standard_method(m).unwrap_or("_OTHER")
}

/// The exporter's HTTP client: the node's reqwest 0.12 (rustls), each post spawned on the
/// node's runtime and awaited from the SDK's export thread.
#[derive(Debug)]
struct Post {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait]
impl HttpClient for Post {
    async fn send_bytes(
        &self,
        request: Request<Bytes>,
    ) -> Result<axum::http::Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        let post = self.runtime.spawn(async move {
            let mut res = http.execute(request).await?;
            let mut answer = axum::http::Response::builder().status(res.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = res.headers().clone();
            }
            let mut body = Vec::new();
            while let Some(chunk) = res.chunk().await? {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err::<_, HttpError>("the collector's answer is too large".into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(answer.body(Bytes::from(body))?)
        });
        post.await?
    }
}

/// The OTLP exporter, counting the spans of the batches it failed to export and logging
/// the failure at most once a minute (the SDK would log every batch). Failures are
/// answered `Ok` to the SDK: they were counted here.
#[derive(Debug)]
struct Counted {
    inner: opentelemetry_otlp::SpanExporter,
    failures: Mutex<Failures>,
}

#[derive(Debug, Default)]
struct Failures {
    /// Spans lost since the last warning.
    lost: u64,
    last_warned: Option<Instant>,
    failing: bool,
}

impl Counted {
    fn new(inner: opentelemetry_otlp::SpanExporter) -> Self {
        Counted {
            inner,
            failures: Mutex::new(Failures::default()),
        }
    }
}

impl SpanExporter for Counted {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let Ok(mut f) = self.failures.lock() else {
            return Ok(());
        };
        match result {
            Ok(()) => {
                if f.failing {
                    tracing::info!(
                        lost_spans = f.lost,
                        "traces: the collector takes spans again"
                    );
                    *f = Failures {
                        last_warned: f.last_warned,
                        ..Failures::default()
                    };
                }
            }
            Err(e) => {
                metrics::counter!(FAILED_SPANS).increment(spans);
                f.failing = true;
                f.lost += spans;
                if f.last_warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    tracing::warn!(
                        error = %e,
                        lost_spans = f.lost,
                        "traces: the collector did not take a batch (said at most once a minute; requests are unaffected)"
                    );
                    f.lost = 0;
                    f.last_warned = Some(Instant::now());
                }
            }
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_name(&Method::POST), "POST");
        assert_eq!(method_name(&Method::from_bytes(b"BREW").unwrap()), "_OTHER");
    }

    #[test]
    fn trace_spans_are_never_logged_and_disabled_without_an_exporter() {
        for rust_log in [
            None,
            Some("debug"),
            Some("trace"),
            Some("info,buzzgate_otel=trace"),
        ] {
            // As `serve` logs without traces: the filter is the subscriber's.
            let logs = tracing_subscriber::fmt()
                .with_env_filter(log_filter(rust_log))
                .with_writer(std::io::sink)
                .finish();
            tracing::subscriber::with_default(logs, || {
                let traced = tracing::info_span!(target: TARGET, "TokenStore.find");
                assert!(traced.is_disabled(), "RUST_LOG={rust_log:?}");
                let logged = tracing::info_span!(target: "buzzgate_http::edge", "request");
                assert!(!logged.is_disabled(), "RUST_LOG={rust_log:?}");
            });
        }
    }

    #[test]
    fn off_unless_an_endpoint_is_set() {
        let cfg = Config::default();
        assert!(request_spans(&cfg).is_none());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(Traces::new(&cfg, rt.handle().clone()).unwrap().is_none());
    }
}
