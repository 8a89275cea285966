//! The admin token rotated in the broker binary against a real API server: a Secret volume updated as the kubelet
//! does it is in force within seconds while requests with the old token keep succeeding, the overlap is the
//! environment's and a ConfigMap may not change it, a broken file keeps the token in force, a ConfigMap may not set
//! the token, and no token shows.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use brokkr_e2e::{Broker, Cluster};
use brokkr_testenv::SecretVolume;

const OLD: &str = "rotation-0ld-t0ken-A1";
const NEW: &str = "rotation-n3w-t0ken-B2";
const THIRD: &str = "rotation-th1rd-t0ken-C3";

/// Polls `code` of the admin status with `token` until it is `want`; returns the time taken.
async fn until_code(broker: &Broker, token: &str, want: u16, within: Duration) -> Duration {
    let what = format!("the admin API answers {want} to a token");
    broker.wait_until(&what, within, |b| async move { b.admin_code(token).await == Some(want) }).await
}

/// Applies `toml` and waits until its version is in force.
async fn apply(cluster: &Cluster, broker: &Broker, toml: &str) {
    let version = cluster.apply_config(toml).await;
    let version = version.as_str();
    broker
        .wait_until("the edit is in force", Duration::from_secs(30), |b| async move {
            status_version(b).await.as_deref() == Some(version)
        })
        .await;
}

