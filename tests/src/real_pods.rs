//! The chart installed on a real node with a pod network, and what the pod-network test checks of it, step by step.

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::Stdio,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use brokkr_broker::{
    serve::{HTTP_MAX_CONNECTIONS, HTTP_WORKERS},
    webhook::{MAX_BODY, MAX_CONNECTIONS},
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Pod},
};
use kube::Api;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{
    broker::ADMIN_TOKEN,
    chart::{NAMESPACE, RELEASE, Run, Walkthrough},
    hostile::{self, Webhook},
    kubelet::{
        broker_pid, cgroup_memory, eventually, memory_cgroup, name, open_sockets, pod_ip, quantity_bytes, ready_pods,
        restarts,
    },
    node::NODE_IP,
};

/// How long the hostile client holds both ports of one pod.
const HOSTILE_FLOOD: Duration = Duration::from_secs(20);

/// The chart, from the repository's root.
pub const CHART: &str = "charts/brokkr-broker";
/// The webhook Service's name in the chart's certificate.
const WEBHOOK_NAME: &str = "brokkr-broker-webhook.brokkr.svc";

/// The release as installed, and a client for its pods' own addresses.
pub struct Release {
    http: reqwest::Client,
    configmaps: Api<ConfigMap>,
}

impl Release {
    /// Installs the chart as a user would on a cluster with a pod network: three replicas, the webhook with the
    /// chart's certificate, the Pod status. Its NetworkPolicy names `gateway`, where the API server's connections
    /// come from here; the bridge enforces no NetworkPolicy, so that is rendered, not tested. The pods reach the API server at the node's address (no kube-proxy serves `kubernetes.default`).
    pub async fn install(w: &Walkthrough, image: &str, gateway: Ipv4Addr) -> Self {
        w.kubectl(&["create", "namespace", NAMESPACE]).await.ok("create namespace");
        let literal = format!("--from-literal=token={ADMIN_TOKEN}");
        w.kubectl(&["-n", NAMESPACE, "create", "secret", "generic", "brokkr-admin", &literal]).await.ok("secret");
        let (repository, tag) = image.rsplit_once(':').expect("an image with a tag");
        let port = w.cluster.plane.apiserver_addr().port();
        let values = format!(
            "image: {{repository: {repository}, tag: {tag}, pullPolicy: Never}}\n\
             replicaCount: 3\n\
             admin: {{existingSecret: brokkr-admin}}\n\
             podStatus: {{enabled: true}}\n\
             webhook: {{enabled: true, networkPolicy: {{apiServerCIDRs: [\"{gateway}/32\"]}}}}\n\
             config: {{config_reload: {{debounce: 1s}}}}\n\
             extraEnv:\n  - {{name: KUBERNETES_SERVICE_HOST, value: \"{NODE_IP}\"}}\n  \
             - {{name: KUBERNETES_SERVICE_PORT, value: \"{port}\"}}\n"
        );
        let file = w.dir().join("pod-network-values.yaml");
        std::fs::write(&file, values).expect("write values");
        let file = file.to_str().expect("path");
        w.helm(&["install", RELEASE, CHART, "-n", NAMESPACE, "-f", file]).await.ok("helm install");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
        Self { http, configmaps: Api::namespaced(w.cluster.admin.clone(), NAMESPACE) }
    }

    /// The admin status of `pod`, read at the pod's own IP.
    pub async fn status(&self, pod: &Pod) -> Option<Value> {
        let url = format!("http://{}:8080/api/v1/admin/config", pod_ip(pod)?);
        self.http.get(url).bearer_auth(ADMIN_TOKEN).send().await.ok()?.json().await.ok()
    }

    /// The reload history of `pod`, read at the pod's own IP.
    pub async fn history(&self, pod: &Pod) -> Option<Value> {
        let url = format!("http://{}:8080/api/v1/admin/config/history", pod_ip(pod)?);
        self.http.get(url).bearer_auth(ADMIN_TOKEN).send().await.ok()?.json().await.ok()
    }

    /// The ConfigMap's resourceVersion.
    pub async fn configmap_version(&self) -> String {
        let cm = self.configmaps.get(RELEASE).await.expect("the chart's ConfigMap");
        cm.metadata.resource_version.expect("a resourceVersion")
    }
}

