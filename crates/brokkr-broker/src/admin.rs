//! The admin API: configuration status and on-demand reload, behind the admin bearer token (see `admin_token`).

use std::future::{Ready, ready};

use crate::{admin_token::AdminToken, listeners::StartupFallback};
use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, get, http::StatusCode, http::header, post, web,
};
use brokkr_config::ReloadableConfig;
use brokkr_reload::{
    ReloadNow, Subsystem,
    history::{ReloadHistory, ReloadRecord},
};
use serde_json::{Value, json};

/// Registers `/api/v1/admin/config`, `…/config/history` and `…/config/reload`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(status).service(history).service(reload);
}

/// Why an admin request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No admin token is in force, or the request did not present it.
    #[error("admin API needs Authorization: Bearer <admin token>")]
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

/// Extractor that admits only requests presenting the admin token (or, during an overlap, the one it replaced);
/// any other request gets `401`.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = AdminError;
    type Future = Ready<Result<Self, AdminError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = req.app_data::<web::Data<AdminToken>>();
        let config = req.app_data::<web::Data<ReloadableConfig>>();
        let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
        let accepted = match (token, config, presented) {
            (Some(token), Some(config), Some(presented)) => {
                token.accepts(presented, config.current().settings.admin.token_overlap)
            }
            _ => false,
        };
        ready(if accepted { Ok(Admin) } else { Err(AdminError::Unauthorized) })
    }
}

/// The token of an `Authorization` value `<scheme> <token>` whose scheme is `Bearer` in any case: RFC 7235 makes
/// the scheme case-insensitive and allows one or more spaces before the credentials.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    let token = rest.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
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
        // HTTP/2 (dead connections noticed by PING) or HTTP/1.1 (TCP keepalive, then the watch's timeout).
        "protocol": subsystem.protocol.name(),
    })
}

/// `GET /api/v1/admin/config`: what is in force, where it came from, and how the last reload went.
#[get("/api/v1/admin/config")]
async fn status(
    _: Admin,
    config: web::Data<ReloadableConfig>,
    subsystem: web::Data<Subsystem>,
    fallback: Option<web::Data<Option<StartupFallback>>>,
    token: web::Data<AdminToken>,
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
        "admin_token": token.status(now.settings.admin.token_overlap),
        "settings": redacted_settings(&config),
    }))
}

/// `GET /api/v1/admin/config/history`: the last reloads, oldest first, redacted as the audit lines are.
#[get("/api/v1/admin/config/history")]
async fn history(_: Admin, history: Option<web::Data<ReloadHistory>>) -> HttpResponse {
    /// Serialized as it is, without a JSON tree in between.
    #[derive(serde::Serialize)]
    struct History {
        records: Vec<ReloadRecord>,
    }
    HttpResponse::Ok().json(History { records: history.map(|h| h.records()).unwrap_or_default() })
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
