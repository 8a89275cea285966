//! Runs N GETs through one CORS variant in process, for `valgrind --tool=callgrind` to count instructions per request.
//!
//! `cors_instructions live|actix|none N`; instructions per request = (count at N − count at 0) / N, which does not
//! depend on what else the machine is doing (see docs/BENCHMARKS.md).

use actix_web::{
    App, HttpResponse,
    http::header::{AUTHORIZATION, CONTENT_TYPE},
    middleware::from_fn,
    test::{self, TestRequest},
    web,
};
use brokkr_broker::cors;
use brokkr_config::{ConfigLayers, ReloadableConfig, layers::LayerText};

const ORIGIN: &str = "https://app.example.com";

async fn ok() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

macro_rules! run {
    ($app:expr, $n:expr, $expect_cors:expr) => {{
        let app = test::init_service($app).await;
        for _ in 0..$n {
            let req = TestRequest::get().uri("/bench").insert_header(("Origin", ORIGIN)).to_request();
            let res = test::call_service(&app, req).await;
            assert_eq!(res.headers().contains_key("access-control-allow-origin"), $expect_cors);
        }
    }};
}

fn main() {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_else(|| "live".into());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let text = format!("[cors]\nallowed_origins = [\"{ORIGIN}\"]\nmax_age = \"10m\"\n");
    let built = ConfigLayers::new().build(Some(&LayerText { origin: "bench".into(), text })).expect("valid document");
    let config = ReloadableConfig::new(built.settings);
    actix_rt::System::new().block_on(async move {
        match variant.as_str() {
            "live" => {
                let app = App::new()
                    .app_data(web::Data::new(config))
                    .wrap(from_fn(cors::middleware))
                    .route("/bench", web::get().to(ok));
                run!(app, n, true);
            }
            "actix" => {
                let cors = actix_cors::Cors::default()
                    .allowed_origin(ORIGIN)
                    .allowed_methods(["GET", "POST", "OPTIONS"])
                    .allowed_headers([AUTHORIZATION, CONTENT_TYPE])
                    .max_age(600);
                run!(App::new().wrap(cors).route("/bench", web::get().to(ok)), n, true);
            }
            "none" => run!(App::new().route("/bench", web::get().to(ok)), n, false),
            other => panic!("unknown variant {other}: live, actix or none"),
        }
    });
}
