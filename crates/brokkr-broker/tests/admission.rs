//! Admission review: denied with the reload's error, warned for keys not live, other objects let through.

use brokkr_broker::{
    admission::{ConfigMapReviewer, ReviewMetrics, WARNING_LIMIT, WARNINGS_TOTAL_LIMIT},
    review::{self, ReviewRequest},
};
use brokkr_config::{ConfigLayers, ReloadableConfig, layers::LayerText};
use kube::core::admission::AdmissionResponse;
use prometheus_client::{encoding::text::encode, registry::Registry};
use serde_json::json;

const TOKEN: &str = "s3cret-admin-token-value";

struct Fixture {
    reviewer: ConfigMapReviewer,
    registry: Registry,
}

/// A broker whose file sets the admin token, with `env` as its `BROKKR__*` variables, in namespace `brokkr`.
fn fixture(env: &[(&str, &str)]) -> Fixture {
    let layers = ConfigLayers::new()
        .with_file_text(&LayerText { origin: "test file".into(), text: format!("[admin]\ntoken = \"{TOKEN}\"") })
        .expect("valid file")
        .with_env(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
        .expect("valid env");
    let config = ReloadableConfig::new(layers.build(None).expect("valid").settings);
    let mut registry = Registry::default();
    let metrics = ReviewMetrics::register(&mut registry);
    Fixture { reviewer: ConfigMapReviewer::new(layers, config, Some("brokkr".into()), metrics), registry }
}

/// An `AdmissionReview` as the API server sends it, parsed the way the webhook parses it.
fn request(operation: &str, namespace: &str, name: &str, data: serde_json::Value) -> ReviewRequest {
    update(operation, namespace, name, data, serde_json::Value::Null)
}

/// As [`request`], with the stored object's `data` as `oldObject` (null: none).
fn update(
    operation: &str,
    namespace: &str,
    name: &str,
    data: serde_json::Value,
    old_data: serde_json::Value,
) -> ReviewRequest {
    let old = if old_data.is_null() {
        old_data
    } else {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": old_data})
    };
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace},
                "data": data
            },
            "oldObject": old,
            "dryRun": false
        }
    });
    review::parse(body.to_string().as_bytes()).expect("a valid AdmissionReview").request.expect("has a request")
}

fn broker_toml(text: &str) -> serde_json::Value {
    json!({ "broker.toml": text })
}

fn reviews(fixture: &Fixture, result: &str) -> u64 {
    let mut text = String::new();
    encode(&mut text, &fixture.registry).expect("encodes");
    let line = format!("brokkr_webhook_reviews_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line} in\n{text}"))
}

fn message(response: &AdmissionResponse) -> &str {
    &response.result.message
}

#[test]
fn a_broken_document_is_denied_with_the_reload_error_naming_the_key() {
    let f = fixture(&[]);
    let response =
        f.reviewer.review(&request("UPDATE", "brokkr", "brokkr-broker", broker_toml("[cors]\nmax_age = \"soon\"")));
    assert!(!response.allowed);
    assert_eq!(response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002", "the uid is echoed");
    assert!(message(&response).contains("cors.max_age"), "{}", message(&response));
    assert!(message(&response).contains("\"soon\""), "{}", message(&response));
    assert_eq!(reviews(&f, "denied"), 1);
}

#[test]
fn a_syntax_error_is_denied_with_its_line_and_column() {
    let f = fixture(&[]);
    let response =
        f.reviewer.review(&request("CREATE", "brokkr", "brokkr-broker", broker_toml("[log]\nlevel = \"info\n")));
    assert!(!response.allowed);
    assert!(message(&response).contains("line 2, column"), "{}", message(&response));
}

#[test]
fn a_missing_data_key_is_denied_like_a_reload_would_reject_it() {
    let f = fixture(&[]);
    let response = f.reviewer.review(&request("UPDATE", "brokkr", "brokkr-broker", json!({"other.toml": ""})));
    assert!(!response.allowed);
    assert!(message(&response).contains("broker.toml"), "{}", message(&response));
}

#[test]
fn a_valid_live_edit_is_allowed_without_warnings() {
    let f = fixture(&[]);
    let response = f.reviewer.review(&request(
        "UPDATE",
        "brokkr",
        "brokkr-broker",
        broker_toml("[log]\nlevel = \"debug\"\n[cors]\nallowed_origins = [\"https://app.example.com\"]"),
    ));
    assert!(response.allowed, "{}", message(&response));
    assert_eq!(response.warnings, None);
    assert_eq!((reviews(&f, "allowed"), reviews(&f, "warned"), reviews(&f, "denied")), (1, 0, 0));
}

#[test]
fn a_restart_only_edit_is_allowed_with_a_warning_naming_the_key() {
    let f = fixture(&[]);
    let response =
        f.reviewer.review(&request("UPDATE", "brokkr", "brokkr-broker", broker_toml("[log]\nformat = \"json\"")));
    assert!(response.allowed);
    let warnings = response.warnings.expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("log.format changes from text to json at the next broker restart"), "{warnings:?}");
    assert_eq!(reviews(&f, "warned"), 1);
}

