//! The broker binary against a real API server: edits apply within the debounce window and change behaviour,
//! bursts coalesce, late changes land, and invalid or deleted ConfigMaps never replace the last good config.

use std::{collections::BTreeMap, time::Duration};

use brokkr_e2e::Cluster;
use serde_json::Value;

const DEBOUNCE: Duration = Duration::from_secs(1);

/// The log lines after generation `from` was put in force (0: start-up) until generation `to` was.
fn lines_between(lines: &[Value], from_generation: u64, to_generation: u64) -> Vec<Value> {
    let applied =
        |g: u64| move |l: &Value| l["message"] == "configuration applied" && l["generation"].as_u64() == Some(g);
    let start = if from_generation == 0 {
        lines.iter().position(|l| l["message"] == "start-up configuration includes the ConfigMap").expect("start-up")
    } else {
        lines.iter().position(applied(from_generation)).expect("from generation logged")
    };
    let end = lines.iter().position(applied(to_generation)).expect("to generation logged");
    lines[start + 1..end].to_vec()
}

/// Asserts an edit→applied latency: at least the debounce window (which proves debouncing) and at most a bound
/// generous enough for a loaded 2-core machine. The figure itself belongs in the output and BENCHMARKS.md.
fn assert_debounced(what: &str, latency: Duration, debounce: Duration) {
    println!("e2e {what} latency (debounce {debounce:?}): {} ms", latency.as_millis());
    assert!(latency >= debounce, "{what}: applied after {latency:?}, before the {debounce:?} quiet window ended");
    assert!(latency <= debounce + Duration::from_secs(15), "{what}: applied only after {latency:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_apply_live_bursts_coalesce_and_late_changes_land() {
    let cluster = Cluster::with_config(
        "reload",
        "[config_reload]\ndebounce = \"1s\"\n[cors]\nallowed_origins = [\"https://one.example\"]",
    )
    .await;
    let broker = cluster.start_broker(&[]).await;
    let g = broker.wait_for_configmap().await; // 0: the ConfigMap is part of the start-up configuration
    assert_eq!(broker.allowed_origin("/healthz", "https://one.example").await.as_deref(), Some("https://one.example"));

    // One edit, three keys: applied within debounce + 1 s, CORS follows, one INFO line per changed key,
    // and the new filter shows brokkr_reload's debug lines from the next reload on.
    let rv = cluster
        .apply_config(
            "[config_reload]\ndebounce = \"1s\"\n[cors]\nallowed_origins = [\"https://two.example\"]\nmax_age = \"2m\"\n\
             [log]\nlevel = \"info,brokkr_reload=debug\"",
        )
        .await;
    let latency = broker.wait_for_generation(g + 1, Duration::from_secs(30)).await;
    assert_debounced("edit->applied", latency, DEBOUNCE);
    let status = broker.status().await;
    assert_eq!(status["source"]["resource_version"], rv.as_str());
    assert_eq!(status["settings"]["cors"]["max_age"], "2m");
    assert_eq!(broker.allowed_origin("/api/v1/admin/config", "https://one.example").await, None);
    assert_eq!(broker.allowed_origin("/readyz", "https://two.example").await.as_deref(), Some("https://two.example"));

    // A change right after a reload is applied, not dropped. It also lengthens the debounce for the burst.
    cluster
        .apply_config(
            "[config_reload]\ndebounce = \"3s\"\n[cors]\nallowed_origins = [\"https://two.example\"]\nmax_age = \"2m\"\n\
             [log]\nlevel = \"info,brokkr_reload=debug\"",
        )
        .await;
    let latency = broker.wait_for_generation(g + 2, Duration::from_secs(30)).await;
    assert_debounced("change-right-after-reload", latency, DEBOUNCE);

    let lines = broker.log_lines();
    let changed: BTreeMap<String, usize> = lines_between(&lines, g, g + 1)
        .iter()
        .filter(|l| l["message"] == "configuration changed" && l["level"] == "INFO")
        .fold(BTreeMap::new(), |mut acc, l| {
            *acc.entry(l["key"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
            acc
        });
    let expected: BTreeMap<String, usize> =
        ["cors.allowed_origins", "cors.max_age", "log.level"].into_iter().map(|k| (k.to_owned(), 1)).collect();
    assert_eq!(changed, expected);
    let debug_between_1_and_2 = lines_between(&lines, g + 1, g + 2).iter().any(|l| l["level"] == "DEBUG");
    assert!(debug_between_1_and_2, "log.level took effect: debug lines of brokkr_reload appear");

    // A burst of 50 updates gives exactly one reload, of the last one.
    let mut last_rv = String::new();
    for i in 1..=50 {
        last_rv = cluster
            .apply_config(&format!(
                "[config_reload]\ndebounce = \"3s\"\n[cors]\nallowed_origins = [\"https://two.example\"]\n\
                 max_age = \"{i}s\"\n[log]\nlevel = \"info,brokkr_reload=debug\""
            ))
            .await;
    }
    let burst_rv = last_rv.clone();
    broker
        .wait_until("the burst's last version is read", Duration::from_secs(30), |b| {
            let rv = burst_rv.clone();
            async move { b.status().await["source"]["resource_version"] == rv.as_str() }
        })
        .await;
    let status = broker.status().await;
    assert_eq!(status["generation"], g + 3, "one reload for the whole burst");
    assert_eq!(status["settings"]["cors"]["max_age"], "50s");
    #[allow(clippy::cast_precision_loss, reason = "a handful of reloads")]
    let applied = (g + 3) as f64;
    assert_eq!(broker.metric("brokkr_config_reloads_total{outcome=\"applied\"}").await, Some(applied));
    let watch_events = broker.metric("brokkr_config_watch_events_total").await.unwrap_or_default();
    assert!(watch_events >= 50.0, "every write of the burst was seen by the watch: {watch_events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_deleted_configmaps_keep_the_last_good_configuration() {
    let cluster = Cluster::start("invalid").await;
    cluster.grant_broker_role().await;
    let good = |origin: &str| format!("[config_reload]\ndebounce = \"1s\"\n[cors]\nallowed_origins = [\"{origin}\"]");
    let rv = cluster.apply_config(&good("https://one.example")).await;
    let broker = cluster.start_broker(&[]).await;
    broker.wait_for_version(&rv, Duration::from_secs(30)).await;
    let g = broker.generation().await;

    cluster.apply_config("[config_reload]\ndebounce = \"1s\"\n[cors]\nmax_age = \"forever\"").await;
    broker
        .wait_until("the invalid update is rejected", Duration::from_secs(10), |b| async move {
            b.status().await["last_reload"]["outcome"] == "rejected"
        })
        .await;
    let status = broker.status().await;
    let error = status["last_reload"]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("cors.max_age"), "{error}");
    assert_eq!(status["generation"], g);
    assert!(broker.metrics().await.contains("brokkr_config_last_reload_successful 0"));
    assert_eq!(broker.allowed_origin("/healthz", "https://one.example").await.as_deref(), Some("https://one.example"));
    let warned = broker
        .wait_until("a Warning Event is recorded", Duration::from_secs(10), |_| async {
            cluster
                .configmap_events()
                .await
                .iter()
                .any(|(t, r, n)| t == "Warning" && r == "ConfigRejected" && n.contains("cors.max_age"))
        })
        .await;
    println!("e2e rejected->Event latency: {} ms", warned.as_millis());

    cluster.apply_config(&good("https://two.example")).await;
    broker.wait_for_generation(g + 1, Duration::from_secs(10)).await;
    assert!(broker.metrics().await.contains("brokkr_config_last_reload_successful 1"));

    cluster.delete_config().await;
    broker
        .wait_until("the delete is noticed", Duration::from_secs(10), |b| async move {
            b.log_lines().iter().any(|l| l["message"] == "ConfigMap deleted; keeping the last good configuration")
        })
        .await;
    assert_eq!(broker.status().await["generation"], g + 1);
    assert_eq!(broker.allowed_origin("/healthz", "https://two.example").await.as_deref(), Some("https://two.example"));

    cluster.apply_config(&good("https://three.example")).await;
    broker.wait_for_generation(g + 2, Duration::from_secs(10)).await;
    assert_eq!(
        broker.allowed_origin("/healthz", "https://three.example").await.as_deref(),
        Some("https://three.example")
    );
}
