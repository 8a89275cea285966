//! The webhook port under a hostile client, in a real broker process: oversized, huge-but-legal, trickled and
//! concurrent bodies never take the broker past the chart's memory limit, and a real review is answered meanwhile.

mod support;

use std::time::{Duration, Instant};

use support::{broker::Broker, connect, post, review};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The chart's memory limit (`resources.limits.memory`).
const CHART_LIMIT_MIB: u64 = 128;

/// What only these tests ask of the broker.
trait Hostile {
    async fn send(&self, headers: &str, body: &[u8]) -> u16;
    async fn timed_review(&self) -> (u16, Duration);
}

impl Hostile for Broker {
    /// Sends a request head with `headers`, then `body` (all of it, stopping at the first write error), and returns
    /// the status the webhook answered (0: the connection closed without an answer).
    async fn send(&self, headers: &str, body: &[u8]) -> u16 {
        let mut tls = connect(self.webhook, &self.ca).await.expect("TLS");
        let head =
            format!("POST /validate/configmap HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}\r\n");
        if tls.write_all(head.as_bytes()).await.is_err() {
            return 0;
        }
        for chunk in body.chunks(64 * 1024) {
            if tls.write_all(chunk).await.is_err() {
                break;
            }
        }
        drop(tls.flush().await);
        read_status(&mut tls).await
    }

    /// A real review, timed.
    async fn timed_review(&self) -> (u16, Duration) {
        let started = Instant::now();
        let (status, _) = post(self.webhook, &self.ca, &review("[log]\nlevel = \"debug\"")).await.expect("review");
        (status, started.elapsed())
    }
}

async fn read_status<S: AsyncReadExt + Unpin>(stream: &mut S) -> u16 {
    let mut answer = vec![0; 12];
    match stream.read_exact(&mut answer).await {
        Ok(_) => String::from_utf8_lossy(&answer[9..12]).parse().unwrap_or(0),
        Err(_) => 0,
    }
}

/// A valid review of the broker's ConfigMap: `junk` follows the opening quote of its (empty) `broker.toml`, so it
/// closes that string and adds data keys nobody reads.
fn review_with(junk: &[u8], uid: &str) -> Vec<u8> {
    let head = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"{uid}","kind":{{"group":"","version":"v1","kind":"ConfigMap"}},"resource":{{"group":"","version":"v1","resource":"configmaps"}},"name":"brokkr-broker","namespace":"brokkr","operation":"UPDATE","userInfo":{{"username":"mallory"}},"object":{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"brokkr-broker"}},"data":{{"broker.toml":""#
    );
    let mut body = head.into_bytes();
    body.extend_from_slice(junk);
    body.extend_from_slice(b"}}}}");
    body
}

/// `elements` zeros in a data key nobody reads.
fn zeros(elements: usize) -> Vec<u8> {
    let mut junk = br#"","junk":[0"#.to_vec();
    junk.extend(std::iter::repeat_n(*b",0", elements.saturating_sub(1)).flatten());
    junk.push(b']');
    junk
}

