//! The chart without a cluster: lint, render, schema, documented settings, pod template, alerts.

use std::collections::BTreeMap;

use brokkr_config::{AppSettings, Settings};
use brokkr_e2e::chart::{chart_dir, documents_of_kind, helm, promtool};

const RELEASE: &str = "brokkr-broker";

/// The webhook on, with the API server's addresses its NetworkPolicy (on by default) requires.
const WEBHOOK_ON: &str = "webhook.enabled=true,webhook.networkPolicy.apiServerCIDRs={10.0.0.0/28}";

async fn template(home: &std::path::Path, extra: &[&str]) -> brokkr_e2e::chart::Run {
    let chart = chart_dir();
    let mut args = vec!["template", RELEASE, chart.to_str().expect("UTF-8 path"), "-n", "brokkr"];
    args.extend_from_slice(extra);
    helm(home, None, &args).await
}

/// Every values file in `ci/` (the chart-testing convention: one per documented option set).
fn option_sets() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("ci folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn the_chart_lints_strictly_and_renders_for_every_option_set() {
    let home = tempfile::tempdir().expect("tempdir");
    let chart = chart_dir();
    let sets = option_sets();
    assert!(sets.len() >= 6, "option sets: {sets:?}");
    for values in &sets {
        let values = values.to_str().expect("UTF-8 path");
        let lint = helm(home.path(), None, &["lint", "--strict", chart.to_str().expect("path"), "-f", values]).await;
        assert!(lint.ok(&format!("helm lint --strict -f {values}")).contains("0 chart(s) failed"));
        let rendered = template(home.path(), &["-f", values]).await.ok(&format!("helm template -f {values}"));
        assert_eq!(documents_of_kind(&rendered, "Deployment").len(), 1, "{values}");
        assert_eq!(documents_of_kind(&rendered, "ConfigMap").len(), 1, "{values}");
    }
}

#[tokio::test]
async fn the_webhook_trusts_the_certificate_the_broker_serves_in_both_certificate_modes() {
    let home = tempfile::tempdir().expect("tempdir");
    let secret = "secretName: brokkr-broker-webhook-tls";
    // Self-signed: the registration carries the CA inline and the pod mounts the chart's Secret.
    let own = template(home.path(), &["--set", WEBHOOK_ON]).await.ok("helm template");
    let hook = documents_of_kind(&own, "ValidatingWebhookConfiguration").concat();
    assert!(hook.contains("caBundle: ") && !hook.contains("inject-ca-from"), "{hook}");
    assert!(deployment(&own).contains(secret), "the pod mounts the TLS Secret");
    // cert-manager: cainjector fills the CA from the serving Certificate, whose Secret the pod mounts.
    let cm = template(home.path(), &["--set", WEBHOOK_ON, "--set", "webhook.certManager.enabled=true"])
        .await
        .ok("helm template");
    let hook = documents_of_kind(&cm, "ValidatingWebhookConfiguration").concat();
    assert!(hook.contains("cert-manager.io/inject-ca-from: brokkr/brokkr-broker-webhook\n"), "{hook}");
    assert!(!hook.contains("caBundle"), "cainjector owns the caBundle: {hook}");
    let serving = documents_of_kind(&cm, "Certificate")
        .into_iter()
        .find(|c| c.contains("name: brokkr-broker-webhook\n"))
        .expect("the serving Certificate");
    assert!(serving.contains(secret), "{serving}");
    assert!(serving.contains("- brokkr-broker-webhook.brokkr.svc\n"), "{serving}");
    assert!(deployment(&cm).contains(secret), "the pod mounts the Certificate's Secret");
    let strict = template(home.path(), &["--set", WEBHOOK_ON, "--set", "webhook.failurePolicy=Fail"]).await;
    let strict = strict.ok("helm template");
    assert!(documents_of_kind(&strict, "ValidatingWebhookConfiguration").concat().contains("failurePolicy: Fail"));
}

