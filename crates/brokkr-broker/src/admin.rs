//! The admin API: configuration status and on-demand reload, behind the `admin.token` bearer token.

use std::future::{Ready, ready};

use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, get, http::StatusCode, http::header, post, web,
};
use brokkr_config::ReloadableConfig;
use brokkr_reload::{ReloadNow, Subsystem};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::listeners::StartupFallback;

/// Registers `/api/v1/admin/config` and `/api/v1/admin/config/reload`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(status).service(reload);
}

/// Why an admin request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No `admin.token` is configured, or the request did not present it.
    #[error("admin API needs Authorization: Bearer <admin.token>")]
    Unauthorized,
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .json(json!({ "error": self.to_string() }))
    }
}

/// Extractor that admits only requests presenting `admin.token`; any other request gets `401`.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = AdminError;
    type Future = Ready<Result<Self, AdminError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let config = req.app_data::<web::Data<ReloadableConfig>>();
        ready(if config.is_some_and(|c| authorized(req, c)) { Ok(Admin) } else { Err(AdminError::Unauthorized) })
    }
}

/// True when `admin.token` is set and the request presents it as a bearer token.
fn authorized(req: &HttpRequest, config: &ReloadableConfig) -> bool {
    let snapshot = config.current();
    let expected = snapshot.settings.admin.token.expose();
    let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    presented.is_some_and(|presented| !expected.is_empty() && tokens_match(expected, presented))
}

/// The token of an `Authorization` value `<scheme> <token>` whose scheme is `Bearer` in any case: RFC 7235 makes
/// the scheme case-insensitive and allows one or more spaces before the credentials.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    let token = rest.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares SHA-256 digests in constant time, so the time taken reveals neither the token nor its length.
fn tokens_match(expected: &str, presented: &str) -> bool {
    let expected = Sha256::digest(expected.as_bytes());
    let presented = Sha256::digest(presented.as_bytes());
    expected.as_slice().ct_eq(presented.as_slice()).into()
}

/// The settings as JSON; a secret serializes as `<redacted>` (see `brokkr_config::Secret`).
fn redacted_settings(config: &ReloadableConfig) -> Value {
    serde_json::to_value(&config.current().settings).unwrap_or(Value::Null)
}

fn watcher_json(subsystem: &Subsystem) -> Value {
    let (state, restarts) = subsystem.watcher.get();
    json!({
        "enabled": subsystem.config_actor.is_some(),
        "state": state.name(),
        "restarts": restarts,
        "error": state.error(),
    })
}

/// `GET /api/v1/admin/config`: what is in force, where it came from, and how the last reload went.
#[get("/api/v1/admin/config")]
async fn status(
    _: Admin,
    config: web::Data<ReloadableConfig>,
    subsystem: web::Data<Subsystem>,
    fallback: Option<web::Data<Option<StartupFallback>>>,
) -> HttpResponse {
    let now = config.current();
    let last = config.last_reload();
    HttpResponse::Ok().json(json!({
        "generation": now.generation,
        "hash": now.hash,
        "source": now.source,
        "applied_at": humantime::format_rfc3339_seconds(now.applied_at).to_string(),
        "last_reload": last.as_ref().map(|l| json!({
            "outcome": l.outcome,
            "at": humantime::format_rfc3339_seconds(l.at).to_string(),
            "error": l.error,
        })),
        "restart_required": last.as_ref().map(|l| l.restart_required.clone()).unwrap_or_default(),
        "shadowed_by_env": last.as_ref().map(|l| l.shadowed_by_env.clone()).unwrap_or_default(),
        "startup_fallback": fallback.as_ref().and_then(|f| f.as_ref().as_ref()),
        "watcher": watcher_json(&subsystem),
        "settings": redacted_settings(&config),
    }))
}

/// `POST /api/v1/admin/config/reload`: re-reads the ConfigMap now, bypassing the debounce.
#[post("/api/v1/admin/config/reload")]
async fn reload(_: Admin, subsystem: web::Data<Subsystem>) -> HttpResponse {
    let Some(actor) = &subsystem.config_actor else {
        return HttpResponse::ServiceUnavailable().json(json!({ "error": "ConfigMap hot reload is disabled" }));
    };
    match actor.send(ReloadNow).await {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(error)) => HttpResponse::BadGateway().json(json!({ "error": crate::report::chain(&error) })),
        Err(error) => HttpResponse::ServiceUnavailable().json(json!({ "error": error.to_string() })),
    }
}
