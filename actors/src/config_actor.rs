//! The one place a reload is applied: orders versions, has [`brokkr_config::judge`] judge each and swaps the
//! configuration; what follows (metrics, Events, audit log) is [`ConfigActor::publish`]'s.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseActFuture, SpawnHandle, WrapFuture, fut,
};
use brokkr_config::{
    AppSettings, Candidate, ConfigLayers, Outcome, ReloadOutcome, ReloadableConfig, Result as ConfigResult, Settings,
    SourceRef, judge,
};
use tokio::sync::watch;
use tracing::{debug, info, warn};

pub use crate::messages::ReloadError;
use crate::{
    admission::{Admission, Admit, AdmitAll, DocumentHash, Judged},
    announce::Announcements,
    events::{News, ReloadEvents},
    history::{ReloadHistory, ReloadRecord},
    messages::{ConfigMapState, ConfigMapVersion, Reload, ReloadNow, ReloadReport, Trigger},
    metrics::ReloadMetrics,
    reload_log::{AuditLog, TracingAudit, log_outcome, warn_restart_required, warn_shadowed},
    source::{ConfigMapSource, READ_TIMEOUT, read_within},
    version_order::VersionOrder,
};

/// How often an on-demand read is retried when a newer apply overtook it while it was in flight.
const ON_DEMAND_ATTEMPTS: u32 = 3;

/// Owns the [`ReloadableConfig`] and applies every [`Reload`], [`ReloadNow`] and periodic resync.
///
/// Ordering: every path (watch, resync, on demand, re-list) may deliver a version older than one already acted on
/// (a read that completes late, a debounce window that closes after an on-demand read, a lagging watch). A version
/// whose resourceVersion is lower than the newest one acted on is dropped: resourceVersions of one resource are
/// comparable integers (KEP-5504, apimachinery's `CompareResourceVersion`). Where a server's versions are not well
/// formed integers, a sequence number stands in for reads: every apply bumps it, and a read overtaken by an apply
/// while in flight is dropped (resync) or read again (on demand); the watch path then has no order to check. A read
/// with nothing applied while it was in flight is the API server's current state: if its version is lower, storage
/// went back (an etcd restore) and the broker follows it with a WARN instead of ignoring every version from then on.
///
/// Lifecycle: `started` publishes the start-up configuration's metrics, schedules the first resync
/// (the reload section's `resync_interval`, rescheduled when it fires whatever its read's fate, and after every reload
/// that changes it) and a start-up grace timer after which the broker reports ready even if the API server never
/// answered.
pub struct ConfigActor<S: AppSettings = Settings> {
    pub(crate) config: ReloadableConfig<S>,
    pub(crate) layers: ConfigLayers<S>,
    pub(crate) source: Arc<dyn ConfigMapSource>,
    pub(crate) metrics: ReloadMetrics,
    events: Option<Arc<dyn ReloadEvents>>,
    audit: Arc<dyn AuditLog>,
    pub(crate) history: ReloadHistory,
    ready: Arc<AtomicBool>,
    startup_grace: Duration,
    resync: Option<SpawnHandle>,
    order: VersionOrder,
    announced: Announcements,
    pub(crate) admission: Arc<dyn Admission>,
    /// The newest valid version the admission held back, judged again on [`crate::messages::Readmit`].
    pub(crate) held: Option<ConfigMapVersion>,
    /// The hash of the document in force, once one is (start-up's is not known here).
    pub(crate) document_hash: watch::Sender<Option<DocumentHash>>,
    /// The newest document judged, valid (admitted or held) or not.
    judged_hash: watch::Sender<Option<Judged>>,
}

/// Timer → itself: time for the periodic full re-read.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
struct ResyncDue;

