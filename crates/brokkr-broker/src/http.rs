//! The HTTP interface: health, readiness, metrics, and the admin routes; a contract with tools outside the project.

use actix_web::{HttpResponse, Responder, get, web};
use brokkr_reload::Subsystem;
use prometheus_client::{encoding::text::encode, registry::Registry};

use crate::shutdown::Draining;

/// Registers every route. Needs `web::Data` of `ReloadableConfig`, `Subsystem` and `Registry`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics).configure(crate::admin::routes);
}

/// `200` while the process serves.
#[get("/healthz")]
async fn healthz() -> impl Responder {
    HttpResponse::Ok().body("ok")
}

/// `200` once a configuration is in force; `503` before, and from the moment shutdown begins.
#[get("/readyz")]
async fn readyz(subsystem: web::Data<Subsystem>, draining: Option<web::Data<Draining>>) -> impl Responder {
    readiness_answer(readiness(&subsystem, draining.as_ref().map(|d| d.get_ref())))
}

/// Whether the broker is ready, or why not: the one answer of `/readyz` on the HTTP port and on the probe socket.
pub(crate) fn readiness(subsystem: &Subsystem, draining: Option<&Draining>) -> Result<(), &'static str> {
    if draining.is_some_and(Draining::is_draining) {
        Err("shutting down")
    } else if subsystem.is_ready() {
        Ok(())
    } else {
        Err("waiting for the first ConfigMap read")
    }
}

/// `200 ok`, or `503` with the reason.
pub(crate) fn readiness_answer(ready: Result<(), &'static str>) -> HttpResponse {
    match ready {
        Ok(()) => HttpResponse::Ok().body("ok"),
        Err(reason) => HttpResponse::ServiceUnavailable().body(reason),
    }
}

/// Prometheus text exposition.
#[get("/metrics")]
async fn metrics(registry: web::Data<Registry>) -> impl Responder {
    let mut body = String::new();
    match encode(&mut body, &registry) {
        Ok(()) => {
            HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body(body)
        }
        Err(error) => HttpResponse::InternalServerError().body(error.to_string()),
    }
}
