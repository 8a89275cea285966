//! Watching a config rollout on a real API server: three brokers on Pod objects, each with a token bound to its
//! Pod, annotate their own Pods; `kubectl brokkr rollout-status` (run through kubectl, with only the `view` role)
//! waits for an edit, fails at once on a rejection and names a stopped broker on timeout; the chart's admission
//! policy lets a broker change only its own `config.brokkr.io/` annotations.

use std::{collections::BTreeMap, path::Path};

use brokkr_e2e::{
    Broker,
    chart::{NAMESPACE, RELEASE, Walkthrough},
    pods::{create_ready_pod, pod_kubeconfig},
};
use brokkr_reload::pod_status::{IN_FORCE, OUTCOME, SEEN};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

const PODS: [&str; 3] = ["broker-a", "broker-b", "broker-c"];

/// The chart's Pod guard for RELEASE in NAMESPACE (`brokkr-broker.podStatusPolicyName`).
const POLICY: &str = "brokkr-broker-brokkr-pod-status";
const OPERATOR: &str = "operator";

/// A broker for Pod `name` as the Deployment runs it with `podStatus.enabled`.
async fn start_pod_broker(w: &Walkthrough, name: &str, kubeconfig: &Path) -> Broker {
    let env = [
        ("POD_NAME", name),
        ("BROKKR__CONFIG_RELOAD__CONFIGMAP", RELEASE),
        ("BROKKR_POD_STATUS", "true"),
        ("BROKKR_POD_STATUS_POLICY", POLICY),
    ];
    Broker::start(kubeconfig, NAMESPACE, &env, w.cluster.plane.dir()).await
}

async fn annotations(pods: &Api<Pod>, name: &str) -> BTreeMap<String, String> {
    pods.get(name).await.expect("the Pod").metadata.annotations.unwrap_or_default()
}

