//! A real broker process outside Kubernetes (no API request), serving the HTTP API and the webhook on loopback.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use super::{issue, post, replace, review};

/// The broker under test: this package's binary, or `BROKKR_BROKER_BIN` (to run these tests against another build).
pub fn binary() -> PathBuf {
    std::env::var_os("BROKKR_BROKER_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_brokkr-broker")), PathBuf::from)
}

/// The probe socket's name in [`Broker::dir`].
pub const PROBE_SOCKET: &str = "probe.sock";

/// A running broker, killed on drop.
pub struct Broker {
    child: Child,
    /// `server.listen`.
    pub http: SocketAddr,
    /// `webhook.listen`.
    pub webhook: SocketAddr,
    /// The CA that signed the webhook's certificate (PEM).
    pub ca: String,
    /// Holds the certificate files (and the probe socket).
    pub dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

impl Broker {
    /// Starts the broker with the webhook on, and waits until a review is answered.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = issue();
        let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        replace(&cert_file, &cert);
        replace(&key_file, &key);
        let free = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port");
        let (http, webhook) = (free(), free());
        let child = brokkr_testenv::child_command(&binary())
            .arg("serve")
            .env_clear()
            .env("BROKKR__SERVER__LISTEN", http.to_string())
            .env("BROKKR__WEBHOOK__ENABLED", "true")
            .env("BROKKR__WEBHOOK__LISTEN", webhook.to_string())
            .env("BROKKR__WEBHOOK__CERT_FILE", &cert_file)
            .env("BROKKR__WEBHOOK__KEY_FILE", &key_file)
            .env("BROKKR__LOG__LEVEL", "warn")
            .env("BROKKR_PROBE_SOCKET", dir.path().join(PROBE_SOCKET))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the broker");
        let broker = Self { child, http, webhook, ca, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while post(webhook, &broker.ca, &review("")).await.is_err() {
            assert!(Instant::now() < deadline, "the webhook never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        broker
    }

    /// The liveness probe's socket.
    pub fn probe_socket(&self) -> PathBuf {
        self.dir.path().join(PROBE_SOCKET)
    }

    /// The peak resident memory of the process so far (`VmHWM`), in MiB.
    pub fn peak_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM");
        kib / 1024
    }
}
