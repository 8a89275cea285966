//! Readiness of real replicas while every pod's HTTP port is flooded: the kubelet's probe must not queue behind the
//! flood, or any pod in the cluster could empty the webhook's Service and fail a staged rollout's gate at will.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    chart::Walkthrough,
    kubelet::{is_ready, name, pod_ip, ready_pods},
};

/// Clients per pod: more than the HTTP port's 128 slots and its 1,024-deep listen backlog together, so that a
/// connection the kubelet opens waits behind the whole backlog (about 8 s at 128 connections a second).
const CLIENTS: usize = 1_500;
/// How long the flood lasts: six readiness periods (5 s each).
const FLOOD: Duration = Duration::from_secs(30);

/// Opens connections to `addr` until `stop`, each sending one byte of a request head and holding it until the broker
/// closes it.
async fn slow_client(addr: SocketAddr, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if stream.write_all(b"G").await.is_err() {
            continue;
        }
        let mut sink = [0; 64];
        drop(tokio::time::timeout(Duration::from_secs(10), stream.read(&mut sink)).await);
    }
}

/// Floods every replica's HTTP port for [`FLOOD`] while reading each Pod's Ready condition twice a second, and
/// applies a broken document once in the middle, which a broker must deny through the webhook's Service. Returns
/// each Pod seen not Ready, with when it first was, and the webhook's Service if the document was not denied.
///
/// The flood must bite: at its middle, the slowest of three `GET /readyz` on a flooded port must take at least the
/// 2 s the chart's readiness probe used to wait, or get no answer. Otherwise the test would prove nothing (too few open files, say).
pub async fn readiness_under_a_flood(w: &Walkthrough, pods: &Api<Pod>) -> Vec<(String, Duration)> {
    let ready = ready_pods(pods, 3).await.expect("three replicas");
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for pod in &ready {
        let addr = SocketAddr::from((pod_ip(pod).expect("a pod IP"), 8080));
        clients.extend((0..CLIENTS).map(|_| tokio::spawn(slow_client(addr, stop.clone()))));
    }
    let started = Instant::now();
    let mut unready = Vec::new();
    let mut checked = false;
    while started.elapsed() < FLOOD {
        for pod in &ready {
            let now = pods.get(&name(pod)).await.expect("read the Pod");
            // The first time each Pod was seen not Ready.
            if !is_ready(&now) && !unready.iter().any(|(n, _)| *n == name(pod)) {
                unready.push((name(pod), started.elapsed()));
            }
        }
        if !checked && started.elapsed() > FLOOD / 2 {
            checked = true;
            // Three asks one after another, as the kubelet's probe asked every 5 s with a 2 s timeout: the slowest.
            let url = format!("http://{}:8080/readyz", pod_ip(&ready[0]).expect("a pod IP"));
            let mut waits = Vec::new();
            for _ in 0..3 {
                let asked = Instant::now();
                let answer = reqwest::Client::new().get(&url).timeout(Duration::from_secs(5)).send().await;
                waits.push((answer.map(|r| r.status().as_u16()).ok(), asked.elapsed()));
            }
            println!("e2e pod network: GET /readyz on a flooded HTTP port, three times: {waits:?}");
            let slowest = waits.iter().map(|(_, waited)| *waited).max().unwrap_or_default();
            assert!(slowest >= Duration::from_secs(2), "the flood does not hold the HTTP port: {waits:?}");
            let refused = crate::real_pods::apply_document(w, crate::real_pods::BROKEN).await;
            let by_broker = refused.stderr.contains(crate::real_pods::BROKEN_SAYS);
            println!("e2e pod network: a broken apply during the flood denied by a broker: {by_broker}");
            if !by_broker {
                unready.push((format!("the webhook's Service: {}", refused.stderr.trim()), started.elapsed()));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.abort();
    }
    unready
}
