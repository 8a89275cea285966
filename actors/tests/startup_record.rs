//! The history's start-up record says what start-up judged: a ConfigMap rejected at start-up names its version, so
//! that `kubectl brokkr rollout-status` reports the rejection instead of a replica that wrote nothing.

mod support;

use std::{sync::Arc, time::Duration};

use brokkr_config::{ConfigLayers, ReloadableConfig};
use brokkr_reload::{
    pod_status::{self, OUTCOME, SEEN},
    startup::{Startup, read_startup, startup_record},
};
use support::{FakeSource, present};

#[tokio::test]
async fn a_configmap_rejected_at_start_up_is_recorded_with_its_version() {
    let layers = ConfigLayers::new();
    let boot = layers.build(None).expect("defaults").settings;
    let source = FakeSource::default();
    source.set_state(present("[cors]\nmax_age = \"forever\"", "41"));
    let startup = read_startup(Arc::new(source.clone()), &layers, &boot, Duration::from_secs(5)).await;
    assert!(matches!(startup, Startup::Invalid { .. }), "{startup:?}");
    let config = ReloadableConfig::new(boot.clone());
    let record = startup_record(&startup, &config).expect("a record");
    assert_eq!(
        (record.trigger.as_str(), record.outcome.as_str(), record.resource_version.as_deref()),
        ("start-up", "rejected", Some("41"))
    );
    let said = pod_status::annotations(&record, &config.current());
    assert_eq!((said[SEEN].as_str(), said[OUTCOME].as_str()), ("41", "rejected"));

    source.set_state(present("[cors]\nmax_age = \"2m\"", "42"));
    let startup = read_startup(Arc::new(source), &layers, &boot, Duration::from_secs(5)).await;
    let Startup::FromConfigMap { candidate, source } = &startup else { panic!("{startup:?}") };
    let config = ReloadableConfig::starting(candidate.settings.clone(), Some(source.clone()));
    let record = startup_record(&startup, &config).expect("a record");
    assert_eq!((record.outcome.as_str(), record.resource_version.as_deref()), ("applied", Some("42")));
}
