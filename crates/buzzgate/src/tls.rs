//! HTTPS when `BUZZGATE_TLS_CERT_FILE` and `BUZZGATE_TLS_KEY_FILE` are set: rustls (with ring,
//! the provider reqwest already builds) through tokio-rustls, served by the same axum stack as
//! plain HTTP, on the main listener and (unless `BUZZGATE_MCP_TLS=off`) the MCP listener.
//! Without them the node speaks plain HTTP and a proxy or ingress terminates TLS.
//!
//! The pair is read at start and again whenever either file changes ([`WatchedCert`], looked
//! at every `BUZZGATE_TLS_RELOAD_MS`), so a renewal (cert-manager, certbot) needs no restart:
//! new connections get the new certificate, open ones keep theirs. A changed pair that cannot
//! be used is logged and the one in use keeps serving (docs/operations.md, "TLS: at the
//! ingress, or on the node").

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::serve::ListenerExt;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const BACKLOG: usize = 128;

/// The certificate chain in `cert_file` (PEM), in order.
pub fn certificates(cert_file: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(cert_file)
        .map_err(|e| format!("BUZZGATE_TLS_CERT_FILE {cert_file}: cannot read it: {e}"))?;
    parse_certificates(cert_file, &pem)
}

fn parse_certificates(cert_file: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("BUZZGATE_TLS_CERT_FILE {cert_file}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "BUZZGATE_TLS_CERT_FILE {cert_file}: no certificate in it (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

/// The two files' contents, read as they are now.
struct Pem {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Pem {
    fn read(cert_file: &str, key_file: &str) -> Result<Pem, String> {
        let cert = std::fs::read(cert_file)
            .map_err(|e| format!("BUZZGATE_TLS_CERT_FILE {cert_file}: cannot read it: {e}"))?;
        let key = std::fs::read(key_file)
            .map_err(|e| format!("BUZZGATE_TLS_KEY_FILE {key_file}: cannot read it: {e}"))?;
        Ok(Pem { cert, key })
    }

    /// What the watch compares to see a change (digests: the key's text is not kept).
    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(Sha256::digest(&self.cert));
        h.update(Sha256::digest(&self.key));
        h.finalize().into()
    }

    /// The chain and its key, checked to belong together; errors say which file and why and
    /// never quote the key.
    fn certified_key(&self, cert_file: &str, key_file: &str) -> Result<CertifiedKey, String> {
        let certs = parse_certificates(cert_file, &self.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| {
            format!("BUZZGATE_TLS_KEY_FILE {key_file}: no PEM private key could be read: {e}")
        })?;
        CertifiedKey::from_der(certs, key, &provider()).map_err(|e| {
            format!(
                "BUZZGATE_TLS_CERT_FILE {cert_file} and BUZZGATE_TLS_KEY_FILE {key_file} do \
                 not make a usable pair: {e}"
            )
        })
    }
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The SHA-256 fingerprint of the leaf certificate, as `openssl x509 -fingerprint -sha256`
/// prints it: what the logs name a certificate by.
pub fn fingerprint(key: &CertifiedKey) -> String {
    key.end_entity_cert()
        .map(|c| {
            Sha256::digest(c)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default()
}

/// The certificate and key a node serves, read again when either file changes (their
/// contents, compared every `every`), so a renewal reaches running nodes without a restart. A
/// changed pair that cannot be read, parsed, or whose key is not the certificate's, is logged
/// once (without key material) and the pair in use keeps serving; it is tried again when
/// either file changes again. Each handshake takes the pair in use at that moment, so new
/// connections get a new certificate and established ones are untouched.
pub struct WatchedCert {
    cert_file: String,
    key_file: String,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for WatchedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchedCert")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("sha256", &fingerprint(&self.current()))
            .finish()
    }
}

impl WatchedCert {
    /// Reads the pair (an error says which file and why) and, inside a Tokio runtime, watches
    /// it every `every`; the watch ends when the last handle is dropped.
    pub fn load(cert_file: &str, key_file: &str, every: Duration) -> Result<Arc<Self>, String> {
        let pem = Pem::read(cert_file, key_file)?;
        let key = pem.certified_key(cert_file, key_file)?;
        let mut seen = Some(pem.digest());
        drop(pem);
        let watched = Arc::new(WatchedCert {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: RwLock::new(Arc::new(key)),
        });
        let weak = Arc::downgrade(&watched);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(watched) = weak.upgrade() else {
                        return;
                    };
                    let (cert_file, key_file) =
                        (watched.cert_file.clone(), watched.key_file.clone());
                    let before = seen;
                    let read = tokio::task::spawn_blocking(move || {
                        match Pem::read(&cert_file, &key_file) {
                            // Unreadable (say, a file missing while it is replaced): said
                            // once, then quiet until it can be read.
                            Err(e) => (None, before.is_some().then_some(Err(e))),
                            Ok(pem) => {
                                let now = Some(pem.digest());
                                if now == before {
                                    return (now, None);
                                }
                                (now, Some(pem.certified_key(&cert_file, &key_file)))
                            }
                        }
                    })
                    .await;
                    let Ok((now, outcome)) = read else { continue };
                    seen = now;
                    match outcome {
                        Some(Ok(key)) => {
                            tracing::info!(
                                cert_file = watched.cert_file,
                                key_file = watched.key_file,
                                sha256 = fingerprint(&key),
                                "read the TLS certificate again: new connections get it"
                            );
                            *watched.current.write().unwrap_or_else(|p| p.into_inner()) =
                                Arc::new(key);
                        }
                        Some(Err(e)) => tracing::warn!(
                            error = %e,
                            sha256 = fingerprint(&watched.current()),
                            "the TLS certificate or key file changed but cannot be used; \
                             keeping the certificate in use"
                        ),
                        None => {}
                    }
                }
            });
        }
        Ok(watched)
    }

    /// The pair in use now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for WatchedCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls server configuration over the two PEM files, watched every `reload_every`
/// ([`WatchedCert`]); errors say which file and why. One configuration serves every TLS
/// listener of the node, so they all present the same certificate.
pub fn server_config(
    cert_file: &str,
    key_file: &str,
    reload_every: Duration,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let watched = WatchedCert::load(cert_file, key_file, reload_every)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(watched);
    // The edge speaks HTTP/1.1 only (axum's `http1`).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener that hands axum connections whose TLS handshake is done. Handshakes run in
/// their own tasks (bounded by [`HANDSHAKE_TIMEOUT`]), so a slow client cannot hold up the
/// accept loop.
#[derive(Debug)]
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let tls = TlsAcceptor::from(config);
        let (tx, ready) = tokio::sync::mpsc::channel(BACKLOG);
        let acceptor = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: wait and go on (as axum does).
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let tls = tls.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task ended (it does not, short of a panic): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves, then drains in-flight
/// requests (the HTTPS twin of `buzzgate_http::serve`, with the same client addresses).
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // `tap_io` does nothing here but gives the listener axum's generic `ConnectInfo`.
    let listener = TlsListener::new(listener, config)?.tap_io(|_| {});
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
