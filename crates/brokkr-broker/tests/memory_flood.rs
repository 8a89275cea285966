//! The broker's memory under clients that fill every connection slot of the HTTP and webhook ports with the
//! largest request head actix buffers (just under 128 KiB, never finished), in a real broker process: the peak
//! stays well under the chart's limit, so no pod can get a broker OOM-killed.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use brokkr_testenv::slow_client::{HEAD_BYTES, unfinished_head};
use support::{broker::Broker, connect};

/// The chart's memory limit (`resources.limits.memory`).
const CHART_LIMIT_MIB: u64 = 128;

/// How long the clients keep the slots full.
const FLOOD: Duration = Duration::from_secs(12);

#[actix_rt::test]
async fn heads_that_fill_every_slot_of_both_ports_stay_well_under_the_memory_limit() {
    let broker = Arc::new(Broker::start().await);
    let at_start = broker.peak_mib();
    let until = Instant::now() + FLOOD;
    let (http_heads, webhook_heads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let http_slots = brokkr_broker::serve::HTTP_WORKERS * brokkr_broker::serve::HTTP_MAX_CONNECTIONS;
    let mut clients = Vec::new();
    // More clients than slots on each port, each reopened as soon as it is closed.
    for _ in 0..http_slots + 64 {
        let (broker, count) = (broker.clone(), http_heads.clone());
        clients.push(tokio::spawn(async move {
            while Instant::now() < until {
                let Ok(Ok(stream)) =
                    tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(broker.http)).await
                else {
                    continue;
                };
                if unfinished_head(stream, until).await {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for _ in 0..brokkr_broker::webhook::MAX_CONNECTIONS + 64 {
        let (broker, count) = (broker.clone(), webhook_heads.clone());
        clients.push(tokio::spawn(async move {
            while Instant::now() < until {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(2), connect(broker.webhook, &broker.ca)).await
                else {
                    continue;
                };
                if unfinished_head(tls, until).await {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for client in clients {
        client.await.expect("a client");
    }
    let peak = broker.peak_mib();
    let (http, webhook) = (http_heads.load(Ordering::Relaxed), webhook_heads.load(Ordering::Relaxed));
    println!(
        "memory under unfinished {} KiB heads on every slot for {} s: peak RSS {peak} MiB (at start {at_start} MiB); \
         heads written: HTTP {http} ({http_slots} slots), webhook {webhook} ({} slots)",
        HEAD_BYTES / 1024,
        FLOOD.as_secs(),
        brokkr_broker::webhook::MAX_CONNECTIONS
    );
    assert!(http >= http_slots && webhook >= brokkr_broker::webhook::MAX_CONNECTIONS, "every slot was filled");
    assert!(peak < CHART_LIMIT_MIB * 3 / 4, "peak RSS {peak} MiB against a {CHART_LIMIT_MIB} MiB limit");
}