#[test]
fn a_key_the_environment_overrides_is_allowed_with_a_warning_naming_the_variable() {
    let f = fixture(&[("BROKKR__LOG__LEVEL", "warn")]);
    let response =
        f.reviewer.review(&request("UPDATE", "brokkr", "brokkr-broker", broker_toml("[log]\nlevel = \"debug\"")));
    assert!(response.allowed);
    assert_eq!(
        response.warnings.expect("warnings"),
        vec!["log.level has no effect: the broker's environment sets it (BROKKR__LOG__LEVEL)".to_owned()]
    );
}

#[test]
fn no_answer_ever_shows_the_admin_token() {
    let f = fixture(&[]);
    // The running token is quoted back inside another setting: validation refuses it, and must not show it.
    let quoting = format!("[log]\nlevel = \"info,{TOKEN}=debug\"");
    // A token in the ConfigMap is denied (anyone with `view` could read it), naming the key, never the value.
    let replacing = "[admin]\ntoken = \"another-secret-token\"".to_owned();
    for (document, reason) in [(quoting, "log.level"), (replacing, "admin.token is a secret")] {
        let response = f.reviewer.review(&request("UPDATE", "brokkr", "brokkr-broker", broker_toml(&document)));
        assert!(!response.allowed, "{reason}");
        let text = serde_json::to_string(&response.into_review()).expect("serializes");
        assert!(text.contains(reason), "{text}");
        assert!(!text.contains(TOKEN) && !text.contains("another-secret-token"), "{text}");
    }
}

#[test]
fn other_configmaps_and_deletes_are_let_through_unexamined() {
    let f = fixture(&[]);
    let broken = broker_toml("not toml at all");
    for request in [
        request("UPDATE", "brokkr", "someone-else", broken.clone()),
        request("UPDATE", "elsewhere", "brokkr-broker", broken.clone()),
        request("DELETE", "brokkr", "brokkr-broker", broken),
    ] {
        let response = f.reviewer.review(&request);
        assert!(response.allowed && response.warnings.is_none(), "{response:?}");
    }
    assert_eq!((reviews(&f, "skipped"), reviews(&f, "denied")), (3, 0));
}

#[test]
fn an_update_that_leaves_a_stored_broken_document_as_it_is_is_allowed_with_a_warning() {
    // Stored while no broker answered (failurePolicy Ignore): refusing a label change or a finalizer removal now
    // protects nothing, and would block the tools that make it.
    let f = fixture(&[]);
    let broken = broker_toml("[cors]\nmax_age = \"soon\"");
    let response = f.reviewer.review(&update("UPDATE", "brokkr", "brokkr-broker", broken.clone(), broken.clone()));
    assert!(response.allowed, "{}", message(&response));
    let warnings = response.warnings.expect("a warning");
    assert!(warnings[0].contains("cors.max_age"), "{warnings:?}");
    // Changing the broken document still has to make it valid.
    let other = broker_toml("[cors]\nmax_age = \"later\"");
    assert!(!f.reviewer.review(&update("UPDATE", "brokkr", "brokkr-broker", other, broken)).allowed);
}

