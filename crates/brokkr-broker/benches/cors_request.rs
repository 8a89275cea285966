//! CPU cost of one request through our live CORS middleware, through actix-cors configured identically, and without.
#![allow(missing_docs, reason = "criterion_group! generates an undocumented function")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use actix_web::{
    App, HttpResponse,
    http::header::{AUTHORIZATION, CONTENT_TYPE},
    middleware::from_fn,
    test::{self, TestRequest},
    web,
};
use brokkr_broker::cors;
use brokkr_config::{ConfigLayers, ReloadableConfig, layers::LayerText};
use criterion::{Criterion, criterion_group, criterion_main};

const ORIGIN: &str = "https://app.example.com";

fn document(max_age: &str) -> LayerText {
    let text = format!("[cors]\nallowed_origins = [\"{ORIGIN}\"]\nmax_age = \"{max_age}\"\n");
    LayerText { origin: "bench".into(), text }
}

fn live_config() -> ReloadableConfig {
    let built = ConfigLayers::new().build(Some(&document("10m"))).expect("valid document");
    ReloadableConfig::new(built.settings)
}

/// Applies a new document every 100 ms until `stop` (the reload storm); returns the reloads applied.
fn reload_storm(config: ReloadableConfig, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let layers = ConfigLayers::new();
        let mut applied = 0;
        while !stop.load(Ordering::Relaxed) {
            let max_age = if applied % 2 == 0 { "11m" } else { "10m" };
            if config.reload(layers.build(Some(&document(max_age))), None).label() == brokkr_config::Outcome::Applied {
                applied += 1;
            }
            thread::sleep(Duration::from_millis(100));
        }
        applied
    })
}

async fn ok() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// Times `iters` GETs with an allowed `Origin` through `app`, in one actix runtime; asserts the CORS answer.
macro_rules! time_requests {
    ($iters:expr, $app:expr, $expect_cors:expr) => {{
        actix_rt::System::new().block_on(async {
            let app = test::init_service($app).await;
            let started = Instant::now();
            for _ in 0..$iters {
                let req = TestRequest::get().uri("/bench").insert_header(("Origin", ORIGIN)).to_request();
                let res = test::call_service(&app, req).await;
                assert_eq!(res.headers().contains_key("access-control-allow-origin"), $expect_cors);
            }
            started.elapsed()
        })
    }};
}

/// The route behind our live CORS middleware, reading `config` per request.
macro_rules! live_app {
    ($config:expr) => {
        App::new()
            .app_data(web::Data::new($config.clone()))
            .wrap(from_fn(cors::middleware))
            .route("/bench", web::get().to(ok))
    };
}

fn bench(c: &mut Criterion) {
    let config = live_config();
    let mut group = c.benchmark_group("one GET with an allowed Origin");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("brokkr live middleware", |b| {
        b.iter_custom(|iters| time_requests!(iters, live_app!(config), true));
    });
    let stop = Arc::new(AtomicBool::new(false));
    let storm = reload_storm(config.clone(), stop.clone());
    group.bench_function("brokkr live middleware, reload every 100 ms", |b| {
        b.iter_custom(|iters| time_requests!(iters, live_app!(config), true));
    });
    stop.store(true, Ordering::Relaxed);
    let reloads = storm.join().expect("the storm thread ends");
    assert!(reloads > 10, "the storm applied only {reloads} reloads");
    group.bench_function("actix-cors static", |b| {
        b.iter_custom(|iters| {
            let cors = actix_cors::Cors::default()
                .allowed_origin(ORIGIN)
                .allowed_methods(["GET", "POST", "OPTIONS"])
                .allowed_headers([AUTHORIZATION, CONTENT_TYPE])
                .max_age(600);
            let app = App::new().wrap(cors).route("/bench", web::get().to(ok));
            time_requests!(iters, app, true)
        });
    });
    group.bench_function("no CORS", |b| {
        b.iter_custom(|iters| time_requests!(iters, App::new().route("/bench", web::get().to(ok)), false));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