/// A document the webhook denies, and what its denial says.
pub const BROKEN: &str = "[cors]\nmax_age = \"soon\"\n";
/// The key and reason the broker names for [`BROKEN`].
pub const BROKEN_SAYS: &str = "cors.max_age: invalid duration \"soon\"";

/// `helm upgrade` an edit; `kubectl brokkr rollout-status` waits until all three replicas run it.
pub async fn live_edit_reaches_every_replica(w: &Walkthrough, release: &Release) {
    let upgrade = ["upgrade", RELEASE, CHART, "-n", NAMESPACE, "--reuse-values", "--set", "config.cors.max_age=2m"];
    w.helm(&upgrade).await.ok("helm upgrade: a live edit");
    let started = Instant::now();
    let rv = release.configmap_version().await;
    let admin = w.cluster.plane.admin_kubeconfig();
    let (code, out) = w.kubectl_brokkr(admin, &["brokkr", "rollout-status", "-n", NAMESPACE, "--timeout", "60s"]).await;
    println!("e2e pod network: edit -> rollout-status says all 3 run it in {} ms", started.elapsed().as_millis());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("all 3 ready replicas run resourceVersion {rv}")), "{out}");
}

/// `kubectl port-forward` to `pod`'s HTTP port, through the API server and the kubelet: its admin status answers.
pub async fn port_forward_reads_the_admin_status(w: &Walkthrough, pod: &str) {
    let mut forward = tokio::process::Command::new(w.cluster.plane.bin().join("kubectl"))
        .args(["-n", NAMESPACE, "port-forward", &format!("pod/{pod}"), ":8080"])
        .env("KUBECONFIG", w.cluster.plane.admin_kubeconfig())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl port-forward");
    let mut lines = BufReader::new(forward.stdout.take().expect("stdout")).lines();
    // "Forwarding from 127.0.0.1:43121 -> 8080"
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let port = line.strip_prefix("Forwarding from 127.0.0.1:").and_then(|l| l.split(' ').next());
            if let Some(port) = port.and_then(|p| p.parse::<u16>().ok()) {
                return Some(port);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("kubectl port-forward says where it listens");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let url = format!("http://127.0.0.1:{port}/api/v1/admin/config");
    let response = http.get(&url).bearer_auth(ADMIN_TOKEN).send().await.expect("through port-forward");
    assert_eq!(response.status().as_u16(), 200);
    let status: Value = response.json().await.expect("the admin status");
    assert_eq!(status["settings"]["cors"]["max_age"], "2m", "the pod's own status: {status}");
    drop(forward.kill().await);
}

/// A ConfigMap with `toml` as its `broker.toml`, through `kubectl apply --dry-run=server` (the webhook judges it,
/// nothing is stored).
pub async fn apply_document(w: &Walkthrough, toml: &str) -> Run {
    let file = w.dir().join("apply.broker.toml");
    std::fs::write(&file, toml).expect("write broker.toml");
    let from_file = format!("--from-file=broker.toml={}", file.display());
    let create = ["-n", NAMESPACE, "create", "configmap", RELEASE, &from_file, "--dry-run=client", "-o", "yaml"];
    let manifest = w.kubectl(&create).await.ok("kubectl create --dry-run=client");
    w.kubectl_with(&["apply", "--dry-run=server", "-f", "-"], &manifest).await
}

/// The memory limit of the chart's Deployment, in bytes.
async fn chart_memory_limit(w: &Walkthrough) -> u64 {
    let deployments = Api::<Deployment>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    let deployment = deployments.get(RELEASE).await.expect("the Deployment");
    let spec = deployment.spec.template.spec.expect("pod spec");
    let broker = spec.containers.iter().find(|c| c.name == "broker").expect("the broker container");
    let limits = broker.resources.as_ref().and_then(|r| r.limits.as_ref()).expect("limits");
    quantity_bytes(&limits["memory"].0).expect("a memory limit in bytes")
}

/// Every replica's container runs under the chart's memory limit, as its cgroup says.
pub async fn memory_limit_is_the_charts(w: &Walkthrough, pods: &Api<Pod>) {
    let limit = chart_memory_limit(w).await;
    let ready = ready_pods(pods, 3).await.expect("three replicas");
    for pod in &ready {
        let pid = broker_pid(&name(pod)).expect("the broker's process");
        let cgroup = memory_cgroup(pid).expect("its memory cgroup");
        let memory = cgroup_memory(&cgroup).expect("the cgroup's memory files");
        assert_eq!(memory.limit, limit, "{}: {cgroup:?}", name(pod));
    }
    println!("e2e pod network: each replica's memory cgroup limit is the chart's {} MiB", limit >> 20);
}

/// The webhook endpoint of `pod`, trusting the chart's CA.
async fn webhook_of(w: &Walkthrough, pod: &Pod) -> Webhook {
    let secret = format!("{RELEASE}-webhook-tls");
    let ca = w
        .kubectl(&["-n", NAMESPACE, "get", "secret", &secret, "-o", "jsonpath={.data.ca\\.crt}"])
        .await
        .ok("the chart's webhook CA");
    let ca = String::from_utf8(STANDARD.decode(ca.trim()).expect("base64")).expect("PEM");
    let addr = SocketAddr::from((pod_ip(pod).expect("a pod IP"), 8443));
    Webhook::new(addr, WEBHOOK_NAME, &ca).expect("a TLS client for the webhook")
}

/// Bodies past the webhook's cap, as many legal ones just under it as it has connection slots (far more than the
/// memory limit, were they held at once), and unfinished heads on every slot of both ports: the pod is never
/// restarted, its cgroup never reaches the limit, and it answers real reviews before and after.
pub async fn hostile_client_against_a_real_pod(w: &Walkthrough, release: &Release, pods: &Api<Pod>) {
    let pod = ready_pods(pods, 3).await.expect("three replicas").remove(0);
    let webhook = webhook_of(w, &pod).await;
    let pid = broker_pid(&name(&pod)).expect("the broker's process");
    let cgroup = memory_cgroup(pid).expect("its cgroup");
    let real = "[log]\nlevel = \"debug\"\n";
    assert!(webhook.reviews(NAMESPACE, RELEASE, real).await, "a real review, before");

    let huge = hostile::review(NAMESPACE, RELEASE, "", 7_800_000);
    assert_eq!(webhook.send(&hostile::length(&huge), &huge).await.0, 413, "a 15 MiB review is refused");
    // Just under the cap, on every slot at once: 256 MB in all, twice the limit if the broker held them.
    let legal = hostile::review(NAMESPACE, RELEASE, "", (MAX_BODY - 1024) / 2);
    assert!(legal.len() < MAX_BODY, "{} bytes", legal.len());
    let head = hostile::length(&legal);
    let answers = futures::future::join_all((0..MAX_CONNECTIONS).map(|_| webhook.send(&head, &legal))).await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert!(statuses.iter().all(|s| [200, 503, 408].contains(s)), "{MAX_CONNECTIONS} legal bodies: {statuses:?}");
    assert!(statuses.contains(&200), "some were reviewed: {statuses:?}");

    let http = SocketAddr::from((pod_ip(&pod).expect("a pod IP"), 8080));
    let slots = HTTP_WORKERS * HTTP_MAX_CONNECTIONS;
    let before = open_sockets(pid);
    let watch = tokio::spawn(crate::real_flood::not_ready_during(pods.clone(), HOSTILE_FLOOD));
    let flood = tokio::spawn({
        let webhook = webhook.clone();
        async move { hostile::flood(http, &webhook, slots + 64, HOSTILE_FLOOD).await }
    });
    // The flood fills the slots (most of them at any moment: a closed one is reopened), and the broker holds no
    // more than its caps, whatever waits in the backlogs: listeners, the probe socket and its API connections aside.
    let all_slots = slots + MAX_CONNECTIONS;
    let held = eventually("the flood fills the slots", Duration::from_secs(10), || async {
        let held = open_sockets(pid).saturating_sub(before);
        (held >= all_slots * 3 / 4).then_some(held)
    })
    .await;
    let during = Instant::now();
    let answered = webhook.reviews(NAMESPACE, RELEASE, real).await;
    // Sampled again once the flood has run a while: the sockets beyond those before it stay within the slots.
    let later = open_sockets(pid).saturating_sub(before);
    let during = (answered, during.elapsed(), held, later);
    assert!(held.max(later) <= all_slots + 8, "sockets beyond the {all_slots} slots: {during:?}");
    let flood = flood.await.expect("the flood");
    assert!(during.0, "a real review during the flood was not answered within 30 s");
    let unready = watch.await.expect("the watch of the Pods");
    assert!(unready.is_empty(), "a replica left Ready during the flood: {unready:?}");
    let now = pods.get(&name(&pod)).await.expect("the pod");
    assert!(webhook.reviews(NAMESPACE, RELEASE, real).await, "a real review, after");
    assert!(release.status(&pod).await.is_some(), "the admin API answers after");

    let memory = cgroup_memory(&cgroup).expect("the cgroup's memory files");
    let pod = now;
    println!(
        "e2e pod network: hostile client against {}: {MAX_CONNECTIONS} legal bodies at once answered {statuses:?}; \
         cgroup peak {} MiB of {} MiB, limit reached {} times, {} restarts; a real review during the flood \
         (answered, took, sockets held beyond those before, at the fill and after the review) {during:?}; heads written {flood:?}",
        name(&pod),
        memory.peak >> 20,
        memory.limit >> 20,
        memory.hit_limit,
        restarts(&pod)
    );
    assert_eq!((restarts(&pod), memory.hit_limit), (0, 0), "restarted, or reached the limit: {memory:?}");
    assert!(memory.peak < memory.limit / 4 * 3, "peak {memory:?}");
}

/// The status the kubelet's own API answers `GET /pods` with, over TLS trusting the kubelet's self-signed
/// certificate (in `node`'s folder), as `identity` (a client certificate and key, PEM) or anonymously.
async fn kubelet_answers(node: &brokkr_testenv::Node, port: u16, identity: Option<(String, String)>) -> u16 {
    use rustls::pki_types::{PrivateKeyDer, ServerName, pem::PemObject};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let served = std::fs::read(node.dir().join("kubelet-pki/kubelet.crt")).expect("the kubelet's certificate");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&served) {
        roots.add(cert.expect("PEM")).expect("a root");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes()).map(|c| c.expect("PEM"));
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("a key");
            builder.with_client_auth_cert(chain.collect(), key).expect("a client certificate")
        }
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect((NODE_IP, port)).await.expect("the kubelet's port");
    let name = ServerName::try_from(brokkr_testenv::node::NODE_NAME).expect("a name");
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let mut tls = connector.connect(name, tcp).await.expect("a TLS handshake with the kubelet");
    tls.write_all(b"GET /pods HTTP/1.1\r\nHost: kubelet\r\nConnection: close\r\n\r\n").await.expect("a request");
    let mut answer = Vec::new();
    drop(tls.read_to_end(&mut answer).await);
    answer.get(9..12).and_then(|s| std::str::from_utf8(s).ok()?.parse().ok()).unwrap_or(0)
}

/// The kubelet's API (port-forward, exec, logs) lets in the API server only: anonymous requests are refused, and so is
/// a certificate of the test CA for a user RBAC grants nothing.
pub async fn kubelet_admits_the_api_server_only(w: &Walkthrough, node: &brokkr_testenv::Node) {
    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(w.cluster.admin.clone());
    let registered = nodes.get(brokkr_testenv::node::NODE_NAME).await.expect("the Node");
    let port = registered.status.and_then(|s| s.daemon_endpoints?.kubelet_endpoint).expect("the kubelet's port").port;
    let port = u16::try_from(port).expect("a port");
    assert_eq!(kubelet_answers(node, port, None).await, 401, "anonymous");
    let nobody = w.cluster.plane.client_identity("nobody").expect("a certificate");
    assert_eq!(kubelet_answers(node, port, Some(nobody)).await, 403, "a user RBAC grants nothing");
    let apiserver = w.cluster.plane.client_identity(brokkr_testenv::KUBELET_CLIENT).expect("cert");
    assert_eq!(kubelet_answers(node, port, Some(apiserver)).await, 200, "the API server's identity");
}