impl<S: AppSettings> ConfigActor<S> {
    /// An actor that applies ConfigMap documents read from `source` on top of `layers` into `config`.
    #[must_use]
    pub fn new(
        config: ReloadableConfig<S>,
        layers: ConfigLayers<S>,
        source: Arc<dyn ConfigMapSource>,
        metrics: ReloadMetrics,
    ) -> Self {
        Self {
            config,
            layers,
            source,
            metrics,
            events: None,
            audit: Arc::new(TracingAudit),
            history: ReloadHistory::default(),
            ready: Arc::new(AtomicBool::new(false)),
            startup_grace: Duration::from_secs(10),
            resync: None,
            order: VersionOrder::default(),
            announced: Announcements::default(),
            admission: Arc::new(AdmitAll),
            held: None,
            document_hash: watch::channel(None).0,
            judged_hash: watch::channel(None).0,
        }
    }

    /// Asks `admission` before applying any valid version; the default admits every one.
    #[must_use]
    pub fn admission(mut self, admission: Arc<dyn Admission>) -> Self {
        self.admission = admission;
        self
    }

    /// Publishes the hash of the document in force in `hash` (a staged rollout compares it with its state).
    #[must_use]
    pub fn document_hash(mut self, hash: watch::Sender<Option<DocumentHash>>) -> Self {
        self.document_hash = hash;
        self
    }

    /// Publishes the newest document judged, valid or not, in `hash` (a staged rollout asks for a coordinator when
    /// its status does not name the text, and reports a target this replica refuses).
    #[must_use]
    pub fn judged_hash(mut self, hash: watch::Sender<Option<Judged>>) -> Self {
        self.judged_hash = hash;
        self
    }

    /// Publishes Kubernetes Events about reloads through `events`.
    #[must_use]
    pub fn events(mut self, events: Arc<dyn ReloadEvents>) -> Self {
        self.events = Some(events);
        self
    }

    /// Writes the audit records of reloads to `audit` instead of [`TracingAudit`].
    #[must_use]
    pub fn audit(mut self, audit: Arc<dyn AuditLog>) -> Self {
        self.audit = audit;
        self
    }

    /// Records every reload in `history` (the one of [`crate::Options`]).
    #[must_use]
    pub fn history(mut self, history: ReloadHistory) -> Self {
        self.history = history;
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
        if !self.source.resyncs() {
            return;
        }
        let every = self.config.current().settings.reload().resync_interval;
        self.resync = Some(ctx.notify_later(ResyncDue, every));
    }

    /// Applies `state`. `consistent` marks a read with nothing applied while it was in flight: it is the API
    /// server's current state, so a version lower than the newest one acted on means storage went back (etcd
    /// restored from a backup) and is followed, not dropped.
    pub(crate) fn apply(
        &mut self,
        state: ConfigMapState,
        trigger: Trigger,
        consistent: bool,
        ctx: &mut Context<Self>,
    ) -> ReloadReport {
        self.ready.store(true, Ordering::Release);
        if self.order.is_older(&state) {
            let newest = self.order.newest();
            if !consistent {
                debug!(
                    trigger = trigger.as_str(),
                    newest, "dropping a ConfigMap version older than one already acted on"
                );
                return self.report_in_force(None);
            }
            warn!(
                trigger = trigger.as_str(),
                newest, "the ConfigMap's resourceVersion went back (etcd restored?); following the API server"
            );
            self.order.forget();
        }
        self.order.acted_on(&state);
        let running = self.config.current();
        let (namespace, name) = (self.source.namespace(), running.settings.reload().configmap.clone());
        let ConfigMapState::Present(version) = state else {
            self.judged_hash.send_replace(None);
            self.announced.forget_rejection();
            let message = format!("{} not found; keeping the last good configuration", self.source.what());
            warn!(trigger = trigger.as_str(), "{message}");
            return self.report_in_force(Some(message));
        };
        let source = SourceRef { namespace, name, resource_version: version.resource_version.clone() };
        let document = self.source.document(&version, running.settings.reload());
        let hash = document.as_ref().ok().map(|document| DocumentHash::of(&document.layer.text));
        let judged = document.and_then(|document| judge(&self.layers, &document, &running.settings));
        self.held = None;
        if let Some(hash) = &hash {
            let refusal = judged.as_ref().err().map(ToString::to_string);
            self.judged_hash.send_replace(Some(Judged { hash: hash.clone(), refusal }));
        }
        match (judged, hash) {
            (Ok(verdict), Some(hash)) => match self.admission.admit(&hash) {
                Admit::Yes => self.put_in_force(Ok(verdict.candidate), Some(hash), &source, trigger, ctx),
                Admit::Hold { reason } => {
                    self.held = Some(version);
                    self.hold(reason, &source, trigger)
                }
            },
            (Ok(verdict), None) => self.put_in_force(Ok(verdict.candidate), None, &source, trigger, ctx),
            (Err(error), _) => self.put_in_force(Err(error), None, &source, trigger, ctx),
        }
    }

