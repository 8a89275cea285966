//! The HTTP interface: CORS headers follow the live `cors.*` settings per request and, while CORS is on, every
//! response varies on `Origin`; the admin API is locked without a token, takes the bearer scheme in any case,
//! redacts secrets, and reports a disabled subsystem.

use actix_web::{
    App, HttpResponse,
    http::{Method, StatusCode, header},
    middleware::from_fn,
    test::{self, TestRequest},
    web,
};
use brokkr_broker::{
    admin_token::{AdminToken, TokenMetrics},
    cors, http,
};
use brokkr_config::{ConfigLayers, ReloadableConfig, SecretsElsewhere, Settings, layers::LayerText};
use brokkr_reload::{ReloadMetrics, Subsystem};
use prometheus_client::registry::Registry;
use serde_json::Value;

fn config_with(file: &str) -> (ConfigLayers, ReloadableConfig) {
    let layers = ConfigLayers::new()
        .with_file_text(&LayerText { origin: "test file".into(), text: file.into() })
        .expect("valid file");
    let config = ReloadableConfig::new(layers.build(None).expect("valid").settings);
    (layers, config)
}

fn apply(layers: &ConfigLayers, config: &ReloadableConfig, document: &str) {
    let candidate = layers.build(Some(&LayerText { origin: "test ConfigMap".into(), text: document.into() }));
    assert_eq!(config.reload(candidate, None).label().as_str(), "applied");
}

macro_rules! app {
    ($config:expr) => {{
        let mut registry = Registry::default();
        let _metrics = ReloadMetrics::register(&mut registry);
        test::init_service(
            App::new()
                .app_data(web::Data::new($config.clone()))
                .app_data(web::Data::new(Subsystem::<Settings>::disabled()))
                .app_data(web::Data::new(AdminToken::new(
                    &$config.current().settings.admin,
                    SecretsElsewhere::default(),
                    TokenMetrics::default(),
                )))
                .app_data(web::Data::new(registry))
                .wrap(from_fn(cors::middleware))
                .configure(http::routes)
                .route("/test/vary/{names}", web::get().to(vary_as)),
        )
        .await
    }};
}

/// A test-only handler that lists `names` in `Vary`, as a handler that negotiates content would.
async fn vary_as(names: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::VARY, names.into_inner())).finish()
}

fn header_of<B>(res: &actix_web::dev::ServiceResponse<B>, name: header::HeaderName) -> Option<String> {
    res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Every name listed in `Vary`, in order, across all `Vary` lines of the response.
fn vary_of<B>(res: &actix_web::dev::ServiceResponse<B>) -> Vec<String> {
    res.headers()
        .get_all(header::VARY)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect()
}

/// A GET of `path`, sent from `origin` when there is one.
fn get_from(path: &str, origin: Option<&str>) -> TestRequest {
    let req = TestRequest::get().uri(path);
    match origin {
        Some(origin) => req.insert_header((header::ORIGIN, origin)),
        None => req,
    }
}

/// A CORS preflight for `GET /api/v1/admin/config` from `origin`.
fn preflight_from(origin: &str) -> TestRequest {
    TestRequest::default()
        .method(Method::OPTIONS)
        .uri("/api/v1/admin/config")
        .insert_header((header::ORIGIN, origin))
        .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "GET"))
}

/// A GET of the admin status with `authorization`, when there is one.
fn admin_get(authorization: Option<&str>) -> TestRequest {
    let req = TestRequest::get().uri("/api/v1/admin/config");
    match authorization {
        Some(value) => req.insert_header((header::AUTHORIZATION, value)),
        None => req,
    }
}

#[actix_rt::test]
async fn cors_headers_follow_the_live_settings_on_every_route() {
    let (layers, config) = config_with("");
    let app = app!(config);
    let get =
        |path: &str| TestRequest::get().uri(path).insert_header((header::ORIGIN, "https://app.example")).to_request();

    let res = test::call_service(&app, get("/healthz")).await;
    assert_eq!(header_of(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), None, "no origin allowed by default");

    apply(&layers, &config, "[cors]\nallowed_origins = [\"https://app.example\"]\nmax_age = \"90s\"");
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/admin/config"] {
        let res = test::call_service(&app, get(path)).await;
        assert_eq!(
            header_of(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
            Some("https://app.example"),
            "{path}"
        );
    }
    let preflight = TestRequest::default()
        .method(actix_web::http::Method::OPTIONS)
        .uri("/api/v1/admin/config")
        .insert_header((header::ORIGIN, "https://app.example"))
        .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "GET"))
        .to_request();
    let res = test::call_service(&app, preflight).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_of(&res, header::ACCESS_CONTROL_MAX_AGE).as_deref(), Some("90"));

    apply(&layers, &config, "[cors]\nallowed_origins = [\"https://other.example\"]\nmax_age = \"90s\"");
    let res = test::call_service(&app, get("/healthz")).await;
    assert_eq!(header_of(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), None, "the old origin is no longer allowed");
}

