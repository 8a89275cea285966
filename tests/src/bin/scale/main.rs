//! Benchmark harness (issue 9, items 5 and 6): idle cost, unrelated-ConfigMap churn and fleet scale of the broker.

mod churn;

use std::{
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use brokkr_e2e::{
    Broker, Cluster,
    cluster::BROKER_USER,
    measure::{self, Usage, mib, per_sec, percentile},
};
use tokio::task::JoinSet;

const USAGE: &str = "usage: scale idle [SECONDS=60] | scale churn [CONFIGMAPS=10000] [SECONDS=60] | \
                     scale fleet [SIZES=1,10,50] [EDITS=20] [IDLE_SECONDS=600]";

/// Before a measurement window, so that start-up requests are over and the watch is established.
const SETTLE: Duration = Duration::from_secs(10);
/// How often every broker's status is polled while an edit propagates.
/// Only to learn that every broker applied an edit; the times come from each broker's log timestamp.
const POLL: Duration = Duration::from_millis(100);
/// Requests in flight that create and rewrite the unrelated ConfigMaps.
const WRITERS: usize = 16;
/// How long one broker may take from spawn to ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a whole fleet may take from the first spawn until every broker is ready.
const FLEET_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The idle window of each fleet size unless given: long enough for two to three watch timeouts (240–340 s).
const FLEET_IDLE_SECS: u64 = 600;
/// How long one edit may take to reach every broker of a fleet.
const EDIT_TIMEOUT: Duration = Duration::from_secs(60);
/// A broker without hot reload makes no API request: the runtime's own baseline.
const RELOAD_OFF: [(&str, &str); 1] = [("BROKKR__CONFIG_RELOAD__ENABLED", "false")];

/// The ConfigMap's document; the 100 ms debounce keeps propagation from being dominated by the 5 s default.
fn document(max_age: u32) -> String {
    format!("[config_reload]\ndebounce = \"100ms\"\n[cors]\nmax_age = \"{max_age}s\"")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("idle") => idle(arg(&args, 1, 60)).await,
        Some("churn") => churn::churn(arg(&args, 1, 10_000), arg(&args, 2, 60)).await,
        Some("fleet") => {
            let sizes: Vec<usize> =
                args.get(1).map_or_else(|| vec![1, 10, 50], |list| list.split(',').map(parse::<usize>).collect());
            if sizes.contains(&0) {
                usage_error("a fleet size must be at least 1");
            }
            fleet(&sizes, arg(&args, 2, 20), Duration::from_secs(arg(&args, 3, FLEET_IDLE_SECS))).await;
        }
        _ => usage_error("which mode?"),
    }
}

/// The number at `args[index]`, or `default` if there is none.
fn arg<T: FromStr>(args: &[String], index: usize, default: T) -> T {
    args.get(index).map_or(default, |text| parse(text))
}

fn parse<T: FromStr>(text: &str) -> T {
    text.trim().parse().unwrap_or_else(|_| usage_error(&format!("not a number: {text:?}")))
}

fn usage_error(why: &str) -> ! {
    eprintln!("{why}\n{USAGE}");
    std::process::exit(2)
}

/// One broker with hot reload on and one with it off, side by side: start-up, memory, wake-ups and API requests.
async fn idle(seconds: u64) {
    measure::print_header("scale idle: one broker with hot reload on, one with it off");
    let cluster = Cluster::with_config("idle", &document(0)).await;
    warm_up(&cluster).await;
    let (on, on_ready) = spawn_ready(&cluster, &[]).await;
    let (off, off_ready) = spawn_ready(&cluster, &RELOAD_OFF).await;
    tokio::time::sleep(SETTLE).await;
    let requests_before = cluster.plane.requests_by(BROKER_USER).len();
    let usage = measure::observe(&[pid(&on), pid(&off)], Duration::from_secs(seconds))
        .await
        .expect("read the brokers' /proc files");
    let requests = cluster.plane.requests_by(BROKER_USER).len().saturating_sub(requests_before);
    let (with_reload, without) = (usage[0], usage[1]);
    let requests_per_min = per_sec(requests as u64, with_reload.elapsed) * 60.0;

    println!(
        "Both release brokers run at the same time. A warm-up broker was started and stopped first, so start-up \
         times include neither a build check nor a cold page cache. Start-up: from the spawn until `/readyz` \
         answers 200, polled every 10 ms. Then a {} s settle and a {seconds} s window: RSS (VmRSS) sampled every \
         second; wake-ups = voluntary + involuntary context switches of all threads (/proc/PID/task/*/status).\n",
        SETTLE.as_secs()
    );
    println!("| broker | start-up → ready ms | RSS max MiB | RSS final MiB | wake-ups/s | API requests/min |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, ready, usage, api_requests) in [
        ("hot reload on", on_ready, with_reload, format!("{requests_per_min:.1}")),
        ("hot reload off", off_ready, without, "none by design".to_owned()),
    ] {
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.2} | {api_requests} |",
            ready.as_millis(),
            mib(usage.rss_max),
            mib(usage.rss_final),
            usage.wakeups_per_sec()
        );
    }
    let extra_wakeups = with_reload.wakeups_per_sec() - without.wakeups_per_sec();
    println!("\n- wake-ups/s beyond the runtime's own (on − off): **{extra_wakeups:+.2}** (target ≤ 1)");
    println!(
        "- RSS with hot reload on: **{:.1} MiB** max (target ≤ 30 MiB); on − off: {:+.1} MiB",
        mib(with_reload.rss_max),
        mib(with_reload.rss_max) - mib(without.rss_max)
    );
    println!(
        "- API requests: {requests} audit events of `{BROKER_USER}` completed in the window; both brokers share that \
         user, all are the on broker's (the off broker makes none)"
    );
}

