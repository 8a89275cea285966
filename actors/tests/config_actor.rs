//! The ConfigActor applies valid documents, rejects invalid ones naming the key while the last good configuration
//! stays, reports restart-only changes, and re-reads the ConfigMap at the live `resync_interval`.

mod support;

use std::{sync::Arc, time::Duration};

use actix::{Actor, Addr};
use brokkr_config::{ConfigLayers, ReloadOutcome, ReloadableConfig};
use brokkr_reload::{
    ConfigActor, ConfigMapState, Reload, ReloadMetrics, ReloadNow,
    events::{News, events_for},
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use support::{FakeSource, RecordedEvents, present, run_for};

struct Harness {
    actor: Addr<ConfigActor>,
    config: ReloadableConfig,
    source: FakeSource,
    registry: Registry,
    events: RecordedEvents,
}

fn harness() -> Harness {
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let source = FakeSource::default();
    let mut registry = Registry::default();
    let metrics = ReloadMetrics::register(&mut registry);
    let events = RecordedEvents::default();
    let actor = ConfigActor::new(config.clone(), layers, Arc::new(source.clone()), metrics)
        .events(Arc::new(events.clone()))
        .start();
    Harness { actor, config, source, registry, events }
}

impl Harness {
    async fn reload(&self, state: ConfigMapState) {
        self.actor.send(Reload { state }).await.expect("actor alive");
    }

    fn metrics(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("encode");
        text
    }
}

#[actix_rt::test]
async fn invalid_input_is_rejected_with_the_key_named_and_the_last_good_configuration_stays() {
    let h = harness();
    h.reload(present("[log]\nlevel = \"debug\"", "1")).await;
    h.reload(present("[cors]\nmax_age = \"forever\"", "2")).await;

    assert_eq!(h.config.current().settings.log.level, "debug");
    let last = h.config.last_reload().expect("recorded");
    assert_eq!(last.outcome.as_str(), "rejected");
    assert!(last.error.as_deref().is_some_and(|e| e.contains("cors.max_age")), "{last:?}");
    let metrics = h.metrics();
    assert!(metrics.contains("brokkr_config_last_reload_successful 0"), "{metrics}");
    assert!(metrics.contains("brokkr_config_reloads_total{outcome=\"rejected\"} 1"), "{metrics}");
    assert!(metrics.contains("brokkr_config_generation 1"), "{metrics}");
    assert_eq!(h.events.reasons(), ["ConfigApplied", "ConfigRejected"]);

    h.reload(present("[log]\nlevel = \"warn\"", "3")).await;
    assert_eq!(h.config.current().settings.log.level, "warn", "the next valid document applies");
    assert!(h.metrics().contains("brokkr_config_last_reload_successful 1"));
}

#[actix_rt::test]
async fn malformed_toml_and_a_missing_data_key_are_rejected_without_a_panic() {
    let h = harness();
    h.reload(present("[log\nlevel = ", "1")).await;
    let error = h.config.last_reload().and_then(|l| l.error).expect("rejected");
    assert!(error.contains("ConfigMap test/brokkr-broker key broker.toml is not valid TOML"), "{error}");

    let mut no_key = present("", "2");
    if let ConfigMapState::Present(v) = &mut no_key {
        v.data.clear();
    }
    h.reload(no_key).await;
    let error = h.config.last_reload().and_then(|l| l.error).expect("rejected");
    assert!(error.contains("has no data key broker.toml"), "{error}");
    assert_eq!(h.config.current().generation, 0);
}

#[actix_rt::test]
async fn a_restart_only_change_is_reported_not_applied() {
    let h = harness();
    h.reload(present("[config_reload]\nenabled = false\n[log]\nlevel = \"debug\"", "1")).await;

    let last = h.config.last_reload().expect("recorded");
    assert_eq!(
        (last.outcome.as_str(), last.restart_required.as_slice()),
        ("applied", ["config_reload.enabled".to_owned()].as_slice())
    );
    assert!(h.config.current().settings.config_reload.enabled);
    assert!(h.metrics().contains("brokkr_config_restart_required 1"));
    assert_eq!(h.events.reasons(), ["ConfigApplied", "RestartRequired"]);
}

#[actix_rt::test]
async fn a_deleted_configmap_keeps_the_last_good_configuration() {
    let h = harness();
    h.reload(present("[log]\nlevel = \"debug\"", "1")).await;
    h.reload(ConfigMapState::Absent).await;
    assert_eq!(h.config.current().settings.log.level, "debug");
    assert_eq!(h.config.current().generation, 1);
}

#[actix_rt::test]
async fn reload_now_reads_the_configmap_and_reports_the_changes() {
    let h = harness();
    h.source.set_state(present("[cors]\nallowed_origins = [\"https://a.example\"]", "9"));
    let report = h.actor.send(ReloadNow).await.expect("actor alive").expect("read succeeds");
    assert_eq!((report.outcome.as_str(), report.generation), ("applied", 1));
    assert_eq!(report.changes.iter().map(|c| c.key).collect::<Vec<_>>(), ["cors.allowed_origins"]);
    let again = h.actor.send(ReloadNow).await.expect("actor alive").expect("read succeeds");
    assert_eq!((again.outcome.as_str(), again.generation), ("unchanged", 1));
    assert_eq!(h.config.current().source.clone().and_then(|s| s.resource_version).as_deref(), Some("9"));
}

#[actix_rt::test]
async fn resync_follows_the_live_resync_interval() {
    tokio::time::pause();
    let h = harness();
    h.source.set_state(present("", "1"));
    run_for(Duration::from_secs(299)).await;
    assert_eq!(h.source.reads(), 0, "default interval is 5 minutes");
    run_for(Duration::from_secs(2)).await;
    assert_eq!(h.source.reads(), 1);

    let faster = "[config_reload]\nresync_interval = \"30s\"";
    h.source.set_state(present(faster, "2"));
    h.reload(present(faster, "2")).await;
    run_for(Duration::from_secs(31)).await;
    assert_eq!(h.source.reads(), 2, "the new 30 s interval is in use");
    run_for(Duration::from_secs(30)).await;
    assert_eq!(h.source.reads(), 3);
    assert_eq!(h.config.current().generation, 1, "re-reading the same document is not a reload");
}

#[actix_rt::test]
async fn a_pending_restart_is_announced_once_not_on_every_re_read() {
    let h = harness();
    let restart_only = "[config_reload]\nenabled = false\n";
    h.reload(present(restart_only, "1")).await;
    h.reload(present(restart_only, "2")).await; // a re-list or resync of the same document
    h.reload(present(&format!("{restart_only}[log]\nlevel = \"debug\""), "3")).await; // a live change beside it
    let restart_events = h.events.count("RestartRequired");
    assert_eq!(restart_events, 1, "{:?}", h.events.reasons());
    assert_eq!(h.config.last_reload().expect("recorded").restart_required, ["config_reload.enabled".to_owned()]);

    // A different set of pending keys is news again.
    h.reload(present(&format!("{restart_only}[log]\nlevel = \"debug\"\nformat = \"json\""), "4")).await;
    let restart_events = h.events.count("RestartRequired");
    assert_eq!(restart_events, 2);
}

#[test]
fn an_event_note_is_cut_to_the_api_limit_in_bytes_on_a_character_boundary() {
    let outcome = ReloadOutcome::Rejected { reason: format!("cors.{}: unknown field", "é".repeat(1500)) };
    for event in events_for(&outcome, News { restart: true, rejection: true }) {
        let note = event.note.unwrap_or_default();
        assert!(note.len() <= 1024, "{} bytes", note.len());
        assert!(note.len() > 1000, "cut only as much as needed: {} bytes", note.len());
    }
}

#[test]
fn messages_that_carry_configmap_text_never_print_it_in_debug() {
    let secret = "[admin]\ntoken = \"s3cret-token\"";
    let state = present(secret, "1");
    let shown = [
        format!("{state:?}"),
        format!("{:?}", Reload { state: state.clone() }),
        format!("{:?}", brokkr_reload::ConfigMapObserved { state, initial: false }),
    ];
    for text in shown {
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("broker.toml"), "keys are shown, values are not: {text}");
    }
}

