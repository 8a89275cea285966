//! Faults a real API server and network produce: a Role without `watch` must not make the broker spin, and a
//! silently dead connection (a proxy that holds it open, a server that vanished) must not leave an edit unapplied
//! for minutes, over HTTP/2 and, within the bound it allows, over HTTP/1.1.

use std::time::{Duration, Instant};

use brokkr_e2e::{Broker, Cluster, cluster::BROKER_USER};
use brokkr_reload::{
    source::{WATCH_TIMEOUT_MAX_SECS, WATCH_TIMEOUT_MIN_SECS},
    transport::{PING_TIMEOUT, TCP_KEEPALIVE_IDLE},
};
use brokkr_testenv::FaultProxy;

const DEBOUNCE: Duration = Duration::from_secs(1);
/// The dead-connection tests' document: a 1 s debounce, and no resync within the test, so an edit can only come
/// through a watch.
const DOCUMENT: &str = "[config_reload]\ndebounce = \"1s\"\nresync_interval = \"24h\"\n";

/// What brought the version `rv` in force on `broker`, from its reload history.
async fn trigger_of(broker: &Broker, rv: &str) -> String {
    let history = broker.history().await;
    let records = history["records"].as_array().cloned().unwrap_or_default();
    let record = records.iter().rev().find(|r| r["resource_version"] == rv);
    record.and_then(|r| r["trigger"].as_str()).unwrap_or("none").to_owned()
}

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

/// How the test kills every connection open at the time.
#[derive(Clone, Copy, Debug)]
enum Death {
    /// An L4 proxy that holds the connection open and swallows every byte: its kernel still acknowledges.
    Freeze,
    /// The server's machine is gone: no data, no acknowledgement, no FIN or RST (packets dropped).
    Vanish,
}

/// Kills the connections `broker` has through `proxy` by `death`, edits the ConfigMap (`max_age` = `minutes`),
/// and returns the edit's resourceVersion and how long it took to be in force, waiting at most `limit`.
async fn edit_after(
    cluster: &Cluster,
    proxy: &FaultProxy,
    broker: &Broker,
    death: Death,
    minutes: u32,
    limit: Duration,
) -> (String, Duration) {
    match death {
        Death::Freeze => proxy.freeze(),
        Death::Vanish => proxy.vanish().expect("the vanish fault needs nft and root"),
    }
    let killed = Instant::now();
    let rv = cluster.apply_config(&format!("{DOCUMENT}[cors]\nmax_age = \"{minutes}m\"")).await;
    broker.wait_for_version(&rv, limit).await;
    (rv, killed.elapsed())
}