#[tokio::test]
async fn the_webhook_has_its_own_cluster_ip_service_an_optional_network_policy_and_an_optional_secret() {
    let home = tempfile::tempdir().expect("tempdir");
    let exposed = chart_dir().join("ci/webhook-exposed-values.yaml");
    let rendered = template(home.path(), &["-f", exposed.to_str().expect("path")]).await.ok("helm template");
    let services = documents_of_kind(&rendered, "Service");
    let api = services.iter().find(|s| s.contains("name: brokkr-broker\n")).expect("the HTTP API's Service");
    let hook = services.iter().find(|s| s.contains("name: brokkr-broker-webhook\n")).expect("the webhook's Service");
    assert!(api.contains("type: LoadBalancer") && !api.contains("webhook"), "only the HTTP API is exposed: {api}");
    assert!(hook.contains("type: ClusterIP") && hook.contains("targetPort: webhook"), "{hook}");
    let registration = documents_of_kind(&rendered, "ValidatingWebhookConfiguration").concat();
    assert!(registration.contains("name: brokkr-broker-webhook\n"), "called through its Service: {registration}");
    let policy = documents_of_kind(&rendered, "NetworkPolicy").concat();
    for expected in ["port: http", "port: webhook", "cidr: \"10.0.0.0/28\"", "cidr: \"192.168.10.4/32\""] {
        assert!(policy.contains(expected), "{expected} in {policy}");
    }
    let exposed = deployment(&rendered);
    assert!(exposed.contains("optional: true"), "the pod starts before its certificate exists: {exposed}");
    // Issue 23: the policy is on by default with the webhook; without the API server's addresses it would shut
    // the API server out, so the webhook alone is refused, naming what to set.
    let unaddressed = template(home.path(), &["--set", "webhook.enabled=true"]).await;
    assert_ne!(unaddressed.code, Some(0), "a policy without apiServerCIDRs was rendered");
    assert!(unaddressed.stderr.contains("apiServerCIDRs"), "{}", unaddressed.stderr);
    let open = template(home.path(), &["--set", "webhook.enabled=true,webhook.networkPolicy.enabled=false"]).await;
    assert!(documents_of_kind(&open.ok("opted out"), "NetworkPolicy").is_empty(), "opting out leaves no policy");
    let closed = template(home.path(), &["--set", WEBHOOK_ON]).await.ok("the webhook with addresses");
    assert!(documents_of_kind(&closed, "NetworkPolicy").concat().contains("cidr: \"10.0.0.0/28\""), "on by default");
    // Off is pinned too: a ConfigMap's `[webhook] enabled = true` must not open the port at the next restart.
    let off = deployment(&template(home.path(), &[]).await.ok("the default values"));
    assert!(off.contains("- name: BROKKR__WEBHOOK__ENABLED\n              value: \"false\""), "{off}");
    assert!(deployment(&closed).contains("- name: BROKKR__WEBHOOK__ENABLED\n              value: \"true\""));
}

#[tokio::test]
async fn the_schema_refuses_mistyped_values_and_keys_the_chart_sets_itself() {
    let home = tempfile::tempdir().expect("tempdir");
    for (set, reason) in [
        ("config.log.formt=json", "unknown key"),
        ("config.log.format=yaml", "not text or json"),
        ("config.config_reload.debounce=soon", "not a duration"),
        ("config.config_reload.configmap=other", "set by the chart"),
        ("webhook.failurePolicy=fail", "case matters"),
        ("ports.http=70000", "not a port"),
        // Found by review: extraEnv could set a setting in plain text, or shadow a variable the chart sets.
        ("extraEnv[0].name=BROKKR__ADMIN__TOKEN,extraEnv[0].value=plain", "a setting through extraEnv"),
        ("extraEnv[0].name=brokkr__admin__token,extraEnv[0].value=plain", "a setting in another case"),
        ("extraEnv[0].name=POD_NAMESPACE,extraEnv[0].value=other", "a variable the chart sets"),
        ("extraEnv[0].name=HTTPS_PROXY,extraEnv[0].value=1,extraEnv[0].other=x", "an unknown field"),
        ("strategy.type=Sideways", "not a strategy"),
    ] {
        let run = template(home.path(), &["--set", set]).await;
        assert_ne!(run.code, Some(0), "--set {set} ({reason}) was accepted");
        assert!(run.stderr.contains("schema"), "--set {set}: {}", run.stderr);
    }
}

#[tokio::test]
async fn the_host_network_refuses_a_network_policy_that_would_not_apply_and_takes_ordinary_extra_env() {
    // Found by review: a NetworkPolicy does not select host-network pods on most network plugins, so the webhook
    // port would be open on the node while the policy seemed to close it.
    let home = tempfile::tempdir().expect("tempdir");
    let sets = "hostNetwork=true,webhook.enabled=true,webhook.networkPolicy.enabled=true,\
                webhook.networkPolicy.apiServerCIDRs={10.0.0.1/32}";
    let run = template(home.path(), &["--set", sets]).await;
    assert_ne!(run.code, Some(0), "hostNetwork with a NetworkPolicy was rendered");
    assert!(run.stderr.contains("hostNetwork"), "{}", run.stderr);
    let opted_out = "hostNetwork=true,webhook.enabled=true,webhook.networkPolicy.enabled=false";
    template(home.path(), &["--set", opted_out]).await.ok("hostNetwork with the policy turned off, as the error says");
    let rendered = template(
        home.path(),
        &["--set", "hostNetwork=true,extraEnv[0].name=HTTPS_PROXY,extraEnv[0].value=http://proxy:3128"],
    )
    .await
    .ok("hostNetwork with an ordinary variable");
    let deployment = deployment(&rendered);
    assert!(deployment.contains("hostNetwork: true") && deployment.contains("name: HTTPS_PROXY"), "{deployment}");
}