#[actix_rt::test]
async fn the_admin_api_is_locked_without_a_token() {
    let (_, config) = config_with("");
    let app = app!(config);
    let req =
        TestRequest::get().uri("/api/v1/admin/config").insert_header((header::AUTHORIZATION, "Bearer ")).to_request();
    assert_eq!(test::call_service(&app, req).await.status(), StatusCode::UNAUTHORIZED);
}

#[actix_rt::test]
async fn admin_status_redacts_the_token_and_reload_is_unavailable_when_disabled() {
    let (_, config) = config_with("[admin]\ntoken = \"s3cret-token-0123\"");
    let app = app!(config);
    let wrong = TestRequest::get()
        .uri("/api/v1/admin/config")
        .insert_header((header::AUTHORIZATION, "Bearer nope"))
        .to_request();
    assert_eq!(test::call_service(&app, wrong).await.status(), StatusCode::UNAUTHORIZED);

    let req = TestRequest::get()
        .uri("/api/v1/admin/config")
        .insert_header((header::AUTHORIZATION, "Bearer s3cret-token-0123"))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = test::read_body(res).await;
    assert!(!String::from_utf8_lossy(&body).contains("s3cret-token-0123"));
    let status: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status["settings"]["admin"]["token"], "<redacted>");
    assert_eq!(status["generation"], 0);
    assert_eq!(status["watcher"]["enabled"], false);
    assert_eq!(status["watcher"]["state"], "disabled");
    assert!(status["source"].is_null());
    assert_eq!(status["settings"]["config_reload"]["debounce"], "5s");

    let req = TestRequest::post()
        .uri("/api/v1/admin/config/reload")
        .insert_header((header::AUTHORIZATION, "Bearer s3cret-token-0123"))
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[actix_rt::test]
async fn while_cors_is_on_every_response_varies_on_origin() {
    let (_, config) = config_with("[cors]\nallowed_origins = [\"https://app.example\"]");
    let app = app!(config);

    // A disallowed or absent origin also gets `Vary`, or a cache could serve it an allowed origin's answer.
    let res = test::call_service(&app, get_from("/healthz", Some("https://evil.example")).to_request()).await;
    assert_eq!(header_of(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), None, "the origin is not allowed");
    assert_eq!(vary_of(&res), ["Origin"], "a disallowed origin");
    let res = test::call_service(&app, get_from("/healthz", None).to_request()).await;
    assert_eq!(vary_of(&res), ["Origin"], "no origin");

    for path in ["/healthz", "/api/v1/admin/config", "/no-such-route"] {
        let res = test::call_service(&app, get_from(path, Some("https://app.example")).to_request()).await;
        let allowed = header_of(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN);
        assert_eq!(allowed.as_deref(), Some("https://app.example"), "{path}");
        assert_eq!(vary_of(&res), ["Origin"], "{path}");
    }
}

#[actix_rt::test]
async fn preflights_vary_on_origin_and_the_requested_method_and_headers() {
    let (_, config) = config_with("[cors]\nallowed_origins = [\"https://app.example\"]");
    let app = app!(config);
    let vary = ["Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"];

    let res = test::call_service(&app, preflight_from("https://app.example").to_request()).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_of(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(), Some("https://app.example"));
    assert_eq!(vary_of(&res), vary, "an allowed origin");

    let res = test::call_service(&app, preflight_from("https://evil.example").to_request()).await;
    assert_eq!(header_of(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), None);
    assert_eq!(vary_of(&res), vary, "a disallowed origin");
}

#[actix_rt::test]
async fn a_vary_set_by_the_handler_is_extended_not_replaced() {
    let (_, config) = config_with("[cors]\nallowed_origins = [\"*\"]");
    let app = app!(config);
    let cases = [
        ("/test/vary/Accept-Encoding", "Accept-Encoding, Origin"),
        // Already listed (header names ignore case): not repeated.
        ("/test/vary/origin", "origin"),
        // `*` already covers every request header.
        ("/test/vary/*", "*"),
    ];
    for (path, expected) in cases {
        for origin in [Some("https://app.example"), None] {
            let res = test::call_service(&app, get_from(path, origin).to_request()).await;
            assert_eq!(vary_of(&res).join(", "), expected, "{path} from {origin:?}");
        }
    }
}

