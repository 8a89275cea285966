//! The warning that `BROKKR__*` variables override ConfigMap keys is written when that set changes, not on every
//! re-read. Alone in its test binary: tracing caches per-callsite interest process-wide.

mod support;

use std::sync::Arc;

use actix::Actor;
use brokkr_config::{ConfigLayers, ReloadableConfig};
use brokkr_reload::{ConfigActor, Reload, ReloadMetrics};
use brokkr_testenv::CapturedLog;
use support::{FakeSource, present};

#[actix_rt::test]
async fn the_shadowed_keys_warning_is_written_once_per_set() {
    let captured = CapturedLog::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber("warn"));
    let layers =
        ConfigLayers::new().with_env([("BROKKR__CORS__MAX_AGE".to_owned(), "2m".to_owned())]).expect("valid env");
    let config = ReloadableConfig::new(layers.build(None).expect("valid").settings);
    let actor =
        ConfigActor::new(config.clone(), layers, Arc::new(FakeSource::default()), ReloadMetrics::default()).start();
    let warnings = || captured.text().matches("overridden by BROKKR__").count();

    let shadowed = "[cors]\nmax_age = \"1m\"";
    actor.send(Reload { state: present(shadowed, "1") }).await.expect("actor alive");
    actor.send(Reload { state: present(shadowed, "2") }).await.expect("actor alive"); // a re-read
    actor.send(Reload { state: present(&format!("{shadowed}\n[log]\nlevel = \"debug\""), "3") }).await.expect("alive");
    assert_eq!(warnings(), 1, "{}", captured.text());

    actor.send(Reload { state: present("[log]\nlevel = \"debug\"", "4") }).await.expect("actor alive");
    actor.send(Reload { state: present(shadowed, "5") }).await.expect("actor alive");
    assert_eq!(warnings(), 2, "shadowing that comes back is news again: {}", captured.text());
}
