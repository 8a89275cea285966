//! A hostile client for a broker another pod can reach: every connection slot of the HTTP and webhook ports held by
//! unfinished request heads, bodies past the webhook's cap, as many legal bodies just under it as it has slots. What
//! the broker does meanwhile is for the caller to judge (restart count, the cgroup's memory, real reviews answered).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use brokkr_testenv::slow_client::unfinished_head;
use rustls::{ClientConfig, RootCertStore, pki_types::ServerName};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

/// The longest one exchange with the broker may take before the client gives up on it.
const EXCHANGE: Duration = Duration::from_secs(30);

/// The webhook's TLS endpoint on one pod, trusting only the chart's CA.
#[derive(Clone)]
pub struct Webhook {
    addr: SocketAddr,
    name: ServerName<'static>,
    tls: TlsConnector,
}

impl Webhook {
    /// The webhook at `addr`, whose certificate is for `server_name` (`<svc>.<namespace>.svc`) and signed by `ca`.
    pub fn new(addr: SocketAddr, server_name: &str, ca: &str) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca.as_bytes()) {
            roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
        Ok(Self { addr, name, tls: TlsConnector::from(Arc::new(config)) })
    }

    /// A TLS connection, within [`EXCHANGE`].
    pub async fn connect(&self) -> Result<TlsStream<TcpStream>, String> {
        let connect = async {
            let tcp = TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
            self.tls.connect(self.name.clone(), tcp).await.map_err(|e| e.to_string())
        };
        tokio::time::timeout(EXCHANGE, connect).await.map_err(|_| "no handshake within 30 s".to_owned())?
    }

    /// POSTs `body` to `/validate/configmap` with `headers` (each ending in CRLF), and returns the status code (0:
    /// closed, or no answer within [`EXCHANGE`]) and the JSON body, if any.
    pub async fn send(&self, headers: &str, body: &[u8]) -> (u16, Option<Value>) {
        let exchange = async {
            let Ok(mut tls) = self.connect().await else { return (0, None) };
            let head = format!(
                "POST /validate/configmap HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n{headers}\r\n"
            );
            if tls.write_all(head.as_bytes()).await.is_err() {
                return (0, None);
            }
            for chunk in body.chunks(64 * 1024) {
                if tls.write_all(chunk).await.is_err() {
                    break;
                }
            }
            drop(tls.flush().await);
            let mut answer = Vec::new();
            drop(tls.read_to_end(&mut answer).await);
            let status = answer.get(9..12).and_then(|s| std::str::from_utf8(s).ok()?.parse().ok()).unwrap_or(0);
            let split = answer.windows(4).position(|w| w == b"\r\n\r\n");
            (status, split.and_then(|at| serde_json::from_slice(&answer[at + 4..]).ok()))
        };
        tokio::time::timeout(EXCHANGE, exchange).await.unwrap_or((0, None))
    }

    /// A real review of `document` (a valid one): whether the broker answered it, allowed, echoing its uid.
    pub async fn reviews(&self, namespace: &str, name: &str, document: &str) -> bool {
        let body = review(namespace, name, document, 0);
        let (status, answer) = self.send(&length(&body), &body).await;
        let answer = answer.unwrap_or_default();
        status == 200 && answer["response"]["uid"] == "hostile" && answer["response"]["allowed"] == true
    }
}

/// A review of ConfigMap `name` in `namespace` whose `broker.toml` is `document`, padded with `zeros` elements of a
/// JSON array nobody reads (so that its size is what the caller wants: two bytes each).
#[must_use]
pub fn review(namespace: &str, name: &str, document: &str, zeros: usize) -> Vec<u8> {
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "hostile", "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": name, "namespace": namespace, "operation": "UPDATE", "userInfo": {"username": "mallory"},
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
                       "data": {"broker.toml": document}}
        }
    });
    let mut text = review.to_string().into_bytes();
    if zeros > 0 {
        // `…}}` → `…},"filler":[0,0,…,0]}`: built as bytes, not as millions of JSON values.
        text.pop();
        text.extend_from_slice(b",\"filler\":[");
        text.extend_from_slice(&b"0,".repeat(zeros)[..zeros * 2 - 1]);
        text.extend_from_slice(b"]}");
    }
    text
}

/// The `Content-Length` header of `body`.
#[must_use]
pub fn length(body: &[u8]) -> String {
    format!("Content-Length: {}\r\n", body.len())
}

/// How many unfinished heads each port took (into its socket buffers at least: a count, not a proof of slots).
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
