//! Coalesces bursts of ConfigMap changes into one reload: a trailing quiet window, bounded by a max wait.

use actix::{Actor, AsyncContext, Context, Handler, Message, Recipient, SpawnHandle};
use brokkr_config::{AppSettings, ReloadableConfig, Settings};
use tokio::time::Instant;
use tracing::debug;

use crate::{
    messages::{ConfigMapObserved, ConfigMapState, Reload},
    metrics::ReloadMetrics,
};

/// Holds the latest observed state until the ConfigMap has been quiet for `config_reload.debounce`, or until
/// `config_reload.max_wait` has passed since the first change of the window, then sends one [`Reload`].
///
/// Both durations are read from the configuration in force when a window opens or is extended, so a reload
/// that changes them takes effect with the next change. No change is ever dropped: every change after a
/// reload opens a new window, and the reload always carries the latest state. Observations from an initial
/// list (start-up, watcher restart) are forwarded at once.
///
/// Lifecycle: no work in `started`; timers are `FlushDue` messages to itself, tagged with the window they
/// belong to so that a timer of a flushed window is ignored.
pub struct DebounceActor<S = Settings> {
    config: ReloadableConfig<S>,
    forward: Recipient<Reload>,
    metrics: ReloadMetrics,
    pending: Option<ConfigMapState>,
    window: u64,
    opened_at: Option<Instant>,
    quiet_timer: Option<SpawnHandle>,
    max_timer: Option<SpawnHandle>,
}

/// Timer → itself: the window `window` may be due.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
struct FlushDue {
    window: u64,
    reason: &'static str,
}

impl<S: AppSettings> DebounceActor<S> {
    /// Debounces towards `forward`, with windows read from `config`.
    #[must_use]
    pub fn new(config: ReloadableConfig<S>, forward: Recipient<Reload>, metrics: ReloadMetrics) -> Self {
        Self { config, forward, metrics, pending: None, window: 0, opened_at: None, quiet_timer: None, max_timer: None }
    }

    fn flush(&mut self, ctx: &mut Context<Self>, reason: &'static str) {
        for handle in [self.quiet_timer.take(), self.max_timer.take()].into_iter().flatten() {
            ctx.cancel_future(handle);
        }
        self.window += 1;
        if let Some(state) = self.pending.take() {
            let waited = self.opened_at.take().map(|t| t.elapsed());
            debug!(reason, ?waited, "debounce window closed; reloading");
            self.forward.do_send(Reload { state });
        }
    }
}

impl<S: AppSettings> Actor for DebounceActor<S> {
    type Context = Context<Self>;
}

impl<S: AppSettings> Handler<ConfigMapObserved> for DebounceActor<S> {
    type Result = ();

    fn handle(&mut self, msg: ConfigMapObserved, ctx: &mut Self::Context) {
        if self.pending.is_some() {
            self.metrics.debounce_coalesced.inc();
        }
        self.pending = Some(msg.state);
        if msg.initial {
            self.flush(ctx, "initial list");
            return;
        }
        let timing = self.config.current().settings.reload().clone();
        let window = self.window;
        if self.opened_at.is_none() {
            self.opened_at = Some(Instant::now());
            self.max_timer = Some(ctx.notify_later(FlushDue { window, reason: "max wait" }, timing.max_wait));
        }
        if let Some(handle) = self.quiet_timer.take() {
            ctx.cancel_future(handle);
        }
        self.quiet_timer = Some(ctx.notify_later(FlushDue { window, reason: "quiet" }, timing.debounce));
    }
}

impl<S: AppSettings> Handler<FlushDue> for DebounceActor<S> {
    type Result = ();

    fn handle(&mut self, msg: FlushDue, ctx: &mut Self::Context) {
        if msg.window == self.window {
            self.flush(ctx, msg.reason);
        }
    }
}
