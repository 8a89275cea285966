//! The one place a reload is applied: builds, validates, diffs and swaps the configuration, then logs and counts.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseActFuture, SpawnHandle, WrapFuture,
};
use brokkr_config::{ConfigError, ConfigLayers, ReloadOutcome, ReloadableConfig, SourceRef, layers::LayerText};
use tracing::{debug, error, info, warn};

use crate::{
    events::ReloadEvents,
    messages::{ConfigMapState, Reload, ReloadNow, ReloadReport},
    metrics::ReloadMetrics,
    source::ConfigMapSource,
};

/// Why a reload requested on demand could not even start.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The ConfigMap could not be read from the API server.
    #[error("failed to read ConfigMap {configmap}")]
    Read {
        /// `namespace/name`.
        configmap: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// Owns the [`ReloadableConfig`] and applies every [`Reload`], [`ReloadNow`] and periodic resync.
///
/// Lifecycle: `started` publishes the start-up configuration's metrics, schedules the first resync
/// (`config_reload.resync_interval`, re-read after every reload that changes it) and a start-up grace timer
/// after which the broker reports ready even if the API server never answered.
pub struct ConfigActor {
    config: ReloadableConfig,
    layers: ConfigLayers,
    source: Arc<dyn ConfigMapSource>,
    metrics: ReloadMetrics,
    events: Option<Arc<dyn ReloadEvents>>,
    ready: Arc<AtomicBool>,
    startup_grace: Duration,
    resync: Option<SpawnHandle>,
}

/// Timer → itself: time for the periodic full re-read.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
struct ResyncDue;

impl ConfigActor {
    /// An actor that applies ConfigMap documents read from `source` on top of `layers` into `config`.
    #[must_use]
    pub fn new(
        config: ReloadableConfig,
        layers: ConfigLayers,
        source: Arc<dyn ConfigMapSource>,
        metrics: ReloadMetrics,
    ) -> Self {
        Self {
            config,
            layers,
            source,
            metrics,
            events: None,
            ready: Arc::new(AtomicBool::new(false)),
            startup_grace: Duration::from_secs(10),
            resync: None,
        }
    }

    /// Publishes Kubernetes Events about reloads through `events`.
    #[must_use]
    pub fn events(mut self, events: Arc<dyn ReloadEvents>) -> Self {
        self.events = Some(events);
        self
    }

    /// Sets the flag that turns true once a configuration is in force (first ConfigMap result, or grace elapsed).
    #[must_use]
    pub fn ready_flag(mut self, ready: Arc<AtomicBool>) -> Self {
        self.ready = ready;
        self
    }

    /// How long start-up waits for the API server before reporting ready on the configuration it has.
    #[must_use]
    pub fn startup_grace(mut self, grace: Duration) -> Self {
        self.startup_grace = grace;
        self
    }

    fn schedule_resync(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.resync.take() {
            ctx.cancel_future(handle);
        }
        let every = self.config.current().settings.config_reload.resync_interval;
        self.resync = Some(ctx.notify_later(ResyncDue, every));
    }

    fn apply(&mut self, state: ConfigMapState, trigger: &'static str, ctx: &mut Context<Self>) -> ReloadReport {
        self.ready.store(true, Ordering::Release);
        let running = self.config.current();
        let (namespace, name) = (self.source.namespace(), running.settings.config_reload.configmap.clone());
        let ConfigMapState::Present(version) = state else {
            let message = format!("ConfigMap {namespace}/{name} not found; keeping the last good configuration");
            warn!(trigger, "{message}");
            let generation = running.generation;
            return ReloadReport { outcome: "unchanged", changes: Vec::new(), generation, error: Some(message) };
        };
        let key = running.settings.config_reload.key.clone();
        let candidate = match version.data.get(&key) {
            Some(text) => {
                let origin = format!("ConfigMap {namespace}/{name} key {key}");
                self.layers.build(Some(&LayerText { origin, text: text.clone() }))
            }
            None => Err(ConfigError::MissingDataKey { namespace: namespace.clone(), name: name.clone(), key }),
        };
        let source = SourceRef { namespace, name, resource_version: version.resource_version };
        let outcome = self.config.reload(candidate, Some(source.clone()));
        let now = self.config.current();
        self.metrics.record_reload(outcome.label(), now.generation, &now.hash, outcome.restart_required().len());
        if let Some(events) = &self.events {
            events.reloaded(&source, &outcome);
        }
        log_outcome(&outcome, &now.hash, now.generation, source.resource_version.as_deref().unwrap_or(""), trigger);
        if let Some(last) = self.config.last_reload().filter(|l| !l.shadowed_by_env.is_empty()) {
            warn!(keys = ?last.shadowed_by_env, "ConfigMap keys are overridden by BROKKR__* environment variables");
        }
        let mut report =
            ReloadReport { outcome: outcome.label(), changes: Vec::new(), generation: now.generation, error: None };
        match outcome {
            ReloadOutcome::Applied { changes, .. } => {
                if changes.iter().any(|c| c.key == "config_reload.resync_interval") {
                    self.schedule_resync(ctx);
                }
                report.changes = changes;
            }
            ReloadOutcome::Rejected { reason } => report.error = Some(reason),
            ReloadOutcome::Unchanged { .. } => {}
        }
        report
    }
}

/// One INFO line per changed key, then a summary; rejections at ERROR; restart-only changes at WARN.
fn log_outcome(outcome: &ReloadOutcome, hash: &str, generation: u64, rv: &str, trigger: &'static str) {
    match outcome {
        ReloadOutcome::Applied { changes, .. } => {
            for c in changes {
                info!(key = c.key, old = %c.old, new = %c.new, "configuration changed");
            }
            info!(generation, hash, resource_version = rv, trigger, "configuration applied");
        }
        // A periodic re-read that finds nothing new is routine.
        ReloadOutcome::Unchanged { .. } if trigger == "resync" => {
            debug!(generation, resource_version = rv, trigger, "configuration unchanged");
        }
        ReloadOutcome::Unchanged { .. } => {
            info!(generation, resource_version = rv, trigger, "configuration unchanged");
        }
        ReloadOutcome::Rejected { reason } => {
            error!(%reason, resource_version = rv, trigger, "configuration rejected; keeping the last good configuration");
        }
    }
    warn_restart_required(outcome.restart_required());
}

fn warn_restart_required(changes: &[brokkr_config::Change]) {
    if !changes.is_empty() {
        let keys: Vec<_> = changes.iter().map(|c| c.key).collect();
        warn!(?keys, "restart the broker to apply these settings; the running values stay in force");
    }
}

impl Actor for ConfigActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let now = self.config.current();
        self.metrics.set_in_force(now.generation, &now.hash);
        self.schedule_resync(ctx);
        ctx.run_later(self.startup_grace, |act, _| {
            if !act.ready.swap(true, Ordering::AcqRel) {
                warn!(configmap = %act.source.describe(), "no answer from the API server yet; serving with the start-up configuration");
            }
        });
    }
}