#[actix_rt::test]
async fn while_cors_is_off_responses_are_left_alone() {
    let (layers, config) = config_with("");
    let app = app!(config);

    let app_origin = Some("https://app.example");
    let res = test::call_service(&app, get_from("/healthz", app_origin).to_request()).await;
    assert!(vary_of(&res).is_empty(), "{:?}", vary_of(&res));
    let res = test::call_service(&app, get_from("/test/vary/Accept-Encoding", app_origin).to_request()).await;
    assert_eq!(vary_of(&res), ["Accept-Encoding"]);
    // With CORS off the middleware does not answer preflights itself: the route does.
    let res = test::call_service(&app, preflight_from("https://app.example").to_request()).await;
    assert_eq!(header_of(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), None);
    assert!(vary_of(&res).is_empty(), "{:?}", vary_of(&res));

    apply(&layers, &config, "[cors]\nallowed_origins = [\"https://app.example\"]");
    let res = test::call_service(&app, get_from("/healthz", None).to_request()).await;
    assert_eq!(vary_of(&res), ["Origin"], "a reload turned CORS on");

    apply(&layers, &config, "[cors]\nallowed_origins = []");
    let res = test::call_service(&app, get_from("/healthz", Some("https://app.example")).to_request()).await;
    assert!(vary_of(&res).is_empty(), "a reload turned CORS off: {:?}", vary_of(&res));
}

#[actix_rt::test]
async fn the_bearer_scheme_is_accepted_in_any_case_and_anything_else_is_refused() {
    let (_, config) = config_with("[admin]\ntoken = \"s3cret-token-0123\"");
    let app = app!(config);
    // RFC 7235: the scheme is case-insensitive, and one or more spaces precede the credentials.
    for accepted in [
        "Bearer s3cret-token-0123",
        "bearer s3cret-token-0123",
        "BEARER s3cret-token-0123",
        "bEaReR   s3cret-token-0123",
    ] {
        let res = test::call_service(&app, admin_get(Some(accepted)).to_request()).await;
        assert_eq!(res.status(), StatusCode::OK, "{accepted}");
    }
    let refused = [
        None,
        Some("Bearer nope"),
        Some("bearer nope"),
        Some("Bearer s3cret"),
        Some("Bearer s3cret-token-0123-and-more"),
        Some("Basic s3cret-token-0123"),
        Some("Bearers3cret-token-0123"),
        Some("s3cret-token-0123"),
        Some("Bearer"),
    ];
    for authorization in refused {
        let res = test::call_service(&app, admin_get(authorization).to_request()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(header_of(&res, header::WWW_AUTHENTICATE).as_deref(), Some("Bearer"), "{authorization:?}");
    }

    let (_, locked) = config_with("");
    let app = app!(locked);
    for authorization in [None, Some("bearer "), Some("BEARER  "), Some("Bearer")] {
        let res = test::call_service(&app, admin_get(authorization).to_request()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "no token configured: {authorization:?}");
        assert_eq!(header_of(&res, header::WWW_AUTHENTICATE).as_deref(), Some("Bearer"), "{authorization:?}");
    }
}

#[actix_rt::test]
async fn an_origin_that_is_not_text_is_never_allowed_even_with_a_wildcard() {
    let (layers, config) = config_with("");
    let app = app!(config);
    apply(&layers, &config, "[cors]\nallowed_origins = [\"*\"]");
    let origin = header::HeaderValue::from_bytes(b"https://\xffapp.example").expect("a header value");
    let req = TestRequest::get().uri("/healthz").insert_header((header::ORIGIN, origin)).to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN), None);
    assert_eq!(vary_of(&res), ["Origin"]);
}

#[actix_rt::test]
async fn an_allowed_origin_is_echoed_byte_for_byte_as_configured() {
    let (layers, config) = config_with("");
    let app = app!(config);
    apply(&layers, &config, "[cors]\nallowed_origins = [\"https://app.example:8443\"]");
    let res = test::call_service(&app, get_from("/healthz", Some("https://app.example:8443")).to_request()).await;
    let echoed = res.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).map(|v| v.as_bytes().to_vec());
    assert_eq!(echoed.as_deref(), Some(&b"https://app.example:8443"[..]));
    // A different spelling of the same origin is not it: origins are compared exactly.
    let res = test::call_service(&app, get_from("/healthz", Some("https://APP.example:8443")).to_request()).await;
    assert_eq!(res.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN), None);
}