async fn set_document(w: &Walkthrough, toml: &str) -> String {
    let configmaps = Api::<ConfigMap>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    let patch = json!({ "data": { "broker.toml": toml } });
    let cm = configmaps.patch(RELEASE, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("edit");
    cm.metadata.resource_version.expect("resourceVersion")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_is_watched_per_replica_and_a_broker_may_annotate_only_its_own_pod() {
    let w = Walkthrough::start().await;
    w.kubectl(&["create", "namespace", NAMESPACE]).await.ok("create namespace");
    let install = ["install", RELEASE, "charts/brokkr-broker", "-n", NAMESPACE];
    let settings = ["--set", "podStatus.enabled=true", "--set", "config.config_reload.debounce=1s"];
    let resync = ["--set", "config.config_reload.resync_interval=10s"];
    w.helm(&[&install[..], &settings[..], &resync[..]].concat()).await.ok("helm install");
    let pods = Api::<Pod>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    let mut brokers: Vec<Option<Broker>> = Vec::new();
    let mut kubeconfigs = Vec::new();
    for name in PODS {
        drop(create_ready_pod(&pods, name).await);
        let kubeconfig = pod_kubeconfig(&w, name).await;
        brokers.push(Some(start_pod_broker(&w, name, &kubeconfig).await));
        kubeconfigs.push(kubeconfig);
    }
    // The operator has the `view` role only: its rules, that is. `view` itself is filled by the aggregation
    // controller of kube-controller-manager, which does not run here; `system:aggregate-to-view` holds the rules.
    let view = "--clusterrole=system:aggregate-to-view";
    w.kubectl(&["create", "clusterrolebinding", "operator-view", view, "--user", OPERATOR]).await.ok("bind view");
    let operator = w.cluster.plane.user_kubeconfig(OPERATOR).expect("operator kubeconfig");
    let operator = operator.as_path();

    // Each broker writes its state at start-up; `rollout-status` then says the current version runs everywhere.
    let (code, out) = w.kubectl_brokkr(operator, &["brokkr", "rollout-status", "-n", NAMESPACE]).await;
    assert_eq!(code, 0, "{out}");
    let (code, table) = w.kubectl_brokkr(operator, &["brokkr", "status", "-n", NAMESPACE]).await;
    assert_eq!(code, 0, "{table}");
    assert!(table.contains("POD") && table.contains("RESOURCE-VERSION") && table.contains("OUTCOME"), "{table}");
    assert!(PODS.iter().all(|p| table.lines().any(|l| l.starts_with(p) && l.contains("applied"))), "{table}");

    // An edit: rollout-status exits 0 once all three run it, and not before.
    let audit_before = pod_patches(&w);
    // docs/OPERATIONS.md, "Watching a change roll out".
    let upgrade = ["upgrade", RELEASE, "charts/brokkr-broker", "-n", NAMESPACE, "--reuse-values"];
    w.helm(&[&upgrade[..], &["--set", "config.cors.max_age=2m"]].concat()).await.ok("helm upgrade");
    let started = std::time::Instant::now();
    let configmaps = Api::<ConfigMap>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    let rv = configmaps.get(RELEASE).await.expect("ConfigMap").metadata.resource_version.expect("resourceVersion");
    let (code, out) =
        w.kubectl_brokkr(operator, &["brokkr", "rollout-status", "-n", NAMESPACE, "--timeout", "60s"]).await;
    println!(
        "e2e kubectl brokkr rollout-status: all 3 replicas on the edit after {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("all 3 ready replicas run resourceVersion {rv}")), "{out}");
    for name in PODS {
        assert_eq!(annotations(&pods, name).await[IN_FORCE], rv, "{name} runs it when rollout-status returns");
    }
    let writes = pod_patches(&w) - audit_before;
    println!("e2e pod annotation writes for one applied edit: {writes} for 3 replicas");
    assert_eq!(writes, 3, "one write per replica per outcome");
    // Resyncs (every 10 s here) that find the version in force write nothing.
    let first = brokers[0].as_ref().expect("broker-a");
    let unchanged = "brokkr_config_reloads_total{outcome=\"unchanged\"}";
    let before = first.metric(unchanged).await.unwrap_or_default();
    first
        .wait_until("a resync", std::time::Duration::from_secs(30), |b| async move {
            b.metric(unchanged).await.unwrap_or_default() > before
        })
        .await;
    assert_eq!(pod_patches(&w) - audit_before, 3, "a resync of the version in force wrote to a Pod");

    // A rejected edit: non-zero at once, with the reason; the replicas keep the last good version.
    let rejected = set_document(&w, "[config_reload]\ndebounce = \"1s\"\n[cors]\nmax_age = \"forever\"").await;
    let (code, out) =
        w.kubectl_brokkr(operator, &["brokkr", "rollout-status", "-n", NAMESPACE, "--timeout", "60s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rejected") && out.contains("cors.max_age"), "{out}");
    // Every replica judges it before the next edit, which its debounce would otherwise coalesce with this one.
    let waiter = brokers[0].as_ref().expect("broker-a");
    for name in PODS {
        let (pods, rejected) = (&pods, &rejected);
        let what = format!("{name} judges the rejected version");
        waiter
            .wait_until(&what, std::time::Duration::from_secs(30), |_| async move {
                annotations(pods, name).await.get(SEEN) == Some(rejected)
            })
            .await;
    }
    let mut refusals = 0;
    for name in PODS {
        let said = annotations(&pods, name).await;
        if said[SEEN] == rejected && said[OUTCOME] == "rejected" {
            assert_eq!(said[IN_FORCE], rv, "{name} keeps the last good version");
            refusals += 1;
        }
    }
    assert_eq!(refusals, 3, "every replica rejected it");

    // A stopped broker: the rollout times out, naming it, and only it.
    brokers[2] = None;
    let rv = set_document(&w, "[config_reload]\ndebounce = \"1s\"\n[cors]\nmax_age = \"3m\"").await;
    let (code, out) =
        w.kubectl_brokkr(operator, &["brokkr", "rollout-status", "-n", NAMESPACE, "--timeout", "8s"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("timed out") && out.contains("broker-c"), "{out}");
    assert!(!out.contains("broker-a (") && !out.contains("broker-b ("), "only the stopped one lags: {out}");
    for name in ["broker-a", "broker-b"] {
        assert_eq!(annotations(&pods, name).await[IN_FORCE], rv, "{name}");
    }

    // The history of a broker: start-up first, then each edit by the watch, the rejection with its reason.
    let history = brokers[0].as_ref().expect("broker-a").history().await;
    let records = history["records"].as_array().expect("records");
    let triggers: Vec<&str> = records.iter().filter_map(|r| r["trigger"].as_str()).collect();
    assert_eq!(triggers.first(), Some(&"start-up"), "{history}");
    assert!(
        records
            .iter()
            .any(|r| r["outcome"] == "rejected" && r["error"].as_str().is_some_and(|e| e.contains("cors.max_age")))
    );
    assert!(records.iter().any(|r| r["trigger"] == "watch" && r["outcome"] == "applied"), "{history}");

    // The guard, through the API server's admission: broker-a's own token.
    let client = brokkr_testenv::ControlPlane::client_for(&kubeconfigs[0]).await.expect("broker-a's client");
    let as_a = Api::<Pod>::namespaced(client, NAMESPACE);
    let merge = |value: serde_json::Value| Patch::Merge(value);
    let attempts = [
        ("broker-b", json!({ "metadata": { "annotations": { "config.brokkr.io/outcome": "applied" } } }), false),
        ("broker-a", json!({ "metadata": { "annotations": { "config.brokkr.io/other": "x" } } }), false),
        ("broker-a", json!({ "metadata": { "annotations": { "config.brokkr.io/reason": "x".repeat(2000) } } }), false),
        ("broker-a", json!({ "metadata": { "finalizers": ["example.com/hold"] } }), false),
        ("broker-a", json!({ "metadata": { "labels": { "app.kubernetes.io/name": "other" } } }), false),
        ("broker-a", json!({ "spec": { "activeDeadlineSeconds": 60 } }), false),
        ("broker-a", json!({ "metadata": { "annotations": { "team": "someone-else" } } }), false),
        ("broker-a", json!({ "metadata": { "annotations": { "team": null } } }), false),
        ("broker-a", json!({ "metadata": { "annotations": { "config.brokkr.io/reason": "" } } }), true),
    ];
    for (pod, patch, allowed) in attempts {
        let result = as_a.patch(pod, &PatchParams::default(), &merge(patch.clone())).await;
        match result {
            Ok(_) => assert!(allowed, "{pod} {patch} was admitted"),
            // Refused by the chart's policy, not by RBAC (which lets the broker patch any Pod here).
            Err(kube::Error::Api(status)) => {
                assert!(
                    !allowed && status.code == 403 && status.message.contains("a broker may change only"),
                    "{status:?}"
                );
            }
            Err(error) => panic!("{pod} {patch}: {error}"),
        }
    }
    // A token of the same ServiceAccount that is bound to no Pod may change no Pod at all.
    let unbound = w.kubectl(&["-n", NAMESPACE, "create", "token", RELEASE]).await.ok("unbound token");
    let unbound = w.cluster.plane.token_kubeconfig("unbound", unbound.trim()).expect("kubeconfig");
    let client = brokkr_testenv::ControlPlane::client_for(&unbound).await.expect("client");
    let patch = json!({ "metadata": { "annotations": { "config.brokkr.io/reason": "" } } });
    let refused =
        Api::<Pod>::namespaced(client, NAMESPACE).patch("broker-a", &PatchParams::default(), &merge(patch)).await;
    assert!(matches!(refused, Err(kube::Error::Api(ref s)) if s.code == 403), "{refused:?}");
    assert_eq!(annotations(&pods, "broker-a").await["team"], "platform", "the other annotations are intact");

    // Issue 23: a config.brokkr.io/ key someone else put on the Pod (an operator, a GitOps tool, a typo) stays as
    // it is, and the broker's next write is admitted beside it; the broker still cannot change or remove it.
    w.kubectl(&["-n", NAMESPACE, "annotate", "pod", "broker-a", "config.brokkr.io/note=x"]).await.ok("annotate");
    let rv = set_document(&w, "[config_reload]\ndebounce = \"1s\"\n[cors]\nmax_age = \"4m\"").await;
    let (pods_ref, rv_ref) = (&pods, &rv);
    brokers[0]
        .as_ref()
        .expect("broker-a")
        .wait_until("broker-a writes beside the foreign key", std::time::Duration::from_secs(30), |_| async move {
            annotations(pods_ref, "broker-a").await.get(IN_FORCE) == Some(rv_ref)
        })
        .await;
    let attempts = [
        (json!({ "config.brokkr.io/note": "y" }), false),
        (json!({ "config.brokkr.io/note": null }), false),
        // The limit is in bytes: 600 two-byte characters are 1,200 bytes, 500 are 1,000.
        (json!({ "config.brokkr.io/reason": "é".repeat(600) }), false),
        (json!({ "config.brokkr.io/reason": "é".repeat(500) }), true),
    ];
    for (changed, allowed) in attempts {
        let patch = merge(json!({ "metadata": { "annotations": changed } }));
        match as_a.patch("broker-a", &PatchParams::default(), &patch).await {
            Ok(_) => assert!(allowed, "{changed} was admitted"),
            Err(kube::Error::Api(status)) => {
                assert!(
                    !allowed && status.code == 403 && status.message.contains("a broker may change only"),
                    "{status:?}"
                );
            }
            Err(error) => panic!("{changed}: {error}"),
        }
    }
    assert_eq!(annotations(&pods, "broker-a").await["config.brokkr.io/note"], "x", "the foreign key is intact");
}

/// How many PATCH requests on Pods the audit log holds from the brokers' ServiceAccount.
fn pod_patches(w: &Walkthrough) -> usize {
    let user = format!("system:serviceaccount:{NAMESPACE}:{RELEASE}");
    w.cluster
        .plane
        .requests_by(&user)
        .iter()
        .filter(|e| e["verb"] == "patch" && e["objectRef"]["resource"] == "pods" && e["stage"] == "ResponseComplete")
        .count()
}

/// A cluster-wide policy of another name that refuses label changes of any Pod, and quotes the chart's policy.
const DECOY: &str = r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: decoy-frozen-labels }
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules: [{ apiGroups: [""], apiVersions: [v1], operations: [UPDATE], resources: [pods] }]
  validations:
    - expression: "object.metadata.?labels.orValue({}) == oldObject.metadata.?labels.orValue({})"
      message: "labels are frozen (ValidatingAdmissionPolicy 'brokkr-broker-brokkr-pod-status' with binding 'x' denied request: no)"
      reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: decoy-frozen-labels }
spec: { policyName: decoy-frozen-labels, validationActions: [Deny] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_policy_that_refuses_a_label_change_is_not_taken_for_the_charts_guard() {
    // Issue 23: any denial naming "ValidatingAdmissionPolicy" passed the start-up check.
    let w = Walkthrough::start().await;
    w.kubectl(&["create", "namespace", NAMESPACE]).await.ok("create namespace");
    let install =
        ["install", RELEASE, "charts/brokkr-broker", "-n", NAMESPACE, "--set", "config.config_reload.debounce=1s"];
    w.helm(&install).await.ok("helm install without podStatus: no chart policy");
    // The broker may patch Pods all the same (a Role made by hand), so only admission can stop it.
    let sa = format!("{NAMESPACE}:{RELEASE}");
    let role = ["-n", NAMESPACE, "create", "role", "pod-patch", "--verb=patch,get", "--resource=pods"];
    w.kubectl(&role).await.ok("role");
    let binding = ["-n", NAMESPACE, "create", "rolebinding", "pod-patch", "--role=pod-patch", "--serviceaccount", &sa];
    w.kubectl(&binding).await.ok("rolebinding");
    let pods = Api::<Pod>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    create_ready_pod(&pods, PODS[0]).await;
    w.kubectl_with(&["apply", "-f", "-"], DECOY).await.ok("the decoy");
    // In force once the admin's own dry-run label change is refused by it.
    let dry = PatchParams { dry_run: true, ..PatchParams::default() };
    let relabel = Patch::Merge(json!({ "metadata": { "labels": { "frozen": "no" } } }));
    let started = std::time::Instant::now();
    loop {
        match pods.patch(PODS[0], &dry, &relabel).await {
            Err(kube::Error::Api(s)) if s.message.contains("ValidatingAdmissionPolicy 'decoy-frozen-labels'") => break,
            other => assert!(started.elapsed() < std::time::Duration::from_secs(30), "decoy not in force: {other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let kubeconfig = pod_kubeconfig(&w, PODS[0]).await;
    let broker = start_pod_broker(&w, PODS[0], &kubeconfig).await;
    // It asks every 2 s (the annotations are admitted, the label refused by the decoy) and writes nothing.
    let user = format!("system:serviceaccount:{NAMESPACE}:{RELEASE}");
    let patches = || {
        let all = w.cluster.plane.requests_by(&user);
        let pods: Vec<_> = all
            .into_iter()
            .filter(|e| {
                e["verb"] == "patch" && e["objectRef"]["resource"] == "pods" && e["stage"] == "ResponseComplete"
            })
            .collect();
        let dry = pods.iter().filter(|e| e["requestURI"].as_str().is_some_and(|u| u.contains("dryRun=All"))).count();
        (dry, pods.len() - dry)
    };
    broker
        .wait_until("three rounds of the check", std::time::Duration::from_secs(30), |_| async { patches().0 >= 6 })
        .await;
    assert_eq!(patches().1, 0, "written while only a decoy policy refused a label change");
    assert!(annotations(&pods, PODS[0]).await.keys().all(|k| !k.starts_with("config.brokkr.io/")));
    // The chart's policy arrives within the minute the broker gives one: its refusals count.
    let upgrade = [
        "upgrade",
        RELEASE,
        "charts/brokkr-broker",
        "-n",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "podStatus.enabled=true",
    ];
    w.helm(&upgrade).await.ok("helm upgrade with the chart's policy");
    let pods_ref = &pods;
    broker
        .wait_until("the broker writes under the chart's policy", std::time::Duration::from_secs(45), |_| async move {
            annotations(pods_ref, PODS[0]).await.contains_key(IN_FORCE)
        })
        .await;
}
