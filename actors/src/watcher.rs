//! Follows the broker's ConfigMap through a kube-runtime watch and forwards what it sees; never applies anything.

use std::sync::Arc;

use actix::{Actor, ActorContext, AsyncContext, Context, Recipient, StreamHandler};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher;
use tracing::{debug, warn};

use crate::{
    messages::{ConfigMapObserved, ConfigMapState, WatcherStatusChanged},
    metrics::ReloadMetrics,
    source::{ConfigMapSource, state_of},
    status::WatcherState,
};

/// Watches one ConfigMap.
///
/// Lifecycle: `started` opens a new watch (which lists first) with `ctx.add_stream`. After the initial list it
/// forwards the ConfigMap, or [`ConfigMapState::Absent`] when there is none; then every change. On the first
/// API error it reports [`WatcherState::Failed`] to its supervisor and stops; the supervisor decides when a new
/// one starts. It is never restarted in place, so every restart begins with a fresh list.
pub struct WatcherActor {
    source: Arc<dyn ConfigMapSource>,
    forward: Recipient<ConfigMapObserved>,
    report: Recipient<WatcherStatusChanged>,
    metrics: ReloadMetrics,
    listed: Option<ConfigMap>,
}

impl WatcherActor {
    /// A watcher of `source` that forwards to `forward` and reports its state to `report`.
    #[must_use]
    pub fn new(
        source: Arc<dyn ConfigMapSource>,
        forward: Recipient<ConfigMapObserved>,
        report: Recipient<WatcherStatusChanged>,
        metrics: ReloadMetrics,
    ) -> Self {
        Self { source, forward, report, metrics, listed: None }
    }

    fn observe(&self, state: ConfigMapState, initial: bool) {
        self.metrics.watch_events.inc();
        self.forward.do_send(ConfigMapObserved { state, initial });
    }
}

impl Actor for WatcherActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        debug!(configmap = %self.source.describe(), "starting watch");
        self.report.do_send(WatcherStatusChanged { state: WatcherState::Listing });
        ctx.add_stream(self.source.watch());
    }
}

impl StreamHandler<Result<watcher::Event<ConfigMap>, watcher::Error>> for WatcherActor {
    fn handle(&mut self, item: Result<watcher::Event<ConfigMap>, watcher::Error>, ctx: &mut Self::Context) {
        let configmap = self.source.describe();
        match item {
            Ok(watcher::Event::Init) => self.listed = None,
            Ok(watcher::Event::InitApply(cm)) => self.listed = Some(cm),
            Ok(watcher::Event::InitDone) => {
                self.report.do_send(WatcherStatusChanged { state: WatcherState::Watching });
                match self.listed.take() {
                    Some(cm) => self.observe(state_of(&cm), true),
                    None => {
                        warn!(%configmap, "ConfigMap not found; keeping the last good configuration");
                        self.observe(ConfigMapState::Absent, true);
                    }
                }
            }
            Ok(watcher::Event::Apply(cm)) => self.observe(state_of(&cm), false),
            Ok(watcher::Event::Delete(_)) => {
                warn!(%configmap, "ConfigMap deleted; keeping the last good configuration");
                self.observe(ConfigMapState::Absent, false);
            }
            Err(error) => {
                warn!(%configmap, error = %error, "watch failed; the supervisor will restart it");
                self.report.do_send(WatcherStatusChanged { state: WatcherState::Failed(error.to_string()) });
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // kube's watcher never ends on its own; if it does, treat it as a failure so the supervisor restarts it.
        self.report.do_send(WatcherStatusChanged { state: WatcherState::Failed("watch stream ended".into()) });
        ctx.stop();
    }
}
