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
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use brokkr_broker::serve::{HTTP_MAX_CONNECTIONS, HTTP_WORKERS};
use futures::StreamExt;
use kube::{
    Api,
    runtime::{WatchStreamExt, watcher},
};

use crate::{
    chart::{RELEASE, Walkthrough},
    kubelet::{broker_pid, eventually, is_ready, name, open_sockets, pod_ip, ready_pods},
};

/// Clients per pod: more than the HTTP port's 128 slots and its 1,024-deep listen backlog together, so that a
/// connection the kubelet opens waits behind the whole backlog (about 8 s at 128 connections a second).
const CLIENTS: usize = 1_500;
/// How long the flood lasts, and the Pods are watched: six readiness periods (5 s each).
const FLOOD: Duration = Duration::from_secs(30);
/// How long a client waits before it connects again after a failed connection.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// Opens connections to `addr` until `stop`, each sending one byte of a request head and holding it until the broker
/// closes it. A connection that fails (its SYN dropped by a full backlog, or refused) is tried again after a short
/// backoff, as any client reconnects: without it, a refused connection would spin the test's own cores.
async fn one_byte_client(addr: SocketAddr, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await else {
            tokio::time::sleep(RECONNECT_BACKOFF).await;
            continue;
        };
        if stream.write_all(b"G").await.is_err() {
            continue;
        }
        let mut sink = [0; 64];
        drop(tokio::time::timeout(Duration::from_secs(10), stream.read(&mut sink)).await);
    }
}

/// Every broker Pod the kubelet reports not Ready during `window`, with when it first was, from a watch of the
/// release's Pods (every change of their Ready condition, not samples of it).
pub async fn not_ready_during(pods: Api<Pod>, window: Duration) -> Vec<(String, Duration)> {
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    let mut events = watcher(pods, watcher::Config::default().labels(&selector)).default_backoff().boxed();
    let started = Instant::now();
    let mut unready: Vec<(String, Duration)> = Vec::new();
    let watching = async {
        while let Some(event) = events.next().await {
            let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event else { continue };
            let seen = unready.iter().any(|(n, _)| *n == name(&pod));
            if !is_ready(&pod) && pod.metadata.deletion_timestamp.is_none() && !seen {
                unready.push((name(&pod), started.elapsed()));
            }
        }
    };
    drop(tokio::time::timeout(window, watching).await);
    unready
}

/// Floods every replica's HTTP port for [`FLOOD`] while watching each Pod's Ready condition, and applies a broken
/// document once the flood holds, which a broker must deny through the webhook's Service. Returns each Pod seen not
/// Ready, with when it first was, and the webhook's Service if the document was not denied.
///
/// The flood must hold the port: the checks start only once the broker holds 3/4 of its HTTP slots' worth of
/// sockets, or the test fails (too few open files, say). Otherwise the test
/// would prove nothing.
pub async fn readiness_under_a_flood(w: &Walkthrough, pods: &Api<Pod>) -> Vec<(String, Duration)> {
    let ready = ready_pods(pods, 3).await.expect("three replicas");
    let watch = tokio::spawn(not_ready_during(pods.clone(), FLOOD));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for pod in &ready {
        let addr = SocketAddr::from((pod_ip(pod).expect("a pod IP"), 8080));
        clients.extend((0..CLIENTS).map(|_| tokio::spawn(one_byte_client(addr, stop.clone()))));
    }
    let pid = broker_pid(&name(&ready[0])).expect("the broker's process");
    eventually("the flood holds the HTTP slots", Duration::from_secs(10), || async {
        (open_sockets(pid) >= HTTP_WORKERS * HTTP_MAX_CONNECTIONS * 3 / 4).then_some(())
    })
    .await;
    // How long a probe-like ask waits on that port now, three times: printed, not asserted. The flood holds the
    // slots (checked above), but how deep the backlog behind them grows varies from run to run (measured from 1 s to
    // no answer in 5 s): the broker's readiness must not depend on it.
    let url = format!("http://{}:8080/readyz", pod_ip(&ready[0]).expect("a pod IP"));
    let mut waits = Vec::new();
    for _ in 0..3 {
        let asked = Instant::now();
        let answer = reqwest::Client::new().get(&url).timeout(Duration::from_secs(5)).send().await;
        waits.push((answer.map(|r| r.status().as_u16()).ok(), asked.elapsed()));
    }
    println!("e2e pod network: GET /readyz on a flooded HTTP port, three times: {waits:?}");
    let refused = crate::real_pods::apply_document(w, crate::real_pods::BROKEN).await;
    let by_broker = refused.stderr.contains(crate::real_pods::BROKEN_SAYS);
    println!("e2e pod network: a broken apply during the flood denied by a broker: {by_broker}");

    let mut unready = watch.await.expect("the watch of the Pods");
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.abort();
    }
    if !by_broker {
        unready.push((format!("the webhook's Service: {}", refused.stderr.trim()), FLOOD));
    }
    unready
}
