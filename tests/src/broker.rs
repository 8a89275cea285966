//! A `brokkr-broker serve` process pointed at the local control plane, observed only from outside.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::process::{Child, Command};

/// The admin token every test broker uses.
pub const ADMIN_TOKEN: &str = "e2e-admin-token";

fn broker_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("BROKKR_BROKER_BIN") {
                return PathBuf::from(path);
            }
            // target/<profile>/deps/<test> or target/<profile>/<bin> → target/<profile>/brokkr-broker
            let exe = std::env::current_exe().expect("test binary path");
            let mut dir = exe.parent().expect("binary folder");
            if dir.ends_with("deps") {
                dir = dir.parent().expect("profile folder");
            }
            let binary = dir.join("brokkr-broker");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let built = std::process::Command::new(cargo)
                .args(["build", "-p", "brokkr-broker", "--bin", "brokkr-broker"])
                .status()
                .expect("run cargo build");
            assert!(built.success(), "cargo build -p brokkr-broker failed");
            binary
        })
        .clone()
}

/// A running broker; killed on drop, its log printed if the test failed.
pub struct Broker {
    child: Child,
    port: u16,
    log: PathBuf,
    http: reqwest::Client,
}

impl Broker {
    /// Starts `brokkr-broker serve` with only `KUBECONFIG=kubeconfig`, the namespace, and `env` set.
    pub async fn start(kubeconfig: &Path, namespace: &str, env: &[(&str, &str)], log_dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let log = log_dir.join(format!("broker-{port}.log"));
        let file = std::fs::File::create(&log).expect("broker log");
        let mut command = Command::new(broker_binary());
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAMESPACE", namespace)
            .env("POD_NAME", format!("broker-{port}"))
            .env("BROKKR__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("BROKKR__ADMIN__TOKEN", ADMIN_TOKEN)
            .env("BROKKR__LOG__FORMAT", "json")
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("start {}: {e}", broker_binary().display()));
        let broker = Self { child, port, log, http: reqwest::Client::new() };
        broker
            .wait_until("healthz answers", Duration::from_secs(30), |b| async move {
                b.get("/healthz", None).await.is_some()
            })
            .await;
        broker
    }

    /// `http://127.0.0.1:<port><path>`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GET `path` (with an `Origin` header if given); `None` if the broker does not answer.
    pub async fn get(&self, path: &str, origin: Option<&str>) -> Option<reqwest::Response> {
        let mut request = self.http.get(self.url(path)).timeout(Duration::from_secs(5));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send().await.ok()
    }

    /// The admin status JSON.
    pub async fn status(&self) -> Value {
        let response = self
            .http
            .get(self.url("/api/v1/admin/config"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin status answers");
        assert_eq!(response.status(), 200, "admin status");
        response.json().await.expect("status is JSON")
    }

    /// POST the admin reload; returns status code and body.
    pub async fn reload_now(&self) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/api/v1/admin/config/reload"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("answers");
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics", None).await.expect("metrics answer").text().await.expect("text")
    }

    /// The `Access-Control-Allow-Origin` a GET of `path` from `origin` receives.
    pub async fn allowed_origin(&self, path: &str, origin: &str) -> Option<String> {
        let response = self.get(path, Some(origin)).await.expect("answers");
        response.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// The broker's log file.
    #[must_use]
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The port the broker serves on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends `signal` (such as `-HUP`, `-TERM`) to the broker process with `kill`.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("broker still running").to_string();
        let sent = std::process::Command::new("kill").args([signal, &pid]).status().expect("run kill");
        assert!(sent.success(), "kill {signal} {pid}");
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> Option<i32> {
        let status = tokio::time::timeout(timeout, self.child.wait()).await.expect("exits in time").expect("wait");
        status.code()
    }

    /// The broker's log so far, one JSON object per line (non-JSON lines skipped).
    #[must_use]
    pub fn log_lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Polls `check` every 50 ms until it is true; panics with `what` after `timeout`. Returns the time taken.
    pub async fn wait_until<'a, F, Fut>(&'a self, what: &str, timeout: Duration, check: F) -> Duration
    where
        F: Fn(&'a Self) -> Fut,
        Fut: Future<Output = bool>,
    {
        let started = Instant::now();
        loop {
            if check(self).await {
                return started.elapsed();
            }
            assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting until {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the status shows `generation`; returns the time taken.
    pub async fn wait_for_generation(&self, generation: u64, timeout: Duration) -> Duration {
        self.wait_until(&format!("generation {generation} is in force"), timeout, |b| async move {
            b.status().await["generation"].as_u64() >= Some(generation)
        })
        .await
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("--- broker on port {} (last lines) ---", self.port);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
