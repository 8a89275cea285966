//! The debounce window coalesces bursts, bounds churn by max-wait, never drops a change, and follows the live
//! `config_reload.debounce` / `max_wait` settings. Time is paused: a 5 s window takes microseconds.

mod support;

use std::time::Duration;

use actix::{Actor, Addr};
use brokkr_config::{ConfigLayers, ReloadableConfig, layers::LayerText};
use brokkr_reload::{ConfigMapObserved, ConfigMapState, DebounceActor, Reload, ReloadMetrics};
use support::{Probe, present, run_for, settle};

fn start(config: &ReloadableConfig) -> (Addr<DebounceActor>, std::sync::Arc<std::sync::Mutex<Vec<Reload>>>) {
    let (probe, seen) = Probe::<Reload>::new();
    let debounce = DebounceActor::new(config.clone(), probe.start().recipient(), ReloadMetrics::default()).start();
    (debounce, seen)
}

fn change(addr: &Addr<DebounceActor>, rv: &str) {
    addr.do_send(ConfigMapObserved { state: present(&format!("# {rv}"), rv), initial: false });
}

fn versions(seen: &std::sync::Mutex<Vec<Reload>>) -> Vec<String> {
    seen.lock()
        .expect("lock")
        .iter()
        .map(|r| match &r.state {
            ConfigMapState::Present(v) => v.resource_version.clone().unwrap_or_default(),
            ConfigMapState::Absent => "absent".into(),
        })
        .collect()
}

fn defaults() -> ReloadableConfig {
    ReloadableConfig::new(ConfigLayers::new().build(None).expect("defaults").settings)
}

#[actix_rt::test]
async fn a_burst_coalesces_into_one_reload_of_the_latest_state() {
    tokio::time::pause();
    let (debounce, seen) = start(&defaults());
    for rv in 1..=50 {
        change(&debounce, &rv.to_string());
        run_for(Duration::from_millis(50)).await;
    }
    run_for(Duration::from_millis(4900)).await;
    assert!(versions(&seen).is_empty(), "still inside the 5 s quiet window");
    run_for(Duration::from_millis(200)).await;
    assert_eq!(versions(&seen), ["50"]);
}

#[actix_rt::test]
async fn constant_churn_still_reloads_at_least_every_max_wait() {
    tokio::time::pause();
    let (debounce, seen) = start(&defaults());
    // A change every 0.7 s for 61 s never leaves a 5 s quiet window; max-wait (20 s) must force reloads.
    // Windows open at 0 s, 20.3 s and 40.6 s and close 20 s later with the newest change seen.
    for rv in 0..88 {
        change(&debounce, &rv.to_string());
        run_for(Duration::from_millis(700)).await;
    }
    assert_eq!(versions(&seen), ["28", "57", "86"]);
}

#[actix_rt::test]
async fn a_change_arriving_right_after_a_reload_is_applied() {
    tokio::time::pause();
    let (debounce, seen) = start(&defaults());
    change(&debounce, "1");
    run_for(Duration::from_millis(5001)).await;
    assert_eq!(versions(&seen), ["1"]);
    change(&debounce, "2");
    run_for(Duration::from_millis(5001)).await;
    assert_eq!(versions(&seen), ["1", "2"], "the second change opened its own window");
}

#[actix_rt::test]
async fn the_initial_list_is_forwarded_at_once_and_supersedes_a_pending_change() {
    tokio::time::pause();
    let (debounce, seen) = start(&defaults());
    change(&debounce, "1");
    debounce.do_send(ConfigMapObserved { state: present("", "2"), initial: true });
    settle().await;
    assert_eq!(versions(&seen), ["2"]);
    run_for(Duration::from_secs(30)).await;
    assert_eq!(versions(&seen), ["2"], "the flushed window's timers do not fire again");
}

#[actix_rt::test]
async fn a_new_debounce_setting_changes_the_window_live() {
    tokio::time::pause();
    let layers = ConfigLayers::new();
    let config = defaults();
    let (debounce, seen) = start(&config);
    let text = "[config_reload]\ndebounce = \"1s\"\nmax_wait = \"2s\"".to_owned();
    let outcome = config.reload(layers.build(Some(&LayerText { origin: "test".into(), text })), None);
    assert_eq!(outcome.label().as_str(), "applied");

    change(&debounce, "1");
    run_for(Duration::from_millis(1001)).await;
    assert_eq!(versions(&seen), ["1"], "reloaded after the new 1 s window, not the default 5 s");

    // Changes every 0.3 s from 1.0 s to 2.8 s: the 1 s quiet window never elapses, max_wait closes it at 3.0 s.
    for rv in 2..=8 {
        change(&debounce, &rv.to_string());
        run_for(Duration::from_millis(300)).await;
    }
    assert_eq!(versions(&seen), ["1", "8"], "max_wait of 2 s bounds the churn");
}
