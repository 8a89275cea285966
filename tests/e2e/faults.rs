//! Faults a real API server and network produce: a Role without `watch` must not make the broker spin, and a
//! silently dead connection (a NAT that dropped its state) must not leave an edit unapplied for minutes.

use std::time::{Duration, Instant};

use brokkr_e2e::{Cluster, cluster::BROKER_USER};
use brokkr_testenv::FaultProxy;

const DEBOUNCE: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_watch_permission_the_broker_backs_off_instead_of_spinning() {
    let cluster = Cluster::start("nowatch").await;
    cluster.grant_broker_role_with(&["get", "list"]).await;
    let rv = cluster.apply_config("[cors]\nallowed_origins = [\"https://one.example\"]").await;
    let started = Instant::now();
    let broker = cluster.start_broker(&[]).await;
    broker.wait_for_version(&rv, Duration::from_secs(10)).await;

    // A measurement window, not a wait for a condition: every list succeeds and every watch is refused for 30 s.
    tokio::time::sleep_until((started + Duration::from_secs(30)).into()).await;
    let requests = cluster
        .plane
        .requests_by(BROKER_USER)
        .into_iter()
        .filter(|e| e["objectRef"]["resource"] == "configmaps")
        .count();
    println!("e2e requests without watch permission: {requests} in {} s", started.elapsed().as_secs());
    // Backoff 0.8 s doubling with jitter: about 6 list+watch cycles fit in 30 s; a reset on every list gave ~160.
    assert!(requests <= 24, "{requests} ConfigMap requests in 30 s");
    let status = broker.status().await;
    assert_ne!(status["watcher"]["state"], "watching", "no watch is open: {status}");
    assert!(status["watcher"]["error"].as_str().is_some_and(|e| e.contains("403") || e.contains("forbidden")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_connection_is_noticed_and_the_edit_applied_within_45_s() {
    let cluster = Cluster::with_config("deadconn", "[config_reload]\ndebounce = \"1s\"").await;
    let proxy = FaultProxy::start(cluster.plane.apiserver_addr()).await.expect("proxy");
    let broker = cluster.start_broker_via(&proxy, &[]).await;
    broker
        .wait_until("the watch holds", Duration::from_secs(30), |b| async move {
            b.status().await["watcher"]["state"] == "watching"
        })
        .await;

    // Every open connection now swallows bytes both ways and never closes; new connections work.
    proxy.freeze();
    let frozen = Instant::now();
    let rv = cluster.apply_config("[config_reload]\ndebounce = \"1s\"\n[cors]\nmax_age = \"1m\"").await;
    broker.wait_for_version(&rv, Duration::from_secs(120)).await;
    let took = frozen.elapsed();
    println!("e2e dead connection -> edit applied: {} ms", took.as_millis());
    // 15 s watch timeout + 5 s idle margin, at worst once more for a dead pooled connection, then a re-list.
    assert!(took <= Duration::from_secs(45) + DEBOUNCE + Duration::from_secs(5), "applied only after {took:?}");

    // With every connection dead (old and new), an on-demand reload answers 502 once its read times out (10 s),
    // instead of waiting forever.
    proxy.blackhole(true);
    let asked = Instant::now();
    let (code, report) = broker.reload_now().await;
    let took = asked.elapsed();
    println!("e2e on-demand reload with every connection dead: {code} in {} ms", took.as_millis());
    assert_eq!(code, 502, "{report}");
    assert!(took >= Duration::from_secs(9) && took <= Duration::from_secs(20), "answered after {took:?}");
    proxy.blackhole(false);
}
