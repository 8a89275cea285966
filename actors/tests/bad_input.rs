//! The bad-input corpus: every malformed, mistyped or out-of-range ConfigMap document goes through the
//! `ConfigActor` (the path a watch event takes), is rejected with the key or the position named, keeps the last
//! good configuration, never panics and never echoes the planted secret; the next valid document then applies.

mod support;

use std::{collections::BTreeMap, sync::Arc};

use actix::{Actor, Addr};
use brokkr_config::{ConfigLayers, ReloadableConfig, layers::LayerText};
use brokkr_reload::{ConfigActor, ConfigMapState, ConfigMapVersion, Reload, ReloadMetrics};
use support::{FakeSource, RecordedEvents, present};

/// Planted in the file layer, and in documents beside their errors (a ConfigMap that sets it is refused, naming the
/// key): it must never come back out.
const SECRET: &str = "PLANTED-s3cret-7f3a";

struct Harness {
    actor: Addr<ConfigActor>,
    config: ReloadableConfig,
    events: RecordedEvents,
}

fn harness() -> Harness {
    let file = LayerText { origin: "config file".into(), text: format!("[admin]\ntoken = \"{SECRET}\"") };
    let layers = ConfigLayers::new().with_file_text(&file).expect("the planted token is a valid token");
    let config = ReloadableConfig::new(layers.build(None).expect("valid").settings);
    let events = RecordedEvents::default();
    let source = Arc::new(FakeSource::default());
    let actor = ConfigActor::new(config.clone(), layers, source, ReloadMetrics::default())
        .events(Arc::new(events.clone()))
        .start();
    Harness { actor, config, events }
}

fn corpus() -> Vec<(&'static str, String, &'static str)> {
    brokkr_testenv::corpus::bad_documents(SECRET)
}

fn in_force(config: &ReloadableConfig) -> (u64, String) {
    let now = config.current();
    (now.generation, now.hash.clone())
}

#[actix_rt::test]
async fn every_bad_document_is_rejected_naming_what_is_wrong_and_the_next_good_one_applies() {
    let h = harness();
    h.actor.send(Reload { state: present("[log]\nlevel = \"warn\"", "1") }).await.expect("actor alive");
    let good = in_force(&h.config);
    assert_eq!(good.0, 1);
    let cases = corpus();
    assert!(cases.len() >= 60, "{} cases", cases.len());

    for (i, (case, document, names)) in cases.into_iter().enumerate() {
        let rv = (i + 2).to_string();
        h.actor.send(Reload { state: present(&document, &rv) }).await.expect("the actor survived");
        let last = h.config.last_reload().expect("recorded");
        let error = last.error.clone().unwrap_or_default();
        assert_eq!(last.outcome.as_str(), "rejected", "{case}: {error}");
        assert!(error.contains(names), "{case}: the error names {names:?}: {error}");
        assert!(!error.contains(SECRET), "{case}: the secret leaked: {error}");
        assert!(!error.contains('\n'), "{case}: one line: {error:?}");
        assert!(error.len() < 1024, "{case}: a bounded message ({} bytes)", error.len());
        assert_eq!(in_force(&h.config), good, "{case}: the last good configuration stays");
        assert_eq!(h.config.current().settings.admin.token.expose(), SECRET, "{case}");
    }
    let notes = h.events.notes();
    assert!(notes.iter().all(|n| !n.contains(SECRET)), "no Event note carries the secret");

    // The recovery peers got wrong: the next valid document applies.
    h.actor.send(Reload { state: present("[log]\nlevel = \"debug\"", "1000") }).await.expect("actor alive");
    assert_eq!(h.config.last_reload().expect("recorded").outcome.as_str(), "applied");
    assert_eq!((h.config.current().generation, h.config.current().settings.log.level.as_str()), (2, "debug"));
}

#[actix_rt::test]
async fn a_configmap_without_the_data_key_is_rejected_and_recovered_from() {
    let h = harness();
    let only = |data: BTreeMap<String, String>, rv: &str| {
        ConfigMapState::Present(ConfigMapVersion { data, resource_version: Some(rv.into()), uid: None })
    };
    // Empty data, another key only, or the TOML in `binaryData` (which the broker does not read).
    for (rv, data) in [
        ("1", BTreeMap::new()),
        ("2", BTreeMap::from([("broker.yaml".to_owned(), "log: {}".to_owned())])),
        ("3", BTreeMap::from([("Broker.toml".to_owned(), "[log]\nlevel = \"debug\"".to_owned())])),
    ] {
        h.actor.send(Reload { state: only(data, rv) }).await.expect("actor alive");
        let error = h.config.last_reload().and_then(|l| l.error).unwrap_or_default();
        assert!(error.contains("has no data key broker.toml"), "{error}");
        assert_eq!(h.config.current().generation, 0);
    }
    h.actor.send(Reload { state: present("", "4") }).await.expect("actor alive");
    assert_eq!(h.config.last_reload().expect("recorded").outcome.as_str(), "unchanged", "an empty document is valid");
}

#[test]
fn invalid_environment_overrides_are_refused_at_start_naming_the_variable() {
    let cases = [
        ("BROKKR__LOG", "info"),
        ("BROKKR__NOPE__LEVEL", "info"),
        ("BROKKR__LOG__LEVLE", "info"),
        ("BROKKR__CONFIG_RELOAD__DEBOUNCE", "2 parsecs"),
        ("BROKKR__CONFIG_RELOAD__ENABLED", "maybe"),
        ("BROKKR__CORS__ALLOWED_ORIGINS", "https://a.example"),
        ("BROKKR__SERVER__LISTEN", "nowhere"),
        ("BROKKR__ADMIN__TOKEN", "has space"),
    ];
    for (var, value) in cases {
        let mut vars = vec![(var.to_owned(), value.to_owned())];
        if var != "BROKKR__ADMIN__TOKEN" {
            vars.insert(0, ("BROKKR__ADMIN__TOKEN".to_owned(), SECRET.to_owned()));
        }
        let err = ConfigLayers::new().with_env(vars).expect_err(var);
        let shown = err.to_string();
        let named =
            shown.contains(var) || err.key().is_some_and(|k| var.to_ascii_lowercase().ends_with(&k.replace('.', "__")));
        assert!(named, "{var}: {shown}");
        assert!(!shown.contains(SECRET), "{var}: {shown}");
    }
}
