//! A replica's part in a staged rollout (docs/ARCHITECTURE.md, "What a replica does"): it follows the
//! `ConfigRollout` by a watch, lets the `ConfigActor` judge a held version again when the status changes, runs the
//! health gate while it bakes a target and writes its verdict on its own Pod, rolls back what it must not run,
//! and becomes the coordinator when one is needed.

use std::{sync::Arc, time::Duration};

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, WrapFuture};
use brokkr_config::AppSettings;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use tokio::{sync::watch, time::Instant};
use tracing::{debug, info, warn};

use crate::{
    admission::DocumentHash,
    config_actor::ConfigActor,
    health_gate::HealthGate,
    lease::{Attempt, LeaseLock},
    messages::{Readmit, Rollback},
    rollout_admission::stray,
    rollout_bake::Bake,
    rollout_coordinator::{CoordinatorRun, RolloutNames},
    rollout_metrics::RolloutMetrics,
    rollout_objects::{ConfigRollout, documents, rollouts},
    rollout_pods::DOCUMENT_HASH,
    rollout_status::{Phase, RolloutStatus},
    rollout_verdict::{VERDICT, Verdict},
};

/// How often the replica looks at its state.
const TICK: Duration = Duration::from_secs(1);
/// A replica running a text other than the last good one re-reads the status this often.
const CONFIRM_EVERY: Duration = Duration::from_secs(5);
/// ... and rolls back by itself when it could not confirm its admission for this long.
pub const STRAY_BOUND: Duration = Duration::from_secs(30);
/// The server-side timeout of each watch of the `ConfigRollout`, drawn once per replica.
const WATCH_TIMEOUT_SECS: std::ops::RangeInclusive<u32> = 1800..=3600;
/// How often a replica that wants a coordinator asks for the Lease.
const CAMPAIGN_EVERY: Duration = Duration::from_secs(5);

/// The watch → replica hop: the `ConfigRollout` as it is now (`None`: deleted).
#[derive(Debug)]
struct RolloutSeen(Option<Box<ConfigRollout>>);

/// The local state changed: the `ConfigActor` applied a text (`false`), or judged a new valid one (`true`).
struct LocalChange(bool);

/// The replica's rollout actor. Start it with [`RolloutReplica::start_following`].
pub struct RolloutReplica<S: AppSettings> {
    pub(crate) names: RolloutNames,
    pub(crate) uid: String,
    pub(crate) client: Client,
    pub(crate) config_actor: Addr<ConfigActor<S>>,
    pub(crate) status: watch::Sender<Option<RolloutStatus>>,
    pub(crate) object: Option<ConfigRollout>,
    pub(crate) running: watch::Receiver<Option<DocumentHash>>,
    pub(crate) judged: watch::Receiver<Option<DocumentHash>>,
    pub(crate) written_hash: Option<DocumentHash>,
    pub(crate) gate: Arc<dyn HealthGate>,
    pub(crate) bake: Option<Bake>,
    pub(crate) bake_time: Duration,
    pub(crate) confirmed: Instant,
    pub(crate) confirming: bool,
    pub(crate) rolling_back: bool,
    pub(crate) coordinator: Arc<CoordinatorRun<S>>,
    pub(crate) lock: Option<LeaseLock>,
    pub(crate) last_campaign: Option<Instant>,
    pub(crate) metrics: RolloutMetrics,
}

/// What a replica needs to take part.
pub struct ReplicaParts<S: AppSettings> {
    /// Where the objects are and who this replica is.
    pub names: RolloutNames,
    /// This Pod's uid.
    pub uid: String,
    /// A client with the broker's rights.
    pub client: Client,
    /// The actor that applies.
    pub config_actor: Addr<ConfigActor<S>>,
    /// The statuses the admission answers from.
    pub status: watch::Sender<Option<RolloutStatus>>,
    /// The hash of the document in force, from the `ConfigActor`.
    pub running: watch::Receiver<Option<DocumentHash>>,
    /// The hash of the newest valid document judged, from the `ConfigActor`.
    pub judged: watch::Receiver<Option<DocumentHash>>,
    /// The application's gate.
    pub gate: Arc<dyn HealthGate>,
    /// What this replica runs when it coordinates.
    pub coordinator: CoordinatorRun<S>,
    /// The Lease it asks for.
    pub lock: LeaseLock,
    /// Where it counts what it sees and does.
    pub metrics: RolloutMetrics,
}

impl<S: AppSettings> RolloutReplica<S> {
    /// Starts the actor and the watch of the `ConfigRollout` that feeds it.
    pub fn start_following(parts: ReplicaParts<S>) -> Addr<Self> {
        let bake_time = parts.coordinator.policy.bake;
        let actor = Self {
            names: parts.names,
            uid: parts.uid,
            client: parts.client,
            config_actor: parts.config_actor,
            status: parts.status,
            object: None,
            running: parts.running,
            judged: parts.judged,
            written_hash: None,
            gate: parts.gate,
            bake: None,
            bake_time,
            confirmed: Instant::now(),
            confirming: false,
            rolling_back: false,
            coordinator: Arc::new(parts.coordinator),
            lock: Some(parts.lock),
            metrics: parts.metrics,
            last_campaign: None,
        };
        actor.start()
    }

