//! Pod objects like the chart's Deployment makes, for brokers run as processes: no kubelet runs here, so a test
//! marks them Ready by hand and gives each broker a token bound to its Pod, as the kubelet projects one.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::chart::{NAMESPACE, RELEASE, Walkthrough};

/// Creates Pod `name` with the Deployment's labels and ServiceAccount, marked Ready; returns its uid.
pub async fn create_ready_pod(pods: &Api<Pod>, name: &str) -> String {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": { "app.kubernetes.io/name": "brokkr-broker", "app.kubernetes.io/instance": RELEASE },
            "annotations": { "team": "platform" },
        },
        "spec": { "serviceAccountName": RELEASE, "containers": [{ "name": "broker", "image": "brokkr/broker" }] },
    }))
    .expect("a Pod");
    let created = pods.create(&PostParams::default(), &pod).await.expect("create Pod");
    set_ready(pods, name, true).await;
    created.metadata.uid.expect("a uid")
}

/// Sets Pod `name`'s Ready condition, as a kubelet would after its readiness probe.
pub async fn set_ready(pods: &Api<Pod>, name: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({ "status": { "conditions": [{ "type": "Ready", "status": status }] } });
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("set Ready");
}

/// A kubeconfig with a token of the brokers' ServiceAccount bound to Pod `name`, as the kubelet projects it.
pub async fn pod_kubeconfig(w: &Walkthrough, name: &str) -> PathBuf {
    let bound = ["-n", NAMESPACE, "create", "token", RELEASE, "--bound-object-kind", "Pod"];
    let token = w.kubectl(&[&bound[..], &["--bound-object-name", name]].concat()).await.ok("pod-bound token");
    w.cluster.plane.token_kubeconfig(name, token.trim()).expect("kubeconfig")
}
