//! The HTTP interface: CORS headers follow the live `cors.*` settings per request, and the admin API is locked
//! without a token, redacts secrets, and reports a disabled subsystem.

use actix_web::{
    App,
    http::{StatusCode, header},
    middleware::from_fn,
    test::{self, TestRequest},
    web,
};
use brokkr_broker::{cors, http};
use brokkr_config::{ConfigLayers, ReloadableConfig, layers::LayerText};
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
    assert_eq!(config.reload(candidate, None).label(), "applied");
}

macro_rules! app {
    ($config:expr) => {{
        let mut registry = Registry::default();
        let _metrics = ReloadMetrics::register(&mut registry);
        test::init_service(
            App::new()
                .app_data(web::Data::new($config.clone()))
                .app_data(web::Data::new(Subsystem::disabled()))
                .app_data(web::Data::new(registry))
                .wrap(from_fn(cors::middleware))
                .configure(http::routes),
        )
        .await
    }};
}

fn header_of<B>(res: &actix_web::dev::ServiceResponse<B>, name: header::HeaderName) -> Option<String> {
    res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
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
    let (_, config) = config_with("[admin]\ntoken = \"s3cret-token\"");
    let app = app!(config);
    let wrong = TestRequest::get()
        .uri("/api/v1/admin/config")
        .insert_header((header::AUTHORIZATION, "Bearer nope"))
        .to_request();
    assert_eq!(test::call_service(&app, wrong).await.status(), StatusCode::UNAUTHORIZED);

    let req = TestRequest::get()
        .uri("/api/v1/admin/config")
        .insert_header((header::AUTHORIZATION, "Bearer s3cret-token"))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = test::read_body(res).await;
    assert!(!String::from_utf8_lossy(&body).contains("s3cret-token"));
    let status: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status["settings"]["admin"]["token"], "<redacted>");
    assert_eq!(status["generation"], 0);
    assert_eq!(status["watcher"]["enabled"], false);
    assert_eq!(status["watcher"]["state"], "disabled");
    assert!(status["source"].is_null());
    assert_eq!(status["settings"]["config_reload"]["debounce"], "5s");

    let req = TestRequest::post()
        .uri("/api/v1/admin/config/reload")
        .insert_header((header::AUTHORIZATION, "Bearer s3cret-token"))
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), StatusCode::SERVICE_UNAVAILABLE);
}