    /// Reloads `candidate` (a judged document) and publishes the outcome; `hash` is its document's, now in force
    /// unless it was rejected.
    pub(crate) fn put_in_force(
        &mut self,
        candidate: ConfigResult<Candidate<S>>,
        hash: Option<DocumentHash>,
        source: &SourceRef,
        trigger: Trigger,
        ctx: &mut Context<Self>,
    ) -> ReloadReport {
        let outcome = self.config.reload(candidate, Some(source.clone()));
        self.publish(&outcome, source, trigger);
        let generation = self.config.current().generation;
        let mut report = ReloadReport { outcome: outcome.label(), changes: Vec::new(), generation, error: None };
        match outcome {
            ReloadOutcome::Applied { changes, .. } => {
                if changes.iter().any(|c| c.key == format!("{}.resync_interval", S::reload_section())) {
                    self.schedule_resync(ctx);
                }
                report.changes = changes;
                self.document_hash.send_replace(hash);
            }
            ReloadOutcome::Rejected { reason } => report.error = Some(reason),
            ReloadOutcome::Unchanged { .. } => {
                self.document_hash.send_replace(hash);
            }
        }
        report
    }

    /// Everything that follows an outcome: metrics, Events and audit records, the latter two only when news.
    fn publish(&mut self, outcome: &ReloadOutcome, source: &SourceRef, trigger: Trigger) {
        let now = self.config.current();
        self.metrics.record_reload(outcome.label(), now.generation, &now.hash, outcome.restart_required().len());
        let news = News {
            restart: self.announced.restart_is_news(outcome),
            rejection: self.announced.rejection_is_news(outcome),
        };
        if let Some(events) = &self.events {
            events.reloaded(source, outcome, news);
        }
        let rv = source.resource_version.as_deref().unwrap_or("");
        log_outcome(self.audit.as_ref(), outcome, (&now.hash, now.generation, rv), trigger, news.rejection);
        if news.restart {
            warn_restart_required(self.audit.as_ref(), outcome.restart_required());
        }
        let shadowed = self.config.last_reload().map(|l| l.shadowed_by_env).unwrap_or_default();
        if let Some(keys) = self.announced.shadowed_is_news(shadowed) {
            warn_shadowed(keys, S::ENV_PREFIX);
        }
        let changes = match outcome {
            ReloadOutcome::Applied { changes, .. } => changes.clone(),
            _ => Vec::new(),
        };
        let mut record = ReloadRecord::new(trigger, outcome.label(), changes);
        (record.generation, record.hash) = (now.generation, now.hash.clone());
        record.resource_version.clone_from(&source.resource_version);
        // As the status says it: a rejected document leaves waiting what was waiting.
        record.restart_required = self.config.last_reload().map(|l| l.restart_required).unwrap_or_default();
        if let ReloadOutcome::Rejected { reason } = outcome {
            record.error = Some(reason.clone());
        }
        self.history.record(record, now.settings.reload().history);
    }

