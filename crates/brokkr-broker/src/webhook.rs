//! The webhook's HTTPS server: `POST /validate/configmap` answers `AdmissionReview` v1, nothing else is served.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    dev::Server,
    http::{KeepAlive, StatusCode, header},
    post,
    web::{self, Bytes, BytesMut},
};
use brokkr_config::{
    settings::WebhookSettings,
    text::{ERROR_LIMIT, clip},
};
use futures::StreamExt;
use kube::core::admission::AdmissionResponse;
use tracing::{debug, info};

use crate::{
    admission::ConfigMapReviewer,
    hold::HoldingBody,
    review,
    tls::{self, CertificateGauge, ReloadingCert, TlsError},
};

/// The path the webhook registration names.
pub const PATH: &str = "/validate/configmap";

/// The largest review body read. A ConfigMap holds at most 1 MiB of data (plus up to 256 KiB of annotations, where
/// `kubectl apply` keeps a second copy), and a review of an UPDATE carries the old and the new object: a review of
/// the largest ConfigMap is about 2.6 MiB. kube-apiserver itself refuses request bodies over 3 MiB. A larger body
/// gets `413` (the API server then follows the failure policy).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The most bytes of bodies held at once over all connections: four of the largest reviews. A body that would go
/// over it gets `503`. With the parser holding no more than the broker's data key, this bounds the webhook's memory
/// whatever any number of clients send.
pub const BODY_BUDGET: usize = 4 * MAX_BODY;

/// The part of [`BODY_BUDGET`] that only the first [`SMALL_BODY`] bytes of each body may use: clients that hold
/// large bodies cannot take all of it, so the reviews the API server sends for ordinary ConfigMaps still fit.
const SMALL_BODY_RESERVE: usize = 4 * 1024 * 1024;

/// Bytes of a body that may use [`SMALL_BODY_RESERVE`]. A review of a `broker.toml` with every setting is ~3 KiB.
const SMALL_BODY: usize = 256 * 1024;

/// How long a client may take to send a body. The API server sends it at once; only a hostile or broken client
/// trickles, and each one holds a connection.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client may take to send the request head, and the TLS handshake.
const HEAD_TIMEOUT: Duration = Duration::from_secs(3);

/// The most connections open at once; more wait in the listen backlog. The API server needs a few (one per review
/// in flight). Each can hold a request head of up to 128 KiB (actix-http's `MAX_BUFFER_SIZE`) and rustls's
/// buffers (~35 KiB) until the head timeout: 64 × ~165 KiB ≈ 10 MiB, beside the bodies' budget (16 MiB) and the
/// HTTP port's ~18 MiB. With 512, clients that filled every slot with such heads took the broker to 127 MiB, at
/// the chart's limit (crates/brokkr-broker/tests/memory_flood.rs). Who can hold them is the NetworkPolicy's to
/// decide: on by default, only the API server reaches this port.
pub const MAX_CONNECTIONS: usize = 64;

/// Why the webhook server could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// TLS could not be set up.
    #[error("webhook TLS setup failed")]
    Tls(#[from] TlsError),
    /// The listener could not bind.
    #[error("webhook listener on {addr} failed")]
    Bind {
        /// `webhook.listen`.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Why a request body was not read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    /// The body is larger than [`MAX_BODY`].
    #[error("the body is larger than {MAX_BODY} bytes")]
    TooLarge,
    /// The body took longer than [`BODY_TIMEOUT`].
    #[error("the body was not sent within {}", humantime::format_duration(BODY_TIMEOUT))]
    Timeout,
    /// Other bodies already hold [`BODY_BUDGET`].
    #[error("too many reviews in flight")]
    Busy,
    /// The connection failed while the body was read.
    #[error("the body could not be read")]
    Payload(#[source] actix_web::error::PayloadError),
}

impl BodyError {
    /// The answer, which closes the connection: it holds `payload` (see [`crate::hold`]).
    fn response(&self, payload: web::Payload) -> HttpResponse {
        let review = AdmissionResponse::invalid(self.to_string()).into_review();
        let mut response = match self {
            Self::TooLarge => HttpResponse::PayloadTooLarge(),
            Self::Timeout => HttpResponse::RequestTimeout(),
            Self::Busy => HttpResponse::ServiceUnavailable(),
            Self::Payload(_) => HttpResponse::BadRequest(),
        };
        if matches!(self, Self::Busy) {
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        let json = serde_json::to_vec(&review).unwrap_or_default();
        response
            .content_type("application/json")
            .force_close()
            .body(HoldingBody::new(Bytes::from(json), payload.into_inner()))
    }
}

/// Bytes of bodies held now, over every connection.
#[derive(Debug, Default)]
struct BodyBudget(AtomicUsize);

/// A share of [`BodyBudget`], given back when dropped.
struct Held<'a> {
    budget: &'a BodyBudget,
    bytes: usize,
}

impl Held<'_> {
    /// Takes `bytes` more of the budget for a body that holds `self.bytes` already.
    fn grow(&mut self, bytes: usize) -> Result<(), BodyError> {
        // Bytes past the first SMALL_BODY of a body must leave SMALL_BODY_RESERVE free.
        let limit = if self.bytes + bytes > SMALL_BODY { BODY_BUDGET - SMALL_BODY_RESERVE } else { BODY_BUDGET };
        let taken = self.budget.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(bytes).filter(|total| *total <= limit)
        });
        taken.map(|_| self.bytes += bytes).map_err(|_| BodyError::Busy)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.0.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Reads the body within [`MAX_BODY`], [`BODY_TIMEOUT`] and the shared budget, taking budget as bytes arrive (a
/// client that only announces a length holds none).
async fn read_body<'a>(
    request: &HttpRequest,
    payload: &mut web::Payload,
    budget: &'a BodyBudget,
) -> Result<(BytesMut, Held<'a>), BodyError> {
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut held = Held { budget, bytes: 0 };
    // Up to SMALL_BODY of the announced size at once: a review of an ordinary ConfigMap is never copied as it grows.
    let mut body =
        BytesMut::with_capacity(declared.map_or(0, |d| usize::try_from(d).unwrap_or(MAX_BODY)).min(SMALL_BODY));
    let deadline = tokio::time::Instant::now() + BODY_TIMEOUT;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, payload.next()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => return Ok((body, held)),
            Ok(Some(chunk)) => chunk.map_err(BodyError::Payload)?,
        };
        if body.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        held.grow(chunk.len())?;
        body.extend_from_slice(&chunk);
    }
}

