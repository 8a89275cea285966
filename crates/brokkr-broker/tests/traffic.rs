//! The traffic metrics a staged rollout's gate reads: requests by status class and CORS refusals, counted on the
//! broker's real middleware stack and read back from `/metrics`; a live `cors.*` change moves them at once.

use actix_web::{
    App,
    http::{Method, header},
    middleware::from_fn,
    test::{self, TestRequest},
    web,
};
use brokkr_broker::{
    admin_token::{AdminToken, TokenMetrics},
    cors, http,
    traffic::{self, TrafficMetrics},
};
use brokkr_config::{ConfigLayers, ReloadableConfig, SecretsElsewhere, Settings, layers::LayerText};
use brokkr_reload::Subsystem;
use prometheus_client::registry::Registry;

const CLIENT: &str = "https://app.example";

macro_rules! app {
    ($config:expr) => {{
        let mut registry = Registry::default();
        let traffic = TrafficMetrics::register(&mut registry);
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
                .app_data(web::Data::new(traffic))
                .wrap(from_fn(cors::middleware))
                .wrap(from_fn(traffic::count))
                .configure(http::routes),
        )
        .await
    }};
}

/// Applies `document` as a ConfigMap over no file, as a reload would.
fn apply(layers: &ConfigLayers, config: &ReloadableConfig, document: &str) {
    let candidate = layers.build(Some(&LayerText { origin: "test ConfigMap".into(), text: document.into() }));
    assert_eq!(config.reload(candidate, None).label().as_str(), "applied");
}

/// The value of the series `name{label="value"}` in a Prometheus text exposition.
fn series(exposition: &str, name: &str, label: &str, value: &str) -> u64 {
    let prefix = format!("{name}{{{label}=\"{value}\"}} ");
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {prefix}in:\n{exposition}"))
}

fn get_from(path: &str, origin: Option<&str>) -> TestRequest {
    let req = TestRequest::get().uri(path);
    match origin {
        Some(origin) => req.insert_header((header::ORIGIN, origin)),
        None => req,
    }
}

fn preflight_from(origin: &str) -> TestRequest {
    TestRequest::default()
        .method(Method::OPTIONS)
        .uri("/healthz")
        .insert_header((header::ORIGIN, origin))
        .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "GET"))
}

#[actix_rt::test]
async fn requests_count_by_class_and_refusals_follow_the_live_cors_settings() {
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("the defaults").settings);
    let app = app!(config);
    apply(&layers, &config, &format!("[cors]\nallowed_origins = [\"{CLIENT}\"]"));

    // Allowed: answered, not refused. A missing route is a 4xx. The platform's own calls are not traffic.
    for _ in 0..3 {
        test::call_service(&app, get_from("/healthz", Some(CLIENT)).to_request()).await;
    }
    test::call_service(&app, preflight_from(CLIENT).to_request()).await;
    test::call_service(&app, get_from("/no-such-route", None).to_request()).await;
    test::call_service(&app, get_from("/readyz", Some(CLIENT)).to_request()).await;
    let read = |app| async move {
        let body = test::call_and_read_body(app, get_from("/metrics", None).to_request()).await;
        String::from_utf8(body.to_vec()).expect("text")
    };
    let metrics = read(&app).await;
    assert_eq!(series(&metrics, "brokkr_http_requests_total", "class", "2xx"), 4, "three GETs and a preflight");
    assert_eq!(series(&metrics, "brokkr_http_requests_total", "class", "4xx"), 1);
    assert_eq!(series(&metrics, "brokkr_http_requests_total", "class", "5xx"), 0, "the series exists at 0");
    assert_eq!(series(&metrics, "brokkr_cors_refusals_total", "kind", "origin"), 0);
    assert_eq!(series(&metrics, "brokkr_cors_refusals_total", "kind", "preflight"), 0);

    // The harmful change: the client's origin dropped. The very next requests are refusals.
    apply(&layers, &config, "[cors]\nallowed_origins = [\"https://other.example\"]");
    test::call_service(&app, get_from("/healthz", Some(CLIENT)).to_request()).await;
    test::call_service(&app, preflight_from(CLIENT).to_request()).await;
    test::call_service(&app, get_from("/healthz", None).to_request()).await;
    let metrics = read(&app).await;
    assert_eq!(series(&metrics, "brokkr_cors_refusals_total", "kind", "origin"), 1, "a request without Origin is none");
    assert_eq!(series(&metrics, "brokkr_cors_refusals_total", "kind", "preflight"), 1);

    // CORS off altogether refuses every browser client: still counted.
    apply(&layers, &config, "");
    test::call_service(&app, get_from("/healthz", Some(CLIENT)).to_request()).await;
    test::call_service(&app, preflight_from(CLIENT).to_request()).await;
    let metrics = read(&app).await;
    assert_eq!(series(&metrics, "brokkr_cors_refusals_total", "kind", "origin"), 2);
    assert_eq!(series(&metrics, "brokkr_cors_refusals_total", "kind", "preflight"), 2);
    // Refused preflights are answered 204 while CORS is on; with it off, no route answers OPTIONS.
    assert_eq!(series(&metrics, "brokkr_http_requests_total", "class", "2xx"), 8);
    assert_eq!(series(&metrics, "brokkr_http_requests_total", "class", "4xx"), 2);
}

