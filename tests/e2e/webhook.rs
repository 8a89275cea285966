//! The admission webhook, registered by the chart, judging `kubectl apply` on a real API server.

use std::time::Duration;

use brokkr_e2e::chart::{NAMESPACE, RELEASE, Walkthrough};

const CHART: &str = "charts/brokkr-broker";
const WEBHOOK: &str = "brokkr-broker-brokkr";

/// The pipeline of docs/OPERATIONS.md, "The admission webhook": a ConfigMap named `name` from the file
/// `broker.toml`, applied with `kubectl apply`.
async fn apply_file(w: &Walkthrough, name: &str, toml: &str, extra: &[&str]) -> brokkr_e2e::chart::Run {
    let file = w.dir().join(format!("{name}.broker.toml"));
    std::fs::write(&file, toml).expect("write broker.toml");
    let from_file = format!("--from-file=broker.toml={}", file.display());
    let manifest = w
        .kubectl(&["-n", NAMESPACE, "create", "configmap", name, &from_file, "--dry-run=client", "-o", "yaml"])
        .await
        .ok("kubectl create --dry-run=client");
    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(extra);
    w.kubectl_with(&args, &manifest).await
}

fn secret_field(w: &str, field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(w).ok()?;
    value["data"][field].as_str().map(str::to_owned)
}

async fn reviews(broker: &brokkr_e2e::Broker, result: &str) -> Option<f64> {
    broker.metric(&format!("brokkr_webhook_reviews_total{{result=\"{result}\"}}")).await
}

