//! The fault proxy passes bytes through untouched, and each switch breaks connections the way its docs promise,
//! checked against a local echo server.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use brokkr_testenv::{FaultProxy, Faults};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::timeout,
};

/// How long a silent connection is watched before concluding that nothing comes back.
const SILENCE: Duration = Duration::from_millis(300);
/// How long something that should happen at once may take on a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(5);

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the echo server");
    let addr = listener.local_addr().expect("echo server address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

async fn proxy() -> FaultProxy {
    FaultProxy::start(echo_server().await).await.expect("the proxy starts")
}

async fn connect(proxy: &FaultProxy) -> TcpStream {
    TcpStream::connect(proxy.addr()).await.expect("connect to the proxy")
}

/// Writes `message` and returns the echo if it arrives within `within`.
async fn round_trip(stream: &mut TcpStream, message: &[u8], within: Duration) -> Option<Vec<u8>> {
    stream.write_all(message).await.expect("write");
    let mut echoed = vec![0; message.len()];
    match timeout(within, stream.read_exact(&mut echoed)).await {
        Ok(Ok(_)) => Some(echoed),
        Ok(Err(error)) => panic!("the connection failed instead of staying open: {error}"),
        Err(_) => None,
    }
}

async fn assert_echoes(stream: &mut TcpStream, message: &[u8]) {
    assert_eq!(round_trip(stream, message, PROMPTLY).await.as_deref(), Some(message), "echo of {message:?}");
}

/// Reads once and returns the result, failing the test if nothing happens in time.
async fn read_promptly(stream: &mut TcpStream) -> std::io::Result<usize> {
    let mut buf = [0; 16];
    timeout(PROMPTLY, stream.read(&mut buf)).await.expect("the connection ends promptly")
}

#[tokio::test]
async fn bytes_pass_through_unchanged_in_both_directions() {
    let proxy = proxy().await;
    let mut stream = connect(&proxy).await;
    assert_echoes(&mut stream, b"hello").await;

    // Larger than several chunks, written and read at once so no buffer has to hold it all.
    let sent: Vec<u8> = (0..100_000_u32).map(|i| (i % 251) as u8).collect();
    let mut received = vec![0; sent.len()];
    let (mut read, mut write) = stream.split();
    let (written, echoed) = tokio::join!(write.write_all(&sent), timeout(PROMPTLY, read.read_exact(&mut received)));
    written.expect("write");
    echoed.expect("echo in time").expect("read");
    assert!(received == sent, "the bytes came back changed");

    assert_eq!(proxy.connections_accepted(), 1);
    assert_eq!(proxy.open_connections(), 1);
    assert_eq!(proxy.faults(), Faults::default());
}

#[tokio::test]
async fn freeze_silences_open_connections_but_not_later_ones() {
    let proxy = proxy().await;
    let mut frozen = connect(&proxy).await;
    assert_echoes(&mut frozen, b"before").await;

    proxy.freeze();
    assert_eq!(round_trip(&mut frozen, b"after", SILENCE).await, None, "a frozen connection forwards nothing");

    let mut later = connect(&proxy).await;
    assert_echoes(&mut later, b"later").await;
    assert_eq!(proxy.open_connections(), 2, "the frozen connection stays open");
}

#[tokio::test]
async fn reset_all_resets_open_connections_and_spares_later_ones() {
    let proxy = proxy().await;
    let mut stream = connect(&proxy).await;
    assert_echoes(&mut stream, b"before").await;

    proxy.reset_all();
    let read = read_promptly(&mut stream).await;
    assert!(
        matches!(read, Err(ref error) if error.kind() == std::io::ErrorKind::ConnectionReset),
        "the client sees a reset, not an orderly end: {read:?}"
    );

    let mut later = connect(&proxy).await;
    assert_echoes(&mut later, b"later").await;
}

#[tokio::test]
async fn refuse_closes_new_connections_until_lifted() {
    let proxy = proxy().await;
    proxy.refuse(true);
    let mut refused = connect(&proxy).await;
    let read = read_promptly(&mut refused).await;
    assert!(matches!(read, Ok(0) | Err(_)), "a refused connection ends at once: {read:?}");
    assert_eq!(proxy.connections_accepted(), 1);
    assert_eq!(proxy.open_connections(), 0);

    proxy.refuse(false);
    let mut accepted = connect(&proxy).await;
    assert_echoes(&mut accepted, b"welcome").await;
    assert_eq!(proxy.connections_accepted(), 2);
}

#[tokio::test]
async fn pause_holds_new_connections_until_lifted_and_spares_open_ones() {
    let proxy = proxy().await;
    let mut open = connect(&proxy).await;
    assert_echoes(&mut open, b"before").await;

    proxy.pause(true);
    let mut held = connect(&proxy).await;
    held.write_all(b"held").await.expect("write");
    let mut echoed = [0; 4];
    assert!(timeout(SILENCE, held.read_exact(&mut echoed)).await.is_err(), "nothing is forwarded while paused");
    assert_echoes(&mut open, b"open").await;
    assert_eq!(proxy.open_connections(), 2, "the held connection is open");

    proxy.pause(false);
    timeout(PROMPTLY, held.read_exact(&mut echoed)).await.expect("delivered once the pause is lifted").expect("read");
    assert_eq!(&echoed, b"held");
}

#[tokio::test]
async fn blackhole_swallows_on_old_and_new_connections_until_lifted() {
    let proxy = proxy().await;
    let mut old = connect(&proxy).await;
    assert_echoes(&mut old, b"before").await;

    proxy.blackhole(true);
    assert!(proxy.faults().blackhole);
    assert_eq!(round_trip(&mut old, b"old", SILENCE).await, None, "an open connection is swallowed");
    let mut new = connect(&proxy).await;
    assert_eq!(round_trip(&mut new, b"new", SILENCE).await, None, "a new connection is swallowed");

    proxy.blackhole(false);
    let mut after = connect(&proxy).await;
    assert_echoes(&mut after, b"after").await;
}

#[tokio::test]
async fn latency_delays_each_direction() {
    let proxy = proxy().await;
    let mut stream = connect(&proxy).await;
    assert_echoes(&mut stream, b"warm").await;

    proxy.latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_echoes(&mut stream, b"slow").await;
    assert!(started.elapsed() >= Duration::from_millis(300), "took only {:?}", started.elapsed());

    proxy.latency(Duration::ZERO);
    assert_eq!(proxy.faults().latency, Duration::ZERO);
}

#[tokio::test]
async fn bandwidth_limits_each_direction() {
    let proxy = proxy().await;
    let mut stream = connect(&proxy).await;
    assert_echoes(&mut stream, b"warm").await;

    // 4000 bytes at 20 000 bytes/s take at least 0.2 s one way.
    proxy.bandwidth(Some(20_000));
    let started = Instant::now();
    assert_echoes(&mut stream, &[7; 4000]).await;
    assert!(started.elapsed() >= Duration::from_millis(200), "took only {:?}", started.elapsed());
}
