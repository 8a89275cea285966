//! A watcher that fails is restarted by its supervisor after an exponential, jittered backoff, and the restarted
//! watch lists afresh; an unchanged ConfigMap then gives an `unchanged` outcome, not a spurious reload.

mod support;

use std::{sync::Arc, time::Duration};

use actix::Actor;
use brokkr_reload::{ConfigMapObserved, ReloadMetrics, WatcherState, WatcherStatus, WatcherSupervisor};
use kube::runtime::{
    utils::ResetTimerBackoff,
    watcher::{self, ExponentialBackoff},
};
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
    // Known delays without jitter: 1 s, 2 s, 4 s, 8 s.
    let exponential = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(8))
        .with_factor(2.0)
        .without_max_times();
    let backoff = ResetTimerBackoff::new(ExponentialBackoff::from(exponential), Duration::from_secs(120));
    WatcherSupervisor::new(Arc::new(source.clone()), probe.start().recipient(), metrics.clone(), status.clone())
        .backoff(backoff)
        .start();
    settle().await;
    assert_eq!(source.watches_opened(), 1);
    source.emit_list(Some(configmap("", "1")));
    run_for(Duration::from_secs(2)).await;
    assert_eq!(status.get().0, WatcherState::Watching);
    assert_eq!(seen.lock().expect("lock").len(), 1);

    source.emit(Err(watcher::Error::NoResourceVersion));
    run_for(ms(950)).await;
    assert!(matches!(status.get(), (WatcherState::Backoff(_), 0)), "{:?}", status.get());
    assert_eq!(source.watches_opened(), 1, "first delay is 1 s");
    run_for(ms(100)).await;
    assert_eq!(source.watches_opened(), 2, "restarted after 1 s");
    assert_eq!((status.get().1, metrics.watcher_restarts.get()), (1, 1));

    source.emit(Err(watcher::Error::NoResourceVersion));
    run_for(ms(1950)).await;
    assert_eq!(source.watches_opened(), 2, "second delay is 2 s");
    run_for(ms(100)).await;
    assert_eq!(source.watches_opened(), 3, "restarted after 2 s");

    source.emit_list(Some(configmap("", "1")));
    run_for(Duration::from_secs(2)).await;
    assert_eq!(status.get(), (WatcherState::Watching, 2));
    let observed = seen.lock().expect("lock");
    assert_eq!(observed.len(), 2, "the restarted watch re-listed");
    assert!(observed.iter().all(|o| o.initial));
}

#[actix_rt::test]
async fn a_relist_after_restart_with_the_same_configmap_is_unchanged() {
    tokio::time::pause();
    let source = FakeSource::default();
    let (config, subsystem) = support::register_on(&source);
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
    assert_eq!(config.last_reload().expect("recorded").outcome.as_str(), "unchanged");
}

/// Answers every watch the supervisor opens with a successful list followed at once by a failing watch, as a Role
/// without `watch`, a proxy that cuts watch requests, or API Priority and Fairness answering 429 would.
/// Returns how many watches it answered.
async fn fail_every_watch_after_its_list(source: &FakeSource, for_how_long: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + for_how_long;
    let mut answered = 0;
    while tokio::time::Instant::now() < deadline {
        if source.watches_opened() > answered {
            answered = source.watches_opened();
            source.emit_list(Some(configmap("", "1")));
            source.emit(Err(watcher::Error::NoResourceVersion));
        }
        run_for(ms(50)).await;
    }
    answered
}

fn supervise(source: &FakeSource) -> WatcherStatus {
    let (probe, _) = Probe::<ConfigMapObserved>::new();
    let status = WatcherStatus::new(WatcherState::Listing);
    WatcherSupervisor::new(
        Arc::new(source.clone()),
        probe.start().recipient(),
        ReloadMetrics::default(),
        status.clone(),
    )
    .start();
    status
}

#[actix_rt::test]
async fn a_watch_that_fails_after_every_successful_list_backs_off_instead_of_spinning() {
    tokio::time::pause();
    let source = FakeSource::default();
    supervise(&source);
    settle().await;
    fail_every_watch_after_its_list(&source, Duration::from_secs(60)).await;
    // Exponential from 0.8 s with jitter: at most 0.8 + 1.6 + 3.2 + 6.4 + 12.8 + 25.6 s fit before the cap.
    let opened = source.watches_opened();
    assert!(opened <= 8, "{opened} watches opened in 60 s of list-ok/watch-fail cycles");
}

#[actix_rt::test]
async fn the_status_says_watching_only_once_the_watch_has_held() {
    tokio::time::pause();
    let source = FakeSource::default();
    let status = supervise(&source);
    settle().await;
    source.emit_list(Some(configmap("", "1")));
    settle().await;
    assert_ne!(status.get().0, WatcherState::Watching, "listed, but no watch has been seen to hold yet");
    source.emit(Err(watcher::Error::NoResourceVersion));
    settle().await;
    assert!(matches!(status.get().0, WatcherState::Backoff(_)), "{:?}", status.get());

    run_for(Duration::from_secs(3)).await;
    assert_eq!(source.watches_opened(), 2);
    source.emit_list(Some(configmap("", "1")));
    run_for(Duration::from_secs(2)).await;
    assert_eq!(status.get().0, WatcherState::Watching, "a watch without an error for a while is watching");
}

#[actix_rt::test]
async fn the_backoff_resets_only_after_the_watch_was_healthy_for_two_minutes() {
    tokio::time::pause();
    let source = FakeSource::default();
    supervise(&source);
    settle().await;
    let answered = fail_every_watch_after_its_list(&source, Duration::from_secs(60)).await;
    while source.watches_opened() == answered {
        run_for(ms(100)).await;
    }
    let opened = source.watches_opened();
    // The last watch holds for 3 minutes; its failure is then retried after the first, short delay.
    source.emit_list(Some(configmap("", "1")));
    run_for(Duration::from_secs(180)).await;
    source.emit(Err(watcher::Error::NoResourceVersion));
    run_for(Duration::from_secs(2)).await;
    assert_eq!(source.watches_opened(), opened + 1, "restarted within the first delay (0.8 s, jitter up to 1.6 s)");
}
