//! The three judges of a ConfigMap document agree: the reload (the `ConfigActor`), the admission webhook and
//! `check-config --configmap` give the same verdict, the same errors and the same warnings on every document of the
//! bad-input corpus, every declaration's example and the documents that meet the pod's own layers (a repeated
//! fixed key set by the chart, a key the environment shadows, a restart-only change).

use std::{collections::BTreeMap, path::Path, process::Command, sync::Arc};

use actix::Actor;
use brokkr_broker::{
    admission::{ConfigMapReviewer, ReviewMetrics},
    review,
};
use brokkr_config::{AppSettings, ConfigLayers, Outcome, ReloadableConfig, Settings, layers::LayerText};
use brokkr_reload::{
    ConfigActor, ConfigMapSource, ConfigMapState, ConfigMapVersion, Reload, ReloadMetrics, source::WatchStream,
};
use futures::{FutureExt, StreamExt, future::BoxFuture};

const SECRET: &str = "PLANTED-s3cret-7f3a";
const NAMESPACE: &str = "brokkr";

/// The pod's own layers: a `--config` file holding the token, and the variables the chart sets (a fixed key at a
/// value other than its default, and a live key).
const BASE: &str = "[admin]\ntoken = \"PLANTED-s3cret-7f3a\"\n";
const ENV: &[(&str, &str)] = &[("BROKKR__ADMIN__TOKEN_OVERLAP", "10m"), ("BROKKR__LOG__FORMAT", "json")];

/// A source never read: every document arrives in a `Reload`.
struct Unread;

impl ConfigMapSource for Unread {
    fn watch(&self) -> WatchStream {
        futures::stream::pending().boxed()
    }
    fn read(&self) -> BoxFuture<'static, Result<ConfigMapState, kube::Error>> {
        futures::future::pending().boxed()
    }
    fn namespace(&self) -> String {
        NAMESPACE.into()
    }
    fn describe(&self) -> String {
        format!("{NAMESPACE}/brokkr-broker")
    }
}

/// What one judge said: accepted, the error (its origin replaced by `<origin>`), the keys its warnings name.
#[derive(Debug, PartialEq, Eq)]
struct Said {
    accepted: bool,
    error: String,
    warned: Vec<String>,
}

fn layers() -> ConfigLayers {
    let file = LayerText { origin: "config file".into(), text: BASE.into() };
    let env = ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    ConfigLayers::new().with_file_text(&file).and_then(|l| l.with_env(env)).expect("the pod's layers are valid")
}

fn keys_of(warnings: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = warnings.iter().filter_map(|w| w.split(' ').next().map(str::to_owned)).collect();
    keys.sort();
    keys
}

fn without_origin(error: &str, origin: &str) -> String {
    error.replace(origin, "<origin>")
}

async fn by_reload(document: &str) -> Said {
    let layers = layers();
    let config = ReloadableConfig::new(layers.build(None).expect("valid").settings);
    let actor = ConfigActor::new(config.clone(), layers, Arc::new(Unread), ReloadMetrics::default()).start();
    let data = BTreeMap::from([("broker.toml".to_owned(), document.to_owned())]);
    let version = ConfigMapVersion { data, resource_version: Some("7".into()), uid: None };
    actor.send(Reload { state: ConfigMapState::Present(version) }).await.expect("the actor survived");
    let last = config.last_reload().expect("recorded");
    let origin = format!("ConfigMap {NAMESPACE}/brokkr-broker key broker.toml");
    let mut warned = last.restart_required.clone();
    warned.extend(last.shadowed_by_env.clone());
    warned.sort();
    match last.outcome {
        Outcome::Rejected => Said {
            accepted: false,
            error: without_origin(&last.error.unwrap_or_default(), &origin),
            warned: Vec::new(),
        },
        Outcome::Applied | Outcome::Unchanged | Outcome::Unread => {
            Said { accepted: true, error: String::new(), warned }
        }
        Outcome::Held => panic!("held, with the default admission that admits every version"),
    }
}

fn by_webhook(document: &str) -> Said {
    let layers = layers();
    let config = ReloadableConfig::new(layers.build(None).expect("valid").settings);
    let reviewer = ConfigMapReviewer::new(layers, config, Some(NAMESPACE.into()), ReviewMetrics::default());
    let body = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u", "kind": {"group": "", "version": "v1", "kind": "ConfigMap"}, "name": "brokkr-broker",
            "namespace": NAMESPACE, "operation": "UPDATE", "userInfo": {"username": "alice"},
            "object": {"metadata": {"name": "brokkr-broker"}, "data": {"broker.toml": document}},
        }
    });
    let request = review::parse(body.to_string().as_bytes()).expect("a review").request.expect("a request");
    let response = reviewer.review(&request);
    let origin = format!("ConfigMap {NAMESPACE}/brokkr-broker key broker.toml");
    // The webhook alone also warns when the broker answering cannot read the certificate a document turns on: a
    // fact about that pod's files, not about the document.
    let warnings = response.warnings.unwrap_or_default();
    let warned = keys_of(
        &warnings
            .into_iter()
            .filter(|w| !w.starts_with("webhook.cert_file ") && !w.starts_with("webhook.key_file "))
            .collect::<Vec<_>>(),
    );
    Said { accepted: response.allowed, error: without_origin(&response.result.message, &origin), warned }
}

