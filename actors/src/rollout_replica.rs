//! A replica's part in a staged rollout (docs/ARCHITECTURE.md, "What a replica does"): it follows the
//! `ConfigRollout` by a watch, lets the `ConfigActor` judge a held version again when the status changes, runs the
//! health gate while it bakes a target and writes its verdict on its own Pod, rolls back what it must not run,
//! and becomes the coordinator when one is needed.

use std::{sync::Arc, time::Duration};

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, WrapFuture};
use brokkr_config::AppSettings;
use futures::StreamExt;
use kube::{
    Client,
    runtime::{WatchStreamExt, watcher},
};
use tokio::{sync::watch, time::Instant};
use tracing::{debug, info, warn};

use crate::{
    admission::{DocumentHash, Judged},
    config_actor::ConfigActor,
    health_gate::HealthGate,
    lease::LeaseLock,
    messages::{Readmit, Rollback},
    rollout_admission::stray,
    rollout_bake::Bake,
    rollout_coordinator::{CoordinatorRun, RolloutNames},
    rollout_metrics::RolloutMetrics,
    rollout_objects::{ConfigRollout, documents, rollouts},
    rollout_status::{Phase, RolloutStatus},
    rollout_verdict::Verdict,
    transport::bounded,
};

/// How often the replica looks at its state.
const TICK: Duration = Duration::from_secs(1);
/// A replica running a text other than the last good one re-reads the status this often.
const CONFIRM_EVERY: Duration = Duration::from_secs(5);
/// How long a replica waits before it tries a failed rollback again (it refuses the last good text, or the kept
/// texts could not be read).
const ROLLBACK_RETRY: Duration = Duration::from_secs(30);
/// ... and rolls back by itself when it could not confirm its admission for this long.
pub const STRAY_BOUND: Duration = Duration::from_secs(30);
/// The server-side timeout of each watch of the `ConfigRollout`, drawn once per replica.
const WATCH_TIMEOUT_SECS: std::ops::RangeInclusive<u32> = 1800..=3600;
/// The longest wait between two attempts at the Lease after errors.
pub(crate) const MAX_CAMPAIGN_EVERY: Duration = Duration::from_secs(60);
/// How often a replica that wants a coordinator asks for the Lease.
pub(crate) const CAMPAIGN_EVERY: Duration = Duration::from_secs(5);

/// Why a rollback could not be made yet; it is tried again at the next look.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// The `ConfigRolloutDocument` could not be read.
    #[error("the kept texts could not be read")]
    Read(#[source] kube::Error),
    /// The kept texts do not hold the last good text the status names (or it does not match its hash).
    #[error("the kept texts do not hold the status' last good text")]
    NotKept,
    /// The `ConfigActor` is gone (the process is stopping).
    #[error("the ConfigActor has stopped")]
    Stopped,
}

/// The watch → replica hop: the `ConfigRollout` as it is now (`None`: deleted).
#[derive(Debug)]
struct RolloutSeen(Option<Box<ConfigRollout>>);

/// The `ConfigActor` → replica hop: it put a text in force (the hash it publishes changed).
struct TextApplied;

/// The `ConfigActor` → replica hop: it judged a text, valid or not.
struct TextJudged;

