//! A staged rollout on the real API server, as the e2e tests and the cost harness drive it: brokers on Pod objects
//! with pod-bound tokens and `rollout.enabled`, a browser client's traffic, and reads of the rollout's state.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use brokkr_reload::{
    admission::DocumentHash, rollout_objects::rollouts, rollout_pods::DOCUMENT_HASH, rollout_status::RolloutStatus,
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{
    Broker,
    chart::{NAMESPACE, RELEASE, Walkthrough},
    pods::pod_kubeconfig,
};

/// The four brokers' Pods.
pub const PODS: [&str; 4] = ["broker-a", "broker-b", "broker-c", "broker-d"];
/// The browser client's origin, allowed by the good documents.
pub const CLIENT: &str = "https://app.example";
/// The chart's Pod guard for the release.
pub const POLICY: &str = "brokkr-broker-brokkr-pod-status";

/// A document allowing `origin` with `max_age`, debounced 1 s.
pub fn document(origin: &str, max_age: &str) -> String {
    format!("[config_reload]\ndebounce = \"1s\"\n[cors]\nallowed_origins = [\"{origin}\"]\nmax_age = \"{max_age}\"\n")
}

/// The SHA-256 of `text`, in hex: a version's identity.
pub fn hash(text: &str) -> String {
    DocumentHash::of(text).as_str().to_owned()
}

/// A broker for Pod `name` as the Deployment runs it with `rollout.enabled` (steps 1, 50%, 100%; `bake`).
pub async fn start_pod_broker(w: &Walkthrough, name: &str, uid: &str, bake: &str) -> Broker {
    let kubeconfig = pod_kubeconfig(w, name).await;
    let selector = format!("app.kubernetes.io/name=brokkr-broker,app.kubernetes.io/instance={RELEASE}");
    let env = [
        ("POD_NAME", name),
        ("POD_UID", uid),
        ("BROKKR__CONFIG_RELOAD__CONFIGMAP", RELEASE),
        ("BROKKR_POD_STATUS", "true"),
        ("BROKKR_POD_STATUS_POLICY", POLICY),
        ("BROKKR_ROLLOUT_PODS", selector.as_str()),
        ("BROKKR_ROLLOUT_SERVICE_ACCOUNT", RELEASE),
        ("BROKKR__ROLLOUT__ENABLED", "true"),
        ("BROKKR__ROLLOUT__STEPS", "[\"1\", \"50%\", \"100%\"]"),
        ("BROKKR__ROLLOUT__BAKE", bake),
        ("BROKKR__ROLLOUT__PROGRESS_DEADLINE", "10m"),
        ("BROKKR__ROLLOUT__MIN_REQUESTS", "5"),
        ("BROKKR__ROLLOUT__MAX_ERROR_RATIO", "0.2"),
    ];
    Broker::start(&kubeconfig, NAMESPACE, &env, w.cluster.plane.dir()).await
}

/// A browser client calling every broker from `CLIENT` ten times a second, until `stop`.
pub fn traffic(urls: Vec<String>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        while !stop.load(Ordering::Relaxed) {
            for url in &urls {
                let _ = http.get(url).header("origin", CLIENT).timeout(Duration::from_secs(1)).send().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The rollout's status once `done` holds, within `timeout`.
pub async fn wait_for(
    w: &Walkthrough,
    what: &str,
    timeout: Duration,
    done: impl Fn(&RolloutStatus) -> bool,
) -> RolloutStatus {
    let api = rollouts(w.cluster.admin.clone(), NAMESPACE);
    let deadline = Instant::now() + timeout;
    loop {
        let status = api.get_opt(RELEASE).await.expect("read the ConfigRollout").and_then(|o| o.status);
        if let Some(status) = status.filter(|s| done(s)) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Replaces the ConfigMap's document; returns its resourceVersion.
pub async fn set_document(w: &Walkthrough, toml: &str) -> String {
    let configmaps = Api::<ConfigMap>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    let patch = json!({ "data": { "broker.toml": toml } });
    let cm = configmaps.patch(RELEASE, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("edit");
    cm.metadata.resource_version.expect("resourceVersion")
}

/// The text each Pod says it runs, by Pod name.
pub async fn running(pods: &Api<Pod>) -> Vec<(String, String)> {
    let mut said = Vec::new();
    for name in PODS {
        let Some(pod) = pods.get_opt(name).await.expect("read the Pod") else { continue };
        said.push((name.to_owned(), says_it_runs(&pod)));
    }
    said
}

/// The hash of the text `pod` says it runs (its annotation), or nothing.
#[must_use]
pub fn says_it_runs(pod: &Pod) -> String {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(DOCUMENT_HASH)).cloned().unwrap_or_default()
}

/// How many records of `history` applied the ConfigMap version `resource_version`.
pub fn applied(history: &Value, resource_version: &str) -> usize {
    let records = history["records"].as_array().cloned().unwrap_or_default();
    records.iter().filter(|r| r["resource_version"] == resource_version && r["outcome"] == "applied").count()
}

/// Waits until the text every broker Pod that still exists says it runs satisfies `runs`, within 30 s; returns
/// what they run.
pub async fn wait_until_running(pods: &Api<Pod>, what: &str, runs: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let said = running(pods).await;
        if said.iter().all(|(_, hash)| runs(hash)) {
            return said;
        }
        assert!(Instant::now() < deadline, "{what}: not within 30 s: {said:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
