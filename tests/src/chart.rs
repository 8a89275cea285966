//! The chart's tools for tests: `helm` and `promtool` (built once by `scripts/chart-tools.sh`) and `kubectl`.

use std::{
    path::{Path, PathBuf},
    process::Output,
    sync::OnceLock,
};

use tokio::process::Command;

/// The chart's folder in this repository.
#[must_use]
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/brokkr-broker")
}

/// The folder that holds `helm` and `promtool` (`BROKKR_HELM`/`BROKKR_PROMTOOL`, else the cached Go builds).
#[must_use]
pub fn tools_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/chart-tools.sh");
        let output = std::process::Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(output.status.success(), "{} failed with {}", script.display(), output.status);
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
    })
    .clone()
}

/// A finished command: its status, stdout and stderr as text.
#[derive(Debug)]
pub struct Run {
    /// Exit code, `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error (kubectl prints admission warnings here).
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the command succeeded; returns stdout.
    pub fn ok(self, what: &str) -> String {
        assert_eq!(self.code, Some(0), "{what} failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self.stdout
    }
}

async fn run(mut command: Command, stdin: Option<&str>) -> Run {
    use tokio::io::AsyncWriteExt;
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(pipe);
    Run::from(child.wait_with_output().await.expect("wait"))
}

/// `helm args…` with its own empty cache, config and data folders under `home`, against `kubeconfig` if given.
pub async fn helm(home: &Path, kubeconfig: Option<&Path>, args: &[&str]) -> Run {
    let mut command = Command::new(tools_dir().join("helm"));
    command
        .args(args)
        .env("HELM_CACHE_HOME", home.join("helm/cache"))
        .env("HELM_CONFIG_HOME", home.join("helm/config"))
        .env("HELM_DATA_HOME", home.join("helm/data"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env_remove("KUBECONFIG"),
    };
    run(command, None).await
}

/// `kubectl args…` from the control plane's binaries, with `stdin` if given.
pub async fn kubectl(bin: &Path, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut command = Command::new(bin.join("kubectl"));
    command.args(args).env("KUBECONFIG", kubeconfig).current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    run(command, stdin).await
}

/// `promtool args…`.
pub async fn promtool(args: &[&str]) -> Run {
    let mut command = Command::new(tools_dir().join("promtool"));
    command.args(args).current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    run(command, None).await
}

/// The YAML documents of a rendered chart whose `kind:` line is `kind`.
#[must_use]
pub fn documents_of_kind<'a>(rendered: &'a str, kind: &str) -> Vec<&'a str> {
    let line = format!("\nkind: {kind}\n");
    rendered.split("\n---").filter(|doc| doc.contains(&line)).collect()
}

/// The release and namespace of the walkthrough in docs/OPERATIONS.md: the chart's ConfigMap is then `brokkr-broker`.
pub const RELEASE: &str = "brokkr-broker";
/// The namespace of the walkthrough.
pub const NAMESPACE: &str = "brokkr";

/// A control plane on which the tests run the "Install on Kubernetes" commands of docs/OPERATIONS.md.
pub struct Walkthrough {
    /// The control plane (its own scratch namespace is unused).
    pub cluster: crate::Cluster,
    home: tempfile::TempDir,
}

impl Walkthrough {
    /// Starts a control plane; nothing is installed yet.
    pub async fn start() -> Self {
        let cluster = crate::Cluster::start("scratch").await;
        Self { cluster, home: tempfile::tempdir().expect("helm home") }
    }

    /// Starts a control plane for pods on a pod network ([`brokkr_testenv::ControlPlane::start_for_pods`], inside a
    /// test network namespace only): the API server calls webhooks at one of their Service's ready endpoints
    /// (`--enable-aggregator-routing`), as there is no kube-proxy to route a ClusterIP.
    pub async fn start_for_pods(node: std::net::Ipv4Addr) -> Self {
        let plane = brokkr_testenv::ControlPlane::start_for_pods(node, &["--enable-aggregator-routing=true"])
            .await
            .expect("control plane starts");
        let cluster = crate::Cluster::on(plane, "scratch").await;
        Self { cluster, home: tempfile::tempdir().expect("helm home") }
    }

    /// `kubectl args…` as cluster admin.
    pub async fn kubectl(&self, args: &[&str]) -> Run {
        kubectl(self.cluster.plane.bin(), self.cluster.plane.admin_kubeconfig(), args, None).await
    }

    /// `kubectl args…` as cluster admin, with `stdin`.
    pub async fn kubectl_with(&self, args: &[&str], stdin: &str) -> Run {
        kubectl(self.cluster.plane.bin(), self.cluster.plane.admin_kubeconfig(), args, Some(stdin)).await
    }

    /// `helm args…` as cluster admin; `charts/brokkr-broker` resolves from the repository root.
    pub async fn helm(&self, args: &[&str]) -> Run {
        helm(self.home.path(), Some(self.cluster.plane.admin_kubeconfig()), args).await
    }

    /// A kubeconfig with a token of the chart's ServiceAccount (`kubectl create token`), as the pods get one.
    pub async fn service_account_kubeconfig(&self) -> PathBuf {
        let token = self.kubectl(&["-n", NAMESPACE, "create", "token", RELEASE]).await.ok("kubectl create token");
        self.cluster.plane.token_kubeconfig(RELEASE, token.trim()).expect("token kubeconfig")
    }

    /// Starts the broker as the Deployment's pod would run: the ServiceAccount's token, the namespace, and the
    /// chart's environment, plus `env`.
    pub async fn start_broker(&self, env: &[(&str, &str)]) -> crate::Broker {
        let kubeconfig = self.service_account_kubeconfig().await;
        let mut all = vec![("BROKKR__CONFIG_RELOAD__CONFIGMAP", RELEASE)];
        all.extend_from_slice(env);
        crate::Broker::start(&kubeconfig, NAMESPACE, &all, self.cluster.plane.dir()).await
    }

    /// `kubectl args…` with `kubeconfig` (an operator's) and the `kubectl-brokkr` plugin on `PATH`: (exit code,
    /// stdout and stderr).
    pub async fn kubectl_brokkr(&self, kubeconfig: &Path, args: &[&str]) -> (i32, String) {
        let plugin_dir = crate::broker::plugin_binary().parent().expect("plugin folder").to_owned();
        let path = format!("{}:{}", plugin_dir.display(), std::env::var("PATH").unwrap_or_default());
        let output = tokio::process::Command::new(self.cluster.plane.bin().join("kubectl"))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("PATH", path)
            .output()
            .await
            .expect("run kubectl");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        (output.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
    }

    /// Where to write files for the test.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.home.path()
    }
}
