//! A `brokkr-broker serve` process pointed at the local control plane, observed only from outside.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::process::{Child, Command};

/// The admin token every test broker uses.
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0001";

/// A binary the tests run: the path in `env` if set (scripts/test.sh builds them first), else `cargo build <build>`
/// with the profile of this test binary, so that a `--release` run tests release binaries; `file` is its path below
/// `target/<profile>/`.
#[must_use]
pub fn built_binary(env: &str, file: &str, build: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test> or target/<profile>/<bin> → target/<profile>/<file>
    let exe = std::env::current_exe().expect("test binary path");
    let mut dir = exe.parent().expect("binary folder");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("profile folder");
    }
    let profile = match dir.file_name().and_then(|p| p.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .arg("build")
        .args(build)
        .args(["--profile", &profile])
        .status()
        .expect("run cargo build");
    assert!(built.success(), "cargo build {} failed", build.join(" "));
    dir.join(file)
}

/// The broker binary the tests run: `BROKKR_BROKER_BIN`, else built.
pub fn broker_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            built_binary("BROKKR_BROKER_BIN", "brokkr-broker", &["-p", "brokkr-broker", "--bin", "brokkr-broker"])
        })
        .clone()
}

/// The `kubectl-brokkr` plugin the tests run: `BROKKR_PLUGIN_BIN`, else built.
pub fn plugin_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            built_binary("BROKKR_PLUGIN_BIN", "kubectl-brokkr", &["-p", "brokkr-broker", "--bin", "kubectl-brokkr"])
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
    /// Starts `brokkr-broker serve` with only `KUBECONFIG=kubeconfig`, the namespace, and `env` set (an empty value
    /// removes a variable the harness would set). Waits until `/healthz` answers.
    pub async fn start(kubeconfig: &Path, namespace: &str, env: &[(&str, &str)], log_dir: &Path) -> Self {
        let broker = Self::spawn(kubeconfig, namespace, env, log_dir);
        broker
            .wait_until("healthz answers", Duration::from_secs(30), |b| async move {
                b.get("/healthz", None).await.is_some()
            })
            .await;
        broker
    }

    /// Starts `brokkr-broker serve` like [`Broker::start`] but returns at once, before it serves.
    #[must_use]
    pub fn spawn(kubeconfig: &Path, namespace: &str, env: &[(&str, &str)], log_dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let log = log_dir.join(format!("broker-{port}.log"));
        let file = std::fs::File::create(&log).expect("broker log");
        // Dies with the test run, even one that is killed (parent-death signal).
        let mut command = Command::from(brokkr_testenv::child_command(&broker_binary()));
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
            if value.is_empty() {
                command.env_remove(key);
            } else {
                command.env(key, value);
            }
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("start {}: {e}", broker_binary().display()));
        Self { child, port, log, http: reqwest::Client::new() }
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

    /// The status code of the admin status with `token` as the bearer token; `None` if the broker does not answer.
    pub async fn admin_code(&self, token: &str) -> Option<u16> {
        let request = self.http.get(self.url("/api/v1/admin/config")).bearer_auth(token);
        Some(request.timeout(Duration::from_secs(5)).send().await.ok()?.status().as_u16())
    }

    /// The admin status JSON with `token` as the bearer token.
    pub async fn status_with(&self, token: &str) -> Value {
        let response = self.http.get(self.url("/api/v1/admin/config")).bearer_auth(token).send().await;
        let response = response.expect("admin status answers");
        assert_eq!(response.status(), 200, "admin status");
        response.json().await.expect("status is JSON")
    }

    /// The admin status JSON, or `None` if the broker does not answer.
    pub async fn status_if_up(&self) -> Option<Value> {
        let request = self.http.get(self.url("/api/v1/admin/config")).bearer_auth(ADMIN_TOKEN);
        let response = request.timeout(Duration::from_secs(5)).send().await.ok()?;
        response.json().await.ok()
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

    /// The admin API's reload history.
    pub async fn history(&self) -> Value {
        let response = self.http.get(self.url("/api/v1/admin/config/history")).bearer_auth(ADMIN_TOKEN).send().await;
        response.expect("history answers").json().await.expect("history is JSON")
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

    /// The broker's process id, `None` once it has been reaped. (`setpriv` execs the broker, so once the broker
    /// serves this is the broker's own process.)
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
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

    /// Waits until the status shows the ConfigMap version `resource_version` in force; returns the time taken.
    pub async fn wait_for_version(&self, resource_version: &str, timeout: Duration) -> Duration {
        self.wait_until(&format!("resourceVersion {resource_version} is in force"), timeout, |b| async move {
            b.status().await["source"]["resource_version"] == resource_version
        })
        .await
    }

    /// Waits until a ConfigMap version is in force (normally at once: it is read at start-up; under load the
    /// start-up read may time out and the watch's first list brings it). Returns the generation then in force.
    pub async fn wait_for_configmap(&self) -> u64 {
        self.wait_until("a ConfigMap version is in force", Duration::from_secs(30), |b| async move {
            b.status().await["source"]["resource_version"].is_string()
        })
        .await;
        self.generation().await
    }

    /// The generation in force.
    pub async fn generation(&self) -> u64 {
        self.status().await["generation"].as_u64().unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The value of the metric sample `name` (with its labels, as exposed), if present.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())
        })
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