    /// What is in force, as a reload reports it when it had nothing newer to apply.
    fn report_in_force(&self, error: Option<String>) -> ReloadReport {
        ReloadReport {
            outcome: Outcome::Unchanged,
            changes: Vec::new(),
            generation: self.config.current().generation,
            error,
        }
    }

    /// Reads the ConfigMap and applies it, unless something was applied meanwhile: then reads again.
    fn read_then_apply(&mut self, attempt: u32) -> ResponseActFuture<Self, Result<ReloadReport, ReloadError>> {
        let issued = self.order.issue();
        let configmap = self.source.what();
        let read = read_within(self.source.clone(), READ_TIMEOUT).into_actor(self);
        Box::pin(read.then(move |read, act, ctx| -> ResponseActFuture<Self, Result<ReloadReport, ReloadError>> {
            match read {
                Err(source) => Box::pin(fut::ready(Err(ReloadError::Read { configmap, source }))),
                Ok(state) if act.order.overtaken(issued) && !act.order.is_orderable(&state) => {
                    if attempt < ON_DEMAND_ATTEMPTS {
                        debug!(attempt, "an apply overtook the on-demand read; reading again");
                        return act.read_then_apply(attempt + 1);
                    }
                    let error = "superseded: newer versions kept arriving from the watch while the read was in flight";
                    Box::pin(fut::ready(Ok(act.report_in_force(Some(error.into())))))
                }
                Ok(state) => {
                    let consistent = !act.order.overtaken(issued);
                    Box::pin(fut::ready(Ok(act.apply(state, Trigger::OnDemand, consistent, ctx))))
                }
            }
        }))
    }
}

impl<S: AppSettings> Actor for ConfigActor<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let now = self.config.current();
        // The version start-up read is the newest acted on so far.
        self.order = VersionOrder::starting_at(now.source.as_ref().and_then(|s| s.resource_version.clone()));
        self.metrics.set_in_force(now.generation, &now.hash);
        self.schedule_resync(ctx);
        ctx.run_later(self.startup_grace, |act, _| {
            if !act.ready.swap(true, Ordering::AcqRel) {
                warn!(configmap = %act.source.describe(), "no answer from the API server yet; serving with the start-up configuration");
            }
        });
    }
}

impl<S: AppSettings> Handler<Reload> for ConfigActor<S> {
    type Result = ();

    fn handle(&mut self, msg: Reload, ctx: &mut Self::Context) {
        self.apply(msg.state, Trigger::Watch, false, ctx);
    }
}

impl<S: AppSettings> Handler<ReloadNow> for ConfigActor<S> {
    type Result = ResponseActFuture<Self, Result<ReloadReport, ReloadError>>;

    fn handle(&mut self, _: ReloadNow, _: &mut Self::Context) -> Self::Result {
        info!(configmap = %self.source.describe(), "on-demand reload: reading the ConfigMap");
        self.read_then_apply(1)
    }
}

impl<S: AppSettings> Handler<ResyncDue> for ConfigActor<S> {
    type Result = ();

    fn handle(&mut self, _: ResyncDue, ctx: &mut Self::Context) {
        // Rescheduled now, whatever happens to this read: a read that never answers must not end the resync.
        self.resync = None;
        self.schedule_resync(ctx);
        let issued = self.order.issue();
        let read =
            read_within(self.source.clone(), READ_TIMEOUT).into_actor(self).map(move |read, act, ctx| match read {
                Ok(state) if act.order.overtaken(issued) && !act.order.is_orderable(&state) => {
                    debug!("an apply overtook the resync read; dropping its result");
                }
                Ok(state) => {
                    let consistent = !act.order.overtaken(issued);
                    act.apply(state, Trigger::Resync, consistent, ctx);
                }
                Err(error) => {
                    warn!(configmap = %act.source.describe(), error = %error, "resync failed; will try again")
                }
            });
        ctx.spawn(read);
    }
}
