//! The HTTP stack under the kube `Client`: HTTP/2 PINGs and TCP keepalive notice a dead API connection.
//!
//! kube's own stack (`Client::try_from(Config)`) speaks HTTP/1.1 only and sets no TCP keepalive, so a connection
//! that died without FIN or RST is noticed only when the watch ends at its timeout. This stack is kube's, built as
//! kube's `custom_client` examples do, with three differences: ALPN offers `h2` (then `http/1.1`); the HTTP/2
//! connection sends a PING after [`PING_AFTER_SILENCE`] without a frame from the server and closes when no answer
//! comes within [`PING_TIMEOUT`] (client-go does the same with 30 s + 15 s); every TCP socket has keepalive probes
//! and `TCP_USER_TIMEOUT`, the floor when the server or a proxy offers only HTTP/1.1.
//!
//! Kept from kube's stack, in its order: base URI, retry of 429/503/504 (when `default_retry`), authentication
//! (tokens, refreshed files and exec plugins; client certificates through TLS), extra and impersonation headers,
//! TLS from the kubeconfig or the service account (including kube's re-read of a rotated in-cluster CA), the
//! server-name override, and the connect and write timeouts. Added: every response's head must arrive within
//! [`RESPONSE_HEAD_TIMEOUT`] (kube-runtime's list and watch start have no bound of their own, and a frozen pooled
//! HTTP/1.1 connection or a server that answers PINGs but not the request would hold them), `TCP_NODELAY`, and
//! a pool timer (idle connections closed after 90 s). Dropped, each because the broker does not use it: HTTP
//! and SOCKS proxies (the features are not compiled in, so kube refused them already; a kubeconfig that names
//! one is refused here too, rather than connected around), gzip (not compiled in either), kube's tracing layer
//! (DEBUG spans, and an ERROR line per 5xx or failed request: the watcher, resync and Event paths log their own
//! failures at WARN, once per failure), and `valid_until` (the expiry of an exec plugin's client certificate,
//! which kube only reports and nothing here reads).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use hyper_timeout::TimeoutConnector;
use hyper_util::{
    client::legacy::{Client as HyperClient, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use kube::{
    Client,
    client::{Body, ConfigExt, retry::RetryPolicy},
};
use tower::{BoxError, Service, ServiceBuilder, retry::RetryLayer, timeout::TimeoutLayer};

/// Shortest server-side timeout of a watch request, in seconds. Each watch stream (each replica, and again after
/// each restart) draws its timeout from [`WATCH_TIMEOUT_MIN_SECS`]..=[`WATCH_TIMEOUT_MAX_SECS`], as client-go's
/// reflector does from 5–10 minutes, so replicas started together do not re-watch together. The API server ends
/// a healthy watch after that long and kube-runtime resumes it from the last resourceVersion or bookmark (no
/// re-list): about 0.2 watch requests per minute per idle replica. A dead connection is noticed by the
/// transport (this module), not by short watches; kube-runtime's idle timer (timeout + 5 s) is the
/// backstop when nothing else can tell (HTTP/1.1 through a proxy that holds the connection open).
pub const WATCH_TIMEOUT_MIN_SECS: u32 = 240;
/// Longest server-side timeout of a watch request, in seconds (see [`WATCH_TIMEOUT_MIN_SECS`]).
pub const WATCH_TIMEOUT_MAX_SECS: u32 = 340;

/// A watch timeout drawn uniformly from [`WATCH_TIMEOUT_MIN_SECS`]..=[`WATCH_TIMEOUT_MAX_SECS`].
#[must_use]
pub fn random_watch_timeout() -> u32 {
    fastrand::u32(WATCH_TIMEOUT_MIN_SECS..=WATCH_TIMEOUT_MAX_SECS)
}

/// Silence on an HTTP/2 connection after which the client sends a PING. Reads of any frame (events, bookmarks,
/// PING answers) restart the count, so a busy connection sends none. Shorter than client-go's 30 s so that
/// detection plus a re-list fits in 45 s.
pub const PING_AFTER_SILENCE: Duration = Duration::from_secs(20);
/// How long a PING may go unanswered before the connection, and every request on it, is closed.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time of a TCP socket before the kernel sends its first keepalive probe.
pub const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// Time between keepalive probes.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered keepalive probes before the kernel gives up on the connection.
pub const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// How long sent data or keepalive probes may stay unacknowledged before the kernel closes the connection with
/// `ETIMEDOUT` (Linux `TCP_USER_TIMEOUT`): a peer that vanished is noticed in this long even over HTTP/1.1.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// The read timeout of every connection, counted from its last read or write: a backstop only, longer than the
/// longest watch (+ kube-runtime's 5 s idle margin), so a quiet HTTP/1.1 watch is never cut by it. Each request
/// the broker makes has its own, shorter bound; over HTTP/2 the PINGs keep the connection read.
pub const SOCKET_READ_TIMEOUT: Duration = Duration::from_secs(WATCH_TIMEOUT_MAX_SECS as u64 + 30);

/// How long any single request of the broker's (a read, an Event, a Pod annotation) may take before it is given
/// up. A request on a dead HTTP/2 connection fails sooner, when the PING goes unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// `request`, given up after [`REQUEST_TIMEOUT`], as every request of the broker's is: a request the API server
/// accepts but does not answer (a queue of API Priority and Fairness) must not hold a rollout's step or bound.
///
/// # Errors
/// The request's own error, or [`kube::Error::Service`] when no answer came in time.
pub async fn bounded<T>(request: impl Future<Output = Result<T, kube::Error>>) -> Result<T, kube::Error> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(answer) => answer,
        Err(_) => {
            let waited = humantime::format_duration(REQUEST_TIMEOUT);
            Err(kube::Error::Service(format!("no answer within {waited}").into()))
        }
    }
}