    fn current(&self) -> Option<&RolloutStatus> {
        self.object.as_ref().and_then(|o| o.status.as_ref())
    }

    /// Merge-patches this Pod's rollout annotations: the text it runs and, if any, its verdict.
    pub(crate) fn annotate(&self, ctx: &mut Context<Self>, verdict: Option<Verdict>) {
        let hash = self.running.borrow().clone();
        let mut annotations = serde_json::Map::new();
        if let Some(hash) = &hash {
            annotations.insert(DOCUMENT_HASH.into(), json!(hash.as_str()));
        }
        if let Some(verdict) = &verdict {
            annotations.insert(VERDICT.into(), json!(verdict.to_annotation()));
        }
        if annotations.is_empty() {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.names.namespace);
        let (pod, patch) = (self.names.pod.clone(), json!({ "metadata": { "annotations": annotations } }));
        let write = async move {
            let params = PatchParams::apply("brokkr-broker");
            let params = PatchParams { field_manager: params.field_manager, ..PatchParams::default() };
            pods.patch(&pod, &params, &Patch::Merge(&patch)).await.map(drop)
        };
        ctx.spawn(write.into_actor(self).map(move |written, act, _| match written {
            Ok(()) => act.written_hash = hash,
            // The wave waits for a verdict that is not written: it can never pass on one that is not.
            Err(error) => warn!(%error, "could not write the rollout annotations on this Pod"),
        }));
    }

    /// Puts the last good text back, read from the `ConfigRolloutDocument` and checked against the status.
    pub(crate) fn roll_back(&mut self, ctx: &mut Context<Self>, reason: String) {
        let Some(good) = self.current().and_then(|s| s.last_good.clone()) else { return };
        if self.rolling_back {
            return;
        }
        self.rolling_back = true;
        warn!(%reason, "rolling back to the last good configuration");
        let (api, name, actor) = (
            documents(self.client.clone(), &self.names.namespace),
            self.names.object.clone(),
            self.config_actor.clone(),
        );
        let work = async move {
            let document = api.get(&name).await.map_err(|e| e.to_string())?;
            let kept =
                document.spec.last_good.filter(|k| k.hash == good.hash && DocumentHash::of(&k.text).as_str() == k.hash);
            let kept = kept.ok_or_else(|| "the kept last good text does not match the status".to_owned())?;
            let message = Rollback { text: kept.text, resource_version: Some(kept.resource_version), reason };
            actor.send(message).await.map_err(|e| e.to_string())
        };
        ctx.spawn(work.into_actor(self).map(|done, act, _| {
            act.rolling_back = false;
            match done {
                Ok(report) if report.error.is_none() => {
                    act.metrics.rollbacks.inc();
                    info!(generation = report.generation, "rolled back");
                }
                Ok(report) => {
                    warn!(error = ?report.error, "this replica refuses the last good text; keeping what it runs")
                }
                Err(error) => warn!(%error, "could not roll back yet; trying again"),
            }
        }));
    }

    /// The periodic look: roll back a stray text, bake an admitted target, confirm, campaign.
    pub(crate) fn tick(&mut self, ctx: &mut Context<Self>) {
        if *self.running.borrow() != self.written_hash {
            self.annotate(ctx, None);
        }
        let Some(status) = self.current().cloned() else {
            // No status yet: the object is new or not created. A coordinator creates and fills it.
            return self.campaign(ctx, &RolloutStatus::default());
        };
        let running = self.running.borrow().clone();
        let running_hash = running.as_ref().map(|h| h.as_str().to_owned()).unwrap_or_default();
        if let Some(reason) = running.as_ref().and_then(|r| stray(&status, &self.uid, r.as_str())) {
            return self.roll_back(ctx, reason);
        }
        let baking = status.phase == Phase::Progressing
            && status.target.as_ref().is_some_and(|t| t.hash == running_hash)
            && status.admits(&self.uid);
        if baking {
            self.bake_target(ctx, &status, running_hash.clone());
        } else {
            self.bake = None;
        }
        let off_good = status.last_good.as_ref().is_some_and(|g| g.hash != running_hash) && running.is_some();
        if off_good && self.confirmed.elapsed() >= STRAY_BOUND {
            return self.roll_back(ctx, format!("its admission could not be confirmed for {}s", STRAY_BOUND.as_secs()));
        }
        if off_good && self.confirmed.elapsed() >= CONFIRM_EVERY && !self.confirming {
            self.confirm(ctx);
        }
        self.campaign(ctx, &status);
    }

    /// Reads the status now, outside the watch: the stray bound must not rest on the watch being alive.
    fn confirm(&mut self, ctx: &mut Context<Self>) {
        self.confirming = true;
        let (api, name) = (rollouts(self.client.clone(), &self.names.namespace), self.names.object.clone());
        ctx.spawn(async move { api.get(&name).await }.into_actor(self).map(|read, act, ctx| {
            act.confirming = false;
            match read {
                Ok(object) => act.seen(Some(object), ctx),
                Err(error) => debug!(%error, "could not confirm the rollout state"),
            }
        }));
    }