/// The replica's rollout actor. Start it with [`RolloutReplica::start_following`].
pub struct RolloutReplica<S: AppSettings> {
    pub(crate) names: RolloutNames,
    pub(crate) uid: String,
    pub(crate) client: Client,
    pub(crate) config_actor: Addr<ConfigActor<S>>,
    pub(crate) status: watch::Sender<Option<RolloutStatus>>,
    pub(crate) object: Option<ConfigRollout>,
    pub(crate) running: watch::Receiver<Option<DocumentHash>>,
    pub(crate) judged: watch::Receiver<Option<Judged>>,
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
    pub(crate) campaign_every: Duration,
    pub(crate) metrics: RolloutMetrics,
    /// The rollout and target a `rejected` verdict was written for.
    pub(crate) refusal_reported: Option<(String, String)>,
    pub(crate) annotating: bool,
    pub(crate) annotate_next: Option<Option<Verdict>>,
    pub(crate) annotate_warned: Option<Instant>,
    /// Successful annotation writes so far: a failed verdict is written again only if none succeeded since.
    pub(crate) annotations_written: u64,
    /// The last good text a rollback to it failed for, and when: tried again after [`ROLLBACK_RETRY`].
    pub(crate) rollback_failed: Option<(String, Instant)>,
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
    /// The newest document judged, from the `ConfigActor`.
    pub judged: watch::Receiver<Option<Judged>>,
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
            refusal_reported: None,
            annotating: false,
            annotate_next: None,
            annotate_warned: None,
            annotations_written: 0,
            rollback_failed: None,
            last_campaign: None,
            campaign_every: CAMPAIGN_EVERY,
        };
        actor.start()
    }

    fn current(&self) -> Option<&RolloutStatus> {
        self.object.as_ref().and_then(|o| o.status.as_ref())
    }

    /// Merge-patches this Pod's rollout annotations: the text it runs and, if any, its verdict.
    /// Puts the last good text back, read from the `ConfigRolloutDocument` and checked against the status.
    pub(crate) fn roll_back(&mut self, ctx: &mut Context<Self>, reason: String) {
        let Some(good) = self.current().and_then(|s| s.last_good.clone()) else { return };
        let failed_lately =
            self.rollback_failed.as_ref().is_some_and(|(hash, at)| *hash == good.hash && at.elapsed() < ROLLBACK_RETRY);
        if self.rolling_back || failed_lately {
            return;
        }
        self.rolling_back = true;
        warn!(%reason, "rolling back to the last good configuration");
        let (api, name, actor) = (
            documents(self.client.clone(), &self.names.namespace),
            self.names.object.clone(),
            self.config_actor.clone(),
        );
        let good_hash = good.hash.clone();
        let work = async move {
            let document = bounded(api.get(&name)).await.map_err(RollbackError::Read)?;
            let kept = document.spec.find(&good.hash).cloned().ok_or(RollbackError::NotKept)?;
            let message = Rollback { text: kept.text, resource_version: Some(kept.resource_version), reason };
            actor.send(message).await.map_err(|_| RollbackError::Stopped)
        };
        ctx.spawn(work.into_actor(self).map(move |done, act, ctx| {
            act.rolling_back = false;
            match done {
                Ok(report) if report.error.is_none() => {
                    act.rollback_failed = None;
                    act.metrics.rollbacks.inc();
                    info!(generation = report.generation, "rolled back");
                }
                Ok(report) => {
                    act.rollback_failed = Some((good_hash, Instant::now()));
                    warn!(error = ?report.error, "this replica refuses the last good text; keeping what it runs");
                    if let Some(status) = act.current().cloned() {
                        let reason = format!("refuses the last good text: {}", report.error.unwrap_or_default());
                        act.report_refusal(ctx, &status, reason);
                    }
                }
                Err(error) => {
                    act.rollback_failed = Some((good_hash, Instant::now()));
                    warn!(error = %chain(&error), "could not roll back yet; trying again soon");
                }
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
        let admitted_in_flight = matches!(status.phase, Phase::Progressing | Phase::Halted) && status.admits(&self.uid);
        if running.is_none() && status.last_good.is_some() && !admitted_in_flight {
            // Its start-up read put no text in force (the rollout's state unreadable then, or the ConfigMap invalid
            // or absent): it serves its file and environment only, which the rollout never staged.
            return self.roll_back(ctx, "it runs no staged text since it started".into());
        }
        let judged = self.judged.borrow().clone();
        let refused = judged.filter(|j| status.target.as_ref().is_some_and(|t| t.hash == j.hash.as_str()));
        let in_wave = status.phase == Phase::Progressing && status.admits(&self.uid);
        if let Some(reason) = refused.and_then(|j| j.refusal).filter(|_| in_wave) {
            self.report_refusal(ctx, &status, reason);
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
        ctx.spawn(async move { bounded(api.get(&name)).await }.into_actor(self).map(|read, act, ctx| {
            act.confirming = false;
            match read {
                Ok(object) => act.seen(Some(object), ctx),
                Err(error) => debug!(%error, "could not confirm the rollout state"),
            }
        }));
    }

    /// A new status: published to the admission, a held version judged again, and acted on at once.
    fn seen(&mut self, object: Option<ConfigRollout>, ctx: &mut Context<Self>) {
        let version = |o: &Option<ConfigRollout>| o.as_ref().and_then(|o| o.metadata.resource_version.clone());
        if let (Some(new), Some(held)) = (version(&object), version(&self.object))
            && crate::resource_version::compare(&new, &held) == Some(std::cmp::Ordering::Less)
        {
            // A read that completed after a newer watch event: it must not put an older status back.
            return;
        }
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
                    // kube-runtime's backoff spaces the retries (30 s at most): a 403 or a missing kind is said again.
                    warn!(%error, "the ConfigRollout watch failed; every ConfigMap text is held until it is read");
                    None
                }
            }
        });
        ctx.add_stream(stream);
        // Acted on at once, not at the next tick: the gate's window opens when the target is applied.
        ctx.add_stream(changes(self.running.clone(), || TextApplied));
        ctx.add_stream(changes(self.judged.clone(), || TextJudged));
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }
}

impl<S: AppSettings> actix::StreamHandler<RolloutSeen> for RolloutReplica<S> {
    fn handle(&mut self, RolloutSeen(object): RolloutSeen, ctx: &mut Self::Context) {
        self.seen(object.map(|o| *o), ctx);
    }
}

impl<S: AppSettings> actix::StreamHandler<TextApplied> for RolloutReplica<S> {
    fn handle(&mut self, _: TextApplied, ctx: &mut Self::Context) {
        self.tick(ctx);
    }

    /// The `ConfigActor` is gone: nothing more to follow, but the actor keeps its other streams.
    fn finished(&mut self, _: &mut Self::Context) {}
}

impl<S: AppSettings> actix::StreamHandler<TextJudged> for RolloutReplica<S> {
    fn handle(&mut self, _: TextJudged, ctx: &mut Self::Context) {
        // A new text wants a coordinator now, not at the next periodic attempt.
        self.last_campaign = None;
        self.tick(ctx);
    }

    fn finished(&mut self, _: &mut Self::Context) {}
}

/// One `message()` per change of `receiver`'s value; ends when its sender is gone.
fn changes<T: Send + Sync + 'static, M: 'static>(
    receiver: watch::Receiver<T>,
    message: impl Fn() -> M + Copy + 'static,
) -> impl futures::Stream<Item = M> {
    futures::stream::unfold(receiver, move |mut receiver| async move {
        receiver.changed().await.ok()?;
        Some((message(), receiver))
    })
}

/// `error` and its sources on one line, cut as every API message is.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    brokkr_config::text::clip(&text, brokkr_config::text::ERROR_LIMIT).into_owned()
}