fn deployment(rendered: &str) -> String {
    documents_of_kind(rendered, "Deployment").first().expect("a Deployment").to_string()
}

fn restart_annotation(deployment: &str) -> Option<String> {
    deployment.lines().find_map(|l| l.trim().strip_prefix("brokkr.io/restart-only-config: ").map(str::to_owned))
}

/// A different valid value (its declared example) for every setting the chart renders into broker.toml, as
/// values.yaml's generated `config` block lists them, as `--set` arguments: a new setting is covered without
/// editing the tests.
fn example_edits() -> Vec<(&'static str, String)> {
    let values = std::fs::read_to_string(chart_dir().join("values.yaml")).expect("values.yaml");
    let config_block = values.split("\nconfig:\n").nth(1).expect("a config block");
    let edits: Vec<(&str, String)> = config_block
        .lines()
        .take_while(|l| l.starts_with(' ') || l.is_empty())
        .filter_map(|l| l.trim().strip_prefix("# -- `")?.split_once('`').map(|(key, _)| key))
        .map(|key| {
            let d = brokkr_config::declaration::declaration(key).expect("a declared key");
            let value = match d.example.strip_prefix('[').and_then(|e| e.strip_suffix(']')) {
                Some(items) => format!("{{{}}}", items.replace('"', "")),
                // `--set` splits at commas: a comma inside a value is escaped.
                None => d.example.trim_matches('"').replace(',', "\\,"),
            };
            (d.key, format!("config.{key}={value}"))
        })
        .collect();
    assert!(edits.len() >= 8, "{edits:?}");
    edits
}