/// `keys` more data keys, each with a tiny value.
fn data_keys(keys: usize) -> Vec<u8> {
    let mut junk = br#"""#.to_vec();
    for i in 0..keys {
        junk.extend_from_slice(format!(r#","k{i}":"0""#).as_bytes());
    }
    junk
}

fn length(body: &[u8]) -> String {
    format!("Content-Length: {}\r\n", body.len())
}

/// Opens a connection that sends a head (announcing a 1 MB body, by length or chunked) and a few bytes of body,
/// then nothing more.
async fn trickler(broker: &Broker, chunked: bool) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = connect(broker.webhook, &broker.ca).await.expect("TLS");
    let framing = if chunked { "Transfer-Encoding: chunked\r\n\r\nb\r\n" } else { "Content-Length: 1000000\r\n\r\n" };
    let head = format!("POST /validate/configmap HTTP/1.1\r\nHost: x\r\n{framing}{{\"request\":");
    tls.write_all(head.as_bytes()).await.expect("head");
    tls.flush().await.expect("flush");
    tls
}

#[actix_rt::test]
async fn no_body_any_client_sends_takes_the_broker_past_the_charts_memory_limit() {
    let broker = Broker::start().await;
    let at_start = broker.peak_mib();

    // The measured attack: 15 MiB, 7.8 million elements. Refused by its length, before it is read.
    let huge = review_with(&zeros(7_800_000), "h");
    assert_eq!(broker.send(&length(&huge), &huge).await, 413, "a 15 MiB review is refused");
    // The same without a length (chunked): refused once the cap is crossed, and the connection closed.
    let mut chunked = format!("{:x}\r\n", huge.len()).into_bytes();
    chunked.extend_from_slice(&huge);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let status = broker.send("Transfer-Encoding: chunked\r\n", &chunked).await;
    assert!(status == 413 || status == 0, "a chunked 15 MiB body is cut off: {status}");
    let after_huge = broker.peak_mib();

    // Just under the cap, and valid reviews: parsed without holding 2 million elements or 300,000 data keys.
    let elements = review_with(&zeros(2_000_000), "e");
    let keys = review_with(&data_keys(300_000), "k");
    for body in [&elements, &keys] {
        assert!(body.len() < brokkr_broker::webhook::MAX_BODY, "{} bytes", body.len());
        assert_eq!(broker.send(&length(body), body).await, 200, "a legal body is reviewed");
    }
    let oversized_uid = review_with(b"\"", &"u".repeat(1 << 20));
    assert_eq!(broker.send(&length(&oversized_uid), &oversized_uid).await, 400, "a 1 MiB uid is not echoed");
    let after_legal = broker.peak_mib();

    // Eight of those at once: the shared budget holds a few; the rest are told to retry.
    let length_of_elements = length(&elements);
    let answers = futures::future::join_all((0..8).map(|_| broker.send(&length_of_elements, &elements))).await;
    // (408: a 4 MB body that a loaded debug build did not read within the body timeout.)
    assert!(answers.iter().all(|s| [200, 503, 408].contains(s)), "{answers:?}");
    let after_concurrent = broker.peak_mib();

    // Clients that announce a body and trickle it, half of them chunked, in all but a few of the connection slots:
    // each is cut off (a chunked one is not drained forever after its answer), and a real review is answered
    // meanwhile in a slot left free.
    let tricklers = brokkr_broker::webhook::MAX_CONNECTIONS - 4;
    let mut slow = Vec::new();
    for i in 0..tricklers {
        slow.push(trickler(&broker, i % 2 == 0).await);
    }
    let (status, latency) = broker.timed_review().await;
    assert_eq!(status, 200);
    let cut_off = Instant::now();
    let closed = futures::future::join_all(slow.iter_mut().map(|tls| async move {
        let status = read_status(tls).await;
        let mut rest = Vec::new();
        // The connection then ends: the client sees EOF (or a reset) instead of a connection held open.
        drop(tls.read_to_end(&mut rest).await);
        status
    }));
    let statuses = tokio::time::timeout(Duration::from_secs(60), closed).await.expect("slow bodies were never cut off");
    let waited = cut_off.elapsed();
    assert!(statuses.iter().all(|s| *s == 408 || *s == 0), "slow bodies are cut off: {:?}", &statuses[..6]);
    assert!(statuses.iter().filter(|s| **s == 408).count() >= tricklers * 5 / 6, "told why: {statuses:?}");
    let after_slow = broker.peak_mib();
    let (status, after) = broker.timed_review().await;
    assert_eq!(status, 200, "the webhook still answers");

    println!(
        "webhook under hostile bodies: peak RSS at start {at_start} MiB, after 15 MiB bodies {after_huge} MiB, after \
         legal bodies of {} and {} bytes {after_legal} MiB, after 8 at once {after_concurrent} MiB, after the slow \
         bodies {after_slow} MiB ({tricklers} of them, cut off within {} ms); real review during the slow bodies {} ms, after {} ms",
        elements.len(),
        keys.len(),
        waited.as_millis(),
        latency.as_millis(),
        after.as_millis()
    );
    // Before this was bounded, one 15 MiB review took the broker to 512 MiB.
    let bound = CHART_LIMIT_MIB * 3 / 4;
    assert!(after_slow < bound, "peak RSS {after_slow} MiB against a {CHART_LIMIT_MIB} MiB limit");
    assert!(latency < Duration::from_secs(5), "a real review took {latency:?} while slow bodies were held");
}

/// Sends `head` (a whole request head with its blank line) and the first bytes of a chunked body, then nothing; the
/// status, and whether the server then closed the connection within 15 s.
async fn chunked_silence<S: AsyncReadExt + AsyncWriteExt + Unpin>(mut stream: S, head: &str) -> (u16, bool) {
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(b"5\r\nhello\r\n").await.expect("a chunk");
    stream.flush().await.expect("flush");
    let status = read_status(&mut stream).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut rest)).await.is_ok();
    (status, closed)
}