/// For each size N, a fresh control plane with N brokers on one ConfigMap: edit propagation, idle load, memory.
async fn fleet(sizes: &[usize], edits: u32, idle: Duration) {
    measure::print_header(&format!("scale fleet: {sizes:?} brokers on one ConfigMap, {edits} edits each"));
    println!(
        "Each edit changes `cors.max_age`; the document sets `config_reload.debounce = \"100ms\"` so that the 5 s \
         default does not dominate propagation. Applied: from the start of the write (one merge patch by an admin \
         client) until the broker's JSON log line \"configuration applied\" for that generation (the brokers are \
         polled every {} ms only to know that all have applied). p99 is the \
         nearest rank (with 20 edits, the maximum). Idle requests: audit events of `{BROKER_USER}` completed in a \
         {} s window after a {} s settle, divided by N and by the window's minutes (watches: those with verb \
         `watch`). RSS: sum of VmRSS at the end of that window. All ready: \
         from the first spawn until every broker's `/readyz` answered 200.\n",
        POLL.as_millis(),
        idle.as_secs(),
        SETTLE.as_secs()
    );
    println!(
        "| N | all applied p50 ms | p99 ms | max ms | first applied p50 ms | idle requests/broker/min | \
         idle watch requests/broker/min | total RSS MiB | RSS per broker MiB | all ready s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in sizes {
        eprintln!("fleet of {n}: starting");
        println!("{}", fleet_row(n, edits, idle).await);
    }
}