#[actix_rt::test]
async fn the_gate_counts_only_refusals_of_origins_the_settings_before_allowed() {
    // Found by review: any pod could fail every rollout's gate by sending requests with an Origin no settings ever
    // allowed. Only a refusal the change caused (an origin allowed before it) is the change's fault.
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("the defaults").settings);
    let mut registry = Registry::default();
    let traffic = TrafficMetrics::register(&mut registry);
    traffic.follow(&config);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(config.clone()))
            .app_data(web::Data::new(Subsystem::<Settings>::disabled()))
            .app_data(web::Data::new(traffic.clone()))
            .wrap(from_fn(cors::middleware))
            .wrap(from_fn(traffic::count))
            .configure(http::routes),
    )
    .await;
    apply(&layers, &config, &format!("[cors]\nallowed_origins = [\"{CLIENT}\"]"));
    actix_rt::task::yield_now().await; // the follower sees each change, as reloads seconds apart are
    apply(&layers, &config, "[cors]\nallowed_origins = [\"https://other.example\"]");
    actix_rt::task::yield_now().await;
    let before = traffic.counts();
    for origin in ["https://stranger.example", "null", "https://stranger.example"] {
        test::call_service(&app, get_from("/healthz", Some(origin)).to_request()).await;
    }
    assert_eq!(traffic.counts().since(before).cors_refusals, 0, "refused before the change as well");
    test::call_service(&app, get_from("/healthz", Some(CLIENT)).to_request()).await;
    test::call_service(&app, preflight_from(CLIENT).to_request()).await;
    assert_eq!(traffic.counts().since(before).cors_refusals, 2, "the origin the change dropped");
}

#[actix_rt::test]
async fn a_later_change_that_leaves_cors_alone_does_not_count_an_earlier_cors_change() {
    // Found by the second review: the origins "before" stayed those of the last CORS change, so after a `*` was
    // narrowed every later rollout counted any stranger's origin against its gate.
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("the defaults").settings);
    let traffic = TrafficMetrics::default();
    traffic.follow(&config);
    apply(&layers, &config, "[cors]\nallowed_origins = [\"*\"]");
    actix_rt::task::yield_now().await;
    apply(&layers, &config, &format!("[cors]\nallowed_origins = [\"{CLIENT}\"]"));
    actix_rt::task::yield_now().await;
    apply(&layers, &config, &format!("[cors]\nallowed_origins = [\"{CLIENT}\"]\n[log]\nlevel = \"debug\""));
    actix_rt::task::yield_now().await;
    let before = traffic.counts();
    traffic.refused(brokkr_broker::traffic::Refusal::Origin, "https://stranger.example");
    assert_eq!(traffic.counts().since(before).cors_refusals, 0, "not the log level change's fault");
}
