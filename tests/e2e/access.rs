//! RBAC and registration against a real API server: a broker without its Role stays up, reports the 403 and
//! recovers once the Role exists; with hot reload disabled it makes no API request at all (per the audit log).

use std::time::Duration;

use brokkr_e2e::{Cluster, cluster::BROKER_USER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_role_the_broker_stays_up_reports_the_403_and_recovers() {
    let cluster = Cluster::start("norole").await;
    cluster.apply_config("[cors]\nallowed_origins = [\"https://one.example\"]").await;
    let broker = cluster.start_broker(&[]).await;

    broker
        .wait_until("the status reports the 403", Duration::from_secs(20), |b| async move {
            let watcher = &b.status().await["watcher"];
            watcher["error"].as_str().is_some_and(|e| e.contains("403") || e.contains("forbidden"))
        })
        .await;
    assert_eq!(broker.get("/healthz", None).await.map(|r| r.status().as_u16()), Some(200));
    assert_eq!(broker.status().await["generation"], 0, "nothing was read");
    broker
        .wait_until("readiness does not wait forever", Duration::from_secs(20), |b| async move {
            b.get("/readyz", None).await.is_some_and(|r| r.status() == 200)
        })
        .await;

    cluster.grant_broker_role().await;
    let recovered = broker.wait_for_generation(1, Duration::from_secs(90)).await;
    println!("e2e Role granted->applied latency (includes watcher backoff): {} ms", recovered.as_millis());
    broker
        .wait_until("the watch holds", Duration::from_secs(10), |b| async move {
            b.status().await["watcher"]["state"] == "watching"
        })
        .await;
    assert!(broker.status().await["watcher"]["restarts"].as_u64() >= Some(1));
    assert_eq!(broker.allowed_origin("/healthz", "https://one.example").await.as_deref(), Some("https://one.example"));
    // Only the broker's own ConfigMap is readable: the Role names it.
    let denied_other = cluster.plane.requests_by(BROKER_USER).iter().all(|e| {
        e["objectRef"]["resource"] != "configmaps"
            || e["objectRef"]["name"].as_str().is_none_or(|n| n == "brokkr-broker")
    });
    assert!(denied_other, "the broker only asked for its own ConfigMap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_hot_reload_disabled_the_broker_makes_no_api_request() {
    let cluster = Cluster::with_config("disabled", "[cors]\nallowed_origins = [\"https://one.example\"]").await;
    let env = [("BROKKR__CONFIG_RELOAD__ENABLED", "false")];
    let broker = cluster.start_broker(&env).await;

    let (code, _) = broker.reload_now().await;
    assert_eq!(code, 503, "on-demand reload is unavailable when disabled");
    let status = broker.status().await;
    assert_eq!((status["watcher"]["enabled"].as_bool(), status["generation"].as_u64()), (Some(false), Some(0)));
    assert_eq!(broker.allowed_origin("/healthz", "https://one.example").await, None, "the ConfigMap was never read");
    let from_broker = cluster.plane.requests_by(BROKER_USER);
    assert!(from_broker.is_empty(), "audit log shows requests by the broker: {from_broker:?}");
    assert!(!cluster.plane.audit_events().is_empty(), "the audit log is being written");
}