/// Measures a fleet of `n` brokers on a fresh control plane, which it stops afterwards; returns its table row.
async fn fleet_row(n: usize, edits: u32, idle: Duration) -> String {
    let cluster = Cluster::with_config(&format!("fleet-{n}"), &document(0)).await;
    warm_up(&cluster).await;
    let kubeconfig = cluster.broker_kubeconfig();
    let spawned = Instant::now();
    let brokers: Vec<Arc<Broker>> =
        (0..n).map(|_| Arc::new(Broker::spawn(&kubeconfig, &cluster.namespace, &[], cluster.plane.dir()))).collect();
    let mut all_ready = Duration::ZERO;
    for broker in &brokers {
        all_ready = measure::wait_ready(broker, spawned, FLEET_READY_TIMEOUT).await;
    }

    tokio::time::sleep(SETTLE).await;
    eprintln!("fleet of {n}: {} s idle", idle.as_secs());
    let pids: Vec<u32> = brokers.iter().map(|broker| pid(broker)).collect();
    let counts = |cluster: &Cluster| {
        let requests = cluster.plane.requests_by(BROKER_USER);
        (requests.len(), requests.iter().filter(|e| e["verb"] == "watch").count())
    };
    let (requests_before, watches_before) = counts(&cluster);
    let usage = measure::observe(&pids, idle).await.expect("read the brokers' /proc files");
    let (requests, watches) = counts(&cluster);
    let (requests, watches) = (requests.saturating_sub(requests_before), watches.saturating_sub(watches_before));
    let idle_for = usage.first().map_or(idle, |u| u.elapsed);
    let broker_time = idle_for * u32::try_from(n).expect("a fleet size fits in u32");
    let requests_per_broker_min = per_sec(requests as u64, broker_time) * 60.0;
    let watches_per_broker_min = per_sec(watches as u64, broker_time) * 60.0;
    let total_rss: u64 = usage.iter().map(|u| u.rss_final).sum();

    eprintln!("fleet of {n}: {edits} edits");
    let mut hashes = Vec::with_capacity(n);
    for broker in &brokers {
        hashes.push(broker.status().await["hash"].as_str().expect("the status has a hash").to_owned());
    }
    let (mut all_applied, mut first_applied) = (Vec::new(), Vec::new());
    for i in 1..=edits {
        let (edited, written) = (Instant::now(), std::time::SystemTime::now());
        brokkr_e2e::timing::patch_config(&cluster, &document(i)).await;
        let applied = wait_for_new_hashes(&brokers, &hashes, edited).await;
        // The status changes just before the log line is written: wait for the line.
        let mut logged = Vec::with_capacity(n);
        for broker in &brokers {
            let at = loop {
                if let Some(at) = brokkr_e2e::timing::applied_at(broker, u64::from(i)) {
                    break at;
                }
                assert!(edited.elapsed() < EDIT_TIMEOUT, "no applied line for edit {i}");
                tokio::time::sleep(POLL).await;
            };
            let since = at.duration_since(written);
            logged.push(since.expect("a broker logged the edit as applied before it was written"));
        }
        let applied: Vec<(Duration, String)> = logged.into_iter().zip(applied).map(|(at, (_, h))| (at, h)).collect();
        // The first broker's new hash is the expected one; every other broker must show the same.
        let expected = applied[0].1.clone();
        let others: Vec<_> = applied.iter().enumerate().filter(|(_, (_, hash))| *hash != expected).collect();
        assert!(others.is_empty(), "edit {i}: brokers (index, (time, hash)) not on {expected}: {others:?}");
        all_applied.push(applied.iter().map(|(at, _)| *at).max().unwrap_or_default());
        first_applied.push(applied.iter().map(|(at, _)| *at).min().unwrap_or_default());
        hashes = vec![expected; n];
    }
    all_applied.sort();
    first_applied.sort();
    drop(brokers);
    drop(cluster);
    format!(
        "| {n} | {} | {} | {} | {} | {requests_per_broker_min:.2} | {watches_per_broker_min:.2} | {:.1} | {:.1} | {:.1} |",
        percentile(&all_applied, 0.5).as_millis(),
        percentile(&all_applied, 0.99).as_millis(),
        percentile(&all_applied, 1.0).as_millis(),
        percentile(&first_applied, 0.5).as_millis(),
        mib(total_rss),
        mib(total_rss / n as u64),
        all_ready.as_secs_f64()
    )
}

/// Polls every broker every [`POLL`], concurrently, until its status hash differs from its `previous` one.
/// Returns, per broker in order, the time since `edited` when it did and the new hash.
async fn wait_for_new_hashes(brokers: &[Arc<Broker>], previous: &[String], edited: Instant) -> Vec<(Duration, String)> {
    let mut pollers = JoinSet::new();
    for (index, (broker, old)) in brokers.iter().zip(previous).enumerate() {
        let (broker, old) = (Arc::clone(broker), old.clone());
        pollers.spawn(async move {
            loop {
                let status = broker.status_if_up().await;
                if let Some(hash) = status.and_then(|s| s["hash"].as_str().map(str::to_owned)).filter(|h| *h != old) {
                    return (index, edited.elapsed(), hash);
                }
                assert!(edited.elapsed() < EDIT_TIMEOUT, "broker {index} did not apply the edit in {EDIT_TIMEOUT:?}");
                tokio::time::sleep(POLL).await;
            }
        });
    }
    let mut applied = pollers.join_all().await;
    applied.sort_by_key(|(index, _, _)| *index);
    applied.into_iter().map(|(_, at, hash)| (at, hash)).collect()
}

/// Spawns a broker with `env` and waits until `/readyz` answers 200; returns it and the time that took.
async fn spawn_ready(cluster: &Cluster, env: &[(&str, &str)]) -> (Broker, Duration) {
    let kubeconfig = cluster.broker_kubeconfig();
    let spawned = Instant::now();
    let broker = Broker::spawn(&kubeconfig, &cluster.namespace, env, cluster.plane.dir());
    let ready = measure::wait_ready(&broker, spawned, READY_TIMEOUT).await;
    (broker, ready)
}

/// Starts and stops one broker without hot reload, so that the brokers measured next find the binary built and in
/// the page cache.
async fn warm_up(cluster: &Cluster) {
    drop(spawn_ready(cluster, &RELOAD_OFF).await);
}

fn pid(broker: &Broker) -> u32 {
    broker.pid().expect("the broker is running")
}

async fn observe_one(broker: &Broker, window: Duration) -> Usage {
    let usage = measure::observe(&[pid(broker)], window).await.expect("read the broker's /proc files");
    usage[0]
}
