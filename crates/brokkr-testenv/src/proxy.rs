//! A TCP proxy in front of one upstream address that breaks connections on command: freeze, vanish, blackhole,
//! pause, reset.

// Hand-written: no maintained crate offers these switches, and `copy_bidirectional` cannot check them per chunk.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::watch,
    task::{JoinHandle, JoinSet},
};

use crate::{Result, error::io, vanish::Vanish};

/// Bytes read (and forwarded) at a time.
const CHUNK: usize = 8 * 1024;

/// The switches of a [`FaultProxy`] that apply to all connections, as currently set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every connection, old and new, swallows bytes ([`FaultProxy::blackhole`]).
    pub blackhole: bool,
    /// New connections are accepted but held ([`FaultProxy::pause`]).
    pub pause: bool,
    /// New connections are closed right after accept ([`FaultProxy::refuse`]).
    pub refuse: bool,
    /// Delay before each forwarded chunk ([`FaultProxy::latency`]).
    pub latency: Duration,
    /// Bytes per second per direction, if limited ([`FaultProxy::bandwidth`]).
    pub bandwidth: Option<u64>,
}

/// A TCP proxy from a loopback port to one upstream address, with switches that inject network faults.
///
/// Bytes pass through untouched, so a TLS client talks to the upstream server as if directly (the server's
/// certificate must be valid for `127.0.0.1`). Every switch takes `&self` and works from any thread or task.
/// Dropping the proxy stops accepting and closes every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
    /// The packet filter of [`FaultProxy::vanish`], removed with the proxy.
    vanish: Mutex<Option<Vanish>>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:<free port>` and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Self> {
        let listener =
            TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await.map_err(io("bind the fault proxy"))?;
        let addr = listener.local_addr().map_err(io("read the fault proxy's address"))?;
        let (faults, _) = watch::channel(Faults::default());
        let shared = Arc::new(Shared {
            upstream,
            faults,
            connections: Mutex::default(),
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            to_clients: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Self { addr, shared, accept, vanish: Mutex::default() })
    }

    /// The address clients connect to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address connections are forwarded to.
    #[must_use]
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Freezes every connection open now: it stays open but swallows bytes in both directions, and neither end
    /// of the stream nor an error reaches the other side — a half-open connection, as behind a NAT that dropped
    /// its state. Connections accepted later work normally.
    pub fn freeze(&self) {
        for connection in self.shared.connections().values() {
            connection.frozen.store(true, Ordering::SeqCst);
        }
    }

    /// Makes every connection open now vanish, as when the server's machine is switched off: the proxy stops
    /// forwarding it, and the kernel drops every packet between the client and the proxy on it, both ways (an
    /// nftables rule on its ports). Unlike [`FaultProxy::freeze`], nothing answers the client any more, not even
    /// TCP acknowledgements or keepalive probes, and no FIN or RST is sent. Connections accepted later work
    /// normally. Needs root and `nft`; the rules go with the proxy.
    pub fn vanish(&self) -> Result<()> {
        let clients: Vec<u16> = self
            .shared
            .connections()
            .values()
            .map(|connection| {
                connection.frozen.store(true, Ordering::SeqCst);
                connection.client_port
            })
            .collect();
        let mut vanish = self.vanish.lock().unwrap_or_else(PoisonError::into_inner);
        if vanish.is_none() {
            *vanish = Some(Vanish::new(self.addr.port())?);
        }
        vanish.as_mut().map_or(Ok(()), |vanish| vanish.drop_connections(&clients))
    }

    /// While on, every connection, open or new, swallows bytes in both directions (as [`FaultProxy::freeze`]).
    pub fn blackhole(&self, on: bool) {
        self.shared.faults.send_modify(|faults| faults.blackhole = on);
    }

    /// While on, new connections are accepted but nothing is read or forwarded (no upstream connection is made)
    /// until the pause is lifted; then they proceed normally. Open connections are unaffected.
    pub fn pause(&self, on: bool) {
        self.shared.faults.send_modify(|faults| faults.pause = on);
    }

    /// Closes every open connection abruptly: the client (and the upstream, if connected yet) receives a TCP reset
    /// (`SO_LINGER` 0), not an orderly end. Later connections are not affected.
    pub fn reset_all(&self) {
        for connection in self.shared.connections().values() {
            connection.reset.send_replace(true);
        }
    }

    /// While on, new connections are closed right after accept, before any upstream connection is made.
    pub fn refuse(&self, on: bool) {
        self.shared.faults.send_modify(|faults| faults.refuse = on);
    }

    /// Delays each forwarded chunk by `delay`, in both directions (zero: no delay).
    pub fn latency(&self, delay: Duration) {
        self.shared.faults.send_modify(|faults| faults.latency = delay);
    }

    /// Limits each direction of each connection to about `bytes_per_sec` (`None`: unlimited; 0 counts as 1).
    pub fn bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.shared.faults.send_modify(|faults| faults.bandwidth = bytes_per_sec);
    }

    /// The switches that apply to all connections, as currently set.
    #[must_use]
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Connections accepted so far, refused ones included.
    #[must_use]
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the upstream to the clients so far (what the clients received on the wire, TLS
    /// included).
    #[must_use]
    pub fn bytes_to_clients(&self) -> u64 {
        self.shared.to_clients.load(Ordering::SeqCst)
    }

    /// Connections open now: held by a pause, forwarding, frozen or blackholed (refused ones are never open).
    #[must_use]
    pub fn open_connections(&self) -> usize {
        self.shared.connections().len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept loop owns every connection's task, so aborting it aborts them all.
        self.accept.abort();
        self.vanish.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

/// State shared by the proxy handle, the accept loop and the connection tasks.
struct Shared {
    upstream: SocketAddr,
    faults: watch::Sender<Faults>,
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    /// Bytes forwarded from the upstream to clients.
    to_clients: AtomicU64,
}

impl Shared {
    fn connections(&self) -> MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn faults(&self) -> Faults {
        *self.faults.borrow()
    }

    /// Adds a connection to the registry; it leaves when the returned registration is dropped.
    fn register(self: &Arc<Self>, client_port: u16) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (reset, _) = watch::channel(false);
        let connection = Arc::new(Connection { frozen: AtomicBool::new(false), reset, client_port });
        self.connections().insert(id, Arc::clone(&connection));
        Registration { shared: Arc::clone(self), id, connection }
    }

    /// Resolves once no pause is in force.
    async fn unpaused(&self) {
        let mut faults = self.faults.subscribe();
        loop {
            let paused = faults.borrow_and_update().pause;
            if !paused || faults.changed().await.is_err() {
                return;
            }
        }
    }
}

/// What the switches can do to one connection in particular.
struct Connection {
    /// Set by [`FaultProxy::freeze`]: swallow bytes from now on.
    frozen: AtomicBool,
    /// Set by [`FaultProxy::reset_all`]: close abruptly.
    reset: watch::Sender<bool>,
    /// The client's port, which [`FaultProxy::vanish`] filters on.
    client_port: u16,
}

impl Connection {
    fn swallows(&self, faults: &Faults) -> bool {
        faults.blackhole || self.frozen.load(Ordering::SeqCst)
    }

    /// Resolves once a reset is requested.
    async fn reset_requested(&self) {
        let mut reset = self.reset.subscribe();
        loop {
            let requested = *reset.borrow_and_update();
            if requested {
                return;
            }
            if reset.changed().await.is_err() {
                // Cannot happen while `self` holds the sender; never report a reset nobody asked for.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// A connection's entry in the registry, removed when its task ends or is aborted.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
    connection: Arc<Connection>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.connections().remove(&self.id);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Owning the connection tasks here means aborting this loop aborts every connection too.
    let mut connections: JoinSet<()> = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next() => continue,
        };
        let (client, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "fault proxy could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let faults = shared.faults();
        if faults.refuse {
            drop(client);
            continue;
        }
        connections.spawn(serve(shared.register(peer.port()), client, faults.pause));
    }
}

/// Connects to the upstream (after the pause, if `held`) and pumps both directions until both end or a reset.
async fn serve(registration: Registration, client: TcpStream, held: bool) {
    let (shared, connection) = (&registration.shared, &registration.connection);
    let connect = async {
        if held {
            shared.unpaused().await;
        }
        TcpStream::connect(shared.upstream).await
    };
    let upstream = tokio::select! {
        upstream = connect => upstream,
        () = connection.reset_requested() => {
            let _ = client.set_zero_linger();
            return;
        }
    };
    let upstream = match upstream {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::debug!(%error, upstream = %shared.upstream, "fault proxy could not reach the upstream");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let pumps = async {
        tokio::try_join!(
            pump(shared, connection, &mut client_read, &mut upstream_write, None),
            pump(shared, connection, &mut upstream_read, &mut client_write, Some(&shared.to_clients)),
        )
    };
    let reset = tokio::select! {
        _ = pumps => false,
        () = connection.reset_requested() => true,
    };
    if reset {
        for half in [client_write, upstream_write] {
            let stream: &TcpStream = half.as_ref();
            let _ = stream.set_zero_linger();
            // No FIN first: the socket closes with a reset once the read half is dropped too.
            half.forget();
        }
    }
}

/// Forwards `from` to `to` chunk by chunk, applying the faults in force when each chunk arrives.
///
/// A swallowing connection passes on neither data, nor the end of the stream, nor an error: the pump just stops
/// reading, and the other side stays open until the whole connection ends.
async fn pump(
    shared: &Shared,
    connection: &Connection,
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    forwarded: Option<&AtomicU64>,
) -> std::io::Result<()> {
    let mut buf = vec![0_u8; CHUNK];
    loop {
        // A slow rate reads less at a time, so one chunk does not arrive in a burst after a long wait.
        let rate = shared.faults().bandwidth;
        let limit = rate.map_or(CHUNK, |rate| usize::try_from(rate).unwrap_or(CHUNK).clamp(1, CHUNK));
        let read = from.read(&mut buf[..limit]).await;
        let faults = shared.faults();
        if connection.swallows(&faults) {
            match read {
                Ok(n) if n > 0 => continue,
                _ => return Ok(()),
            }
        }
        let n = read?;
        if n == 0 {
            return to.shutdown().await;
        }
        let mut delay = faults.latency;
        if let Some(rate) = faults.bandwidth {
            delay += Duration::from_nanos((n as u64).saturating_mul(1_000_000_000) / rate.max(1));
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        to.write_all(&buf[..n]).await?;
        if let Some(forwarded) = forwarded {
            forwarded.fetch_add(n as u64, Ordering::SeqCst);
        }
    }
}