/// Binds `settings.listen`.
pub fn bind(settings: &WebhookSettings) -> Result<std::net::TcpListener, WebhookError> {
    let addr = settings.listen;
    std::net::TcpListener::bind(addr).map_err(|source| WebhookError::Bind { addr, source })
}

/// Binds the HTTPS listener of `settings` and returns the server, not yet awaited, and the addresses it bound.
/// `gauge` follows whether a serving certificate is loaded.
pub fn server(
    settings: &WebhookSettings,
    reviewer: ConfigMapReviewer,
    gauge: CertificateGauge,
) -> Result<(Server, Vec<SocketAddr>), WebhookError> {
    serve(bind(settings)?, settings, reviewer, gauge)
}

/// As [`server`], on a `listener` already bound to `settings.listen`.
pub fn serve(
    listener: std::net::TcpListener,
    settings: &WebhookSettings,
    reviewer: ConfigMapReviewer,
    gauge: CertificateGauge,
) -> Result<(Server, Vec<SocketAddr>), WebhookError> {
    let resolver = ReloadingCert::new(&settings.cert_file, &settings.key_file, tls::provider(), gauge);
    let tls = tls::server_config(resolver.clone())?;
    let reviewer = web::Data::new(reviewer);
    let budget = web::Data::new(BodyBudget::default());
    let addr = settings.listen;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(reviewer.clone())
            .app_data(budget.clone())
            .service(validate)
            .default_service(web::to(not_found))
    })
    .workers(1)
    // One request per connection: actix times only the first request head of a connection, so a kept-alive
    // connection could trickle its next head forever. The API server opens a connection per review anyway.
    .keep_alive(KeepAlive::Disabled)
    .max_connections(MAX_CONNECTIONS)
    .client_request_timeout(HEAD_TIMEOUT)
    .tls_handshake_timeout(HEAD_TIMEOUT)
    .disable_signals()
    .shutdown_timeout(crate::shutdown::SHUTDOWN_TIMEOUT.as_secs())
    .listen_rustls_0_23(listener, tls)
    .map_err(|source| WebhookError::Bind { addr, source })?;
    let addrs = server.addrs();
    for addr in &addrs {
        info!(%addr, path = PATH, "admission webhook listening");
    }
    // Retries a certificate that did not load (not yet valid, not there yet) even when no handshake asks for it,
    // so the gauge tells the truth; ends when the server drops its TLS configuration.
    actix::spawn(tls::retry_until_dropped(Arc::downgrade(&resolver)));
    Ok((server.run(), addrs))
}

/// Any other path or method: `404`, holding the payload (see [`crate::hold`]).
async fn not_found(payload: web::Payload) -> HttpResponse<HoldingBody<&'static str>> {
    HttpResponse::with_body(StatusCode::NOT_FOUND, HoldingBody::new("", payload.into_inner()))
}

/// One `AdmissionReview`: a body that is not one gets `400` with the parse error, so a misregistration is
/// visible in the API server's log instead of passing silently.
#[post("/validate/configmap")]
async fn validate(
    request: HttpRequest,
    payload: web::Payload,
    reviewer: web::Data<ConfigMapReviewer>,
    budget: web::Data<BodyBudget>,
) -> HttpResponse {
    let mut payload = payload;
    let (body, _held) = match read_body(&request, &mut payload, &budget).await {
        Ok(body) => body,
        Err(error) => {
            // DEBUG, counted: whoever reaches the port chooses how often this happens.
            debug!(%error, "webhook refused a request body");
            reviewer.refused();
            return error.response(payload);
        }
    };
    let review = match review::parse(&body) {
        Ok(review) => review,
        Err(error) => {
            // serde quotes an unexpected string whole (an unknown `operation`); the body is the client's.
            let error = clip(&error.to_string(), ERROR_LIMIT).into_owned();
            debug!(%error, "webhook received a body that is not an AdmissionReview");
            reviewer.refused();
            return HttpResponse::BadRequest().json(AdmissionResponse::invalid(error).into_review());
        }
    };
    let Some(request) = review.request else {
        debug!("webhook received an AdmissionReview without a request");
        reviewer.refused();
        let error = "the AdmissionReview has no request";
        return HttpResponse::BadRequest().json(AdmissionResponse::invalid(error).into_review());
    };
    drop(body);
    if request.uid.len() > review::MAX_UID {
        debug!(bytes = request.uid.len(), "webhook received an AdmissionReview with an oversized uid");
        reviewer.refused();
        let error = format!("the uid is longer than {} bytes", review::MAX_UID);
        return HttpResponse::BadRequest().json(AdmissionResponse::invalid(error).into_review());
    }
    HttpResponse::Ok().json(reviewer.review(&request).into_review())
}
