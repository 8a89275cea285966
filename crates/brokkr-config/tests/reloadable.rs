//! `ReloadableConfig` applies valid candidates atomically, reports restart-only changes, and keeps the last good
//! configuration when a candidate is rejected.

use brokkr_config::{ConfigLayers, ReloadOutcome, ReloadableConfig, Settings, SourceRef, layers::LayerText};

fn configmap(text: &str) -> LayerText {
    LayerText { origin: "ConfigMap test/brokkr key broker.toml".into(), text: text.into() }
}

fn source(rv: &str) -> Option<SourceRef> {
    Some(SourceRef { namespace: "test".into(), name: "brokkr".into(), resource_version: Some(rv.into()) })
}

#[test]
fn a_valid_change_is_applied_and_notified() {
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let mut updates = config.subscribe();
    let before = config.current();

    let outcome = config.reload(layers.build(Some(&configmap("[log]\nlevel = \"debug\""))), source("7"));

    let ReloadOutcome::Applied { generation, changes, restart_required } = outcome else { panic!("{outcome:?}") };
    assert_eq!(generation, 1);
    assert_eq!(
        changes.iter().map(|c| (c.key, c.old.as_str(), c.new.as_str())).collect::<Vec<_>>(),
        [("log.level", "info", "debug")]
    );
    assert!(restart_required.is_empty());
    assert!(updates.has_changed().expect("sender alive"));
    assert_eq!(updates.borrow_and_update().settings.log.level, "debug");
    assert_ne!(config.current().hash, before.hash);
    assert_eq!(config.current().source, source("7"));
}

#[test]
fn an_invalid_candidate_keeps_the_last_good_configuration() {
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    config.reload(layers.build(Some(&configmap("[log]\nlevel = \"debug\""))), source("1"));

    let outcome = config.reload(layers.build(Some(&configmap("[config_reload]\nmax_wait = \"1s\""))), source("2"));

    let ReloadOutcome::Rejected { reason } = &outcome else { panic!("{outcome:?}") };
    assert!(reason.contains("config_reload.max_wait"), "{reason}");
    assert_eq!(config.current().settings.log.level, "debug");
    assert_eq!(config.current().generation, 1);
    let last = config.last_reload().expect("recorded");
    assert_eq!((last.outcome.as_str(), last.error.as_deref()), ("rejected", Some(reason.as_str())));
}

#[test]
fn a_restart_only_change_is_reported_and_not_applied() {
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);

    let outcome = config.reload(layers.build(Some(&configmap("[config_reload]\nenabled = false"))), source("3"));

    let ReloadOutcome::Unchanged { restart_required } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(restart_required.iter().map(|c| c.key).collect::<Vec<_>>(), ["config_reload.enabled"]);
    assert!(config.current().settings.config_reload.enabled);
    assert_eq!(config.current().generation, 0);
    assert_eq!(config.last_reload().expect("recorded").restart_required, ["config_reload.enabled"]);
}

#[test]
fn the_same_settings_again_are_unchanged() {
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let text = configmap("[cors]\nallowed_origins = [\"https://a.example\"]");
    assert_eq!(config.reload(layers.build(Some(&text)), source("1")).label().as_str(), "applied");
    let hash = config.current().hash.clone();
    assert_eq!(config.reload(layers.build(Some(&text)), source("2")).label().as_str(), "unchanged");
    assert_eq!((config.current().generation, config.current().hash.as_str()), (1, hash.as_str()));
}

#[test]
fn the_hash_ignores_per_instance_restart_only_settings() {
    let layers = ConfigLayers::new();
    let mut a = layers.build(None).expect("defaults").settings;
    let mut b = a.clone();
    b.server.listen = "127.0.0.1:9999".parse().expect("address");
    assert_eq!(ReloadableConfig::new(a.clone()).current().hash, ReloadableConfig::new(b).current().hash);
    a.log.level = "debug".into();
    assert_ne!(ReloadableConfig::new(a).current().hash, ReloadableConfig::new(Settings::default()).current().hash);
}