#[test]
fn every_answer_fits_what_the_api_server_passes_on() {
    // A 900 KiB origin was quoted whole in the denial, and logged at INFO with it on every review (documents are
    // now cut off at 256 KiB; a 200 KiB origin still fits).
    let f = fixture(&[]);
    let huge = format!("https://{}.example/", "a".repeat(200 * 1024));
    let document = format!("[cors]\nallowed_origins = [\"{huge}\"]");
    let response = f.reviewer.review(&request("UPDATE", "brokkr", "brokkr-broker", broker_toml(&document)));
    assert!(!response.allowed);
    assert!(message(&response).len() <= 1024, "a denial of {} bytes", message(&response).len());
    assert!(message(&response).contains("cors.allowed_origins[0]"), "{}", message(&response));

    // The warning for a stored broken document quotes the error: under the API server's 256 bytes per warning.
    let stored = broker_toml(&document);
    let response = f.reviewer.review(&update("UPDATE", "brokkr", "brokkr-broker", stored.clone(), stored));
    let warnings = response.warnings.expect("a warning");
    assert!(warnings.iter().all(|w| w.len() <= WARNING_LIMIT + 24), "{warnings:?}");

    // Keys shadowed by the environment: as many warnings as keys, cut to the total.
    let shadowing: Vec<(String, String)> =
        [("LOG__LEVEL", "warn"), ("CORS__MAX_AGE", "1m"), ("CONFIG_RELOAD__DEBOUNCE", "1s")]
            .iter()
            .map(|(k, v)| (format!("BROKKR__{k}"), (*v).to_owned()))
            .collect();
    let env: Vec<(&str, &str)> = shadowing.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let f = fixture(&env);
    let document = "[log]\nlevel = \"debug\"\n[cors]\nmax_age = \"2m\"\n[config_reload]\ndebounce = \"2s\"";
    let warnings = f.reviewer.review(&request("UPDATE", "brokkr", "brokkr-broker", broker_toml(document))).warnings;
    let warnings = warnings.expect("warnings");
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings.iter().map(String::len).sum::<usize>() <= WARNINGS_TOTAL_LIMIT, "{warnings:?}");
}

#[test]
fn turning_the_webhook_on_where_its_certificate_cannot_be_read_is_warned_with_the_key() {
    let f = fixture(&[]);
    let document = "[webhook]\nenabled = true";
    let response = f.reviewer.review(&request("UPDATE", "brokkr", "brokkr-broker", broker_toml(document)));
    assert!(response.allowed, "{}", message(&response));
    let warnings = response.warnings.expect("warnings");
    assert!(warnings.iter().any(|w| w.starts_with("webhook.enabled changes from false to true")), "{warnings:?}");
    let unreadable = |key: &str| warnings.iter().any(|w| w.starts_with(key) && w.contains("cannot be read"));
    assert!(unreadable("webhook.cert_file") && unreadable("webhook.key_file"), "{warnings:?}");
}

#[test]
fn an_edit_with_several_mistakes_is_denied_naming_each_of_them() {
    let f = fixture(&[]);
    let document = "[log]\nlevel = \"info,[[\"\n[cors]\nmax_age = \"2d\"\n[config_reload]\nresync_interval = \"1s\"";
    let response = f.reviewer.review(&request("UPDATE", "brokkr", "brokkr-broker", broker_toml(document)));
    assert!(!response.allowed);
    for key in ["log.level", "cors.max_age", "config_reload.resync_interval"] {
        assert!(message(&response).contains(key), "{key} in {}", message(&response));
    }
}