#[actix_rt::test]
async fn a_chunked_body_that_no_route_reads_never_holds_a_connection() {
    // actix drains the unread rest of a chunked body without any timer: one connection held per request, until the
    // connection limit shuts everyone else out (and the liveness probe fails).
    let broker = Broker::start().await;
    let chunked = "Transfer-Encoding: chunked\r\n\r\n";
    let http = tokio::net::TcpStream::connect(broker.http).await.expect("connect");
    let (status, closed) = chunked_silence(http, &format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{chunked}")).await;
    assert_eq!((status, closed), (200, true), "the HTTP API answers and closes");
    let tls = connect(broker.webhook, &broker.ca).await.expect("TLS");
    let (status, closed) = chunked_silence(tls, &format!("PUT /other HTTP/1.1\r\nHost: x\r\n{chunked}")).await;
    assert_eq!((status, closed), (404, true), "the webhook answers another path and closes");
}

#[actix_rt::test]
async fn clients_that_hold_large_bodies_leave_room_for_a_real_review() {
    let broker = Broker::start().await;
    // Five clients each send 3.5 MB of an announced 4 MB body and stall: the shared budget refuses the ones past
    // 12 MiB at once; the rest wait out the body timeout.
    let mut stalled = Vec::new();
    for _ in 0..5 {
        let mut tls = connect(broker.webhook, &broker.ca).await.expect("TLS");
        let head = "POST /validate/configmap HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n";
        tls.write_all(head.as_bytes()).await.expect("head");
        for chunk in vec![b' '; 3_500_000].chunks(64 * 1024) {
            if tls.write_all(chunk).await.is_err() {
                break;
            }
        }
        drop(tls.flush().await);
        stalled.push(tls);
    }
    let (status, latency) = broker.timed_review().await;
    assert_eq!(status, 200, "a small review fits beside them");
    let statuses =
        tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(stalled.iter_mut().map(read_status)))
            .await
            .expect("every stalled body is answered");
    assert!(statuses.contains(&503), "the budget refused some: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 503 || *s == 408), "{statuses:?}");
    println!("a real review beside five stalled 3.5 MB bodies: {} ms, they got {statuses:?}", latency.as_millis());
}

#[actix_rt::test]
async fn a_kept_alive_connection_that_trickles_its_next_request_is_closed_on_the_http_port() {
    // actix times only the first request head of a connection: after one answered request, a single byte of the
    // next one clears the keep-alive timer and starts no head timer, so the connection is held for ever. 2 048 of
    // them (1 024 per worker) take every slot of the HTTP port, and the liveness probe on it fails.
    let broker = Broker::start().await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut http = tokio::net::TcpStream::connect(broker.http).await.expect("connect");
        http.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("a request");
        assert_eq!(read_status(&mut http).await, 200, "the probe is answered");
        // The first byte of a next request (it may find the connection closed already).
        drop(http.write_all(b"G").await);
        held.push(http);
    }
    let closed = futures::future::join_all(held.iter_mut().map(|http| async move {
        let mut rest = Vec::new();
        drop(http.read_to_end(&mut rest).await);
    }));
    assert!(
        tokio::time::timeout(Duration::from_secs(15), closed).await.is_ok(),
        "a connection that trickles its second request stays open"
    );
}