/// The ConfigMap version in force, read with whichever token works now.
async fn status_version(broker: &Broker) -> Option<String> {
    for token in [NEW, THIRD, OLD] {
        if broker.admin_code(token).await == Some(200) {
            return broker.status_with(token).await["source"]["resource_version"].as_str().map(str::to_owned);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_file_is_in_force_within_seconds_with_no_lockout_and_no_token_ever_shows() {
    let cluster = Cluster::with_config("rotation", "[config_reload]\ndebounce = \"1s\"").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut volume = SecretVolume::create(dir.path(), "token", format!("{OLD}\n").as_bytes()).expect("volume");
    let file = volume.file();
    let env = [
        ("BROKKR__ADMIN__TOKEN", ""),
        ("BROKKR__ADMIN__TOKEN_FILE", file.to_str().expect("UTF-8")),
        // As the chart sets it (admin.tokenOverlap): the environment's, never the ConfigMap's.
        ("BROKKR__ADMIN__TOKEN_OVERLAP", "20s"),
    ];
    let broker = Arc::new(cluster.start_broker(&env).await);
    broker.wait_until("ready", Duration::from_secs(30), |b| async move { b.admin_code(OLD).await == Some(200) }).await;
    assert_eq!(broker.admin_code(NEW).await, Some(401));

    // Requests with the old token run all through the rotation; inside the overlap none may fail.
    let (stop, sent, failed) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let hammer = tokio::spawn({
        let (broker, stop, sent, failed) = (broker.clone(), stop.clone(), sent.clone(), failed.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                if broker.admin_code(OLD).await != Some(200) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let swapped = Instant::now();
    volume.publish(NEW.as_bytes()).expect("the kubelet's update");
    until_code(&broker, NEW, 200, Duration::from_secs(10)).await;
    let took = swapped.elapsed();
    println!("e2e admin token rotation, ..data swap -> new token accepted: {} ms", took.as_millis());
    assert!(took <= Duration::from_secs(5), "the target is 5 s: {took:?}");
    let before = sent.load(Ordering::Relaxed);
    broker
        .wait_until("more requests", Duration::from_secs(10), |_| async { sent.load(Ordering::Relaxed) > before + 20 })
        .await;
    stop.store(true, Ordering::Relaxed);
    hammer.await.expect("the client ran");
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("e2e admin token rotation: {sent} requests with the old token during the rotation, {failed} refused");
    assert_eq!(failed, 0, "a request with the old token failed inside the overlap ({sent} sent)");
    assert_eq!(broker.metric("brokkr_admin_token_rotations_total").await, Some(1.0));

    // Whoever edits the ConfigMap cannot stretch the overlap (issue 23): the environment's value stays in force,
    // and the status says the ConfigMap's is shadowed.
    apply(&cluster, &broker, "[config_reload]\ndebounce = \"1s\"\n[admin]\ntoken_overlap = \"1h\"").await;
    let status = broker.status_with(NEW).await;
    assert!(
        status["shadowed_by_env"].as_array().is_some_and(|keys| keys.iter().any(|k| k == "admin.token_overlap")),
        "{status}"
    );
    assert_eq!(status["settings"]["admin"]["token_overlap"], "20s", "{status}");
    until_code(&broker, OLD, 401, Duration::from_secs(30)).await;
    assert!(swapped.elapsed() >= Duration::from_secs(18), "refused before its overlap ended: {:?}", swapped.elapsed());
    apply(&cluster, &broker, "[config_reload]\ndebounce = \"1s\"").await;

    // The next rotation: the replaced token works right after it and stops when the environment's overlap ends.
    volume.publish(THIRD.as_bytes()).expect("the kubelet's update");
    until_code(&broker, THIRD, 200, Duration::from_secs(10)).await;
    let rotated = Instant::now();
    assert_eq!(broker.admin_code(NEW).await, Some(200), "inside the overlap");
    let status = broker.status_with(THIRD).await;
    assert!(status["admin_token"]["previous_accepted_until"].is_string(), "{status}");
    until_code(&broker, NEW, 401, Duration::from_secs(30)).await;
    assert!(rotated.elapsed() >= Duration::from_secs(18), "refused before its overlap ended: {:?}", rotated.elapsed());

    // A rotation that writes an empty token keeps the token in force, and says so.
    volume.publish(b"").expect("an empty update");
    broker
        .wait_until("the broken file is reported", Duration::from_secs(10), |b| async move {
            b.metric("brokkr_admin_token_file_valid").await == Some(0.0)
        })
        .await;
    assert_eq!(broker.admin_code(THIRD).await, Some(200), "the token in force stays");
    let status = broker.status_with(THIRD).await;
    assert!(status["admin_token"]["file_error"].as_str().is_some_and(|e| e.contains("is empty")), "{status}");

    // The ConfigMap may not set the token: refused, naming the key and where the token belongs.
    let refused = cluster.apply_config(&format!("[admin]\ntoken = \"{OLD}\"")).await;
    broker
        .wait_until("the token in the ConfigMap is refused", Duration::from_secs(30), |b| async move {
            let status = b.status_with(THIRD).await;
            status["last_reload"]["outcome"] == "rejected"
                && status["last_reload"]["error"].as_str().is_some_and(|e| e.contains("admin.token_file"))
        })
        .await;
    assert_ne!(broker.status_with(THIRD).await["source"]["resource_version"], refused.as_str());

    // The refusal's Event is recorded after the status changes: wait for it, then look for tokens everywhere.
    let is_refusal = |note: &str| note.contains("admin.token is a secret");
    broker
        .wait_until("the refusal is an Event", Duration::from_secs(30), |_| async {
            cluster.configmap_events().await.iter().any(|(_, _, note)| is_refusal(note))
        })
        .await;
    let events: Vec<String> = cluster.configmap_events().await.into_iter().map(|(_, _, note)| note).collect();
    // No token, old or new, anywhere the broker writes.
    let outputs = [
        std::fs::read_to_string(broker.log_path()).expect("log"),
        broker.metrics().await,
        broker.status_with(THIRD).await.to_string(),
        events.join("\n"),
    ];
    for (output, name) in outputs.iter().zip(["log", "metrics", "admin status", "Events"]) {
        for token in [OLD, NEW, THIRD] {
            assert!(!output.contains(token), "{name} shows a token");
        }
    }
    assert!(events.iter().any(|n| is_refusal(n)), "the refusal is an Event: {events:?}");
}
