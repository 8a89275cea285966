//! Test doubles for the actor tests: a scriptable ConfigMap source and a probe that records what it receives.
#![allow(dead_code, reason = "each test file uses a different part of the support module")]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::{Actor, Context, Handler, Message};
use brokkr_config::{ReloadOutcome, SourceRef};
use brokkr_reload::{
    ConfigMapSource, ConfigMapState, ConfigMapVersion,
    events::{News, ReloadEvents, events_for},
    source::WatchStream,
};
use futures::{FutureExt, StreamExt, future::BoxFuture};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher;
use tokio::sync::mpsc;

/// The state of a ConfigMap whose `broker.toml` is `toml`.
pub fn present(toml: &str, resource_version: &str) -> ConfigMapState {
    ConfigMapState::Present(ConfigMapVersion {
        data: BTreeMap::from([("broker.toml".to_owned(), toml.to_owned())]),
        resource_version: Some(resource_version.to_owned()),
        uid: Some("uid-1".to_owned()),
    })
}

/// A ConfigMap object whose `broker.toml` is `toml`.
pub fn configmap(toml: &str, resource_version: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("brokkr-broker".into());
    cm.metadata.namespace = Some("test".into());
    cm.metadata.resource_version = Some(resource_version.into());
    cm.data = Some(BTreeMap::from([("broker.toml".to_owned(), toml.to_owned())]));
    cm
}

type WatchItem = Result<watcher::Event<ConfigMap>, watcher::Error>;

/// A ConfigMap source driven by the test: every `watch()` opens a new channel the test can feed, and
/// `read()` answers with the state last set.
#[derive(Clone, Default)]
pub struct FakeSource {
    watches: Arc<Mutex<Vec<mpsc::UnboundedSender<WatchItem>>>>,
    state: Arc<Mutex<Option<ConfigMapState>>>,
    reads: Arc<Mutex<u32>>,
    gate: Arc<Mutex<Option<tokio::sync::watch::Receiver<bool>>>>,
}

/// Holds every `read()` issued while it is closed; dropping it without `release` keeps them pending forever.
pub struct ReadGate(tokio::sync::watch::Sender<bool>);

impl ReadGate {
    /// Lets every held read (and every later one) complete.
    pub fn release(&self) {
        self.0.send_replace(true);
    }
}

impl FakeSource {
    /// How many watches were opened (1 + restarts).
    pub fn watches_opened(&self) -> usize {
        self.watches.lock().expect("lock").len()
    }

    /// Sends an item on the newest watch.
    pub fn emit(&self, item: WatchItem) {
        let watches = self.watches.lock().expect("lock");
        watches.last().expect("a watch is open").send(item).expect("watch is alive");
    }

    /// Emits an initial list holding `cm` (or nothing).
    pub fn emit_list(&self, cm: Option<ConfigMap>) {
        self.emit(Ok(watcher::Event::Init));
        if let Some(cm) = cm {
            self.emit(Ok(watcher::Event::InitApply(cm)));
        }
        self.emit(Ok(watcher::Event::InitDone));
    }

    /// What `read()` returns from now on.
    pub fn set_state(&self, state: ConfigMapState) {
        *self.state.lock().expect("lock") = Some(state);
    }

    /// From now on, every `read()` captures the state at once (as the API server would answer) but completes only
    /// when the returned gate is released: a slow read.
    pub fn hold_reads(&self) -> ReadGate {
        let (tx, rx) = tokio::sync::watch::channel(false);
        *self.gate.lock().expect("lock") = Some(rx);
        ReadGate(tx)
    }

    /// From now on, `read()` answers at once again (reads already held stay held until their gate is released).
    pub fn release_reads(&self) {
        *self.gate.lock().expect("lock") = None;
    }

    /// How many times `read()` was called.
    pub fn reads(&self) -> u32 {
        *self.reads.lock().expect("lock")
    }
}

impl ConfigMapSource for FakeSource {
    fn watch(&self) -> WatchStream {
        let (tx, rx) = mpsc::unbounded_channel();
        self.watches.lock().expect("lock").push(tx);
        tokio_stream_from(rx)
    }

    fn read(&self) -> BoxFuture<'static, Result<ConfigMapState, kube::Error>> {
        *self.reads.lock().expect("lock") += 1;
        let state = self.state.lock().expect("lock").clone().unwrap_or(ConfigMapState::Absent);
        let gate = self.gate.lock().expect("lock").clone();
        async move {
            if let Some(mut gate) = gate {
                // A sender dropped without release keeps the read pending, like a dead connection.
                if gate.wait_for(|open| *open).await.is_err() {
                    futures::future::pending::<()>().await;
                }
            }
            Ok(state)
        }
        .boxed()
    }

    fn namespace(&self) -> String {
        "test".into()
    }

    fn describe(&self) -> String {
        "test/brokkr-broker".into()
    }
}

fn tokio_stream_from(mut rx: mpsc::UnboundedReceiver<WatchItem>) -> WatchStream {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// An actor that records every `M` it receives.
pub struct Probe<M> {
    seen: Arc<Mutex<Vec<M>>>,
}

impl<M> Probe<M> {
    /// A probe and the list it fills.
    pub fn new() -> (Self, Arc<Mutex<Vec<M>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        (Self { seen: seen.clone() }, seen)
    }
}

impl<M: Message<Result = ()> + Unpin + 'static> Actor for Probe<M> {
    type Context = Context<Self>;
}

impl<M: Message<Result = ()> + Unpin + 'static> Handler<M> for Probe<M> {
    type Result = ();

    fn handle(&mut self, msg: M, _: &mut Self::Context) {
        self.seen.lock().expect("lock").push(msg);
    }
}

/// Lets paused time run for `d` (auto-advanced instantly) so actors handle what is due.
pub async fn run_for(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Lets every ready actor handle its mailbox without advancing the clock past the next timer.
pub async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Every Event the `ConfigActor` asks for, rendered as `events_for` renders it for the API server. Clones share it.
#[derive(Clone, Default)]
pub struct RecordedEvents(Arc<Mutex<Vec<Recorded>>>);

/// One Event's reason and note.
type Recorded = (String, Option<String>);

impl ReloadEvents for RecordedEvents {
    fn reloaded(&self, _: &SourceRef, outcome: &ReloadOutcome, news: News) {
        let events = events_for(outcome, news).into_iter().map(|e| (e.reason, e.note));
        self.0.lock().expect("lock").extend(events);
    }
}

impl RecordedEvents {
    /// The reasons, in order (`ConfigApplied`, `ConfigRejected`, …).
    pub fn reasons(&self) -> Vec<String> {
        self.0.lock().expect("lock").iter().map(|(reason, _)| reason.clone()).collect()
    }

    /// How many Events had `reason`.
    pub fn count(&self, reason: &str) -> usize {
        self.reasons().iter().filter(|r| *r == reason).count()
    }

    /// The notes, in order.
    pub fn notes(&self) -> Vec<String> {
        self.0.lock().expect("lock").iter().filter_map(|(_, note)| note.clone()).collect()
    }
}

/// The whole subsystem on `source`, with the built-in defaults in force and no Events: what a test then drives
/// through the source.
pub fn register_on(source: &FakeSource) -> (brokkr_config::ReloadableConfig, brokkr_reload::Subsystem) {
    let layers = brokkr_config::ConfigLayers::new();
    let config = brokkr_config::ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let metrics = brokkr_reload::ReloadMetrics::default();
    let subsystem = brokkr_reload::Subsystem::register(
        Arc::new(source.clone()),
        config.clone(),
        layers,
        metrics,
        None,
        &Default::default(),
    );
    (config, subsystem)
}
