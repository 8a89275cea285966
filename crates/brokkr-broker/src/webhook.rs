//! The webhook's HTTPS server: `POST /validate/configmap` answers `AdmissionReview` v1, nothing else is served.

use std::net::SocketAddr;

use actix_web::{App, HttpResponse, HttpServer, Responder, dev::Server, post, web};
use brokkr_config::settings::WebhookSettings;
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview},
};
use tracing::{info, warn};

use crate::{
    admission::ConfigMapReviewer,
    tls::{self, ReloadingCert, TlsError},
};

/// The path the webhook registration names.
pub const PATH: &str = "/validate/configmap";

/// A ConfigMap is at most 1 MiB, but JSON escaping can multiply it (a control character becomes `\u00XX`) and a
/// review of an UPDATE carries the old and the new object. A 413 would hand the decision to the failure policy.
const MAX_BODY: usize = 16 * 1024 * 1024;

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

/// Binds the HTTPS listener of `settings` and returns the server, not yet awaited, and the addresses it bound.
pub fn server(
    settings: &WebhookSettings,
    reviewer: ConfigMapReviewer,
) -> Result<(Server, Vec<SocketAddr>), WebhookError> {
    let resolver = ReloadingCert::new(&settings.cert_file, &settings.key_file, tls::provider());
    let tls = tls::server_config(resolver)?;
    let reviewer = web::Data::new(reviewer);
    let addr = settings.listen;
    let server = HttpServer::new(move || {
        App::new().app_data(reviewer.clone()).app_data(web::PayloadConfig::new(MAX_BODY)).service(validate)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(crate::shutdown::SHUTDOWN_TIMEOUT.as_secs())
    .bind_rustls_0_23(addr, tls)
    .map_err(|source| WebhookError::Bind { addr, source })?;
    let addrs = server.addrs();
    for addr in &addrs {
        info!(%addr, path = PATH, "admission webhook listening");
    }
    Ok((server.run(), addrs))
}

/// One `AdmissionReview`: a body that is not one gets `400` with the parse error, so a misregistration is
/// visible in the API server's log instead of passing silently.
#[post("/validate/configmap")]
async fn validate(body: web::Bytes, reviewer: web::Data<ConfigMapReviewer>) -> impl Responder {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(review) => review,
        Err(error) => {
            warn!(%error, "webhook received a body that is not an AdmissionReview");
            return HttpResponse::BadRequest().json(AdmissionResponse::invalid(error).into_review());
        }
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(error) => {
            warn!(%error, "webhook received an AdmissionReview without a request");
            return HttpResponse::BadRequest().json(AdmissionResponse::invalid(error).into_review());
        }
    };
    HttpResponse::Ok().json(reviewer.review(&request).into_review())
}
