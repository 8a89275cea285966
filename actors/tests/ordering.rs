//! Every path that applies (watch, resync, on demand) agrees on one order: a read that completes late never rolls
//! back a newer version, and a read that never completes neither blocks a caller nor stops the periodic resync.

mod support;

use std::{sync::Arc, time::Duration};

use actix::{Actor, Addr};
use brokkr_config::{ConfigLayers, ReloadableConfig};
use brokkr_reload::{ConfigActor, Reload, ReloadMetrics, ReloadNow};
use kube::runtime::watcher;
use support::{FakeSource, configmap, present, run_for, settle};

const V1: &str = "[cors]\nallowed_origins = [\"https://one.example\"]";
const V2: &str = "[cors]\nallowed_origins = [\"https://two.example\"]";

fn start() -> (Addr<ConfigActor>, ReloadableConfig, FakeSource) {
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let source = FakeSource::default();
    let actor = ConfigActor::new(config.clone(), layers, Arc::new(source.clone()), ReloadMetrics::default()).start();
    (actor, config, source)
}

fn in_force(config: &ReloadableConfig) -> (Vec<String>, Option<String>) {
    let now = config.current();
    (now.settings.cors.allowed_origins.clone(), now.source.clone().and_then(|s| s.resource_version))
}

#[actix_rt::test]
async fn a_slow_on_demand_read_never_rolls_back_a_newer_watch_apply() {
    let (actor, config, source) = start();
    source.set_state(present(V1, "1"));
    let gate = source.hold_reads();
    let on_demand = actix_rt::spawn(actor.send(ReloadNow));
    settle().await;

    // Meanwhile the watch delivers rv2, and the API server now answers rv2 as well.
    actor.send(Reload { state: present(V2, "2") }).await.expect("actor alive");
    source.set_state(present(V2, "2"));
    gate.release();
    let report = on_demand.await.expect("joined").expect("actor alive").expect("read succeeds");

    assert_eq!(in_force(&config), (vec!["https://two.example".to_owned()], Some("2".to_owned())));
    assert_eq!(report.generation, config.current().generation, "the report describes what is in force");
}

#[actix_rt::test]
async fn concurrent_on_demand_reads_apply_in_issue_order_never_older_last() {
    let (actor, config, source) = start();
    source.set_state(present(V1, "1"));
    let first_gate = source.hold_reads();
    let first = actix_rt::spawn(actor.send(ReloadNow));
    settle().await;
    source.set_state(present(V2, "2"));
    let second_gate = source.hold_reads();
    let second = actix_rt::spawn(actor.send(ReloadNow));
    settle().await;

    // The newer read completes first; the older one completes last and must not win.
    second_gate.release();
    second.await.expect("joined").expect("actor alive").expect("read succeeds");
    first_gate.release();
    first.await.expect("joined").expect("actor alive").expect("read succeeds");

    assert_eq!(in_force(&config), (vec!["https://two.example".to_owned()], Some("2".to_owned())));
}

#[actix_rt::test]
async fn a_slow_resync_read_never_rolls_back_a_newer_watch_apply() {
    tokio::time::pause();
    let (actor, config, source) = start();
    source.set_state(present(V1, "1"));
    let gate = source.hold_reads();
    run_for(Duration::from_secs(301)).await;
    assert_eq!(source.reads(), 1, "the resync read is in flight");

    actor.send(Reload { state: present(V2, "2") }).await.expect("actor alive");
    gate.release();
    settle().await;

    assert_eq!(in_force(&config), (vec!["https://two.example".to_owned()], Some("2".to_owned())));
}

#[actix_rt::test]
async fn a_read_that_never_answers_times_out_and_the_resync_goes_on() {
    tokio::time::pause();
    let (actor, config, source) = start();
    source.set_state(present(V1, "1"));
    let gate = source.hold_reads();
    drop(gate); // every read hangs, like one sent on a silently dead connection

    let answer = tokio::time::timeout(Duration::from_secs(60), actor.send(ReloadNow)).await;
    let report = answer.expect("an on-demand reload answers in bounded time").expect("actor alive");
    assert!(report.is_err(), "a read that never answers is an error: {report:?}");

    let before = source.reads();
    run_for(Duration::from_secs(301)).await;
    assert_eq!(source.reads(), before + 1, "first resync read issued");
    run_for(Duration::from_secs(301)).await;
    assert_eq!(source.reads(), before + 2, "the resync is rescheduled although the last read never answered");
    assert_eq!(config.current().generation, 0);
}

#[actix_rt::test]
async fn a_debounce_window_closing_after_an_on_demand_read_never_rolls_back() {
    tokio::time::pause();
    let source = FakeSource::default();
    let (config, subsystem) = support::register_on(&source);
    let actor = subsystem.config_actor.clone().expect("registered");
    settle().await;
    source.emit_list(Some(configmap("", "1")));
    settle().await;

    // rv2 arrives through the watch and waits out the 5 s quiet window; meanwhile an operator reloads rv3.
    source.emit(Ok(watcher::Event::Apply(configmap(V1, "2"))));
    settle().await;
    source.set_state(present(V2, "3"));
    actor.send(ReloadNow).await.expect("actor alive").expect("read succeeds");
    assert_eq!(in_force(&config).1.as_deref(), Some("3"));
    run_for(Duration::from_secs(6)).await;

    assert_eq!(in_force(&config), (vec!["https://two.example".to_owned()], Some("3".to_owned())));
}

#[actix_rt::test]
async fn without_comparable_resource_versions_an_overtaken_read_is_read_again() {
    let (actor, config, source) = start();
    source.set_state(present(V1, "v-one"));
    let gate = source.hold_reads();
    let on_demand = actix_rt::spawn(actor.send(ReloadNow));
    settle().await;
    actor.send(Reload { state: present(V2, "v-two") }).await.expect("actor alive");
    source.set_state(present(V2, "v-two"));
    source.release_reads(); // the retry answers at once
    gate.release(); // the first read answers v-one, after v-two was applied: it is read again
    let report = on_demand.await.expect("joined").expect("actor alive").expect("read succeeds");
    assert_eq!(in_force(&config), (vec!["https://two.example".to_owned()], Some("v-two".to_owned())));
    assert_eq!(report.outcome.as_str(), "unchanged", "the retry read the version already in force");
}

#[actix_rt::test]
async fn after_an_etcd_restore_a_consistent_read_of_a_lower_version_is_applied() {
    let (actor, config, source) = start();
    actor.send(Reload { state: present(V1, "100") }).await.expect("actor alive");
    // etcd restored from an older backup: resourceVersions went back. A read with nothing applied meanwhile is the
    // truth, not a late answer.
    source.set_state(present(V2, "5"));
    let report = actor.send(ReloadNow).await.expect("actor alive").expect("read succeeds");
    assert_eq!(report.outcome.as_str(), "applied", "{report:?}");
    assert_eq!(in_force(&config), (vec!["https://two.example".to_owned()], Some("5".to_owned())));
    // And the watch follows from there.
    actor.send(Reload { state: present(V1, "6") }).await.expect("actor alive");
    assert_eq!(in_force(&config).1.as_deref(), Some("6"));
}
