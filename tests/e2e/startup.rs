//! Start-up and shutdown against a real API server: restart-only keys set in the ConfigMap take effect at the next
//! start (and a pending restart is announced once), an early SIGHUP never kills the broker while a silent API server
//! delays its start by a bounded time, and SIGTERM drops readiness first while requests in flight finish.

use std::time::{Duration, Instant};

use brokkr_e2e::{Broker, Cluster, broker::ADMIN_TOKEN, cluster::BROKER_USER};
use brokkr_testenv::FaultProxy;
use serde_json::json;

/// The harness sets `log.format` through the environment; an empty value removes it so the ConfigMap decides.
const FORMAT_FROM_CONFIGMAP: [(&str, &str); 1] = [("BROKKR__LOG__FORMAT", "")];

fn document(format: &str, max_age: &str) -> String {
    format!("[log]\nformat = \"{format}\"\n[cors]\nmax_age = \"{max_age}\"\n[config_reload]\ndebounce = \"1s\"")
}

fn restart_warnings(broker: &Broker) -> usize {
    broker
        .log_lines()
        .iter()
        .filter(|l| l["message"].as_str().is_some_and(|m| m.starts_with("restart to apply these settings")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_only_keys_in_the_configmap_take_effect_at_the_next_start_and_a_restart_is_asked_for_once() {
    let cluster = Cluster::with_config("startup", &document("json", "1m")).await;
    let broker = cluster.start_broker(&FORMAT_FROM_CONFIGMAP).await;
    let first_line = std::fs::read_to_string(broker.log_path()).unwrap_or_default();
    let first_line = first_line.lines().next().unwrap_or_default().to_owned();
    assert!(serde_json::from_str::<serde_json::Value>(&first_line).is_ok(), "JSON from the first line: {first_line}");
    let status = broker.status().await;
    assert_eq!((status["restart_required"].clone(), status["generation"].clone()), (json!([]), json!(0)));

    // A restart-only edit is reported; the re-reads and a live edit after it do not report it again.
    cluster.apply_config(&document("text", "1m")).await;
    broker
        .wait_until("the restart is asked for", Duration::from_secs(15), |b| async move {
            b.status().await["restart_required"] == json!(["log.format"])
        })
        .await;
    cluster.apply_config(&document("text", "2m")).await;
    broker.wait_for_generation(1, Duration::from_secs(15)).await;
    let (code, report) = broker.reload_now().await;
    assert_eq!((code, report["outcome"].as_str()), (200, Some("unchanged")), "{report}");
    assert_eq!(broker.status().await["restart_required"], json!(["log.format"]));
    assert_eq!(restart_warnings(&broker), 1, "one WARN for one pending restart");
    broker
        .wait_until("the live edit's Event is recorded", Duration::from_secs(15), |_| async {
            cluster.configmap_events().await.iter().any(|(_, r, n)| r == "ConfigApplied" && n.contains("cors.max_age"))
        })
        .await;
    let restart_events = cluster.configmap_events().await.iter().filter(|(_, r, _)| r == "RestartRequired").count();
    assert_eq!(restart_events, 1, "one Event for one pending restart");

    // Another restart-only key joins: that is news, in a new Event that names it (not merged into the first).
    cluster.apply_config(&format!("{}\nenabled = false", document("text", "2m"))).await;
    broker
        .wait_until("the new pending key is announced", Duration::from_secs(15), |_| async {
            let events = cluster.configmap_events().await;
            events.iter().any(|(_, r, n)| r == "RestartRequired" && n.contains("config_reload.enabled"))
        })
        .await;
    assert_eq!(restart_warnings(&broker), 2);

    // The restart the operator was asked for: the new broker runs on text lines, does not watch (the ConfigMap
    // turned hot reload off for the next start) and nothing is pending.
    drop(broker);
    let restarted = cluster.start_broker(&FORMAT_FROM_CONFIGMAP).await;
    let status = restarted.status().await;
    assert_eq!(status["restart_required"], json!([]), "{status}");
    assert_eq!(status["settings"]["log"]["format"], "text");
    assert_eq!(status["watcher"]["enabled"], false);
    assert!(restarted.log_lines().is_empty(), "text lines, not JSON, from the start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_sighup_never_kills_the_broker_and_a_silent_api_server_delays_start_by_a_bounded_time() {
    let cluster = Cluster::with_config("early", "[config_reload]\ndebounce = \"1s\"").await;
    let proxy = FaultProxy::start(cluster.plane.apiserver_addr()).await.expect("proxy");
    proxy.pause(true); // the API server accepts connections but never answers: the start-up read waits
    let kubeconfig = cluster.plane.user_kubeconfig_via(BROKER_USER, proxy.addr()).expect("kubeconfig");
    let started = Instant::now();
    let mut broker = Broker::spawn(&kubeconfig, &cluster.namespace, &[], cluster.plane.dir());
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.connections_accepted() == 0 {
        assert!(Instant::now() < deadline, "the start-up read never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker.signal("-HUP"); // in the middle of the start-up read

    broker
        .wait_until("healthz answers after the bounded start-up read", Duration::from_secs(30), |b| async move {
            b.get("/healthz", None).await.is_some()
        })
        .await;
    let took = started.elapsed();
    println!("e2e start-up with a silent API server: {} ms", took.as_millis());
    assert!(broker.is_running(), "SIGHUP during start-up did not kill the broker");
    assert!(took >= Duration::from_secs(5), "the start-up read waited its bound: {took:?}");
    let unreadable =
        |l: &serde_json::Value| l["message"].as_str().is_some_and(|m| m.contains("could not be read at start-up"));
    assert!(broker.log_lines().iter().any(unreadable), "the fallback is logged");

    proxy.pause(false);
    let rv = cluster.apply_config("[config_reload]\ndebounce = \"1s\"\n[cors]\nmax_age = \"1m\"").await;
    broker.wait_for_version(&rv, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drops_readiness_first_serves_during_the_drain_and_lets_requests_in_flight_finish() {
    let cluster = Cluster::with_config("drain", "[config_reload]\ndebounce = \"1s\"").await;
    let proxy = FaultProxy::start(cluster.plane.apiserver_addr()).await.expect("proxy");
    let mut broker = cluster.start_broker_via(&proxy, &[("BROKKR_DRAIN_DELAY", "3s")]).await;
    assert_eq!(broker.get("/readyz", None).await.map(|r| r.status().as_u16()), Some(200));

    // An on-demand reload whose API read hangs (every connection swallows bytes) stays in flight for its timeout.
    proxy.blackhole(true);
    let url = broker.url("/api/v1/admin/config/reload");
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new().post(url).bearer_auth(ADMIN_TOKEN).send().await.map(|r| r.status().as_u16())
    });
    broker
        .wait_until("the reload is in flight", Duration::from_secs(10), |b| async move {
            b.log_lines().iter().any(|l| l["message"] == "on-demand reload: reading the ConfigMap")
        })
        .await;

    broker.signal("-TERM");
    broker
        .wait_until("readiness drops", Duration::from_secs(2), |b| async move {
            b.get("/readyz", None).await.is_some_and(|r| r.status() == 503)
        })
        .await;
    let during_drain = broker.get("/healthz", None).await.map(|r| r.status().as_u16());
    assert_eq!(during_drain, Some(200), "new requests are still answered during the drain");
    let answered = in_flight.await.expect("joined");
    assert!(matches!(answered, Ok(502)), "the request in flight got its answer (read timed out): {answered:?}");
    assert_eq!(broker.wait_for_exit(Duration::from_secs(20)).await, Some(0));
    let messages: Vec<String> =
        broker.log_lines().iter().filter_map(|l| l["message"].as_str().map(str::to_owned)).collect();
    let dropped = messages.iter().position(|m| m.starts_with("readiness dropped"));
    let stopped = messages.iter().position(|m| m == "stopped");
    assert!(dropped.is_some() && dropped < stopped, "{messages:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_that_turns_on_a_webhook_whose_port_is_taken_never_stops_the_start() {
    // Measured on the landed broker: `failed to start the admission webhook: … Address already in use`, exit 1,
    // and every restart reads the same ConfigMap again.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("addr").to_string();
    let document = "[webhook]\nenabled = true\n[config_reload]\ndebounce = \"1s\"";
    let cluster = Cluster::with_config("fallback", document).await;
    let broker = cluster.start_broker(&[("BROKKR__WEBHOOK__LISTEN", &listen)]).await;

    let status = broker.status().await;
    assert_eq!(status["startup_fallback"]["keys"], json!(["webhook.enabled"]), "{status}");
    let error = status["startup_fallback"]["error"].as_str().unwrap_or_default();
    assert!(error.contains(&listen) && error.contains("in use"), "{error}");
    assert_eq!(status["settings"]["webhook"]["enabled"], false);
    let fell_back = |l: &serde_json::Value| {
        l["message"].as_str().is_some_and(|m| m.starts_with("the ConfigMap's restart-only settings could not start"))
    };
    assert!(broker.log_lines().iter().any(fell_back), "the fallback is logged");
    broker
        .wait_until("the StartupFallback Event is recorded", Duration::from_secs(15), |_| async {
            let events = cluster.configmap_events().await;
            events.iter().any(|(_, r, n)| r == "StartupFallback" && n.contains("webhook.enabled"))
        })
        .await;

    // It serves and hot-reloads as usual.
    let rv = cluster.apply_config(&format!("{document}\n[cors]\nmax_age = \"1m\"")).await;
    broker.wait_for_version(&rv, Duration::from_secs(30)).await;
    assert_eq!(broker.status().await["settings"]["cors"]["max_age"], "1m");
    drop(taken);
}
