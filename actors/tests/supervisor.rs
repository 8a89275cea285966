//! A watcher that fails is restarted by its supervisor after an exponential, jittered backoff, and the restarted
//! watch lists afresh; an unchanged ConfigMap then gives an `unchanged` outcome, not a spurious reload.

mod support;

use std::{sync::Arc, time::Duration};

use actix::Actor;
use brokkr_config::{ConfigLayers, ReloadableConfig};
use brokkr_reload::{
    ConfigMapObserved, ReloadMetrics, Subsystem, WatcherState, WatcherStatus, WatcherSupervisor, backoff::Backoff,
};
use kube::runtime::watcher;
use support::{FakeSource, Probe, configmap, run_for, settle};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[actix_rt::test]
async fn a_watcher_error_leads_to_a_supervised_restart_with_growing_backoff() {
    tokio::time::pause();
    let source = FakeSource::default();
    let (probe, seen) = Probe::<ConfigMapObserved>::new();
    let status = WatcherStatus::new(WatcherState::Listing);
    let metrics = ReloadMetrics::default();
    let backoff = Backoff::default().initial(Duration::from_secs(1)).max(Duration::from_secs(8));
    WatcherSupervisor::new(Arc::new(source.clone()), probe.start().recipient(), metrics.clone(), status.clone())
        .backoff(backoff)
        .start();
    settle().await;
    assert_eq!(source.watches_opened(), 1);
    source.emit_list(Some(configmap("", "1")));
    settle().await;
    assert_eq!(status.get().0, WatcherState::Watching);
    assert_eq!(seen.lock().expect("lock").len(), 1);

    source.emit(Err(watcher::Error::NoResourceVersion));
    run_for(ms(450)).await;
    assert!(matches!(status.get(), (WatcherState::Backoff(_), 0)), "{:?}", status.get());
    assert_eq!(source.watches_opened(), 1, "first delay is at least half of 1 s");
    run_for(ms(600)).await;
    assert_eq!(source.watches_opened(), 2, "restarted within 1 s");
    assert_eq!((status.get().1, metrics.watcher_restarts.get()), (1, 1));

    source.emit(Err(watcher::Error::NoResourceVersion));
    run_for(ms(950)).await;
    assert_eq!(source.watches_opened(), 2, "second delay is at least half of 2 s");
    run_for(ms(1100)).await;
    assert_eq!(source.watches_opened(), 3, "restarted within 2 s");

    source.emit_list(Some(configmap("", "1")));
    settle().await;
    assert_eq!(status.get(), (WatcherState::Watching, 2));
    let observed = seen.lock().expect("lock");
    assert_eq!(observed.len(), 2, "the restarted watch re-listed");
    assert!(observed.iter().all(|o| o.initial));
}

#[actix_rt::test]
async fn a_relist_after_restart_with_the_same_configmap_is_unchanged() {
    tokio::time::pause();
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let source = FakeSource::default();
    let subsystem =
        Subsystem::register(Arc::new(source.clone()), config.clone(), layers, ReloadMetrics::default(), None);
    settle().await;
    let document = "[log]\nlevel = \"debug\"";
    source.emit_list(Some(configmap(document, "5")));
    settle().await;
    assert_eq!((config.current().generation, subsystem.is_ready()), (1, true));

    source.emit(Err(watcher::Error::NoResourceVersion));
    run_for(Duration::from_secs(2)).await;
    assert_eq!(source.watches_opened(), 2);
    source.emit_list(Some(configmap(document, "5")));
    settle().await;
    assert_eq!(config.current().generation, 1);
    assert_eq!(config.last_reload().expect("recorded").outcome, "unchanged");
}