/// The webhook on, with the API server's addresses its NetworkPolicy (on by default) requires; the test cluster
/// runs no network plugin, so the policy is stored but not enforced.
const WEBHOOK_ON: &str = "webhook.enabled=true,webhook.networkPolicy.apiServerCIDRs={127.0.0.1/32}";
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_refuses_a_broken_configmap_at_apply_and_admits_the_rest_with_warnings() {
    let w = Walkthrough::start().await;
    w.kubectl(&["create", "namespace", NAMESPACE]).await.ok("create namespace");
    w.helm(&["install", RELEASE, CHART, "-n", NAMESPACE]).await.ok("helm install");
    // docs/OPERATIONS.md turns the webhook on with an upgrade.
    let enable = ["upgrade", RELEASE, CHART, "-n", NAMESPACE, "--reuse-values", "--set", WEBHOOK_ON];
    w.helm(&enable).await.ok("helm upgrade --set webhook.enabled=true");

    // The chart's self-signed certificate is generated once and kept across upgrades; the registration trusts it.
    let tls = format!("{RELEASE}-webhook-tls");
    let get_secret = ["-n", NAMESPACE, "get", "secret", tls.as_str(), "-o", "json"];
    let before = w.kubectl(&get_secret).await.ok("get TLS secret");
    w.helm(&["upgrade", RELEASE, CHART, "-n", NAMESPACE, "--reuse-values"]).await.ok("helm upgrade");
    let after = w.kubectl(&get_secret).await.ok("get TLS secret");
    assert_eq!(secret_field(&before, "tls.crt"), secret_field(&after, "tls.crt"), "the certificate was regenerated");
    let ca_bundle = w
        .kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            WEBHOOK,
            "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}",
        ])
        .await
        .ok("get webhook");
    assert_eq!(Some(ca_bundle), secret_field(&after, "ca.crt"), "the registration trusts the chart's CA");

    let mut broker = serve_locally(&w).await;

    // A broken document is refused at apply, with the key and the broker's reason; a server-side dry run too.
    let broken = "[cors]\nmax_age = \"soon\"\n";
    for extra in [&["--dry-run=server"][..], &[][..]] {
        let refused = apply_file(&w, RELEASE, broken, extra).await;
        assert_ne!(refused.code, Some(0), "{refused:?}");
        assert!(refused.stderr.contains("denied the request"), "{}", refused.stderr);
        assert!(refused.stderr.contains("cors.max_age: invalid duration \"soon\""), "{}", refused.stderr);
    }
    assert_eq!(reviews(&broker, "denied").await, Some(2.0));

    // A valid live edit is admitted without warnings and applied by the broker.
    let generation = broker.generation().await;
    let live = "[log]\nlevel = \"info\"\n[cors]\nallowed_origins = [\"https://app.example.com\"]\n";
    let admitted = apply_file(&w, RELEASE, live, &[]).await;
    assert_eq!(admitted.code, Some(0), "{admitted:?}");
    // (kubectl's own warning about the missing last-applied annotation is expected on the first apply.)
    let from_broker = ["at the next broker restart", "has no effect"];
    assert!(!from_broker.iter().any(|w| admitted.stderr.contains(w)), "warned: {}", admitted.stderr);
    assert_eq!(reviews(&broker, "allowed").await, Some(1.0));
    broker.wait_for_generation(generation + 1, Duration::from_secs(30)).await;
    assert_eq!(
        broker.allowed_origin("/healthz", "https://app.example.com").await.as_deref(),
        Some("https://app.example.com")
    );

    // A restart-only edit is admitted, and kubectl prints the broker's warning.
    let restart_only = format!("{live}[config_reload]\nenabled = false\n");
    let warned = apply_file(&w, RELEASE, &restart_only, &[]).await;
    assert_eq!(warned.code, Some(0), "{warned:?}");
    assert!(
        warned.stderr.contains("Warning: config_reload.enabled changes from true to false at the next broker restart"),
        "{}",
        warned.stderr
    );

    // Another ConfigMap, even with a broken broker.toml, never reaches the broker; nor does one with the
    // broker's name in another namespace (the namespace selector).
    let reviewed_before = all_reviews(&broker).await;
    let other = apply_file(&w, "someone-else", broken, &[]).await;
    assert_eq!(other.code, Some(0), "{other:?}");
    w.kubectl(&["create", "namespace", "elsewhere"]).await.ok("create namespace");
    let from_file = format!("--from-literal=broker.toml={broken}");
    let namesake = w.kubectl(&["-n", "elsewhere", "create", "configmap", RELEASE, &from_file]).await;
    assert_eq!(namesake.code, Some(0), "{namesake:?}");
    assert_eq!(all_reviews(&broker).await, reviewed_before, "the broker was asked about another ConfigMap");
    assert_eq!(reviews(&broker, "skipped").await, Some(0.0));

    // With no broker answering, the default failurePolicy (Ignore) keeps the ConfigMap editable.
    broker.signal("-KILL");
    assert_eq!(broker.wait_for_exit(Duration::from_secs(10)).await, None, "killed by the signal");
    let unguarded = apply_file(&w, RELEASE, "[log]\nlevel = \"warn\"\n", &[]).await;
    assert_eq!(unguarded.code, Some(0), "a down broker must not block the fix: {unguarded:?}");

    // With `Fail` (the chart renders `webhook.failurePolicy` as it is; set here directly, because helm's
    // three-way merge would put the Service back beside the URL), no edit while no broker answers.
    let fail = serde_json::json!([{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Fail"}]);
    w.kubectl(&["patch", "validatingwebhookconfiguration", WEBHOOK, "--type=json", "-p", &fail.to_string()])
        .await
        .ok("failurePolicy Fail");
    let blocked = apply_file(&w, RELEASE, "[log]\nlevel = \"info\"\n", &[]).await;
    assert_ne!(blocked.code, Some(0), "{blocked:?}");
    assert!(blocked.stderr.contains("failed calling webhook"), "{}", blocked.stderr);
}

/// No Service endpoints exist here (no kubelet): serves the webhook from a local broker on loopback with a
/// certificate for 127.0.0.1, and points the chart's registration at it. Rules, selectors, match conditions and the
/// failure policy stay the chart's.
async fn serve_locally(w: &Walkthrough) -> brokkr_e2e::Broker {
    let (cert, key) = w.cluster.plane.loopback_serving_cert().expect("serving cert");
    let (cert_file, key_file) = (w.dir().join("tls.crt"), w.dir().join("tls.key"));
    std::fs::write(&cert_file, cert).expect("cert");
    std::fs::write(&key_file, key).expect("key");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let listen = format!("127.0.0.1:{port}");
    let (cert_path, key_path) = (cert_file.display().to_string(), key_file.display().to_string());
    let broker = w
        .start_broker(&[
            ("BROKKR__WEBHOOK__ENABLED", "true"),
            ("BROKKR__WEBHOOK__LISTEN", &listen),
            ("BROKKR__WEBHOOK__CERT_FILE", &cert_path),
            ("BROKKR__WEBHOOK__KEY_FILE", &key_path),
        ])
        .await;
    broker
        .wait_until("the chart's ConfigMap is in force", Duration::from_secs(30), |b| async move {
            b.status().await["source"]["name"] == RELEASE
        })
        .await;
    let client_config = serde_json::json!([{
        "op": "replace",
        "path": "/webhooks/0/clientConfig",
        "value": {
            "url": format!("https://{listen}/validate/configmap"),
            "caBundle": base64_of(w.cluster.plane.ca_cert()),
        },
    }]);
    w.kubectl(&["patch", "validatingwebhookconfiguration", WEBHOOK, "--type=json", "-p", &client_config.to_string()])
        .await
        .ok("point the webhook at the local broker");
    broker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_upgrade_that_adds_a_setting_succeeds_while_the_old_brokers_answer_the_webhook() {
    let w = Walkthrough::start().await;
    w.kubectl(&["create", "namespace", NAMESPACE]).await.ok("create namespace");
    // failurePolicy Fail: a broker that answered with an error instead of being skipped would fail the upgrade.
    let install = ["install", RELEASE, CHART, "-n", NAMESPACE, "--set", WEBHOOK_ON];
    let mut install = install.to_vec();
    install.extend(["--set", "webhook.failurePolicy=Fail"]);
    w.helm(&install).await.ok("helm install");
    let broker = serve_locally(&w).await;

    // The next chart version renders a setting these brokers do not know yet.
    let next = w.dir().join("brokkr-broker-next");
    copy_dir(&brokkr_e2e::chart::chart_dir(), &next);
    let chart_yaml = std::fs::read_to_string(next.join("Chart.yaml")).expect("Chart.yaml");
    let version = chart_yaml.lines().find_map(|l| l.strip_prefix("version: ")).expect("the chart's version");
    let next_version = chart_yaml.replace(&format!("\nversion: {version}\n"), "\nversion: 99.0.0\n");
    assert_ne!(next_version, chart_yaml, "a new chart version");
    std::fs::write(next.join("Chart.yaml"), next_version).expect("write");
    let template = next.join("templates/configmap.yaml");
    let rendered = std::fs::read_to_string(&template).expect("configmap.yaml");
    let new_key = "\n    [telemetry]\n    enabled = false";
    let document_line = r#"trimSuffix "\n" | nindent 4 }}"#;
    let added = rendered.replacen(document_line, &format!("{document_line}{new_key}"), 1);
    assert_ne!(added, rendered, "the new setting is rendered");
    std::fs::write(&template, added).expect("write");

    // The running brokers refuse that document when they are asked about it: the control.
    let refused = apply_file(&w, RELEASE, "[telemetry]\nenabled = false\n", &[]).await;
    assert_ne!(refused.code, Some(0), "the old broker knows no [telemetry]: {refused:?}");
    assert!(refused.stderr.contains("telemetry"), "{}", refused.stderr);

    // The upgrade stores the new ConfigMap while the old brokers still answer: it is not sent to them.
    let reviewed_before = all_reviews(&broker).await;
    let next_chart = next.display().to_string();
    // `--force` replaces objects instead of patching them: helm's three-way merge would put the chart's Service
    // back beside the URL this test points the registration at. The order is the same: the ConfigMap is updated
    // first, while the old registration (and the old broker behind it) is still in place.
    let upgraded = w.helm(&["upgrade", RELEASE, &next_chart, "-n", NAMESPACE, "--reuse-values", "--force"]).await;
    assert_eq!(upgraded.code, Some(0), "helm upgrade to the next chart version failed: {upgraded:?}");
    let stored = w
        .kubectl(&["-n", NAMESPACE, "get", "configmap", RELEASE, "-o", "jsonpath={.data.broker\\.toml}"])
        .await
        .ok("get the ConfigMap");
    assert!(stored.contains("[telemetry]"), "{stored}");
    assert_eq!(all_reviews(&broker).await, reviewed_before, "the upgrade's ConfigMap was not sent to the old broker");
    // The old broker still judges it at reload: rejected, the last good configuration kept, the process serving.
    broker
        .wait_until("the old broker rejects the new document at reload", Duration::from_secs(30), |b| async move {
            b.status().await["last_reload"]["outcome"] == "rejected"
        })
        .await;
    assert_eq!(broker.get("/healthz", None).await.map(|r| r.status().as_u16()), Some(200));
    let condition = w
        .kubectl(&["get", "validatingwebhookconfiguration", WEBHOOK, "-o", "jsonpath={.webhooks[0].matchConditions}"])
        .await
        .ok("get webhook");
    assert!(condition.contains("brokkr-broker-99.0.0"), "the new registration reviews the new version: {condition}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read chart") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Reviews answered so far, summed over every result.
async fn all_reviews(broker: &brokkr_e2e::Broker) -> f64 {
    let mut sum = 0.0;
    for result in ["allowed", "warned", "denied", "skipped", "refused"] {
        sum += reviews(broker, result).await.expect("the review metric is exported");
    }
    sum
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
