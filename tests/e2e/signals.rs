//! Reloads on demand and process signals against a real API server: the admin reload and SIGHUP bypass a long
//! debounce, and SIGTERM stops the broker gracefully with exit code 0.

use std::time::Duration;

use brokkr_e2e::Cluster;

const SLOW: &str = "[config_reload]\ndebounce = \"10m\"\nmax_wait = \"10m\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reload_and_sighup_bypass_the_debounce_and_sigterm_stops_gracefully() {
    let cluster = Cluster::with_config("signals", SLOW).await;
    let mut broker = cluster.start_broker(&[]).await;
    let g = broker.wait_for_configmap().await;

    cluster.apply_config(&format!("{SLOW}[cors]\nallowed_origins = [\"https://admin.example\"]")).await;
    let (code, report) = broker.reload_now().await;
    assert_eq!(code, 200, "{report}");
    assert_eq!((report["outcome"].as_str(), report["generation"].as_u64()), (Some("applied"), Some(g + 1)));
    assert_eq!(report["changes"][0]["key"], "cors.allowed_origins");
    assert_eq!(report["changes"][0]["new"], "[\"https://admin.example\"]");

    cluster.apply_config(&format!("{SLOW}[cors]\nallowed_origins = [\"https://hup.example\"]")).await;
    broker.signal("-HUP");
    broker.wait_for_generation(g + 2, Duration::from_secs(5)).await;
    assert_eq!(broker.allowed_origin("/healthz", "https://hup.example").await.as_deref(), Some("https://hup.example"));

    let stopping = std::time::Instant::now();
    broker.signal("-TERM");
    assert_eq!(broker.wait_for_exit(Duration::from_secs(15)).await, Some(0));
    println!("e2e SIGTERM->exit: {} ms", stopping.elapsed().as_millis());
    assert!(broker.log_lines().iter().any(|l| l["message"] == "stopped"));
}
