//! A ConfigMap update that changes only labels or annotations (new resourceVersion, same data) logs nothing at
//! INFO, records no Event and keeps the generation. Alone in its test binary: tracing caches per-callsite interest
//! process-wide, so a log capture shared with tests on other threads could miss lines.

mod support;

use std::sync::Arc;

use actix::Actor;
use brokkr_config::{ConfigLayers, ReloadableConfig};
use brokkr_reload::{ConfigActor, Reload, ReloadMetrics};
use brokkr_testenv::CapturedLog;
use support::{FakeSource, RecordedEvents, present};

#[actix_rt::test]
async fn a_metadata_only_update_logs_nothing_at_info_and_records_no_event() {
    let captured = CapturedLog::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber("info"));
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let events = RecordedEvents::default();
    let source = Arc::new(FakeSource::default());
    let actor = ConfigActor::new(config.clone(), layers, source, ReloadMetrics::default())
        .events(Arc::new(events.clone()))
        .start();
    let document = "[log]\nlevel = \"debug\"";
    actor.send(Reload { state: present(document, "1") }).await.expect("actor alive");
    assert!(captured.text().contains("configuration applied"), "{}", captured.text());
    captured.clear();
    let events_before = events.reasons().len();

    // Labels or annotations changed: new resourceVersion, same data.
    actor.send(Reload { state: present(document, "2") }).await.expect("actor alive");

    assert_eq!(captured.text(), "", "nothing logged at INFO");
    assert_eq!(events.reasons().len(), events_before, "no Event");
    assert_eq!(config.current().generation, 1);
    assert_eq!(config.current().source.clone().and_then(|s| s.resource_version).as_deref(), Some("2"));
}
