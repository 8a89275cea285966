//! The liveness probe under a flood of slow connections on the HTTP and webhook ports at once, in a real broker
//! process: every probe, as the chart defines it, succeeds within its timeout, and memory stays under the chart's
//! limit. Readiness (the HTTP port) may drop meanwhile; liveness must not, or any pod could get a broker restarted.

mod support;

use std::{
    io::ErrorKind,
    net::SocketAddr,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use support::broker::{Broker, binary};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The chart's memory limit (`resources.limits.memory`).
const CHART_LIMIT_MIB: u64 = 128;

/// The probe's timeout: stricter than the chart's `livenessProbe.timeoutSeconds` (5 s, which also covers the
/// runtime's exec on a busy node), as strict as the readiness probe's.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the flood lasts; a probe runs every second of it (the chart's period is 10 s: this asks more).
const FLOOD: Duration = Duration::from_secs(20);

/// Slow connections the client keeps open on each port at once, reopening each one the broker closes.
const SLOW_PER_PORT: usize = 3000;

/// Counts of one port's flood.
#[derive(Default)]
struct Flood {
    /// Connections opened.
    opened: AtomicUsize,
    /// Connections refused, reset or unanswered while opening (the broker's backlog is full).
    refused: AtomicUsize,
    /// Connections the client itself could not open (its file descriptors or local ports ran out).
    client_errors: AtomicUsize,
}

/// Keeps one slow connection to `addr` open until `until`: it sends one byte of a request head (or of a TLS
/// record) and nothing more, and is opened again as soon as the broker closes it.
async fn slow_client(addr: SocketAddr, first_byte: u8, until: Instant, flood: Arc<Flood>) {
    while Instant::now() < until {
        let connected = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await;
        let mut stream = match connected {
            Ok(Ok(stream)) => stream,
            // A full backlog: the connect is refused, reset or never answered.
            Ok(Err(e)) if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset) => {
                flood.refused.fetch_add(1, Ordering::Relaxed);
                // Again at once, as a flooding client would; yielding so the other clients and probes run.
                tokio::task::yield_now().await;
                continue;
            }
            Err(_) => {
                flood.refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // The client's own limits (file descriptors, local ports): not a sign that the broker is full.
            Ok(Err(_)) => {
                flood.client_errors.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
                continue;
            }
        };
        flood.opened.fetch_add(1, Ordering::Relaxed);
        if stream.write_all(&[first_byte]).await.is_err() {
            continue;
        }
        let mut sink = [0; 512];
        // Held until the broker closes it (or answers), or the flood ends.
        let held = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
        drop(tokio::time::timeout(until.saturating_duration_since(Instant::now()), held).await);
    }
}

/// The liveness probe as the chart defines it (an exec probe, `brokkr-broker probe`, with the chart's timeout): its
/// latency, or why it failed.
async fn liveness_probe(broker: &Broker) -> Result<Duration, String> {
    let started = Instant::now();
    let mut probe = tokio::process::Command::new(binary())
        .args(["probe", "--socket"])
        .arg(broker.probe_socket())
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stderr = probe.stderr.take().ok_or("no stderr")?;
    let mut reason = String::new();
    let ended = async {
        drop(stderr.read_to_string(&mut reason).await);
        probe.wait().await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, ended).await {
        Ok(Ok(status)) if status.success() => Ok(started.elapsed()),
        Ok(Ok(status)) => Err(format!("{status}: {}", reason.trim())),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// The HTTP port's `/healthz` (readiness shares this port): whether it answered within the probe timeout. Counted,
/// not asserted: any pod can fill this port.
async fn http_answers(broker: &Broker) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(broker.http).await.ok()?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n").await.ok()?;
        let mut head = [0; 12];
        stream.read_exact(&mut head).await.ok()?;
        (&head[9..12] == b"200").then_some(())
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe).await.ok().flatten().is_some()
}

#[actix_rt::test]
async fn slow_connections_on_both_ports_never_fail_the_liveness_probe_or_pass_the_memory_limit() {
    let broker = Broker::start().await;
    let until = Instant::now() + FLOOD;
    let (http, webhook) = (Arc::new(Flood::default()), Arc::new(Flood::default()));
    let mut clients = Vec::new();
    for _ in 0..SLOW_PER_PORT {
        clients.push(tokio::spawn(slow_client(broker.http, b'G', until, http.clone())));
        // 0x16: the first byte of a TLS handshake record.
        clients.push(tokio::spawn(slow_client(broker.webhook, 0x16, until, webhook.clone())));
    }
    let (mut probes, mut http_answered, mut http_asked) = (Vec::new(), 0, 0);
    while Instant::now() + PROBE_TIMEOUT < until {
        let next = Instant::now() + Duration::from_secs(1);
        let (probe, answered) = tokio::join!(liveness_probe(&broker), http_answers(&broker));
        probes.push(probe);
        http_asked += 1;
        http_answered += usize::from(answered);
        tokio::time::sleep_until(next.max(Instant::now()).into()).await;
    }
    for client in clients {
        client.await.expect("a slow client");
    }
    let peak = broker.peak_mib();
    let failed: Vec<_> = probes.iter().filter_map(|p| p.as_ref().err()).collect();
    let slowest = probes.iter().filter_map(|p| p.as_ref().ok()).max();
    println!(
        "liveness under a flood of {SLOW_PER_PORT} slow connections per port for {} s: {} of {} probes failed \
         ({failed:?}), slowest success {slowest:?}; connections opened: HTTP {} (refused {}), webhook {} (refused \
         {}); client-side errors {}; HTTP /healthz answered {http_answered} of {http_asked}; peak RSS {peak} MiB",
        FLOOD.as_secs(),
        failed.len(),
        probes.len(),
        http.opened.load(Ordering::Relaxed),
        http.refused.load(Ordering::Relaxed),
        webhook.opened.load(Ordering::Relaxed),
        webhook.refused.load(Ordering::Relaxed),
        http.client_errors.load(Ordering::Relaxed) + webhook.client_errors.load(Ordering::Relaxed),
    );
    // Every slot of both ports was taken, and the client found them full (refused or unanswered connects).
    let http_slots = brokkr_broker::serve::HTTP_WORKERS * brokkr_broker::serve::HTTP_MAX_CONNECTIONS;
    assert!(http.opened.load(Ordering::Relaxed) > http_slots, "the flood filled the HTTP port");
    assert!(webhook.opened.load(Ordering::Relaxed) > brokkr_broker::webhook::MAX_CONNECTIONS, "and the webhook's");
    assert!(http.refused.load(Ordering::Relaxed) > 0 && webhook.refused.load(Ordering::Relaxed) > 0, "both full");
    assert!(failed.is_empty(), "{} of {} liveness probes failed: {failed:?}", failed.len(), probes.len());
    assert!(peak < CHART_LIMIT_MIB * 3 / 4, "peak RSS {peak} MiB against a {CHART_LIMIT_MIB} MiB limit");
}