/// How long the head of any answer, a list's or a watch's included, may take to arrive: longer than API Priority
/// and Fairness may queue a request (a quarter of the API server's 60 s request timeout), so a loaded control
/// plane is not sent the same list again, and short enough that a frozen pooled connection does not hold a
/// re-list for minutes.
pub const RESPONSE_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Which HTTP version the API server's last answer came in, for the admin status: liveness differs (PINGs on
/// HTTP/2, only TCP keepalive and the watch's own timeout on HTTP/1.1).
#[derive(Debug, Clone, Default)]
pub struct ApiProtocol(Arc<AtomicU8>);

impl ApiProtocol {
    const HTTP_1: u8 = 1;
    const HTTP_2: u8 = 2;

    fn record(&self, version: http::Version) {
        let seen = if version == http::Version::HTTP_2 { Self::HTTP_2 } else { Self::HTTP_1 };
        self.0.store(seen, Ordering::Relaxed);
    }

    /// `"HTTP/2"`, `"HTTP/1.1"`, or `None` before the first answer.
    #[must_use]
    pub fn name(&self) -> Option<&'static str> {
        match self.0.load(Ordering::Relaxed) {
            Self::HTTP_2 => Some("HTTP/2"),
            Self::HTTP_1 => Some("HTTP/1.1"),
            _ => None,
        }
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The kubeconfig names a proxy (`proxy-url`); only its scheme is shown, as the URL may hold credentials.
    #[error(
        "the kubeconfig names a {0} proxy (proxy-url), which the broker does not support: it connects to the API server directly"
    )]
    Proxy(String),
    /// kube could not set up TLS, authentication or headers from the configuration.
    #[error("failed to set up the connection to the API server")]
    Kube(#[source] kube::Error),
}

impl From<kube::Error> for TransportError {
    fn from(error: kube::Error) -> Self {
        Self::Kube(error)
    }
}

/// A kube `Client` for `config` over the stack described above, and where it records the HTTP version in use.
pub fn client(config: kube::Config) -> Result<(Client, ApiProtocol), TransportError> {
    if let Some(proxy) = &config.proxy_url {
        return Err(TransportError::Proxy(proxy.scheme_str().unwrap_or("schemeless").to_owned()));
    }
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_keepalive(Some(TCP_KEEPALIVE_IDLE));
    tcp.set_keepalive_interval(Some(TCP_KEEPALIVE_INTERVAL));
    tcp.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
    tcp.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT));

    let mut tls =
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config.rustls_client_config()?).https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|e| kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e)))?;
        tls = tls.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let mut connector = TimeoutConnector::new(tls.enable_all_versions().wrap_connector(tcp));
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(Some(SOCKET_READ_TIMEOUT));
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(true);

    let http = HyperClient::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_keep_alive_interval(PING_AFTER_SILENCE)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build(connector);
    client_over(&config, http)
}

/// kube's layers for `config` (and the response-head bound) over the HTTP service `http`: what [`client`] builds
/// on its hyper client, and tests on a mock.
pub fn client_over<S, B>(config: &kube::Config, http: S) -> Result<(Client, ApiProtocol), TransportError>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let protocol = ApiProtocol::default();
    let seen = protocol.clone();
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.default_retry.then(|| RetryLayer::new(RetryPolicy::server_retry())))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_response(move |response: http::Response<B>| {
            seen.record(response.version());
            response
        })
        .layer(TimeoutLayer::new(RESPONSE_HEAD_TIMEOUT))
        .service(http);
    Ok((Client::new(service, config.default_namespace.clone()), protocol))
}
