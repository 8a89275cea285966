//! The reload history: each trigger recorded, oldest first, bounded by the live `config_reload.history`, a resync
//! of the version in force not recorded, and values redacted and cut as the audit lines are.

mod support;

use std::{sync::Arc, time::Duration};

use actix::{Actor, Addr};
use brokkr_config::{ConfigLayers, ReloadableConfig};
use brokkr_reload::{
    ConfigActor, Reload, ReloadMetrics, ReloadNow,
    history::{HISTORY_VALUE_LIMIT, ReloadHistory},
    pod_status::{self, IN_FORCE, OUTCOME, REASON, SEEN},
};
use support::{FakeSource, present, run_for};

const TOKEN: &str = "history-t0ken-in-force-7a";

struct Harness {
    actor: Addr<ConfigActor>,
    config: ReloadableConfig,
    source: FakeSource,
    history: ReloadHistory,
}

fn harness() -> Harness {
    let layers =
        ConfigLayers::new().with_env([("BROKKR__ADMIN__TOKEN".to_owned(), TOKEN.to_owned())]).expect("valid token");
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let source = FakeSource::default();
    let history = ReloadHistory::default();
    let actor = ConfigActor::new(config.clone(), layers, Arc::new(source.clone()), ReloadMetrics::default())
        .history(history.clone())
        .start();
    Harness { actor, config, source, history }
}

impl Harness {
    async fn watch(&self, toml: &str, rv: &str) {
        self.actor.send(Reload { state: present(toml, rv) }).await.expect("actor alive");
    }

    fn triggers_and_outcomes(&self) -> Vec<(String, &'static str, &'static str)> {
        let records = self.history.records();
        records
            .iter()
            .map(|r| (r.resource_version.clone().unwrap_or_default(), r.trigger.as_str(), r.outcome.as_str()))
            .collect()
    }
}

#[actix_rt::test]
async fn every_trigger_is_recorded_in_order_and_a_resync_of_the_version_in_force_is_not() {
    tokio::time::pause();
    let h = harness();
    let faster = "[config_reload]\nresync_interval = \"30s\"";
    h.watch(faster, "1").await;
    h.source.set_state(present(faster, "1"));
    run_for(Duration::from_secs(31)).await; // a resync of version 1: nothing new
    let edited = format!("{faster}\n[log]\nlevel = \"debug\"");
    h.source.set_state(present(&edited, "2"));
    run_for(Duration::from_secs(30)).await; // a resync that finds version 2
    h.source.set_state(present(&format!("{faster}\n[cors]\nmax_age = \"forever\""), "3"));
    let report = h.actor.send(ReloadNow).await.expect("actor alive").expect("read");
    assert_eq!(report.outcome.as_str(), "rejected");
    run_for(Duration::from_secs(30)).await; // a resync of the rejected version 3: nothing new either
    assert!(h.source.reads() >= 4, "{} reads", h.source.reads());
    // A manual reload is recorded even when it finds what is in force: an operator asked for it.
    h.actor.send(ReloadNow).await.expect("actor alive").expect("read");
    let seen = h.triggers_and_outcomes();
    let expected = [
        ("1", "watch", "applied"),
        ("2", "resync", "applied"),
        ("3", "manual", "rejected"),
        ("3", "manual", "rejected"),
    ];
    let expected: Vec<_> = expected.iter().map(|(rv, t, o)| ((*rv).to_owned(), *t, *o)).collect();
    assert_eq!(seen, expected);
    let records = h.history.records();
    assert_eq!(records[1].changes.iter().map(|c| c.key).collect::<Vec<_>>(), ["log.level"]);
    assert_eq!((records[1].changes[0].old.as_str(), records[1].changes[0].new.as_str()), ("info", "debug"));
    assert!(records[2].error.as_deref().is_some_and(|e| e.contains("cors.max_age")), "{:?}", records[2]);
    assert_eq!(records[2].generation, 2, "the generation in force after it");
}

#[actix_rt::test]
async fn the_history_keeps_the_live_number_of_records_and_never_shows_a_secret() {
    let h = harness();
    h.watch("[config_reload]\nhistory = 3", "1").await;
    for rv in 2..=6 {
        h.watch(&format!("[config_reload]\nhistory = 3\n[cors]\nmax_age = \"{rv}m\""), &rv.to_string()).await;
    }
    let kept: Vec<_> = h.history.records().into_iter().filter_map(|r| r.resource_version).collect();
    assert_eq!(kept, ["4", "5", "6"], "the newest 3, oldest first");
    h.watch("[config_reload]\nhistory = 5\n[cors]\nmax_age = \"7m\"", "7").await;
    h.watch("[config_reload]\nhistory = 5\n[cors]\nmax_age = \"8m\"", "8").await;
    assert_eq!(h.history.records().len(), 5, "a larger history keeps more from then on");
    h.watch("[config_reload]\nhistory = 2\n[cors]\nmax_age = \"9m\"", "9").await;
    let kept: Vec<_> = h.history.records().into_iter().filter_map(|r| r.resource_version).collect();
    assert_eq!(kept, ["8", "9"], "a smaller history drops the oldest at once");
    h.watch("[config_reload]\nhistory = 5\n[cors]\nmax_age = \"10m\"", "10").await;

    // The token in force pasted into a shown setting: rejected, and neither the record nor its JSON shows it.
    h.watch(&format!("[cors]\nallowed_origins = [\"https://{TOKEN}.example/\"]"), "11").await;
    let huge = format!("[log]\nlevel = \"info,{}=debug\"", "a".repeat(3000));
    h.watch(&format!("[config_reload]\nhistory = 5\n[cors]\nmax_age = \"10m\"\n{huge}"), "12").await;
    let json = serde_json::to_string(&h.history.records()).expect("serializes");
    assert!(!json.contains(TOKEN) && !json.contains("t0ken"), "{json}");
    let last = h.history.records().pop().expect("a record");
    assert_eq!(last.outcome.as_str(), "applied");
    let level = last.changes.iter().find(|c| c.key == "log.level").expect("log.level changed");
    assert!(level.new.len() <= HISTORY_VALUE_LIMIT + 16, "cut: {} bytes", level.new.len());
    assert_eq!(h.config.current().settings.config_reload.history, 5);
}

#[actix_rt::test]
async fn the_pod_annotations_say_what_is_in_force_and_what_was_last_judged() {
    let h = harness();
    h.watch("[config_reload]\nenabled = false", "1").await;
    let said = |h: &Harness| {
        let record = h.history.records().pop().expect("a record");
        pod_status::annotations(&record, &h.config.current())
    };
    let first = said(&h);
    assert_eq!((first[IN_FORCE].as_str(), first[SEEN].as_str()), ("1", "1"));
    assert_eq!(first[OUTCOME], "restart-required");
    assert!(first[REASON].contains("config_reload.enabled"), "{first:?}");
    h.watch(&format!("[cors]\nmax_age = \"{}\"", "9".repeat(400)), "2").await;
    let rejected = said(&h);
    assert_eq!((rejected[IN_FORCE].as_str(), rejected[SEEN].as_str()), ("1", "2"), "the last good one stays");
    assert_eq!(rejected[OUTCOME], "rejected");
    assert!(rejected[REASON].contains("cors.max_age") && rejected[REASON].len() <= pod_status::REASON_LIMIT + 16);
    assert!(rejected.keys().all(|k| k.starts_with(pod_status::ANNOTATION_PREFIX)));
}
