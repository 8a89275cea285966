//! A watch that is resumed from a resourceVersion etcd has compacted away is answered `410 Gone`: the broker
//! re-lists, counts the restart, and keeps applying edits. The API server runs without its watch cache (so it asks
//! etcd directly) and without automatic compaction (so the test decides when history is gone).

use std::time::Duration;

use brokkr_e2e::Cluster;
use brokkr_reload::source::WATCH_TIMEOUT_MAX_SECS;

const DEBOUNCE: &str = "[config_reload]\ndebounce = \"1s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumed_after_etcd_compaction_gets_410_gone_relists_and_applies() {
    let cluster = Cluster::start_with("gone", &["--watch-cache=false", "--etcd-compaction-interval=0"]).await;
    cluster.grant_broker_role().await;
    let rv = cluster.apply_config(DEBOUNCE).await;
    let broker = cluster.start_broker(&[]).await;
    broker.wait_for_version(&rv, Duration::from_secs(30)).await;
    broker
        .wait_until("the watch holds", Duration::from_secs(30), |b| async move {
            b.status().await["watcher"]["state"] == "watching"
        })
        .await;
    let restarts_before = broker.metric("brokkr_config_watcher_restarts_total").await.unwrap_or_default();

    // etcd moves past the broker's resourceVersion without an event for its field-selected watch, then forgets
    // everything before now.
    for i in 0..5 {
        cluster.apply_configmap(&format!("unrelated-{i}"), "").await;
    }
    let revision = cluster.plane.compact_etcd().await.expect("compaction");
    println!("e2e etcd compacted at revision {revision}");

    // The API server ends the watch at its timeout (240–340 s, drawn per watch stream); kube-runtime resumes it from
    // the compacted resourceVersion. etcd sends no bookmarks that could move it past the compaction.
    let gone = |l: &serde_json::Value| {
        l["message"] == "ConfigMap watch failed"
            && l["error"].as_str().is_some_and(|e| e.contains("410") || e.contains("too old") || e.contains("Expired"))
    };
    broker
        .wait_until(
            "the resumed watch is answered 410 Gone",
            Duration::from_secs(u64::from(WATCH_TIMEOUT_MAX_SECS) + 30),
            |b| async move { b.log_lines().iter().any(gone) },
        )
        .await;
    broker
        .wait_until("the watch is back after a re-list", Duration::from_secs(30), |b| async move {
            b.status().await["watcher"]["state"] == "watching"
        })
        .await;
    let restarts = broker.metric("brokkr_config_watcher_restarts_total").await.unwrap_or_default();
    assert!(restarts > restarts_before, "the restart is counted: {restarts_before} -> {restarts}");

    let rv = cluster.apply_config(&format!("{DEBOUNCE}[cors]\nmax_age = \"1m\"")).await;
    broker.wait_for_version(&rv, Duration::from_secs(15)).await;
    assert_eq!(broker.status().await["settings"]["cors"]["max_age"], "1m");
}
