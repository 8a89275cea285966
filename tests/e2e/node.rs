//! The chart on a real node: containerd, kubelet, kube-controller-manager and kube-scheduler run the broker's
//! pods from an image packed from the broker binary. Inside a network namespace of the test's own; one group, so the
//! node starts once.

use std::time::Duration;

use brokkr_e2e::{
    broker::{ADMIN_TOKEN, broker_binary},
    chart::{NAMESPACE, RELEASE, Walkthrough},
    kubelet::{broker_pods, container_log, eventually, exit_code, is_ready},
    node::{NODE_IP, in_netns},
};
use brokkr_testenv::{
    Node,
    oci::{ImageSpec, pack},
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::{
    Api,
    api::ListParams,
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;

const IMAGE_REPOSITORY: &str = "localhost/brokkr/broker";
const IMAGE_TAG: &str = "e2e";
const WAIT: Duration = Duration::from_secs(120);
/// The admin token the Secret is rotated to.
const ROTATED_TOKEN: &str = "node-rotated-t0ken-9c1e";

/// The broker container's restart count, how long it has been running, and the messages of the kubelet's
/// `Unhealthy` Events of the pod.
async fn probe_record(w: &Walkthrough, pods: &Api<Pod>, pod_name: &str) -> (i32, Duration, Vec<String>) {
    let pod = pods.get(pod_name).await.expect("the pod");
    let statuses = pod.status.and_then(|s| s.container_statuses).unwrap_or_default();
    let restarts = statuses.iter().map(|c| c.restart_count).sum();
    let started = statuses.iter().find_map(|c| c.state.as_ref()?.running.as_ref()?.started_at.clone());
    let running_for = started.map_or(Duration::ZERO, |t| {
        std::time::SystemTime::now().duration_since(std::time::SystemTime::from(t.0)).unwrap_or_default()
    });
    let events = Api::<Event>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    let fields = format!("involvedObject.name={pod_name},reason=Unhealthy");
    let unhealthy = events.list(&ListParams::default().fields(&fields)).await.expect("list Events").items;
    (restarts, running_for, unhealthy.into_iter().filter_map(|e| e.message).collect())
}

/// The admin status, read through the pod's own HTTP port (the pods use the host network: the node's IP).
async fn pod_status(http: &reqwest::Client, token: &str) -> Option<Value> {
    let url = format!("http://{NODE_IP}:8080/api/v1/admin/config");
    let response = http.get(url).bearer_auth(token).send().await.ok()?;
    response.json().await.ok()
}

/// The status code the pod's admin API answers to `token`.
async fn admin_code(http: &reqwest::Client, token: &str) -> Option<u16> {
    let url = format!("http://{NODE_IP}:8080/api/v1/admin/config");
    Some(http.get(url).bearer_auth(token).send().await.ok()?.status().as_u16())
}

/// What the kernel says of the broker's process: the runtime, not the pod spec, decides these.
struct ProcessFacts {
    uid: String,
    effective_capabilities: String,
    no_new_privileges: String,
    seccomp: String,
    root_read_only: bool,
}

/// The running broker's process, found by its command line (the test shares the pods' PID namespace's parent).
fn broker_process() -> Option<ProcessFacts> {
    let pid = std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|entry| {
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        (args.first() == Some(&b"/usr/local/bin/brokkr-broker".as_slice()) && args.get(1) == Some(&b"serve".as_slice()))
            .then(|| entry.path())
    })?;
    let status = std::fs::read_to_string(pid.join("status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
    };
    let mountinfo = std::fs::read_to_string(pid.join("mountinfo")).ok()?;
    // Field 5 is the mount point, field 6 its options.
    let root_read_only = mountinfo.lines().any(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        fields.get(4) == Some(&"/") && fields.get(5).is_some_and(|o| o.split(',').any(|o| o == "ro"))
    });
    Some(ProcessFacts {
        uid: field("Uid:")?,
        effective_capabilities: field("CapEff:")?,
        no_new_privileges: field("NoNewPrivs:")?,
        seccomp: field("Seccomp:")?,
        root_read_only,
    })
}

async fn configmap_version(w: &Walkthrough) -> String {
    let configmaps = Api::<ConfigMap>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    let cm = configmaps.get(RELEASE).await.expect("the chart's ConfigMap");
    cm.metadata.resource_version.expect("a resourceVersion")
}

async fn run_on_a_real_node() {
    let tunables = brokkr_testenv::node::kernel_tunables();
    let w = Walkthrough::start().await;
    let started = std::time::Instant::now();
    let node = Node::start(&w.cluster.plane, NODE_IP).await.expect("the node becomes Ready");
    println!("e2e real node Ready in {} ms", started.elapsed().as_millis());
    let archive = w.dir().join("broker-image.tar");
    let image = ImageSpec {
        name: format!("{IMAGE_REPOSITORY}:{IMAGE_TAG}"),
        binary: broker_binary(),
        cmd: vec!["serve".into()],
        user: "65532:65532".into(),
    };
    pack(&image, &archive).expect("pack the broker image");
    node.import(&archive).expect("import the broker image");

    w.kubectl(&["create", "namespace", NAMESPACE]).await.ok("create namespace");
    let literal = format!("--from-literal=token={ADMIN_TOKEN}");
    w.kubectl(&["-n", NAMESPACE, "create", "secret", "generic", "brokkr-admin", &literal]).await.ok("create secret");
    let port = w.cluster.plane.apiserver_addr().port().to_string();
    let values = format!(
        "image: {{repository: {IMAGE_REPOSITORY}, tag: {IMAGE_TAG}, pullPolicy: Never}}\n\
         admin: {{existingSecret: brokkr-admin}}\n\
         drainDelaySeconds: 2\n\
         config: {{config_reload: {{debounce: 1s}}}}\n\
         extraEnv:\n  - {{name: KUBERNETES_SERVICE_HOST, value: \"127.0.0.1\"}}\n  - {{name: KUBERNETES_SERVICE_PORT, value: \"{port}\"}}\n"
    );
    let values_file = w.dir().join("node-values.yaml");
    std::fs::write(&values_file, values).expect("write values");
    let host_network = brokkr_e2e::chart::chart_dir().join("ci/host-network-values.yaml");
    let install = [
        "install",
        RELEASE,
        "charts/brokkr-broker",
        "-n",
        NAMESPACE,
        "-f",
        host_network.to_str().expect("path"),
        "-f",
        values_file.to_str().expect("path"),
        "--set",
        "podStatus.enabled=true",
        "--wait",
        "--timeout=120s",
    ];
    let started = std::time::Instant::now();
    w.helm(&install).await.ok("helm install");
    // Not `helm --wait`: with `maxUnavailable: 1` and one replica, Helm counts zero ready pods as enough.
    let pods = Api::<Pod>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    let pod = eventually("the Deployment's pod becomes Ready through the kubelet's probes", WAIT, || async {
        let pods = broker_pods(&pods).await;
        if pods.len() > 1 {
            panic!("more than one broker pod: {pods:?}");
        }
        pods.into_iter().find(is_ready)
    })
    .await;
    println!("e2e helm install -> pod Ready in {} ms", started.elapsed().as_millis());
    let pod_name = pod.metadata.name.clone().expect("name");
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.service_account_name.as_deref(), Some(RELEASE));
    assert!(
        spec.volumes.iter().flatten().any(|v| v.name.starts_with("kube-api-access-") && v.projected.is_some()),
        "the projected ServiceAccount token volume: {spec:?}"
    );
    // The chart's security context as the runtime applied it, read from the kernel.
    let facts = eventually("the broker's process", WAIT, || async { broker_process() }).await;
    assert_eq!(facts.uid, "65532", "runs as the chart's non-root user");
    assert_eq!(facts.effective_capabilities, "0000000000000000", "no capabilities");
    assert_eq!(facts.no_new_privileges, "1", "allowPrivilegeEscalation: false");
    assert_eq!(facts.seccomp, "2", "RuntimeDefault seccomp filter");
    assert!(facts.root_read_only, "read-only root filesystem");

    // Its status through its own port: the chart's ConfigMap in force.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let token = ADMIN_TOKEN;
    let rv = configmap_version(&w).await;
    eventually("the pod runs the chart's ConfigMap", WAIT, || async {
        pod_status(&http, token).await.filter(|s| s["source"]["resource_version"] == rv.as_str())
    })
    .await;

    // It reached the API server with the token the kubelet projected for this pod, not one the test made.
    let user = format!("system:serviceaccount:{NAMESPACE}:{RELEASE}");
    let requests = w.cluster.plane.requests_by(&user);
    let bound_to_pod =
        requests.iter().any(|e| e["user"]["extra"]["authentication.kubernetes.io/pod-name"][0] == pod_name.as_str());
    assert!(bound_to_pod, "no request with a token bound to pod {pod_name}: {:?}", requests.first());

    // A live edit: applied by the running pod, without a rollout.
    let upgrade = [
        "upgrade",
        RELEASE,
        "charts/brokkr-broker",
        "-n",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "config.cors.allowed_origins={https://node.example}",
    ];
    w.helm(&upgrade).await.ok("helm upgrade");
    let rv = configmap_version(&w).await;
    let started = std::time::Instant::now();
    let status = eventually("the pod applies the edit", WAIT, || async {
        pod_status(&http, token).await.filter(|s| s["source"]["resource_version"] == rv.as_str())
    })
    .await;
    let took = started.elapsed();
    println!("e2e real pod: edit -> applied in {} ms", took.as_millis());
    assert!(took < Duration::from_secs(11), "applied only after {took:?} (debounce 1 s)");
    assert_eq!(status["settings"]["cors"]["allowed_origins"][0], "https://node.example", "{status}");
    assert!(status["generation"].as_u64() > Some(0), "applied live as a new generation: {status}");
    assert_eq!(broker_pods(&pods).await[0].metadata.name.as_deref(), Some(pod_name.as_str()), "not rolled");
    // The pod says so on its own Pod, with the token the kubelet projected, through the chart's admission policy.
    eventually("the pod's annotations show the edit", WAIT, || async {
        let pod = pods.get(&pod_name).await.ok()?;
        let annotations = pod.metadata.annotations.unwrap_or_default();
        (annotations.get(brokkr_reload::pod_status::IN_FORCE) == Some(&rv)).then_some(())
    })
    .await;

    // docs/OPERATIONS.md, "Rotate the admin token": the Secret replaced in place; the kubelet updates the mounted file and
    // the running pod takes the new token, the old one still accepted (the overlap), without a restart.
    let secret = ["-n", NAMESPACE, "create", "secret", "generic", "brokkr-admin", "--dry-run=client", "-o", "yaml"];
    let literal = format!("--from-literal=token={ROTATED_TOKEN}");
    let manifest = w.kubectl(&[&secret[..], &[literal.as_str()]].concat()).await.ok("render the new Secret");
    let started = std::time::Instant::now();
    w.kubectl_with(&["apply", "-f", "-"], &manifest).await.ok("kubectl apply the new Secret");
    let took = eventually("the pod accepts the new token", WAIT, || async {
        // A request that gets no answer (the client's 5 s timeout on a loaded machine) is no refusal.
        assert_ne!(admin_code(&http, ADMIN_TOKEN).await, Some(401), "the old token was refused mid-rotation");
        (admin_code(&http, ROTATED_TOKEN).await == Some(200)).then(|| started.elapsed())
    })
    .await;
    println!("e2e real pod: Secret applied -> new admin token accepted in {} ms (kubelet sync 10 s)", took.as_millis());
    assert_eq!(admin_code(&http, ADMIN_TOKEN).await, Some(200), "inside the overlap (5 min by default)");
    assert_eq!(broker_pods(&pods).await[0].metadata.name.as_deref(), Some(pod_name.as_str()), "not restarted");
    // The exec liveness probe (`brokkr-broker probe` over the pod's Unix socket) runs every 10 s from the start;
    // after three periods it has run at least three times, and never failed: the kubelet records each failure as an
    // `Unhealthy` Event, and restarts the container after three.
    let (restarts, liveness_failures) = eventually("three liveness periods", WAIT, || async {
        let (restarts, running_for, unhealthy) = probe_record(&w, &pods, &pod_name).await;
        let failures: Vec<_> = unhealthy.into_iter().filter(|m| m.starts_with("Liveness")).collect();
        (running_for >= Duration::from_secs(31) || restarts > 0 || !failures.is_empty()).then_some((restarts, failures))
    })
    .await;
    assert_eq!((restarts, liveness_failures.as_slice()), (0, &[][..]), "the liveness probe failed");
    let token = ROTATED_TOKEN;

    // `kubectl rollout restart`: the old pod stops being ready, drains and exits within its grace period; the new
    // one starts on the same ConfigMap.
    // Every update of the old pod, until it is deleted: the last one carries its container's exit code.
    let fields = format!("metadata.name={pod_name}");
    let mut events = watcher(pods.clone(), watcher::Config::default().fields(&fields)).default_backoff().boxed();
    let exit = tokio::spawn(async move {
        // Watch errors are retried (backoff); the final status can come with an update or with the deletion.
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                    if let Some(code) = exit_code(&pod) {
                        return Some(code);
                    }
                }
                Ok(watcher::Event::Delete(pod)) => return exit_code(&pod),
                _ => {}
            }
        }
        None
    });
    let started = std::time::Instant::now();
    w.kubectl(&["-n", NAMESPACE, "rollout", "restart", &format!("deployment/{RELEASE}")]).await.ok("rollout restart");
    let url = |path: &str| format!("http://{NODE_IP}:8080{path}");
    let draining = eventually("the old pod drains: /readyz 503 while /healthz is 200", WAIT, || async {
        // "shutting down": a starting pod answers 503 too, with another body.
        let ready = http.get(url("/readyz")).send().await.ok()?;
        let (code, body) = (ready.status().as_u16(), ready.text().await.ok()?);
        let healthy = http.get(url("/healthz")).send().await.ok()?.status().as_u16();
        (code == 503 && body == "shutting down" && healthy == 200).then_some(started.elapsed())
    })
    .await;
    println!("e2e rollout restart: readiness dropped after {} ms", draining.as_millis());
    // The kubelet removes a pod's log with the pod: the last copy read while it still existed.
    let last_log = std::sync::Mutex::new(String::new());
    let gone = eventually("the old pod is replaced", WAIT, || async {
        let now = broker_pods(&pods).await;
        match now.iter().find(|p| p.metadata.name.as_deref() == Some(pod_name.as_str())) {
            Some(_) => {
                if let Some(log) = container_log(&node, &pod_name) {
                    *last_log.lock().expect("lock") = log;
                }
                None
            }
            None => Some(started.elapsed()),
        }
    })
    .await;
    println!("e2e rollout restart: old pod gone after {} ms", gone.as_millis());
    assert!(gone < Duration::from_secs(17), "the grace period (2 s drain + 15 s) was exceeded: {gone:?}");
    let exit = tokio::time::timeout(WAIT, exit).await.expect("the watch ends").expect("the watch task");
    assert_eq!(exit, Some(0), "the broker exits cleanly on SIGTERM");
    let log = last_log.into_inner().expect("lock");
    assert!(log.contains("SIGTERM received") && log.contains("draining before shutdown"), "{log}");
    assert!(log.contains("admin token rotated"), "the rotation is logged: {log}");
    assert!(!log.contains(ADMIN_TOKEN) && !log.contains(ROTATED_TOKEN), "a token in the pod's log");

    let new = eventually("the new pod is Ready", WAIT, || async {
        broker_pods(&pods)
            .await
            .into_iter()
            .find(|p| is_ready(p) && p.metadata.name.as_deref() != Some(pod_name.as_str()))
    })
    .await;
    let status = eventually("the new pod runs the ConfigMap", WAIT, || async {
        pod_status(&http, token).await.filter(|s| s["source"]["resource_version"] == rv.as_str())
    })
    .await;
    assert_eq!(status["generation"], 0, "read at start-up: {status}");
    assert_eq!(status["settings"]["cors"]["allowed_origins"][0], "https://node.example");
    assert_eq!(admin_code(&http, ADMIN_TOKEN).await, Some(401), "a new pod knows only the token it read");
    println!("e2e rollout restart: new pod {} Ready", new.metadata.name.unwrap_or_default());

    // A cluster whose workloads may not call the API server: the chart mounts the ConfigMap as a volume, grants no
    // Role and mounts no token, and the broker polls the file. An edit reaches the pod through the kubelet's sync.
    let to_file = [&upgrade[..6], &["--set", "reload.source=file", "--set", "podStatus.enabled=false"]].concat();
    w.helm(&to_file).await.ok("helm upgrade to the file source");
    let file_pod = eventually("the file-source pod is Ready", WAIT, || async {
        broker_pods(&pods)
            .await
            .into_iter()
            .find(|p| is_ready(p) && p.spec.as_ref().is_some_and(|s| s.automount_service_account_token == Some(false)))
    })
    .await;
    let file_pod = file_pod.metadata.name.expect("name");
    let status = eventually("the file-source pod serves the mounted ConfigMap", WAIT, || async {
        pod_status(&http, token).await.filter(|s| s["settings"]["cors"]["allowed_origins"][0] == "https://node.example")
    })
    .await;
    assert_eq!(status["generation"], 0, "read from the mounted file at start-up: {status}");
    let edit = [&upgrade[..6], &["--set", "config.cors.allowed_origins={https://file.example}"]].concat();
    let started = std::time::Instant::now();
    w.helm(&edit).await.ok("helm upgrade: a live edit through the volume");
    let status = eventually("the file-source pod applies the edit", WAIT, || async {
        pod_status(&http, token).await.filter(|s| s["settings"]["cors"]["allowed_origins"][0] == "https://file.example")
    })
    .await;
    println!("e2e real pod, file source: edit -> applied in {} ms (kubelet sync 10 s)", started.elapsed().as_millis());
    assert_eq!(status["generation"], 1, "applied live: {status}");
    assert_eq!(broker_pods(&pods).await.len(), 1, "not rolled");
    // No token to call the API server with: the pod has none mounted, yet it has `KUBERNETES_SERVICE_HOST` (the
    // values set it), so a broker that reached for the API would have failed to load its in-cluster config and
    // never become Ready; it says it made no request, and was never restarted.
    let pod = pods.get(&file_pod).await.expect("the file-source pod");
    let spec = pod.spec.as_ref().expect("spec");
    assert!(!spec.volumes.iter().flatten().any(|v| v.name.starts_with("kube-api-access-")), "a token: {spec:?}");
    let env = spec.containers[0].env.iter().flatten();
    assert!(env.clone().any(|e| e.name == "KUBERNETES_SERVICE_HOST"), "the API is in reach");
    let log = container_log(&node, &file_pod).unwrap_or_default();
    assert!(log.contains("no API request is made"), "{log}");
    let restarts = pod.status.and_then(|s| s.container_statuses).map(|c| c[0].restart_count);
    assert_eq!(restarts, Some(0));

    // Uninstalled, the pods stop and the runtime removes their containers; stopped, the node leaves nothing on this
    // machine: no kernel setting changed, no link to a log of its own.
    w.helm(&["uninstall", RELEASE, "-n", NAMESPACE, "--wait"]).await.ok("helm uninstall");
    eventually("the pods are gone", WAIT, || async { broker_pods(&pods).await.is_empty().then_some(()) }).await;
    let dir = node.dir().to_owned();
    drop(node);
    assert_eq!(brokkr_testenv::node::kernel_tunables(), tunables, "the kubelet's kernel settings are put back");
    let links: Vec<_> = std::fs::read_dir("/var/log/containers")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(&dir)))
        .collect();
    assert!(links.is_empty(), "links into the stopped node's folder: {links:?}");
}

#[test]
fn the_charts_pods_run_on_a_real_node() {
    in_netns("the_charts_pods_run_on_a_real_node", || {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        runtime.block_on(run_on_a_real_node());
    });
}
