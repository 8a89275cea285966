//! Measures the staged rollout on a real API server and prints the figures docs/BENCHMARKS.md keeps: time from edit
//! to the last replica and the overhead per wave, the blast radius of a harmful change, the API requests of each
//! replica per rollout, and its idle requests per minute with the policy on.
//!
//! `rollout_cost [RUNS] [--idle SECONDS]`, from the repository root. Needs `KUBEBUILDER_ASSETS`
//! (scripts/control-plane-assets.sh prints it) and built binaries, as the e2e tests do.

use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, Instant},
};

use brokkr_e2e::{
    chart::{NAMESPACE, RELEASE, Walkthrough},
    pods::create_ready_pod,
    staged::{
        CLIENT, PODS, applied, document, hash, set_document, start_pod_broker, traffic, wait_for, wait_until_running,
    },
};
use brokkr_reload::rollout_status::Phase;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

const BAKE: Duration = Duration::from_secs(4);

/// Requests by each broker Pod since audit event `since`, as `verb resource` → count. A watch counts once, when it
/// starts; every other request when it completes.
fn requests(w: &Walkthrough, since: usize) -> (usize, BTreeMap<String, BTreeMap<String, usize>>) {
    let events = w.cluster.plane.audit_events();
    let mut by_pod: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for event in events.iter().skip(since) {
        let pod = event["user"]["extra"]["authentication.kubernetes.io/pod-name"][0].as_str().unwrap_or_default();
        let (verb, stage) = (event["verb"].as_str().unwrap_or_default(), event["stage"].as_str().unwrap_or_default());
        let counted = if verb == "watch" { stage == "ResponseStarted" } else { stage == "ResponseComplete" };
        if pod.is_empty() || !counted {
            continue;
        }
        let resource = event["objectRef"]["resource"].as_str().unwrap_or_default();
        let subresource = event["objectRef"]["subresource"].as_str().map(|s| format!("/{s}")).unwrap_or_default();
        *by_pod.entry(pod.to_owned()).or_default().entry(format!("{verb} {resource}{subresource}")).or_default() += 1;
    }
    (events.len(), by_pod)
}

fn total(by_verb: &BTreeMap<String, usize>) -> usize {
    by_verb.values().sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(3);
    let idle = args.iter().position(|a| a == "--idle").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(120);
    let w = Walkthrough::start().await;
    w.kubectl(&["create", "namespace", NAMESPACE]).await.ok("create namespace");
    let install = ["install", RELEASE, "charts/brokkr-broker", "-n", NAMESPACE];
    w.helm(&[&install[..], &["--set", "podStatus.enabled=true", "--set", "rollout.enabled=true"]].concat())
        .await
        .ok("helm install");
    set_document(&w, &document(CLIENT, "1m")).await;
    let pods = Api::<Pod>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    let mut brokers = Vec::new();
    for name in PODS {
        let uid = create_ready_pod(&pods, name).await;
        brokers.push(start_pod_broker(&w, name, &uid, "4s").await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let _client = traffic(brokers.iter().map(|b| b.url("/healthz")).collect(), stop.clone());
    wait_for(&w, "adopt", Duration::from_secs(60), |s| s.last_good.is_some()).await;
    println!("4 replicas, steps 1, 50%, 100% (waves of 1, 1, 2), bake {BAKE:?}, 10 client requests a second each");

    for run in 1..=runs {
        let text = document(CLIENT, &format!("{}m", run + 1));
        let (since, _) = requests(&w, usize::MAX);
        let started = Instant::now();
        set_document(&w, &text).await;
        let mut marks = Vec::new();
        for wave in 1..=3 {
            wait_for(&w, "the next wave", Duration::from_secs(60), |s| {
                s.target.as_ref().is_some_and(|t| t.hash == hash(&text)) && s.admitted >= wave
            })
            .await;
            marks.push(started.elapsed());
        }
        wait_for(&w, "complete", Duration::from_secs(60), |s| {
            s.phase == Phase::Complete && s.last_good.as_ref().is_some_and(|g| g.hash == hash(&text))
        })
        .await;
        marks.push(started.elapsed());
        let overheads: Vec<u128> = marks.windows(2).map(|m| (m[1] - m[0]).saturating_sub(BAKE).as_millis()).collect();
        let (_, by_pod) = requests(&w, since);
        let per_replica: Vec<String> = by_pod.iter().map(|(pod, verbs)| format!("{pod} {}", total(verbs))).collect();
        println!(
            "run {run}: edit → last replica {} ms (staged after {} ms; overhead per wave beyond the bake {overheads:?} ms); \
             API requests per replica: {}",
            marks[3].as_millis(),
            marks[0].as_millis(),
            per_replica.join(", ")
        );
        if run == runs {
            for (pod, verbs) in &by_pod {
                println!("  {pod}: {verbs:?}");
            }
        }
    }

    let harmful = document("https://other.example", "9m");
    let rv = set_document(&w, &harmful).await;
    let started = Instant::now();
    wait_for(&w, "roll back", Duration::from_secs(60), |s| s.phase == Phase::RolledBack).await;
    let mut blast = 0;
    for broker in &brokers {
        blast += usize::from(applied(&broker.history().await, &rv) > 0);
    }
    println!(
        "harmful edit: rolled back after {} ms; replicas that ever applied it: {blast}",
        started.elapsed().as_millis()
    );

    let good = document(CLIENT, "10m");
    set_document(&w, &good).await;
    wait_for(&w, "complete", Duration::from_secs(60), |s| {
        s.phase == Phase::Complete && s.last_good.as_ref().is_some_and(|g| g.hash == hash(&good))
    })
    .await;
    wait_until_running(&pods, "every replica runs the last text", |runs| runs == hash(&good)).await;
    let (since, _) = requests(&w, usize::MAX);
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let (_, by_pod) = requests(&w, since);
    #[allow(clippy::cast_precision_loss)]
    let minutes = idle as f64 / 60.0;
    for pod in PODS {
        let verbs = by_pod.get(pod).cloned().unwrap_or_default();
        #[allow(clippy::cast_precision_loss)]
        let rate = total(&verbs) as f64 / minutes;
        println!("idle {idle} s, {pod}: {rate:.2} requests a minute {verbs:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}
