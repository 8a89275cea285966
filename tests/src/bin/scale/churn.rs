//! `scale churn`: what reaches one broker while unrelated ConfigMaps in its namespace are rewritten, against none.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use brokkr_e2e::{
    Broker, Cluster,
    cluster::{BROKER_USER, CONFIGMAP},
    measure::{self, Usage, mib, per_sec, percent_change, requests_by_verb, verbs_between},
    watch_probe::{Received, WatchProbe},
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio::task::JoinSet;

use super::{SETTLE, WRITERS, document, observe_one};

/// One broker while unrelated ConfigMaps in its namespace are rewritten, against none: what reaches it.
pub async fn churn(configmaps: usize, seconds: u64) {
    measure::print_header(&format!("scale churn: one broker, no other ConfigMaps vs {configmaps} rewritten"));
    let cluster = Cluster::with_config("churn", &document(0)).await;
    // Every byte the API server sends the broker passes the proxy, which counts it.
    let proxy = brokkr_testenv::FaultProxy::start(cluster.plane.apiserver_addr()).await.expect("proxy");
    let broker = cluster.start_broker_via(&proxy, &[]).await;
    broker.wait_for_configmap().await;
    let window = Duration::from_secs(seconds);
    // The broker's own watch parameters (a timeout drawn as `brokkr_reload::source` draws it), outside the proxy.
    let timeout = brokkr_reload::source::random_watch_timeout();
    let probe = WatchProbe::start(Api::namespaced(cluster.admin.clone(), &cluster.namespace), CONFIGMAP, timeout).await;
    tokio::time::sleep(SETTLE).await;
    eprintln!("phase A: {seconds} s without other ConfigMaps");
    let quiet = churn_window(&cluster, &proxy, &probe, &broker, window, &AtomicU64::new(0)).await;

    eprintln!("phase B: creating {configmaps} ConfigMaps");
    let api = Api::<ConfigMap>::namespaced(cluster.admin.clone(), &cluster.namespace);
    let creating = Instant::now();
    create_unrelated(&api, configmaps).await;
    let created_in = creating.elapsed();
    let generation = broker.generation().await;
    eprintln!("phase B: {seconds} s of rewrites");
    let rewrites = Arc::new(Rewrites::default());
    let writers = rewrite_unrelated(&api, configmaps, &rewrites);
    let busy = churn_window(&cluster, &proxy, &probe, &broker, window, &rewrites.done).await;
    rewrites.stop.store(true, Ordering::Relaxed);
    writers.join_all().await;
    let reloads = broker.generation().await.saturating_sub(generation);

    println!(
        "{seconds} s per phase, after a {} s settle. Phase B: ConfigMaps `other-00000`… created first ({:.1} s, \
         {WRITERS} in flight), then rewritten round-robin during the window by {WRITERS} concurrent writers \
         (merge patch of `data.n`). Bytes received: what the API server sent the broker in the window, counted by a \
         TCP proxy between them (TLS records included). RSS: VmRSS sampled every second.\n",
        SETTLE.as_secs(),
        created_in.as_secs_f64()
    );
    println!("| phase | unrelated ConfigMaps | writes/s | bytes received from the API server | RSS max MiB |");
    println!("|---|---:|---:|---:|---:|");
    println!("| A: none | 0 | 0 | {} | {:.1} |", quiet.bytes, mib(quiet.usage.rss_max));
    println!(
        "| B: rewritten | {configmaps} | {:.0} | {} | {:.1} |",
        per_sec(busy.writes, busy.usage.elapsed),
        busy.bytes,
        mib(busy.usage.rss_max)
    );
    let rss = percent(quiet.usage.rss_max, busy.usage.rss_max);
    println!("| B − A | | | {} | {rss} |", percent(quiet.bytes, busy.bytes));
    println!("\n- target: < 5 % difference (the field selector must keep the other ConfigMaps off the wire)");
    println!(
        "- writes in the window: {}, failed: {}; broker reloads during phase B: {reloads} (expected 0)",
        busy.writes,
        rewrites.failed.load(Ordering::Relaxed)
    );
    println!(
        "- the broker's API requests (audit log; a watch counts when it ends): A {}; B {}",
        quiet.verbs, busy.verbs
    );
    println!("- a watch with the broker's parameters received: A {:?}; B {:?}", quiet.seen, busy.seen);
}