/// Waits until `broker`'s watch holds, and returns the HTTP version its API connection speaks.
async fn watching(broker: &Broker) -> String {
    broker
        .wait_until("the watch holds", Duration::from_secs(30), |b| async move {
            b.status().await["watcher"]["state"] == "watching"
        })
        .await;
    broker.status().await["watcher"]["protocol"].as_str().unwrap_or("unknown").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_a_dead_connection_is_noticed_by_ping_and_the_edit_applied_within_45_s() {
    let cluster = Cluster::with_config("deadconn", DOCUMENT).await;
    let proxy = FaultProxy::start(cluster.plane.apiserver_addr()).await.expect("proxy");
    let broker = cluster.start_broker_via(&proxy, &[]).await;
    for (round, death) in [Death::Freeze, Death::Vanish].into_iter().enumerate() {
        assert_eq!(watching(&broker).await, "HTTP/2", "the API server offers h2 and the broker takes it");
        let minutes = u32::try_from(round).expect("two rounds") + 1;
        let (rv, took) = edit_after(&cluster, &proxy, &broker, death, minutes, Duration::from_secs(120)).await;
        println!("e2e HTTP/2, every connection dead ({death:?}) -> edit applied: {} ms", took.as_millis());
        // PING after 20 s of silence, 10 s for its answer, then a re-list on a new connection: never before the
        // PING's own timeout, which a test that did not kill the connection would beat.
        assert!(took <= Duration::from_secs(45) + DEBOUNCE, "{death:?}: applied only after {took:?}");
        assert!(took >= PING_TIMEOUT, "{death:?}: applied after {took:?}, before a PING could have failed");
        assert_eq!(trigger_of(&broker, &rv).await, "watch", "the restarted watch's list applied it");
    }

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

/// An API server that offers only HTTP/1.1 (`--disable-http2-serving`): no PINGs. TCP keepalive with
/// `TCP_USER_TIMEOUT` notices a vanished server in 45 s; a proxy that freezes the connection still answers the
/// probes, so only the watch's own end (its timeout, 240–340 s, + kube-runtime's 5 s idle margin) notices it. A
/// broker that talks to the server directly keeps its quiet watch all along: no read timeout cuts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http1_a_vanished_server_is_noticed_in_45_s_and_a_frozen_proxy_within_the_watch_timeout() {
    let cluster = Cluster::start_with("http1", &["--disable-http2-serving"]).await;
    cluster.grant_broker_role().await;
    cluster.apply_config(DOCUMENT).await;
    let (vanishing, freezing) = (
        FaultProxy::start(cluster.plane.apiserver_addr()).await.expect("proxy"),
        FaultProxy::start(cluster.plane.apiserver_addr()).await.expect("proxy"),
    );
    let started = Instant::now();
    let brokers = [
        cluster.start_broker_via(&vanishing, &[]).await,
        cluster.start_broker_via(&freezing, &[]).await,
        cluster.start_broker(&[]).await,
    ];
    for broker in &brokers {
        assert_eq!(watching(broker).await, "HTTP/1.1", "the API server offers only HTTP/1.1");
    }
    let [after_vanish, after_freeze, direct] = &brokers;

    freezing.freeze();
    let (rv, took) = edit_after(&cluster, &vanishing, after_vanish, Death::Vanish, 1, Duration::from_secs(120)).await;
    println!("e2e HTTP/1.1, server vanished -> edit applied: {} ms", took.as_millis());
    assert!(took <= Duration::from_secs(45) + DEBOUNCE, "applied only after {took:?}");
    // TCP keepalive starts probing after 15 s of silence.
    assert!(took >= TCP_KEEPALIVE_IDLE, "applied after {took:?}, before a keepalive probe could have failed");
    let edited = Instant::now() - took;

    let limit = Duration::from_secs(u64::from(WATCH_TIMEOUT_MAX_SECS) + 5) + DEBOUNCE + Duration::from_secs(15);
    // Frozen before the edit, so the time is counted from the edit, as the vanish round's is.
    let took = took + after_freeze.wait_for_version(&rv, limit).await;
    println!("e2e HTTP/1.1, connection frozen by a proxy -> edit applied: {} ms", took.as_millis());
    assert!(took <= limit, "applied only after {took:?}");
    // The frozen watch began before `started` was long past, and ends no sooner than its shortest timeout + 5 s.
    let earliest =
        (started + Duration::from_secs(u64::from(WATCH_TIMEOUT_MIN_SECS) + 5)).saturating_duration_since(edited);
    assert!(took >= earliest, "applied after {took:?}, before the frozen watch could have ended ({earliest:?})");
    assert_eq!(trigger_of(after_freeze, &rv).await, "watch", "the resumed watch applied it, not a resync");

    let status = direct.status().await;
    println!("e2e HTTP/1.1, direct broker after {} s: {}", took.as_secs(), status["watcher"]);
    assert_eq!(status["watcher"]["restarts"], 0, "a quiet HTTP/1.1 watch was cut: {status}");
    assert_eq!(status["watcher"]["state"], "watching", "{status}");
    assert_eq!(status["source"]["resource_version"], rv.as_str(), "{status}");
}