impl Handler<Reload> for ConfigActor {
    type Result = ();

    fn handle(&mut self, msg: Reload, ctx: &mut Self::Context) {
        self.apply(msg.state, "watch", ctx);
    }
}

impl Handler<ReloadNow> for ConfigActor {
    type Result = ResponseActFuture<Self, Result<ReloadReport, ReloadError>>;

    fn handle(&mut self, _: ReloadNow, _: &mut Self::Context) -> Self::Result {
        let configmap = self.source.describe();
        Box::pin(self.source.read().into_actor(self).map(move |read, act, ctx| match read {
            Ok(state) => Ok(act.apply(state, "on demand", ctx)),
            Err(source) => Err(ReloadError::Read { configmap, source }),
        }))
    }
}

impl Handler<ResyncDue> for ConfigActor {
    type Result = ();

    fn handle(&mut self, _: ResyncDue, ctx: &mut Self::Context) {
        self.resync = None;
        let read = self.source.read().into_actor(self).map(|read, act, ctx| {
            match read {
                Ok(state) => {
                    act.apply(state, "resync", ctx);
                }
                Err(error) => warn!(configmap = %act.source.describe(), %error, "resync failed; will try again"),
            }
            if act.resync.is_none() {
                act.schedule_resync(ctx);
            }
        });
        ctx.spawn(read);
    }
}