/// What one churn window measured.
struct Window {
    /// The broker's memory and wake-ups.
    usage: Usage,
    /// Bytes the API server sent the broker.
    bytes: u64,
    /// Writes to the unrelated ConfigMaps.
    writes: u64,
    /// What a watch with the broker's parameters received.
    seen: Received,
    /// The broker's API requests by verb (audit log).
    verbs: String,
}

/// Measures one window. The counters are read right at its edges; the audit log, which takes seconds to read
/// after many writes, is read outside them.
async fn churn_window(
    cluster: &Cluster,
    proxy: &brokkr_testenv::FaultProxy,
    probe: &WatchProbe,
    broker: &Broker,
    window: Duration,
    writes: &AtomicU64,
) -> Window {
    let verbs = requests_by_verb(&cluster.plane, BROKER_USER);
    let (bytes, seen, written) = (proxy.bytes_to_clients(), probe.counts(), writes.load(Ordering::Relaxed));
    let usage = observe_one(broker, window).await;
    let bytes = proxy.bytes_to_clients() - bytes;
    let (seen, written) = (probe.counts().since(seen), writes.load(Ordering::Relaxed) - written);
    let verbs = verbs_between(&verbs, &requests_by_verb(&cluster.plane, BROKER_USER));
    Window { usage, bytes, writes: written, seen, verbs }
}

fn percent(before: u64, after: u64) -> String {
    percent_change(before, after).map_or_else(|| "n/a (A is 0)".to_owned(), |change| format!("{change:+.1} %"))
}

fn unrelated_name(index: usize) -> String {
    format!("other-{index:05}")
}

/// Creates the ConfigMaps `other-00000`… (`count` of them) with [`WRITERS`] requests in flight.
async fn create_unrelated(api: &Api<ConfigMap>, count: usize) {
    let mut creators = JoinSet::new();
    for first in 0..WRITERS.min(count) {
        let api = api.clone();
        creators.spawn(async move {
            for index in (first..count).step_by(WRITERS) {
                let configmap = ConfigMap {
                    metadata: ObjectMeta { name: Some(unrelated_name(index)), ..ObjectMeta::default() },
                    data: Some(BTreeMap::from([("n".to_owned(), "0".to_owned())])),
                    ..ConfigMap::default()
                };
                api.create(&PostParams::default(), &configmap).await.expect("create an unrelated ConfigMap");
            }
        });
    }
    creators.join_all().await;
}

/// What the rewriters share: a stop flag and their counts.
#[derive(Default)]
struct Rewrites {
    stop: AtomicBool,
    done: AtomicU64,
    failed: AtomicU64,
}

/// Starts [`WRITERS`] tasks that rewrite `data.n` of the unrelated ConfigMaps round-robin until `rewrites.stop`.
fn rewrite_unrelated(api: &Api<ConfigMap>, count: usize, rewrites: &Arc<Rewrites>) -> JoinSet<()> {
    let mut writers = JoinSet::new();
    for first in 0..WRITERS.min(count) {
        let (api, rewrites) = (api.clone(), Arc::clone(rewrites));
        writers.spawn(async move {
            let names: Vec<String> = (first..count).step_by(WRITERS).map(unrelated_name).collect();
            for round in 1_u64.. {
                for name in &names {
                    if rewrites.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let patch = Patch::Merge(json!({ "data": { "n": round.to_string() } }));
                    let counter = match api.patch(name, &PatchParams::default(), &patch).await {
                        Ok(_) => &rewrites.done,
                        Err(_) => &rewrites.failed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    writers
}
