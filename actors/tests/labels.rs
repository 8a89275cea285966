//! Every outcome and every trigger has its one string form, a metric series, a history entry and a Pod annotation:
//! an outcome or trigger added without them fails here, and the forms users already rely on never change.

use brokkr_config::{ConfigLayers, Outcome, ReloadableConfig};
use brokkr_reload::{
    ReloadMetrics,
    history::{ReloadHistory, ReloadRecord},
    messages::Trigger,
    pod_status::{OUTCOME, RESTART_REQUIRED, annotations},
};
use prometheus_client::{encoding::text::encode, registry::Registry};

#[test]
fn every_outcome_has_a_metric_series_with_its_string_form() {
    let mut registry = Registry::default();
    let metrics = ReloadMetrics::register(&mut registry);
    let mut text = String::new();
    encode(&mut text, &registry).expect("encodes");
    for outcome in Outcome::all() {
        let series = format!("brokkr_config_reloads_total{{outcome=\"{outcome}\"}} 0");
        assert!(text.contains(&series), "{series} is not exported before the first reload:\n{text}");
        metrics.record_reload(outcome, 1, "abc", 0);
    }
    let mut text = String::new();
    encode(&mut text, &registry).expect("encodes");
    for outcome in Outcome::all() {
        let series = format!("brokkr_config_reloads_total{{outcome=\"{outcome}\"}} 1");
        assert!(text.contains(&series), "{series} missing:\n{text}");
    }
}

#[test]
fn every_trigger_and_outcome_is_a_history_entry_and_an_annotation() {
    let triggers: Vec<&str> = Trigger::all().map(Trigger::as_str).collect();
    assert_eq!(
        triggers,
        ["start-up", "watch", "resync", "manual", "rollout", "rollback"],
        "the serialized forms must not change"
    );
    let config = ReloadableConfig::new(ConfigLayers::new().build(None).expect("defaults").settings);
    let history = ReloadHistory::default();
    let mut expected = Vec::new();
    for trigger in Trigger::all() {
        for outcome in Outcome::all() {
            let mut record = ReloadRecord::new(trigger, outcome, Vec::new());
            record.resource_version = Some(format!("{trigger}/{outcome}"));
            // The annotation says whether the version judged is in force; unchanged is in force too.
            let shown = match outcome {
                Outcome::Applied | Outcome::Unchanged => Outcome::Applied,
                Outcome::Rejected | Outcome::Unread | Outcome::Held => outcome,
            };
            let said = annotations(&record, &config.current());
            assert_eq!(said[OUTCOME], shown.as_str(), "{trigger}/{outcome}: the annotation");
            record.restart_required = vec!["server.listen".into()];
            let waiting = annotations(&record, &config.current())[OUTCOME].clone();
            assert!(waiting == outcome.as_str() || waiting == RESTART_REQUIRED, "{trigger}/{outcome}: {waiting}");
            history.record(record, 1000);
            expected.push((trigger.as_str().to_owned(), outcome.as_str().to_owned()));
        }
    }
    let json = serde_json::to_value(history.records()).expect("serializes");
    let kept: Vec<(String, String)> = json
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| (r["trigger"].as_str().unwrap_or("?").to_owned(), r["outcome"].as_str().unwrap_or("?").to_owned()))
        .collect();
    assert_eq!(kept, expected);
}
