//! Restarts the `WatcherActor` after API errors, with kube-runtime's exponential backoff, jitter and reset timer.

use std::{sync::Arc, time::Duration};

use actix::{Actor, Addr, AsyncContext, Context, Handler, Recipient, SpawnHandle};
use kube::runtime::{utils::Backoff, watcher::DefaultBackoff};
use tracing::{info, warn};

use crate::{
    messages::{ConfigMapObserved, WatcherStatusChanged},
    metrics::ReloadMetrics,
    source::ConfigMapSource,
    status::{WatcherState, WatcherStatus},
    watcher::WatcherActor,
};

/// Owns the watcher.
///
/// Lifecycle: `started` starts the first `WatcherActor`. When the watcher reports `Failed` (and stops itself),
/// the supervisor counts a restart, waits the next backoff delay and starts a new one, which lists afresh.
///
/// Backoff: kube-runtime's [`DefaultBackoff`] (0.8 s doubling to 30 s, each stretched by up to 100 % jitter), with its reset timer:
/// the delays start over only when the previous failure is more than 120 s old. A successful list does not reset
/// it, so a watch that fails right after every list (no `watch` permission, 429s) backs off like any failure.
pub struct WatcherSupervisor {
    source: Arc<dyn ConfigMapSource>,
    forward: Recipient<ConfigMapObserved>,
    metrics: ReloadMetrics,
    status: WatcherStatus,
    backoff: Box<dyn Backoff>,
    watcher: Option<Addr<WatcherActor>>,
    pending_restart: Option<SpawnHandle>,
}

/// The delay used if a backoff strategy ever runs out of delays.
const LAST_RESORT_DELAY: Duration = Duration::from_secs(30);

impl WatcherSupervisor {
    /// A supervisor of a watch on `source` that forwards observations to `forward`.
    #[must_use]
    pub fn new(
        source: Arc<dyn ConfigMapSource>,
        forward: Recipient<ConfigMapObserved>,
        metrics: ReloadMetrics,
        status: WatcherStatus,
    ) -> Self {
        let backoff = Box::new(DefaultBackoff::default());
        Self { source, forward, metrics, status, backoff, watcher: None, pending_restart: None }
    }

    /// Replaces the restart backoff (tests use short, known delays).
    #[must_use]
    pub fn backoff(mut self, backoff: impl Backoff + 'static) -> Self {
        self.backoff = Box::new(backoff);
        self
    }

    fn start_watcher(&mut self, ctx: &mut Context<Self>) {
        let watcher = WatcherActor::new(
            self.source.clone(),
            self.forward.clone(),
            ctx.address().recipient(),
            self.metrics.clone(),
        );
        self.watcher = Some(watcher.start());
    }
}

impl Actor for WatcherSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.start_watcher(ctx);
    }
}

impl Handler<WatcherStatusChanged> for WatcherSupervisor {
    type Result = ();

    fn handle(&mut self, msg: WatcherStatusChanged, ctx: &mut Self::Context) {
        match msg.state {
            WatcherState::Failed(error) => {
                if self.pending_restart.is_some() {
                    return;
                }
                self.watcher = None;
                let delay = self.backoff.next().unwrap_or(LAST_RESORT_DELAY);
                warn!(error = %error, retry_in = %humantime::format_duration(delay), "ConfigMap watch failed");
                self.status.set(WatcherState::Backoff(error));
                self.pending_restart = Some(ctx.run_later(delay, |act, ctx| {
                    act.pending_restart = None;
                    act.metrics.watcher_restarts.inc();
                    act.status.restarted();
                    info!("restarting ConfigMap watch");
                    act.start_watcher(ctx);
                }));
            }
            state => self.status.set(state),
        }
    }
}
