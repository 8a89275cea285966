//! Benchmark harness: edit→applied latency beyond the debounce, and coalescing, against a real local API server.
//!
//! `reload_latency latency [EDITS=200] [DEBOUNCE=100ms]…` edits the ConfigMap EDITS times per debounce and prints
//! the time from each write to the broker's "configuration applied" log line, minus the debounce, beside the
//! physical limit (the same write seen by a watch of the harness), and writes a CDF to `docs/reload-latency.png`.
//! `reload_latency burst [WRITES=10000]` and `reload_latency trickle [SECONDS=120]` measure coalescing.

use std::time::{Duration, Instant, SystemTime};

use brokkr_e2e::{
    Broker, Cluster,
    cluster::CONFIGMAP,
    timing::{Series, all_applied, applied_at, ms_between, patch_config, plot_cdf, quantile},
};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "latency".into());
    let rest: Vec<String> = args.collect();
    println!("machine: {} cores; date: {}", cores(), humantime::format_rfc3339_seconds(SystemTime::now()));
    println!("broker: {}", std::env::var("BROKKR_BROKER_BIN").unwrap_or_else(|_| "built by the harness".into()));
    match mode.as_str() {
        "latency" => latency(&rest).await,
        "burst" => burst(rest.first().and_then(|a| a.parse().ok()).unwrap_or(10_000)).await,
        "trickle" => trickle(rest.first().and_then(|a| a.parse().ok()).unwrap_or(120)).await,
        other => panic!("unknown mode {other}: use latency, burst or trickle"),
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn document(debounce: &str, max_wait: &str, i: u64) -> String {
    format!("[config_reload]\ndebounce = \"{debounce}\"\nmax_wait = \"{max_wait}\"\n[cors]\nmax_age = \"{i}s\"\n")
}

async fn latency(args: &[String]) {
    let edits: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let debounces: Vec<String> = if args.len() > 1 { args[1..].to_vec() } else { vec!["100ms".into()] };
    println!("| debounce | edits | watch event p50 / p99 | overhead beyond the debounce p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    let mut curves: Vec<(String, Vec<f64>)> = Vec::new();
    for debounce in &debounces {
        let window = humantime::parse_duration(debounce).expect("a duration").as_secs_f64() * 1000.0;
        let max_wait = "1m";
        let cluster = Cluster::with_config("bench", &document(debounce, max_wait, 0)).await;
        let broker = cluster.start_broker(&[]).await;
        broker.wait_for_configmap().await;
        let base = broker.generation().await;
        // The physical limit: the same writes seen by a watch of the harness on loopback.
        let api = kube::Api::<ConfigMap>::namespaced(cluster.admin.clone(), &cluster.namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={CONFIGMAP}"));
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let watch = tokio::spawn(async move {
            let mut events = watcher(api, config).applied_objects().boxed();
            while let Some(Ok(_)) = events.next().await {
                if seen_tx.send(SystemTime::now()).is_err() {
                    break;
                }
            }
        });
        // The watch's initial list delivers the ConfigMap once; only later events are timed.
        tokio::time::timeout(Duration::from_secs(10), seen_rx.recv()).await.expect("initial list").expect("watch");
        while seen_rx.try_recv().is_ok() {}
        let (mut overhead, mut watch_ms) = (Vec::new(), Vec::new());
        for i in 1..=edits {
            let written = SystemTime::now();
            patch_config(&cluster, &document(debounce, max_wait, i)).await;
            let seen = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv()).await.expect("watch event");
            watch_ms.push(ms_between(written, seen.expect("watch open")));
            let generation = base + i;
            let applied = wait_applied(&broker, generation).await;
            overhead.push(ms_between(written, applied) - window);
        }
        watch.abort();
        overhead.sort_by(f64::total_cmp);
        watch_ms.sort_by(f64::total_cmp);
        println!(
            "| {debounce} | {edits} | {:.1} / {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            quantile(&watch_ms, 0.5),
            quantile(&watch_ms, 0.99),
            quantile(&overhead, 0.5),
            quantile(&overhead, 0.99),
            quantile(&overhead, 1.0)
        );
        curves.push((format!("beyond debounce {debounce}"), overhead));
        if debounces.len() == 1 || debounce == &debounces[0] {
            curves.push((format!("watch event (debounce {debounce} run)"), watch_ms));
        }
    }
    let series: Vec<Series<'_>> = curves.iter().map(|(l, s)| Series { label: l, sorted_ms: s }).collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reload-latency.png");
    let title = format!("Edit -> applied, time beyond the debounce window ({edits} edits each)");
    match plot_cdf(&path, &title, "milliseconds after the write, minus the debounce", &series) {
        Ok(()) => println!("CDF written to {}", path.display()),
        Err(error) => eprintln!("no plot: {error}"),
    }
}

/// Waits (polling the status every 20 ms; the figure comes from the log's timestamp) for `generation`.
async fn wait_applied(broker: &Broker, generation: u64) -> SystemTime {
    let started = Instant::now();
    loop {
        if broker.status().await["generation"].as_u64() >= Some(generation)
            && let Some(at) = applied_at(broker, generation)
        {
            return at;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "generation {generation} not applied in 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn burst(writes: u64) {
    // Debounce 5 s (the default) and a max_wait longer than the burst: every write lands inside one window.
    let (debounce, max_wait) = ("5s", "10m");
    let cluster = Cluster::with_config("bench", &document(debounce, max_wait, 0)).await;
    let broker = cluster.start_broker(&[]).await;
    broker.wait_for_configmap().await;
    let applied = "brokkr_config_reloads_total{outcome=\"applied\"}";
    let before = broker.metric(applied).await.unwrap_or_default();
    let base = broker.generation().await;
    let events_before = broker.metric("brokkr_config_watch_events_total").await.unwrap_or_default();
    let started = Instant::now();
    stream::iter(1..=writes)
        .for_each_concurrent(16, |i| {
            let cluster = &cluster;
            async move { patch_config(cluster, &document(debounce, max_wait, i)).await }
        })
        .await;
    let took = started.elapsed();
    let stored = kube::Api::<ConfigMap>::namespaced(cluster.admin.clone(), &cluster.namespace)
        .get(CONFIGMAP)
        .await
        .expect("read back");
    let last = stored.data.and_then(|d| d.get("broker.toml").cloned()).expect("document");
    // Done once the last stored document is in force: any later reload would find nothing new to apply.
    broker.wait_for_generation(base + 1, Duration::from_secs(60)).await;
    let wanted = last.lines().last().and_then(|l| l.split('"').nth(1)).map(str::to_owned).expect("max_age");
    broker
        .wait_until("the last stored document is in force", Duration::from_secs(60), |b| {
            let wanted = wanted.clone();
            async move {
                let max_age = b.status().await["settings"]["cors"]["max_age"].as_str().map(str::to_owned);
                max_age.and_then(|m| humantime::parse_duration(&m).ok()) == humantime::parse_duration(&wanted).ok()
            }
        })
        .await;
    let reloads = broker.metric(applied).await.unwrap_or_default() - before;
    let events = broker.metric("brokkr_config_watch_events_total").await.unwrap_or_default() - events_before;
    let max_age = broker.status().await["settings"]["cors"]["max_age"].clone();
    println!("| writes | burst duration | writes/s | watch events seen | reloads applied | final document in force |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {writes} | {:.1} s | {:.0} | {events} | {reloads} | {} (stored: {}) |",
        took.as_secs_f64(),
        writes as f64 / took.as_secs_f64(),
        max_age,
        last.lines().last().unwrap_or_default()
    );
}

async fn trickle(seconds: u64) {
    let (debounce, max_wait) = ("5s", "20s");
    let cluster = Cluster::with_config("bench", &document(debounce, max_wait, 0)).await;
    let broker = cluster.start_broker(&[]).await;
    broker.wait_for_configmap().await;
    let already = all_applied(&broker).len();
    let started = SystemTime::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut written = Vec::new();
    for i in 1..=seconds {
        tick.tick().await;
        written.push(SystemTime::now());
        patch_config(&cluster, &document(debounce, max_wait, i)).await;
    }
    let ended = SystemTime::now();
    // The last writes are applied one quiet window after the last one: wait for that reload's log line.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !all_applied(&broker).iter().any(|t| *t > ended) {
        assert!(Instant::now() < deadline, "the last writes were not applied within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let applies: Vec<SystemTime> = all_applied(&broker).into_iter().skip(already).collect();
    let mut marks = vec![started];
    marks.extend(applies.iter().copied().filter(|t| *t <= ended));
    let gaps: Vec<f64> = marks.windows(2).map(|w| ms_between(w[0], w[1])).collect();
    let largest = gaps.iter().copied().fold(0.0_f64, f64::max);
    // What max_wait promises: no write waits longer than it for a reload that includes it.
    let waits: Vec<f64> =
        written.iter().filter_map(|w| applies.iter().find(|a| *a >= w).map(|a| ms_between(*w, *a))).collect();
    let longest_wait = waits.iter().copied().fold(0.0_f64, f64::max);
    println!(
        "| writes (1/s) | debounce | max_wait | reloads during the writes | largest gap between reloads | longest wait of a write |"
    );
    println!("|---|---|---|---|---|---|");
    println!("| {seconds} | {debounce} | {max_wait} | {} | {largest:.0} ms | {longest_wait:.0} ms |", marks.len() - 1);
    println!("gaps (ms): {:?}", gaps.iter().map(|g| g.round()).collect::<Vec<_>>());
}
