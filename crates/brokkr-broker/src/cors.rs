//! CORS headers decided per request from the settings in force, so `cors.*` changes apply to the next request.

use actix_web::{
    Error, HttpResponse,
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{self, HeaderMap, HeaderValue},
    },
    middleware::Next,
    web,
};
use brokkr_config::ReloadableConfig;

use crate::traffic::{Refusal, TrafficMetrics};

const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
const ALLOWED_HEADERS: &str = "authorization, content-type";
/// Every request header a preflight answer depends on (Fetch standard, "CORS protocol and HTTP caches").
const PREFLIGHT_VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// Middleware (use with `actix_web::middleware::from_fn`): answers preflights and marks allowed origins.
///
/// While CORS is on (`cors.allowed_origins` is not empty), every response carries `Vary: Origin`, added to any
/// `Vary` the handler set: whether it gets CORS headers depends on `Origin`, also when `Origin` is absent or not
/// allowed, so a cache must not hand one origin's answer to another. While CORS is off, responses pass untouched.
///
/// With [`TrafficMetrics`] in the app, every request with an `Origin` that is not allowed counts as a refusal, also
/// while CORS is off: emptying `cors.allowed_origins` refuses every browser client, the most harmful CORS change.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(config) = req.app_data::<web::Data<ReloadableConfig>>() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    // The platform's own calls (readiness probes, scrapes) are no client's: their refusals are not counted either.
    let traffic = req.app_data::<web::Data<TrafficMetrics>>().filter(|_| !crate::traffic::is_platform(req.path()));
    let is_preflight = |req: &ServiceRequest| {
        req.method() == Method::OPTIONS
            && req.headers().contains_key(header::ORIGIN)
            && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    };
    let refusal = |req: &ServiceRequest| if is_preflight(req) { Refusal::Preflight } else { Refusal::Origin };
    // The snapshot is held, not its settings cloned: no allocation per request.
    let snapshot = config.current();
    let cors = &snapshot.settings.cors;
    if cors.allowed_origins.is_empty() {
        if let Some((traffic, origin)) = traffic.zip(req.headers().get(header::ORIGIN)) {
            traffic.refused(refusal(&req), origin.to_str().unwrap_or_default());
        }
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allow = origin.as_ref().and_then(|value| {
        let o = value.to_str().ok()?;
        if cors.allowed_origins.iter().any(|a| a == o) {
            // The request's own header value: the same bytes, shared rather than copied.
            Some(value.clone())
        } else if cors.allowed_origins.iter().any(|a| a == "*") {
            Some(HeaderValue::from_static("*"))
        } else {
            None
        }
    });
    if let Some((traffic, origin)) = traffic.zip(origin.as_ref()).filter(|_| allow.is_none()) {
        traffic.refused(refusal(&req), origin.to_str().unwrap_or_default());
    }
    if is_preflight(&req) {
        let mut response = HttpResponse::NoContent();
        response.insert_header((header::VARY, PREFLIGHT_VARY));
        if let Some(allow) = allow {
            response
                .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, allow))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOWED_METHODS))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, cors.max_age.as_secs().to_string()));
        }
        return Ok(req.into_response(response.finish()).map_into_right_body());
    }
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    if let Some(allow) = allow {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    }
    vary_on_origin(headers);
    Ok(response.map_into_left_body())
}

/// Adds `Origin` to the `Vary` list, keeping the names already listed; a list that has it or `*` stays as it is.
fn vary_on_origin(headers: &mut HeaderMap) {
    if !headers.contains_key(header::VARY) {
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        return;
    }
    let values: Vec<HeaderValue> = headers.get_all(header::VARY).cloned().collect();
    let mut names: Vec<&str> = values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.iter().any(|n| *n == "*" || n.eq_ignore_ascii_case("origin")) {
        return;
    }
    // One combined value when every value is readable; otherwise a further `Vary` line, which means the same.
    if values.iter().all(|v| v.to_str().is_ok()) {
        names.push("Origin");
        if let Ok(value) = HeaderValue::from_str(&names.join(", ")) {
            headers.insert(header::VARY, value);
            return;
        }
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}
