//! CORS headers decided per request from the settings in force, so `cors.*` changes apply to the next request.

use actix_web::{
    Error, HttpResponse,
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{self, HeaderValue},
    },
    middleware::Next,
    web,
};
use brokkr_config::ReloadableConfig;

const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
const ALLOWED_HEADERS: &str = "authorization, content-type";

/// Middleware (use with `actix_web::middleware::from_fn`): answers preflights and marks allowed origins.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let Some(config) = req.app_data::<web::Data<ReloadableConfig>>() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let cors = config.current().settings.cors.clone();
    let allow = origin.as_ref().and_then(|o| o.to_str().ok()).and_then(|o| {
        if cors.allowed_origins.iter().any(|a| a == o) {
            HeaderValue::from_str(o).ok()
        } else if cors.allowed_origins.iter().any(|a| a == "*") {
            Some(HeaderValue::from_static("*"))
        } else {
            None
        }
    });
    let preflight = req.method() == Method::OPTIONS
        && origin.is_some()
        && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut response = HttpResponse::NoContent();
        response.insert_header((header::VARY, "Origin"));
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
    if let Some(allow) = allow {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(response.map_into_left_body())
}
