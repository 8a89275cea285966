//! A hostile client for a broker another pod can reach: every connection slot of the HTTP and webhook ports held by
//! unfinished request heads, bodies past the webhook's cap, legal bodies just under it at once. What the broker does
//! meanwhile is for the caller to judge (restart count, the cgroup's memory, a real review answered).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use rustls::{ClientConfig, RootCertStore, pki_types::ServerName};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

/// Just under actix-http's 128 KiB head buffer: buffered whole, never refused as too large, until the head timeout.
const HEAD_BYTES: usize = 127 * 1024;

/// The webhook's TLS endpoint on one pod: its address, the name its certificate holds, the CA that signed it.
#[derive(Clone)]
pub struct Webhook {
    /// The pod's webhook port.
    pub addr: SocketAddr,
    /// The Service name the chart's certificate is for (`<svc>.<namespace>.svc`).
    pub server_name: String,
    /// The chart's CA (PEM).
    pub ca: String,
}

impl Webhook {
    /// A TLS connection that trusts only the chart's CA.
    pub async fn connect(&self) -> Result<TlsStream<TcpStream>, String> {
        let mut roots = RootCertStore::empty();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(self.ca.as_bytes()) {
            roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(self.server_name.clone()).map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
        TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())
    }

    /// POSTs `body` to `/validate/configmap` with `headers` (each ending in CRLF) and returns the status code
    /// (0: closed without an answer).
    pub async fn send(&self, headers: &str, body: &[u8]) -> u16 {
        let Ok(mut tls) = self.connect().await else { return 0 };
        let head = format!(
            "POST /validate/configmap HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n{headers}\r\n"
        );
        if tls.write_all(head.as_bytes()).await.is_err() {
            return 0;
        }
        for chunk in body.chunks(64 * 1024) {
            if tls.write_all(chunk).await.is_err() {
                break;
            }
        }
        drop(tls.flush().await);
        let mut answer = [0; 12];
        match tls.read_exact(&mut answer).await {
            Ok(_) => String::from_utf8_lossy(&answer[9..12]).parse().unwrap_or(0),
            Err(_) => 0,
        }
    }
}

/// A review of ConfigMap `name` in `namespace` whose `broker.toml` is `document` followed by `zeros` elements of a
/// JSON array nobody reads (so that its size is what the caller wants).
#[must_use]
pub fn review(namespace: &str, name: &str, document: &str, zeros: usize) -> Vec<u8> {
    let filler = serde_json::Value::Array(vec![serde_json::Value::from(0); zeros]);
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "hostile", "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": name, "namespace": namespace, "operation": "UPDATE", "userInfo": {"username": "mallory"},
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
                       "data": {"broker.toml": document}, "filler": filler}
        }
    });
    review.to_string().into_bytes()
}

/// The `Content-Length` header of `body`.
#[must_use]
pub fn length(body: &[u8]) -> String {
    format!("Content-Length: {}\r\n", body.len())
}

/// Sends a request head of [`HEAD_BYTES`] without its end, then holds the connection until the server closes it
/// or `until`. Whether the whole head was written.
async fn unfinished_head<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, until: Instant) -> bool {
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: ".to_vec();
    head.resize(HEAD_BYTES, b'a');
    let written = stream.write_all(&head).await.is_ok() && stream.flush().await.is_ok();
    let mut sink = [0; 512];
    let held = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
    drop(tokio::time::timeout(until.saturating_duration_since(Instant::now()), held).await);
    written
}

/// How many unfinished heads each port took.
#[derive(Debug)]
pub struct Flood {
    /// Heads written whole to the HTTP port.
    pub http: usize,
    /// Heads written whole to the webhook port.
    pub webhook: usize,
}

/// `clients` connections to each port for `duration`, each sending an unfinished head and reopened as soon as the
/// broker closes it.
pub async fn flood(http: SocketAddr, webhook: &Webhook, clients: usize, duration: Duration) -> Flood {
    let until = Instant::now() + duration;
    let (http_heads, webhook_heads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let count = http_heads.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let connect = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(http));
                let Ok(Ok(stream)) = connect.await else { continue };
                if unfinished_head(stream, until).await {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
        let (webhook, count) = (webhook.clone(), webhook_heads.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(2), webhook.connect()).await else {
                    continue;
                };
                if unfinished_head(tls, until).await {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a hostile client");
    }
    Flood { http: http_heads.load(Ordering::Relaxed), webhook: webhook_heads.load(Ordering::Relaxed) }
}
