//! Restarts the `WatcherActor` after API errors, with exponential backoff and jitter.

use std::sync::Arc;

use actix::{Actor, Addr, AsyncContext, Context, Handler, Recipient, SpawnHandle};
use tracing::{info, warn};

use crate::{
    backoff::Backoff,
    messages::{ConfigMapObserved, WatcherStatusChanged},
    metrics::ReloadMetrics,
    source::ConfigMapSource,
    status::{WatcherState, WatcherStatus},
    watcher::WatcherActor,
};

/// Owns the watcher.
///
/// Lifecycle: `started` starts the first `WatcherActor`. When the watcher reports `Failed` (and stops itself),
/// the supervisor counts a restart, waits the next backoff delay and starts a new one, which lists afresh. The
/// backoff resets once a watcher has listed successfully. `stopping` lets the current watcher end with it.
pub struct WatcherSupervisor {
    source: Arc<dyn ConfigMapSource>,
    forward: Recipient<ConfigMapObserved>,
    metrics: ReloadMetrics,
    status: WatcherStatus,
    backoff: Backoff,
    watcher: Option<Addr<WatcherActor>>,
    pending_restart: Option<SpawnHandle>,
}

impl WatcherSupervisor {
    /// A supervisor of a watch on `source` that forwards observations to `forward`.
    #[must_use]
    pub fn new(
        source: Arc<dyn ConfigMapSource>,
        forward: Recipient<ConfigMapObserved>,
        metrics: ReloadMetrics,
        status: WatcherStatus,
    ) -> Self {
        Self { source, forward, metrics, status, backoff: Backoff::default(), watcher: None, pending_restart: None }
    }

    /// Replaces the restart backoff (tests use short, known delays).
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
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
                let delay = self.backoff.next_delay();
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
            WatcherState::Watching => {
                self.backoff.reset();
                self.status.set(WatcherState::Watching);
            }
            state => self.status.set(state),
        }
    }
}