fn by_check_config(document: &str, dir: &Path) -> Said {
    let (file, base, env) = (dir.join("document.toml"), dir.join("base.toml"), dir.join("env"));
    std::fs::write(&file, document).expect("write");
    std::fs::write(&base, BASE).expect("write");
    std::fs::write(&env, ENV.iter().map(|(k, v)| format!("{k}={v}\n")).collect::<String>()).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_brokkr-broker"))
        .arg("check-config")
        .args(["--configmap", "--namespace", NAMESPACE, "--config"])
        .args([&base, Path::new("--env-file"), &env, &file])
        .output()
        .expect("runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let origin = format!("ConfigMap document {}", file.display());
    let error = stderr.trim_end().strip_prefix(&format!("{}: ", file.display())).unwrap_or(&stderr).to_owned();
    let warnings: Vec<String> =
        stdout.lines().filter_map(|l| l.trim_start().strip_prefix("warning: ")).map(str::to_owned).collect();
    match out.status.code() {
        Some(0) => Said { accepted: true, error: String::new(), warned: keys_of(&warnings) },
        _ => Said { accepted: false, error: without_origin(&error, &origin), warned: Vec::new() },
    }
}

/// Every document the judges must agree on, as `(case, document)`.
fn documents() -> Vec<(String, String)> {
    let mut documents: Vec<(String, String)> = brokkr_testenv::corpus::bad_documents(SECRET)
        .into_iter()
        // Past the webhook's own 1 KiB cut of a denial, and one that needs no second opinion: the corpus test.
        .filter(|(_, document, _)| document.len() < 64 * 1024)
        .map(|(case, document, _)| (case.to_owned(), document))
        .collect();
    for d in Settings::DECLARATIONS.iter().filter(|d| !d.secret) {
        let (section, key) = d.key.split_once('.').expect("section.key");
        documents.push((format!("example of {}", d.key), format!("[{section}]\n{key} = {}", d.example)));
    }
    documents.extend([
        ("the chart's fixed key repeated".to_owned(), "[admin]\ntoken_overlap = \"10m\"".to_owned()),
        ("the chart's fixed key changed".to_owned(), "[admin]\ntoken_overlap = \"1h\"".to_owned()),
        ("a key the environment shadows".to_owned(), "[log]\nformat = \"text\"\nlevel = \"debug\"".to_owned()),
        (
            "three mistyped durations".to_owned(),
            "[cors]\nmax_age = \"soon\"\n[config_reload]\ndebounce = \"later\"\nmax_wait = \"never\"".to_owned(),
        ),
        ("an empty document".to_owned(), String::new()),
    ]);
    documents
}

#[actix_rt::test]
async fn the_reload_the_webhook_and_check_config_judge_every_document_alike() {
    let dir = tempfile::tempdir().expect("temp dir");
    let documents = documents();
    assert!(documents.len() >= 90, "{} documents", documents.len());
    let mut accepted = 0;
    for (case, document) in &documents {
        let reload = by_reload(document).await;
        assert!(!reload.error.contains(SECRET), "{case}: {reload:?}");
        assert_eq!(by_webhook(document), reload, "{case}: the webhook disagrees with the reload");
        assert_eq!(by_check_config(document, dir.path()), reload, "{case}: check-config disagrees with the reload");
        accepted += usize::from(reload.accepted);
    }
    // Both verdicts occur, and the documents that meet the pod's layers are judged over them.
    assert!(accepted >= 10 && accepted < documents.len(), "{accepted} of {} accepted", documents.len());
    assert!(by_reload("[admin]\ntoken_overlap = \"10m\"").await.accepted, "a repeated chart-set key is accepted");
    // The chart's variable wins over the document's value, so the document changes nothing: a warning, not a refusal.
    let changed = by_reload("[admin]\ntoken_overlap = \"1h\"").await;
    assert_eq!((changed.accepted, changed.warned.as_slice()), (true, ["admin.token_overlap".to_owned()].as_slice()));
    let moved = by_reload("[server]\nlisten = \"127.0.0.1:1\"").await;
    assert!(!moved.accepted && moved.error.contains("server.listen"), "{moved:?}");
    let shadowed = by_reload("[log]\nformat = \"text\"").await;
    assert_eq!(shadowed.warned, ["log.format"], "{shadowed:?}");
    let typos =
        by_reload("[cors]\nmax_age = \"soon\"\n[config_reload]\ndebounce = \"later\"\nmax_wait = \"never\"").await;
    for key in ["cors.max_age", "config_reload.debounce", "config_reload.max_wait"] {
        assert!(typos.error.contains(key), "{key}: {typos:?}");
    }
}
