//! The staged rollout's hooks in the `ConfigActor`: every path that applies a version (watch, resync, on demand)
//! asks the admission first and holds what it refuses; `Readmit` judges the held version again; `Rollback` puts the
//! last good document back whatever the admission and the version order say.

mod support;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::{Actor, Addr};
use brokkr_config::{ConfigLayers, ReloadableConfig, layers::LayerText};
use brokkr_reload::{
    ConfigActor, ConfigMapState, Reload, ReloadMetrics, ReloadNow,
    admission::{Admission, Admit, DocumentHash},
    history::ReloadHistory,
    messages::{Readmit, Rollback},
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use support::{FakeSource, present, run_for};
use tokio::sync::watch;

const GOOD: &str = "[log]\nlevel = \"debug\"";
const TARGET: &str = "[log]\nlevel = \"warn\"";

/// Admits exactly the hashes in its set; the test changes the set as a rollout would.
#[derive(Clone, Default)]
struct Admitted(Arc<Mutex<BTreeSet<DocumentHash>>>);

impl Admitted {
    fn admit(&self, text: &str) {
        self.0.lock().expect("lock").insert(DocumentHash::of(text));
    }
}

impl Admission for Admitted {
    fn admit(&self, hash: &DocumentHash) -> Admit {
        if self.0.lock().expect("lock").contains(hash) {
            Admit::Yes
        } else {
            Admit::Hold { reason: "waiting for wave 2 of 2".into() }
        }
    }
}

struct Harness {
    actor: Addr<ConfigActor>,
    config: ReloadableConfig,
    source: FakeSource,
    admitted: Admitted,
    history: ReloadHistory,
    hash: watch::Receiver<Option<DocumentHash>>,
    registry: Registry,
}

/// A `ConfigActor` over a file layer `file`, whose admission admits only `GOOD` at first.
fn harness(file: &str) -> Harness {
    let layers =
        ConfigLayers::new().with_file_text(&LayerText { origin: "test file".into(), text: file.into() }).expect("file");
    let config = ReloadableConfig::new(layers.build(None).expect("valid").settings);
    let source = FakeSource::default();
    let mut registry = Registry::default();
    let metrics = ReloadMetrics::register(&mut registry);
    let admitted = Admitted::default();
    admitted.admit(GOOD);
    let history = ReloadHistory::default();
    let (sender, hash) = watch::channel(None);
    let actor = ConfigActor::new(config.clone(), layers, Arc::new(source.clone()), metrics)
        .admission(Arc::new(admitted.clone()))
        .history(history.clone())
        .document_hash(sender)
        .start();
    Harness { actor, config, source, admitted, history, hash, registry }
}

impl Harness {
    async fn reload(&self, state: ConfigMapState) {
        self.actor.send(Reload { state }).await.expect("actor alive");
    }

    fn level(&self) -> String {
        self.config.current().settings.log.level.clone()
    }

    /// `(trigger, outcome)` of every record, oldest first.
    fn records(&self) -> Vec<(String, String)> {
        self.history.records().iter().map(|r| (r.trigger.as_str().into(), r.outcome.as_str().into())).collect()
    }

    fn in_force(&self) -> Option<DocumentHash> {
        self.hash.borrow().clone()
    }
}

fn pair(trigger: &str, outcome: &str) -> (String, String) {
    (trigger.into(), outcome.into())
}

#[actix_rt::test]
async fn a_valid_version_not_admitted_is_held_on_every_path_and_applied_when_readmitted() {
    tokio::time::pause();
    let h = harness("[config_reload]\nresync_interval = \"10s\"");
    h.reload(present(GOOD, "1")).await;
    assert_eq!((h.level(), h.in_force()), ("debug".into(), Some(DocumentHash::of(GOOD))));

    h.reload(present(TARGET, "2")).await;
    h.source.set_state(present(TARGET, "2"));
    let on_demand = h.actor.send(ReloadNow).await.expect("alive").expect("read");
    run_for(Duration::from_secs(11)).await; // the resync reads it too
    assert_eq!(h.source.reads(), 2, "one on-demand read and one resync");
    assert_eq!((on_demand.outcome.as_str(), on_demand.error.as_deref()), ("held", Some("waiting for wave 2 of 2")));
    assert_eq!(h.level(), "debug", "nothing held was applied");
    assert_eq!(h.in_force(), Some(DocumentHash::of(GOOD)));
    let metrics = {
        let mut text = String::new();
        encode(&mut text, &h.registry).expect("encodes");
        text
    };
    assert!(metrics.contains("brokkr_config_reloads_total{outcome=\"held\"} 3"), "{metrics}");
    assert!(metrics.contains("brokkr_config_last_reload_successful 1"), "a held version is no failure: {metrics}");

    h.admitted.admit(TARGET);
    let readmitted = h.actor.send(Readmit).await.expect("alive").expect("a version was held");
    assert_eq!((readmitted.outcome.as_str(), h.level()), ("applied", "warn".into()));
    assert_eq!(h.in_force(), Some(DocumentHash::of(TARGET)));
    assert!(h.actor.send(Readmit).await.expect("alive").is_none(), "nothing is held any more");
    assert_eq!(
        h.records(),
        [pair("watch", "applied"), pair("watch", "held"), pair("manual", "held"), pair("rollout", "applied")],
        "a repeated hold by the resync says nothing new"
    );
}

#[actix_rt::test]
async fn an_invalid_version_is_rejected_before_anyone_asks_whether_it_may_apply() {
    let h = harness("");
    h.reload(present("[cors]\nmax_age = \"forever\"", "1")).await;
    assert_eq!(h.records(), [pair("watch", "rejected")]);
    assert!(h.actor.send(Readmit).await.expect("alive").is_none(), "a rejected version is not held");
}

#[actix_rt::test]
async fn a_newer_version_replaces_the_held_one_and_a_readmit_applies_only_the_newest() {
    let h = harness("");
    h.reload(present(TARGET, "2")).await;
    let newer = "[log]\nlevel = \"error\"";
    h.reload(present(newer, "3")).await;
    h.admitted.admit(TARGET);
    h.admitted.admit(newer);
    h.actor.send(Readmit).await.expect("alive");
    assert_eq!(h.level(), "error");
    h.reload(present(GOOD, "4")).await;
    assert!(h.actor.send(Readmit).await.expect("alive").is_none(), "an admitted version clears what was held");
}

#[actix_rt::test]
async fn a_rollback_applies_the_last_good_text_whatever_the_admission_and_the_version_order() {
    let h = harness("");
    h.admitted.admit(TARGET);
    h.reload(present(TARGET, "7")).await;
    assert_eq!(h.level(), "warn");
    // Neither admitted (the admission admits GOOD, but the rollback does not ask) nor newer than version 7.
    let rollback = Rollback { text: GOOD.into(), resource_version: Some("5".into()), reason: "the gate failed".into() };
    assert!(!format!("{rollback:?}").contains("debug"), "its Debug shows no text");
    let report = h.actor.send(rollback).await.expect("alive");
    assert_eq!((report.outcome.as_str(), h.level()), ("applied", "debug".into()));
    assert_eq!(h.in_force(), Some(DocumentHash::of(GOOD)));
    let source = h.config.current().source.clone().and_then(|s| s.resource_version);
    assert_eq!(source.as_deref(), Some("5"), "the status shows the version the text came from");
    assert_eq!(h.records().last(), Some(&pair("rollback", "applied")));
    // Version 7 re-delivered by a re-list is not older than the newest acted on: the admission decides alone.
    h.reload(present(TARGET, "7")).await;
    assert_eq!(h.level(), "warn", "this test's admission still admits the target");
}

#[actix_rt::test]
async fn a_rollback_this_replicas_layers_refuse_keeps_what_is_in_force_and_says_why() {
    // The environment changed since the text was good: here the file sets the token, which a ConfigMap may not.
    let h = harness("");
    h.admitted.admit(TARGET);
    h.reload(present(TARGET, "2")).await;
    let refused = "[admin]\ntoken = \"hunter2\"";
    let report = h
        .actor
        .send(Rollback { text: refused.into(), resource_version: Some("1".into()), reason: "test".into() })
        .await
        .expect("alive");
    assert_eq!(report.outcome.as_str(), "rejected");
    assert!(report.error.as_deref().is_some_and(|e| e.contains("admin.token")), "{report:?}");
    assert!(!format!("{report:?}").contains("hunter2"), "no secret in the report");
    assert_eq!((h.level(), h.in_force()), ("warn".into(), Some(DocumentHash::of(TARGET))));
}

#[actix_rt::test]
async fn a_rollback_keeps_the_version_held_for_a_later_wave() {
    // Found by review: a rollback of a halted rollout's text cleared the newer version held for the next rollout,
    // so a replica admitted later stayed on the last good text until the next resync.
    let h = harness("");
    h.admitted.admit(TARGET);
    h.reload(present(TARGET, "2")).await;
    let newer = "[log]\nlevel = \"error\"";
    h.reload(present(newer, "3")).await; // held: not admitted yet
    let rollback = Rollback { text: GOOD.into(), resource_version: Some("1".into()), reason: "halted".into() };
    h.actor.send(rollback).await.expect("alive");
    assert_eq!(h.level(), "debug");
    h.admitted.admit(newer);
    let readmitted = h.actor.send(Readmit).await.expect("alive");
    assert_eq!(readmitted.map(|r| r.outcome.as_str()), Some("applied"), "the held version is judged again");
    assert_eq!(h.level(), "error");
}
