//! Starts etcd and kube-apiserver on free loopback ports and hands out kubeconfigs and clients.

use std::{
    fs,
    io::{BufRead, BufReader},
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use kube::{
    Client,
    config::{KubeConfigOptions, Kubeconfig},
};
use tempfile::TempDir;

use crate::{
    Error, Result, assets_dir,
    error::io,
    pki::{Pki, service_account_key},
    process::{Process, free_port},
};

const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n";
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The user the API server is to a kubelet (port-forward, logs, exec), bound to `system:kubelet-api-admin`; a
/// kubelet started by [`crate::Node`] with a pod network accepts only client certificates of the test CA, and asks
/// the API server whether each request is allowed.
pub const KUBELET_CLIENT: &str = "kube-apiserver-kubelet-client";

/// etcd + kube-apiserver with RBAC and an audit log, in a temporary folder removed on drop.
///
/// When dropped during a panic, the end of both components' logs is printed, so a failing test shows why.
pub struct ControlPlane {
    dir: TempDir,
    bin: PathBuf,
    pki: Pki,
    port: u16,
    apiserver_args: Vec<String>,
    etcd_url: String,
    etcd: Process,
    apiserver: Option<Process>,
    admin_kubeconfig: PathBuf,
}

impl ControlPlane {
    /// Starts both components and waits until the API server is ready.
    pub async fn start() -> Result<Self> {
        Self::start_with(&[]).await
    }

    /// Like [`ControlPlane::start`], with `extra` flags for kube-apiserver, such as `--watch-cache=false`.
    pub async fn start_with(extra: &[&str]) -> Result<Self> {
        Self::start_listening(None, extra).await
    }

    /// A control plane for pods on a pod network: the API server listens on every address of the test's network
    /// namespace (loopback, the node's `address` and the pod network's gateway), its certificate names `address` too,
    /// and it reaches the kubelet at the node's `InternalIP` with [`KUBELET_CLIENT`]'s certificate. Refused outside a
    /// namespace of the test's own ([`crate::netns::current`]), so that it never listens on this machine's interfaces.
    pub async fn start_for_pods(address: Ipv4Addr, extra: &[&str]) -> Result<Self> {
        if crate::netns::current().is_none() {
            return Err(Error::NotIsolated("ControlPlane::start_for_pods"));
        }
        let plane = Self::start_listening(Some(address), extra).await?;
        plane.grant_kubelet_api().await?;
        Ok(plane)
    }

    /// Lets [`KUBELET_CLIENT`] use the kubelet's API (port-forward, logs, exec) as kubeadm lets its API server: the
    /// bootstrap role `system:kubelet-api-admin`, nothing more.
    async fn grant_kubelet_api(&self) -> Result<()> {
        use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
        let binding = ClusterRoleBinding {
            metadata: kube::api::ObjectMeta { name: Some(KUBELET_CLIENT.into()), ..Default::default() },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: "system:kubelet-api-admin".into(),
            },
            subjects: Some(vec![Subject {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "User".into(),
                name: KUBELET_CLIENT.into(),
                ..Default::default()
            }]),
        };
        let bindings = kube::Api::<ClusterRoleBinding>::all(self.admin_client().await?);
        bindings
            .create(&kube::api::PostParams::default(), &binding)
            .await
            .map_err(|source| Error::Api { what: "bind the API server's kubelet client", source })?;
        Ok(())
    }

    async fn start_listening(pod_facing: Option<Ipv4Addr>, extra: &[&str]) -> Result<Self> {
        let bin = assets_dir()?;
        // Owner only: it holds the CA's key material, the service-account key and an admin kubeconfig.
        let dir = crate::process::private_temp_dir("brokkr-testenv-")?;
        let path = dir.path().to_owned();
        let write = |name: &str, text: &str| -> Result<String> {
            let file = path.join(name);
            fs::write(&file, text).map_err(io(format!("write {}", file.display())))?;
            Ok(file.display().to_string())
        };

        let (etcd_port, peer_port, port) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args: Vec<String> = vec![
            "--data-dir=etcd-data".into(),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ];
        let etcd = Process::spawn("etcd", &bin.join("etcd"), &etcd_args, &path)?;

        let pki = Pki::new()?;
        let serving = pki.serving_for(pod_facing.as_slice())?;
        let sa = service_account_key()?;
        let ca = write("ca.crt", &pki.ca_cert)?;
        let mut apiserver_args: Vec<String> = vec![
            format!("--etcd-servers={etcd_url}"),
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            // A loopback address cannot be published as the kubernetes Service endpoint.
            "--endpoint-reconciler-type=none".into(),
            format!("--tls-cert-file={}", write("apiserver.crt", &serving.cert)?),
            format!("--tls-private-key-file={}", write("apiserver.key", &serving.key)?),
            format!("--client-ca-file={ca}"),
            "--authorization-mode=RBAC".into(),
            format!("--service-account-key-file={}", write("sa.pub", &sa.cert)?),
            format!("--service-account-signing-key-file={}", write("sa.key", &sa.key)?),
            "--service-account-issuer=https://127.0.0.1".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--allow-privileged=true".into(),
            format!("--audit-policy-file={}", write("audit-policy.yaml", AUDIT_POLICY)?),
            format!("--audit-log-path={}", path.join("audit.log").display()),
            "--audit-log-mode=blocking".into(),
            // 0 turns rotation off. kube-apiserver's default rotates at 100 MB, and a rotated log hides every
            // request before it from `requests_by`, as a churn run of 270 000 writes showed.
            "--audit-log-maxsize=0".into(),
            format!("--cert-dir={}", path.join("certs").display()),
            "--v=1".into(),
        ];
        if let Some(address) = pod_facing {
            let kubelet_client = pki.client(KUBELET_CLIENT, None)?;
            apiserver_args.extend([
                // Inside the test's network namespace only (checked by `start_for_pods`); the last flag wins.
                "--bind-address=0.0.0.0".into(),
                format!("--advertise-address={address}"),
                format!("--kubelet-client-certificate={}", write("kubelet-client.crt", &kubelet_client.cert)?),
                format!("--kubelet-client-key={}", write("kubelet-client.key", &kubelet_client.key)?),
                // The node registers a hostname no resolver here knows.
                "--kubelet-preferred-address-types=InternalIP".into(),
            ]);
        }
        let apiserver_args = apiserver_args.into_iter().chain(extra.iter().map(|a| (*a).to_owned())).collect();

        let admin_kubeconfig = path.join("admin.kubeconfig");
        let mut plane = Self { dir, bin, pki, port, apiserver_args, etcd_url, etcd, apiserver: None, admin_kubeconfig };
        let (admin, server) = (plane.admin_kubeconfig.clone(), plane.server_url());
        plane.write_kubeconfig(&admin, "admin", Some("system:masters"), &server)?;
        plane.start_apiserver().await?;
        Ok(plane)
    }

    /// The folder of logs, certificates and kubeconfigs.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The folder of the binaries (for `kubectl`).
    #[must_use]
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// `https://127.0.0.1:<port>`.
    #[must_use]
    pub fn server_url(&self) -> String {
        format!("https://{}", self.apiserver_addr())
    }

    /// The address kube-apiserver listens on (`127.0.0.1:<port>`), the same across restarts.
    #[must_use]
    pub fn apiserver_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// A kubeconfig for a cluster admin (group `system:masters`, bypasses RBAC).
    #[must_use]
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// Writes a kubeconfig for `user` (no groups: only what RBAC grants it) and returns its path.
    pub fn user_kubeconfig(&self, user: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(format!("{user}.kubeconfig"));
        self.write_kubeconfig(&path, user, None, &self.server_url())?;
        Ok(path)
    }

    /// Writes a kubeconfig for `user` (as [`ControlPlane::user_kubeconfig`]) whose server is `https://<server>`,
    /// such as a [`FaultProxy`](crate::FaultProxy) in front of [`ControlPlane::apiserver_addr`], and returns
    /// its path. TLS verifies only if `server` is on `127.0.0.1` or `localhost`, the names the API server's
    /// certificate holds.
    pub fn user_kubeconfig_via(&self, user: &str, server: SocketAddr) -> Result<PathBuf> {
        let name = server.to_string().replace([':', '[', ']'], "_");
        let path = self.dir.path().join(format!("{user}-via-{name}.kubeconfig"));
        self.write_kubeconfig(&path, user, None, &format!("https://{server}"))?;
        Ok(path)
    }

    /// Writes a kubeconfig that authenticates with a bearer `token` (a service account's, from the TokenRequest
    /// API) as `name`, and returns its path.
    pub fn token_kubeconfig(&self, name: &str, token: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(format!("{name}.token.kubeconfig"));
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: testenv\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n\
             - name: testenv\n  context:\n    cluster: testenv\n    user: {name}\n    namespace: default\n\
             current-context: testenv\n",
            server = self.server_url(),
            ca = STANDARD.encode(&self.pki.ca_cert),
        );
        fs::write(&path, yaml).map_err(io(format!("write {}", path.display())))?;
        Ok(path)
    }

    /// A client certificate and key (PEM) of the test CA for `user`, in no group: what RBAC grants it and nothing
    /// more, wherever the test CA is trusted (the API server, a kubelet with a pod network).
    pub fn client_identity(&self, user: &str) -> Result<(String, String)> {
        let pair = self.pki.client(user, None)?;
        Ok((pair.cert, pair.key))
    }

    /// The file of [`ControlPlane::ca_cert`].
    #[must_use]
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The test CA's certificate (PEM), which the API server trusts for webhooks called at a URL.
    #[must_use]
    pub fn ca_cert(&self) -> &str {
        &self.pki.ca_cert
    }

    /// A serving certificate and key (PEM) for `127.0.0.1` and `localhost`, signed by [`ControlPlane::ca_cert`]:
    /// for a webhook the API server calls on loopback.
    pub fn loopback_serving_cert(&self) -> Result<(String, String)> {
        let pair = self.pki.serving()?;
        Ok((pair.cert, pair.key))
    }

    fn write_kubeconfig(&self, path: &Path, user: &str, group: Option<&str>, server: &str) -> Result<()> {
        let pair = self.pki.client(user, group)?;
        let b64 = |s: &str| STANDARD.encode(s);
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: testenv\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    \
             client-key-data: {key}\ncontexts:\n- name: testenv\n  context:\n    cluster: testenv\n    user: {user}\n    \
             namespace: default\ncurrent-context: testenv\n",
            ca = b64(&self.pki.ca_cert),
            cert = b64(&pair.cert),
            key = b64(&pair.key),
        );
        fs::write(path, yaml).map_err(io(format!("write {}", path.display())))
    }

    /// A client from the kubeconfig at `path`.
    pub async fn client_for(path: &Path) -> Result<Client> {
        let kubeconfig = Kubeconfig::read_from(path).map_err(Error::Kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(Error::Kubeconfig)?;
        Client::try_from(config).map_err(Error::Client)
    }

    /// A cluster-admin client.
    pub async fn admin_client(&self) -> Result<Client> {
        Self::client_for(&self.admin_kubeconfig).await
    }

    /// Starts (or restarts) kube-apiserver on the same port and waits until it is ready.
    pub async fn start_apiserver(&mut self) -> Result<()> {
        let process =
            Process::spawn("kube-apiserver", &self.bin.join("kube-apiserver"), &self.apiserver_args, self.dir.path())?;
        self.apiserver = Some(process);
        let client = self.admin_client().await?;
        let started = Instant::now();
        loop {
            let request = http::Request::get("/readyz").body(Vec::new()).ok();
            let ready = match request {
                Some(req) => client.request_text(req).await.is_ok_and(|body| body.trim() == "ok"),
                None => false,
            };
            if ready {
                return Ok(());
            }
            let running = self.apiserver.as_mut().is_some_and(Process::is_running) && self.etcd.is_running();
            if !running || started.elapsed() > READY_TIMEOUT {
                let apiserver = self.apiserver.as_ref().map(|p| p.log.clone()).unwrap_or_default();
                return Err(Error::NotReady {
                    component: "kube-apiserver",
                    seconds: started.elapsed().as_secs(),
                    tail: format!(
                        "{}\n--- etcd ---\n{}",
                        crate::process::tail_of(&apiserver, 4000),
                        self.etcd.tail(2000)
                    ),
                    log: apiserver,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Compacts etcd at its current revision and returns it: a watch resumed from any older resourceVersion is
    /// then answered `410 Gone` (with `--watch-cache=false`, the API server asks etcd directly).
    pub async fn compact_etcd(&self) -> Result<i64> {
        crate::etcd::compact(&self.etcd_url).await
    }

    /// Stops kube-apiserver (etcd keeps the data) until [`ControlPlane::start_apiserver`].
    pub fn stop_apiserver(&mut self) {
        if let Some(mut process) = self.apiserver.take() {
            process.stop();
        }
    }

    /// Every audit event so far, one JSON object each.
    #[must_use]
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        self.audit_lines(|_| true)
    }

    /// Audit events of requests made by `user`, one per request (the `ResponseComplete` stage).
    ///
    /// Only lines that name `user` are parsed, so that a log of hundreds of MB from other clients reads quickly.
    #[must_use]
    pub fn requests_by(&self, user: &str) -> Vec<serde_json::Value> {
        let events = self.audit_lines(|line| line.contains(user) && line.contains("ResponseComplete"));
        events.into_iter().filter(|e| e["user"]["username"] == user && e["stage"] == "ResponseComplete").collect()
    }

    /// The audit events on lines that pass `keep`, read line by line.
    fn audit_lines(&self, keep: impl Fn(&str) -> bool) -> Vec<serde_json::Value> {
        let Ok(file) = fs::File::open(self.dir.path().join("audit.log")) else { return Vec::new() };
        let lines = BufReader::new(file).lines().map_while(std::result::Result::ok);
        lines.filter(|line| keep(line)).filter_map(|line| serde_json::from_str(&line).ok()).collect()
    }

    /// The end of each component's log.
    #[must_use]
    pub fn logs(&self) -> String {
        let apiserver = self.apiserver.as_ref().map(|p| p.tail(6000)).unwrap_or_default();
        format!("--- {} ---\n{}\n--- kube-apiserver ---\n{apiserver}", self.etcd.name, self.etcd.tail(3000))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("control plane in {} at failure:\n{}", self.dir.path().display(), self.logs());
        }
        self.stop_apiserver();
        self.etcd.stop();
    }
}