    /// Asks for the Lease when a coordinator is needed: no last good text yet, a rollout in progress, a valid text
    /// the status does not name, or an operator's command not acknowledged.
    fn campaign(&mut self, ctx: &mut Context<Self>, status: &RolloutStatus) {
        if self.last_campaign.is_some_and(|at| at.elapsed() < CAMPAIGN_EVERY) {
            return;
        }
        let judged = self.judged.borrow().clone().map(|h| h.as_str().to_owned());
        let named = |hash: &str| {
            [&status.target, &status.last_good].iter().any(|v| v.as_ref().is_some_and(|v| v.hash == hash))
                || status.is_failed(hash)
                || status.observed.as_ref().is_some_and(|o| o.hash == hash)
        };
        let spec = self.object.as_ref().map(|o| o.spec.clone()).unwrap_or_default();
        let unacknowledged = (spec.promote.is_some() && spec.promote != status.promoted)
            || (spec.abort.is_some() && spec.abort != status.aborted);
        let needed = status.last_good.is_none()
            || status.phase == Phase::Progressing
            || judged.as_deref().is_some_and(|h| !named(h))
            || unacknowledged;
        if !needed {
            return;
        }
        // Taken only when needed: the lock comes back when the attempt (or the run) ends.
        let Some(mut lock) = self.lock.take() else { return };
        self.last_campaign = Some(Instant::now());
        let run = self.coordinator.clone();
        let work = async move {
            match lock.try_acquire_or_renew().await {
                Ok(Attempt::Holds { term }) => {
                    info!(term, "coordinating the staged rollout");
                    if let Err(error) = run.run(&mut lock, term).await {
                        warn!(%error, "stopped coordinating");
                    }
                }
                Ok(Attempt::Taken { holder }) => debug!(%holder, "another replica coordinates"),
                Err(error) => debug!(%error, "could not ask for the rollout's Lease"),
            }
            lock
        };
        ctx.spawn(work.into_actor(self).map(|lock, act, _| act.lock = Some(lock)));
    }

    /// A new status: published to the admission, a held version judged again, and acted on at once.
    fn seen(&mut self, object: Option<ConfigRollout>, ctx: &mut Context<Self>) {
        self.confirmed = Instant::now();
        let status = object.as_ref().and_then(|o| o.status.clone());
        let changed = self.current() != status.as_ref();
        self.object = object;
        if changed {
            if let Some(status) = &status {
                self.metrics.saw(status);
            }
            self.status.send_replace(status);
            self.config_actor.do_send(Readmit);
            self.tick(ctx);
        }
    }
}

impl<S: AppSettings> Actor for RolloutReplica<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let api = rollouts(self.client.clone(), &self.names.namespace);
        // A long watch (30 to 60 min, the API server's own default range): idle, the policy then adds about 0.02
        // watch requests a minute to the ConfigMap's 0.21. Safety does not rest on it: a replica that runs anything
        // but the last good text reads the status every 5 s (the stray bound).
        let timeout = fastrand::u32(WATCH_TIMEOUT_SECS);
        let name = format!("metadata.name={}", self.names.object);
        let config = watcher::Config::default().fields(&name).timeout(timeout);
        let stream = watcher::watcher(api, config).default_backoff().filter_map(|event| async move {
            match event {
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                    Some(RolloutSeen(Some(Box::new(object))))
                }
                Ok(watcher::Event::Delete(_)) => Some(RolloutSeen(None)),
                Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                Err(error) => {
                    debug!(%error, "the ConfigRollout watch failed; backing off");
                    None
                }
            }
        });
        ctx.add_stream(stream);
        // Acted on at once, not at the next tick: the gate's window opens when the target is applied.
        for (receiver, judged) in [(self.running.clone(), false), (self.judged.clone(), true)] {
            ctx.add_stream(futures::stream::unfold(receiver, move |mut receiver| async move {
                receiver.changed().await.ok()?;
                Some((LocalChange(judged), receiver))
            }));
        }
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }
}

impl<S: AppSettings> actix::StreamHandler<LocalChange> for RolloutReplica<S> {
    fn handle(&mut self, LocalChange(judged): LocalChange, ctx: &mut Self::Context) {
        if judged {
            // A new text wants a coordinator now, not at the next periodic attempt.
            self.last_campaign = None;
        }
        self.tick(ctx);
    }

    /// The `ConfigActor` is gone: nothing more to follow, but the actor keeps its other streams.
    fn finished(&mut self, _: &mut Self::Context) {}
}

impl<S: AppSettings> actix::StreamHandler<RolloutSeen> for RolloutReplica<S> {
    fn handle(&mut self, RolloutSeen(object): RolloutSeen, ctx: &mut Self::Context) {
        self.seen(object.map(|o| *o), ctx);
    }
}
