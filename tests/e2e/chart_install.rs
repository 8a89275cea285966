//! The install walkthrough of docs/OPERATIONS.md on a real API server: Pod Security, RBAC, a live `helm upgrade`.

use std::time::Duration;

use brokkr_e2e::{
    broker::ADMIN_TOKEN,
    chart::{NAMESPACE, RELEASE, Walkthrough, chart_dir, helm},
};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};

const CHART: &str = "charts/brokkr-broker";

/// The Deployment's pod template submitted as a Pod, server-side dry run: Pod Security admission judges Pods.
async fn admit_pod_template(
    w: &Walkthrough,
    deployment: &Deployment,
    privileged_escalation: bool,
) -> Result<(), String> {
    let template = deployment.spec.template.clone();
    let mut spec = template.spec.expect("pod spec");
    if privileged_escalation {
        let context = spec.containers[0].security_context.get_or_insert_with(Default::default);
        context.allow_privilege_escalation = Some(true);
    }
    let pod = Pod {
        metadata: ObjectMeta { name: Some("pod-template".into()), ..ObjectMeta::default() },
        spec: Some(spec),
        ..Pod::default()
    };
    let dry_run = PostParams { dry_run: true, ..PostParams::default() };
    Api::<Pod>::namespaced(w.cluster.admin.clone(), NAMESPACE)
        .create(&dry_run, &pod)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installs_passes_restricted_pod_security_and_its_broker_applies_an_upgrade_live() {
    let w = Walkthrough::start().await;
    // docs/OPERATIONS.md, step 1: a namespace that enforces Pod Security `restricted`, and the admin token as a Secret.
    w.kubectl(&["create", "namespace", NAMESPACE]).await.ok("create namespace");
    w.kubectl(&["label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=restricted"]).await.ok("label");
    let literal = format!("--from-literal=token={ADMIN_TOKEN}");
    w.kubectl(&["-n", NAMESPACE, "create", "secret", "generic", "brokkr-admin", &literal]).await.ok("create secret");
    // Step 2: install.
    w.helm(&["install", RELEASE, CHART, "-n", NAMESPACE, "--set", "admin.existingSecret=brokkr-admin"])
        .await
        .ok("helm install");

    // Every option set is accepted by the API server too (server-side dry run), the optional objects against
    // prometheus-operator's and cert-manager's own CRDs.
    let crds = brokkr_e2e::chart::tools_dir().join("crds");
    let crds = crds.to_str().expect("path");
    w.kubectl(&["apply", "--server-side", "-f", crds]).await.ok("install third-party CRDs");
    w.kubectl(&["wait", "--for=condition=established", "--timeout=60s", "-f", crds]).await.ok("CRDs established");
    let sets = std::fs::read_dir(chart_dir().join("ci")).expect("ci").map(|e| e.expect("entry").path());
    let mut optional = Vec::new();
    for values in sets {
        let args = ["template", "other", CHART, "-n", NAMESPACE, "-f", values.to_str().expect("path")];
        let rendered = helm(w.dir(), None, &args).await.ok("helm template");
        let applied = w.kubectl_with(&["apply", "--dry-run=server", "-f", "-"], &rendered).await;
        let applied = applied.ok(&format!("server-side dry run of {}", values.display()));
        optional.extend(
            applied
                .lines()
                .filter(|l| l.contains(".monitoring.coreos.com") || l.contains(".cert-manager.io"))
                .map(str::to_owned),
        );
    }
    for kind in ["servicemonitor", "prometheusrule", "issuer", "certificate"] {
        assert!(optional.iter().any(|l| l.starts_with(&format!("{kind}."))), "no {kind} was dry-run: {optional:?}");
    }

    let deployments = Api::<Deployment>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    let deployment = deployments.get(RELEASE).await.expect("the chart's Deployment");
    admit_pod_template(&w, &deployment, false).await.expect("the pod template passes Pod Security restricted");
    let refused = admit_pod_template(&w, &deployment, true).await.expect_err("restricted is enforced here");
    assert!(refused.contains("PodSecurity"), "{refused}");

    // The ServiceAccount may read and watch its one ConfigMap and record Events, and nothing else.
    let sa = w.service_account_kubeconfig().await;
    let bin = w.cluster.plane.bin().to_owned();
    for (verb, resource, allowed) in [
        ("get", "configmaps/brokkr-broker", true),
        ("watch", "configmaps/brokkr-broker", true),
        ("create", "events.events.k8s.io", true),
        ("create", "events", false),
        ("get", "configmaps/another", false),
        ("update", "configmaps/brokkr-broker", false),
        ("patch", "configmaps/brokkr-broker", false),
        ("list", "secrets", false),
        ("get", "secrets/brokkr-admin", false),
        ("list", "pods", false),
    ] {
        let run =
            brokkr_e2e::chart::kubectl(&bin, &sa, &["auth", "can-i", verb, resource, "-n", NAMESPACE], None).await;
        assert_eq!(run.stdout.trim(), if allowed { "yes" } else { "no" }, "can-i {verb} {resource}: {run:?}");
    }
    let anywhere = brokkr_e2e::chart::kubectl(&bin, &sa, &["auth", "can-i", "get", "configmaps", "-A"], None).await;
    assert_eq!(anywhere.stdout.trim(), "no", "{anywhere:?}");

    // The broker, as the pod runs it, reads the chart's ConfigMap at start-up.
    let broker = w.start_broker(&[]).await;
    broker
        .wait_until("the chart's ConfigMap is in force", Duration::from_secs(30), |b| async move {
            b.status().await["source"]["name"] == RELEASE
        })
        .await;
    let generation = broker.generation().await;

    // Step 3: change live settings with helm; the running broker applies them, the pods are not rolled.
    let upgrade = [
        "upgrade",
        RELEASE,
        CHART,
        "-n",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "config.log.level=debug",
        "--set",
        "config.cors.allowed_origins={https://app.example.com}",
    ];
    w.helm(&upgrade).await.ok("helm upgrade");
    let took = broker.wait_for_generation(generation + 1, Duration::from_secs(30)).await;
    println!("e2e helm upgrade -> applied: {} ms", took.as_millis());
    let origin = broker.allowed_origin("/healthz", "https://app.example.com").await;
    assert_eq!(origin.as_deref(), Some("https://app.example.com"), "the new CORS origin is served live");
    let after = deployments.get(RELEASE).await.expect("Deployment");
    assert_eq!(after.metadata.generation, deployment.metadata.generation, "a live setting must not roll the pods");

    // Step 4: see what happened — Events on the ConfigMap, the status, the metrics.
    let selector = format!("--field-selector=involvedObject.name={RELEASE}");
    let events = w.kubectl(&["-n", NAMESPACE, "get", "events", &selector]).await.ok("get events");
    assert!(events.contains("ConfigApplied"), "{events}");
    let status = broker.status().await;
    assert_eq!(status["settings"]["log"]["level"], "debug", "{status}");
    assert_eq!(broker.metric("brokkr_config_generation").await, Some((generation + 1) as f64));

    // The broker never hit a permission it lacks.
    let user = format!("system:serviceaccount:{NAMESPACE}:{RELEASE}");
    let denied: Vec<_> = w
        .cluster
        .plane
        .requests_by(&user)
        .into_iter()
        .filter(|e| e["responseStatus"]["code"].as_u64().is_some_and(|c| c == 403))
        .collect();
    assert!(denied.is_empty(), "requests the chart's Role refused: {denied:?}");
}
