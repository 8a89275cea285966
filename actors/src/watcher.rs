//! Follows the broker's ConfigMap through a kube-runtime watch and forwards what it sees; never applies anything.

use std::{sync::Arc, time::Duration};

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

/// How long a watch must run without an error, after its list, before the status says `watching`. A watch
/// request that is refused (403, 429) fails well within this.
pub const WATCH_CONFIRM_AFTER: Duration = Duration::from_secs(1);

/// Watches one ConfigMap.
///
/// Lifecycle: `started` opens a new watch (which lists first) with `ctx.add_stream`. After the initial list it
/// forwards the ConfigMap, or [`ConfigMapState::Absent`] when there is none, and reports `Listed`; it reports
/// `Watching` once the watch delivers an event or has run for [`WATCH_CONFIRM_AFTER`] without an error (kube's
/// watcher does not say when its watch request succeeded). Then it forwards every change. On the first
/// API error it reports [`WatcherState::Failed`] to its supervisor and stops; the supervisor decides when a new
/// one starts. It is never restarted in place, so every restart begins with a fresh list.
pub struct WatcherActor {
    source: Arc<dyn ConfigMapSource>,
    forward: Recipient<ConfigMapObserved>,
    report: Recipient<WatcherStatusChanged>,
    metrics: ReloadMetrics,
    listed: Option<ConfigMap>,
    watching: bool,
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
        Self { source, forward, report, metrics, listed: None, watching: false }
    }

    fn observe(&self, state: ConfigMapState, initial: bool) {
        self.metrics.watch_events.inc();
        self.forward.do_send(ConfigMapObserved { state, initial });
    }

    fn confirm_watching(&mut self) {
        if !self.watching {
            self.watching = true;
            self.report.do_send(WatcherStatusChanged { state: WatcherState::Watching });
        }
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
                self.report.do_send(WatcherStatusChanged { state: WatcherState::Listed });
                ctx.run_later(WATCH_CONFIRM_AFTER, |act, _| act.confirm_watching());
                match self.listed.take() {
                    Some(cm) => self.observe(state_of(&cm), true),
                    None => {
                        warn!(%configmap, "ConfigMap not found; keeping the last good configuration");
                        self.observe(ConfigMapState::Absent, true);
                    }
                }
            }
            Ok(watcher::Event::Apply(cm)) => {
                self.confirm_watching();
                self.observe(state_of(&cm), false);
            }
            Ok(watcher::Event::Delete(_)) => {
                self.confirm_watching();
                warn!(%configmap, "ConfigMap deleted; keeping the last good configuration");
                self.observe(ConfigMapState::Absent, false);
            }
            Err(error) => {
                // The API server's message, whole, could be any size and hold any characters.
                let error =
                    brokkr_config::text::clip(&error.to_string(), brokkr_config::text::ERROR_LIMIT).into_owned();
                warn!(%configmap, %error, "watch failed; the supervisor will restart it");
                self.report.do_send(WatcherStatusChanged { state: WatcherState::Failed(error) });
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