#[actix_rt::test]
async fn the_same_broken_document_is_announced_once_and_a_pending_restart_survives_it() {
    let h = harness();
    h.reload(present("[config_reload]\nenabled = false", "1")).await;
    let broken = "[config_reload]\nenabled = false\n[cors]\nmax_age = \"forever\"";
    h.reload(present(broken, "2")).await;
    h.reload(present(broken, "2")).await; // the resync re-reads it
    assert_eq!(
        h.config.last_reload().expect("recorded").restart_required,
        ["config_reload.enabled".to_owned()],
        "a rejected document does not cancel the restart still pending"
    );
    h.reload(present("[cors]\nmax_age = \"never\"", "3")).await; // a different mistake is news
    let rejected = h.events.count("ConfigRejected");
    assert_eq!(rejected, 2, "{:?}", h.events.reasons());
}

#[actix_rt::test]
async fn the_same_broken_document_after_a_delete_and_re_create_is_news_again() {
    let h = harness();
    let broken = "[cors]\nmax_age = \"forever\"";
    h.reload(present(broken, "2")).await;
    h.reload(ConfigMapState::Absent).await;
    h.reload(present(broken, "4")).await;
    let rejected = h.events.count("ConfigRejected");
    assert_eq!(rejected, 2, "{:?}", h.events.reasons());
}

#[actix_rt::test]
async fn repeating_the_namespace_in_force_is_accepted() {
    let h = harness();
    h.reload(present("[config_reload]\nnamespace = \"test\"\n[log]\nlevel = \"debug\"", "1")).await;
    assert_eq!(h.config.last_reload().expect("recorded").outcome.as_str(), "applied");
    h.reload(present("[config_reload]\nnamespace = \"elsewhere\"", "2")).await;
    let last = h.config.last_reload().expect("recorded");
    assert!(last.error.is_some_and(|e| e.contains("config_reload.namespace")), "moving it is still refused");
}

#[actix_rt::test]
async fn the_token_in_force_never_appears_in_an_error_even_pasted_elsewhere() {
    let token = "k9\"Zq\\t0ken-in-force";
    let mut settings = ConfigLayers::new().build(None).expect("defaults").settings;
    settings.admin.token = token.into();
    let config = ReloadableConfig::new(settings);
    let actor = ConfigActor::new(
        config.clone(),
        ConfigLayers::new(),
        Arc::new(FakeSource::default()),
        ReloadMetrics::default(),
    )
    .start();
    // A TOML literal string: the token pasted verbatim where an error quotes the value (escaped).
    let pasted = format!("[log]\nformat = '{token}'");
    actor.send(Reload { state: present(&pasted, "1") }).await.expect("actor alive");
    let error = config.last_reload().and_then(|l| l.error).unwrap_or_default();
    assert!(error.contains("log.format"), "{error}");
    assert!(!error.contains("Zq"), "{error}");
}