/// The `broker.toml` of the rendered ConfigMap.
fn rendered_document(rendered: &str) -> String {
    let configmap = documents_of_kind(rendered, "ConfigMap").concat();
    let body = configmap.split("broker.toml: |").nth(1).expect("a broker.toml key");
    let lines: Vec<&str> = body.lines().skip(1).take_while(|l| l.starts_with("    ") || l.is_empty()).collect();
    lines.iter().map(|l| l.strip_prefix("    ").unwrap_or(l)).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn the_rendered_configmap_is_a_document_the_broker_accepts_with_every_setting_changed() {
    // Found by the rollout test: Helm's toToml writes every number as a float (`history = 20.0`), which a count
    // setting refused, so every broker rejected the chart's own ConfigMap.
    let home = tempfile::tempdir().expect("tempdir");
    let mut sets = vec![String::new()];
    sets.extend(example_edits().into_iter().map(|(_, set)| set));
    for set in sets {
        let args: Vec<&str> = if set.is_empty() { Vec::new() } else { vec!["--set", set.as_str()] };
        let document = rendered_document(&template(home.path(), &args).await.ok("helm template"));
        let layer = brokkr_config::layers::LayerText { origin: format!("chart with {set}"), text: document.clone() };
        let built = brokkr_config::ConfigLayers::new().build(Some(&layer));
        assert!(built.is_ok(), "{set}: {:?}\n{document}", built.err());
    }
}

#[tokio::test]
async fn live_settings_never_change_the_pod_template_and_restart_only_ones_roll_it_when_asked() {
    let home = tempfile::tempdir().expect("tempdir");
    let edits = example_edits();
    let live_keys: BTreeMap<&str, bool> = Settings::default().fields().into_iter().map(|f| (f.key, f.live)).collect();
    for restart_on_change in ["false", "true"] {
        let flag = format!("restartOnConfigChange={restart_on_change}");
        let base = deployment(&template(home.path(), &["--set", &flag]).await.ok("helm template"));
        assert_eq!(restart_annotation(&base).is_some(), restart_on_change == "true", "{flag}");
        for (key, set) in &edits {
            let rendered = template(home.path(), &["--set", &flag, "--set", set]).await.ok(set);
            let changed = deployment(&rendered);
            let live = live_keys[*key];
            if live || restart_on_change == "false" {
                assert_eq!(changed, base, "{set} with {flag} changed the Deployment");
            } else {
                assert_ne!(restart_annotation(&changed), restart_annotation(&base), "{set} must roll the pods");
            }
        }
    }
}

#[tokio::test]
async fn every_alert_passes_its_promtool_unit_tests() {
    let rules = chart_dir().join("files/alerts.yaml");
    let rules = rules.to_str().expect("path");
    let checked = promtool(&["check", "rules", rules]).await.ok("promtool check rules");
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/alerts.test.yaml");
    let tested = promtool(&["test", "rules", tests.to_str().expect("path")]).await.ok("promtool test rules");
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert in the rules file has a test case that expects it to fire.
    let tests_text = std::fs::read_to_string(&tests).expect("alerts.test.yaml");
    let alerts: Vec<String> = std::fs::read_to_string(rules)
        .expect("alerts.yaml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(|a| a.trim().to_owned())
        .collect();
    assert!(alerts.len() >= 4, "alerts: {alerts:?} ({checked})");
    // Every alert has a case that expects it to fire: an `alertname` followed by a non-empty `exp_alerts`.
    for alert in alerts {
        let fires = tests_text
            .split(&format!("alertname: {alert}"))
            .skip(1)
            .any(|after| after.lines().take(3).any(|l| l.trim() == "exp_alerts:"));
        assert!(fires, "{alert} has no promtool case that expects it to fire");
    }
}

#[tokio::test]
async fn the_admin_token_is_a_mounted_file_that_follows_the_secret_and_never_an_environment_variable() {
    let home = tempfile::tempdir().expect("tempdir");
    let secret = ["--set", "admin.existingSecret=brokkr-admin", "--set", "admin.existingSecretKey=api-token"];
    let with_webhook = [&secret[..], &["--set", WEBHOOK_ON]].concat();
    for args in [&secret[..], &with_webhook[..]] {
        let rendered = template(home.path(), args).await.ok("helm template");
        let deployment = deployment(&rendered);
        let expected = [
            "- name: BROKKR__ADMIN__TOKEN_FILE\n              value: /var/run/secrets/brokkr/admin/token\n",
            "- name: admin-token\n              mountPath: /var/run/secrets/brokkr/admin\n              readOnly: true\n",
            "secretName: \"brokkr-admin\"\n            items:\n              - key: \"api-token\"\n                path: token\n",
        ];
        for expected in expected {
            assert!(deployment.contains(expected), "{args:?}: {expected} in {deployment}");
        }
        // A subPath mount is never updated by the kubelet, and a variable is fixed for the container's life.
        for refused in ["subPath:", "secretKeyRef", "name: BROKKR__ADMIN__TOKEN\n"] {
            assert!(!rendered.contains(refused), "{args:?}: {refused} in {rendered}");
        }
    }
    let without = deployment(&template(home.path(), &[]).await.ok("helm template"));
    assert!(!without.contains("admin-token") && !without.contains("TOKEN"), "{without}");
}

#[tokio::test]
async fn the_pod_guard_is_refused_without_a_service_account_of_its_own() {
    // Found by review: the Role's `patch pods` would go to a shared ServiceAccount (`default`), and the policy would
    // deny every other workload's Pod updates under it.
    let home = tempfile::tempdir().expect("tempdir");
    let shared = ["--set", "podStatus.enabled=true", "--set", "serviceAccount.create=false"];
    let refused = template(home.path(), &shared).await;
    assert_ne!(refused.code, Some(0), "rendered with a shared ServiceAccount");
    assert!(refused.stderr.contains("serviceAccount.create=true"), "{}", refused.stderr);
    let off = template(home.path(), &[]).await.ok("helm template");
    assert!(documents_of_kind(&off, "ValidatingAdmissionPolicy").is_empty() && !off.contains("resources: [pods]"));
    let on = template(home.path(), &["--set", "podStatus.enabled=true"]).await.ok("helm template");
    assert_eq!(documents_of_kind(&on, "ValidatingAdmissionPolicy").len(), 1);
    assert!(on.contains("resources: [pods]\n    verbs: [patch]"), "the Role's rule");
    // The broker's start-up check counts only this policy's refusals: the Deployment names it.
    let policy = documents_of_kind(&on, "ValidatingAdmissionPolicy")[0].to_string();
    assert!(policy.contains("name: brokkr-broker-brokkr-pod-status\n"), "{policy}");
    let expected = "- name: BROKKR_POD_STATUS_POLICY\n              value: \"brokkr-broker-brokkr-pod-status\"";
    assert!(deployment(&on).contains(expected), "{}", deployment(&on));
}

#[tokio::test]
async fn both_probes_ask_over_a_socket_in_the_pod_in_every_option_set() {
    // Issue 23: on the HTTP port, any pod could fill the connection slots and get the broker restarted; issue 26:
    // or take every replica out of Ready, emptying the webhook's Service.
    let home = tempfile::tempdir().expect("tempdir");
    for values in option_sets() {
        let values = values.to_str().expect("UTF-8 path");
        let rendered = template(home.path(), &["-f", values]).await.ok(&format!("helm template -f {values}"));
        let deployment = deployment(&rendered);
        let liveness = deployment.split("livenessProbe:").nth(1).and_then(|p| p.split("readinessProbe:").next());
        let liveness = liveness.expect("a liveness probe");
        assert!(
            liveness.contains("exec:")
                && liveness
                    .contains("command: [/usr/local/bin/brokkr-broker, probe, --socket, /run/brokkr/probe.sock]")
                && liveness.contains("timeoutSeconds: 5")
                && !liveness.contains("httpGet"),
            "{values}: {liveness}"
        );
        let readiness = deployment.split("readinessProbe:").nth(1).and_then(|p| p.split("securityContext:").next());
        let readiness = readiness.expect("a readiness probe");
        assert!(
            readiness
                .contains("command: [/usr/local/bin/brokkr-broker, probe, --ready, --socket, /run/brokkr/probe.sock]")
                && !readiness.contains("httpGet"),
            "{values}: {readiness}"
        );
        assert!(
            deployment.contains("- name: BROKKR_PROBE_SOCKET\n              value: /run/brokkr/probe.sock"),
            "{values}: serve answers on the socket the probe asks"
        );
        assert!(deployment.contains("- name: probe\n              mountPath: /run/brokkr"), "{values}");
        assert!(deployment.contains("- name: probe\n          emptyDir:"), "{values}: a folder of the pod's own");
    }
}

#[tokio::test]
async fn the_file_source_mounts_the_configmap_and_grants_no_api_access() {
    let home = tempfile::tempdir().expect("tempdir");
    let api = template(home.path(), &[]).await.ok("helm template");
    assert_eq!((documents_of_kind(&api, "Role").len(), documents_of_kind(&api, "RoleBinding").len()), (1, 1));
    assert!(deployment(&api).contains("automountServiceAccountToken: true") && !api.contains("BROKKR_CONFIGMAP_FILE"));

    let file = template(home.path(), &["--set", "reload.source=file"]).await.ok("helm template");
    assert_eq!((documents_of_kind(&file, "Role").len(), documents_of_kind(&file, "RoleBinding").len()), (0, 0));
    let deployment = deployment(&file);
    let expected = [
        "automountServiceAccountToken: false",
        "- name: BROKKR_CONFIGMAP_FILE\n              value: /etc/brokkr/configmap/broker.toml\n",
        "- name: BROKKR_WATCH_INTERVAL\n              value: \"1s\"\n",
        "- name: configmap\n              mountPath: /etc/brokkr/configmap\n              readOnly: true\n",
        "configMap:\n            name: \"brokkr-broker\"\n            items:\n              - key: broker.toml\n",
    ];
    for expected in expected {
        assert!(deployment.contains(expected), "{expected} in {deployment}");
    }
    // The kubelet never updates a file mounted by subPath.
    assert!(!deployment.contains("subPath:"), "{deployment}");

    let refused = template(home.path(), &["--set", "reload.source=file", "--set", "podStatus.enabled=true"]).await;
    assert_ne!(refused.code, Some(0), "the Pod status needs the API");
    assert!(refused.stderr.contains("reload.source=file"), "{}", refused.stderr);
    let refused = template(home.path(), &["--set", "reload.source=nfs"]).await;
    assert_ne!(refused.code, Some(0), "an unknown source");
    // The broker refuses a poll outside 100ms..=60s at start: the chart refuses it before any pod crash-loops.
    for interval in ["0s", "99ms", "61s", "1m"] {
        let set = format!("reload.source=file,reload.pollInterval={interval}");
        assert_ne!(template(home.path(), &["--set", &set]).await.code, Some(0), "{interval}");
    }
    for interval in ["100ms", "2500ms", "60000ms", "60s"] {
        let set = format!("reload.source=file,reload.pollInterval={interval}");
        template(home.path(), &["--set", &set]).await.ok(interval);
    }
}
