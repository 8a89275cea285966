//! The coordinator: while this replica holds the rollout's Lease, it reads fresh (the `ConfigRollout`, the
//! ConfigMap, a consistent LIST of the broker Pods), calls the pure [`step`] and writes what changed, the kept texts
//! before the status, each write fenced by the Lease term and the resourceVersion it read. It gives the Lease up
//! when no rollout is in progress and nothing waits for it.

use std::{sync::Arc, time::Duration};

use brokkr_config::{AppSettings, ConfigLayers, Document, ReloadableConfig, judge, text::clip};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
    runtime::{
        WatchStreamExt,
        events::{Event, EventType, Recorder, Reporter},
        watcher,
    },
};
use tokio::{sync::watch, time::Instant};
use tracing::{debug, info, warn};

use crate::{
    admission::DocumentHash,
    lease::{Attempt, LeaseLock},
    rollout_objects::{
        ConfigRollout, ConfigRolloutDocument, DocumentSpec, KeptText, RolloutSpec, document_resource, documents,
        rollout_resource, rollouts,
    },
    rollout_pods::{deployment_rolling, pod_view},
    rollout_status::{Coordinator, Phase, RolloutStatus, VersionRef},
    rollout_step::{Memory, Notice, Observed, Policy, Text, step},
    transport::bounded,
};

/// How often the holder steps.
pub const STEP_EVERY: Duration = Duration::from_secs(2);

/// Waits for the next change of a broker Pod, or [`STEP_EVERY`], whichever comes first; a burst of changes within
/// [`SETTLE`] counts as one.
async fn next_change<T>(changes: &mut (impl futures::Stream<Item = T> + Unpin)) {
    tokio::select! {
        () = tokio::time::sleep(STEP_EVERY) => return,
        _ = changes.next() => {}
    }
    tokio::time::sleep(SETTLE).await;
    while changes.next().now_or_never().flatten().is_some() {}
}

/// The most bytes the kept texts may take as JSON: etcd stores an object of at most 1.5 MiB, and a text of many
/// escaped characters (`\\`, `<`) doubles or more when written as JSON.
pub const MAX_KEPT_BYTES: usize = 1_000_000;

/// What keeping the texts came to.
enum Kept {
    /// Every text the statuses name is kept.
    Written,
    /// A text is not at hand (the ConfigMap changed under the step).
    NotAtHand,
    /// The texts would take this many bytes as JSON, over [`MAX_KEPT_BYTES`].
    TooLarge(usize),
}

/// How long the coordinator lets a burst of Pod changes settle before it steps.
const SETTLE: Duration = Duration::from_millis(100);

/// Where the rollout's objects are, and who this replica is.
#[derive(Debug, Clone)]
pub struct RolloutNames {
    /// Their namespace.
    pub namespace: String,
    /// The `ConfigRollout`, the `ConfigRolloutDocument` and the Lease share this name (the release's).
    pub object: String,
    /// The ConfigMap and its data key.
    pub configmap: String,
    /// See `configmap`.
    pub key: String,
    /// The label selector of the broker Pods.
    pub pods: String,
    /// The broker's container name in them.
    pub container: String,
    /// The brokers' ServiceAccount: a Pod running as another is none of theirs. `None`: not checked.
    pub service_account: Option<String>,
    /// This replica's Pod name: its identity as a Lease holder.
    pub pod: String,
}

/// Why a coordinator step stopped.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// An API request failed; the next holder (or this one, later) retries from the cluster's state.
    #[error("an API request failed")]
    Api(#[source] kube::Error),
    /// The Lease was lost, or a status names a newer term: another replica coordinates now.
    #[error("fenced out: {0}")]
    Fenced(String),
}

/// One holder's run: steps until the rollout no longer needs a coordinator, then releases the Lease.
pub struct CoordinatorRun<S: AppSettings> {
    /// See [`RolloutNames`].
    pub names: RolloutNames,
    /// A client with the broker's rights.
    pub client: Client,
    /// This replica's layers, to judge the ConfigMap's text as it would.
    pub layers: ConfigLayers<S>,
    /// Its settings in force.
    pub config: ReloadableConfig<S>,
    /// The policy.
    pub policy: Policy,
    /// Who reports the Events.
    pub reporter: Reporter,
    /// Turns true when the process is stopping (SIGTERM): the holder gives the Lease up instead of letting it lapse.
    pub stop: watch::Receiver<bool>,
}

impl<S: AppSettings> CoordinatorRun<S> {
    /// Steps while `lock` holds term `term`, until the rollout needs no coordinator (then the Lease is released) or
    /// the Lease is lost.
    ///
    /// # Errors
    /// An API error or a lost Lease; the Lease is released on the way out where it can be.
    pub async fn run(&self, lock: &mut LeaseLock, term: i32, lease: &str) -> Result<(), CoordinatorError> {
        let mut memory = Memory::default();
        let mut stop = self.stop.clone();
        let mut renewed = Instant::now();
        // Any change of a broker Pod (a verdict written, readiness lost) steps at once, not at the next period.
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.names.namespace);
        let config = watcher::Config::default().labels(&self.names.pods);
        let mut changes = watcher::watcher(pods, config).default_backoff().boxed();
        let result = loop {
            if renewed.elapsed() >= STEP_EVERY * 2 {
                match lock.try_acquire_or_renew().await.map_err(CoordinatorError::Api) {
                    Ok(Attempt::Holds { term: now, .. }) if now == term => renewed = Instant::now(),
                    Ok(_) => break Err(CoordinatorError::Fenced("the Lease moved to another replica".into())),
                    Err(error) if lock.holds(Instant::now()) => debug!(%error, "could not renew the Lease yet"),
                    Err(error) => break Err(error),
                }
            }
            if !lock.holds(Instant::now()) {
                break Err(CoordinatorError::Fenced("the Lease lapsed before it was renewed".into()));
            }
            if *stop.borrow() {
                break Ok(());
            }
            match self.step_once(&mut memory, (term, lease), lock).await {
                Ok(true) => {
                    tokio::select! {
                        () = next_change(&mut changes) => {}
                        _ = stop.changed() => {}
                    }
                }
                Ok(false) => break Ok(()),
                // Another writer in between: read again at once.
                Err(CoordinatorError::Api(kube::Error::Api(status))) if status.code == 409 => {}
                Err(error) => break Err(error),
            }
        };
        if let Err(error) = lock.release().await {
            debug!(%error, "could not release the Lease; it lapses by itself");
        }
        result
    }

    /// One step: read, decide, write. `Ok(true)` while a coordinator is still needed. Before each write it checks
    /// on this replica's clock that the Lease still holds: a step slowed by the API server must not write after
    /// another replica may have taken over.
    async fn step_once(
        &self,
        memory: &mut Memory,
        (term, lease): (i32, &str),
        lock: &LeaseLock,
    ) -> Result<bool, CoordinatorError> {
        let api = |e| CoordinatorError::Api(e);
        let still_holds = || {
            lock.holds(Instant::now())
                .then_some(())
                .ok_or_else(|| CoordinatorError::Fenced("the Lease may have lapsed during the step".into()))
        };
        let names = &self.names;
        let rollouts = rollouts(self.client.clone(), &names.namespace);
        let object = match bounded(rollouts.get_opt(&names.object)).await.map_err(api)? {
            Some(object) => object,
            // First use: the chart cannot create an object of a kind it defines in the same install.
            None => {
                let empty = ConfigRollout::new(&names.object, &rollout_resource(), RolloutSpec::default());
                bounded(rollouts.create(&PostParams::default(), &empty)).await.map_err(api)?
            }
        };
        let status = object.status.clone().unwrap_or_default();
        // A term counts only within one Lease: a Lease deleted and created again starts its terms from 0.
        if let Some(other) = status.coordinator.as_ref().filter(|c| c.lease == lease && c.term > term) {
            return Err(CoordinatorError::Fenced(format!("{} writes in term {}", other.holder, other.term)));
        }
        let configmaps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &names.namespace);
        let configmap = bounded(configmaps.get_opt(&names.configmap)).await.map_err(api)?;
        let text = configmap.as_ref().and_then(|c| c.data.as_ref()).and_then(|d| d.get(&names.key)).cloned();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &names.namespace);
        let listed = bounded(pods.list(&ListParams::default().labels(&names.pods))).await.map_err(api)?.items;
        let judged = text.as_ref().map(|t| self.judge(configmap.as_ref(), t));
        let observed = Observed {
            text: judged,
            pods: listed
                .iter()
                .filter_map(|p| pod_view(p, &names.container, names.service_account.as_deref()))
                .collect(),
            deployment_rolling: deployment_rolling(&listed),
            promote: object.spec.promote.clone(),
            abort: object.spec.abort.clone(),
            wall: std::time::SystemTime::now(),
            fresh_id: format!("r-{:012x}", fastrand::u64(..1 << 48)),
        };
        let before = memory.clone();
        let (mut next, mut notices) = step(&status, memory, &observed, &self.policy, Instant::now());
        next.coordinator = Some(Coordinator { holder: names.pod.clone(), term, lease: lease.to_owned() });
        still_holds()?;
        match self.keep_texts(&status, &next, text.as_deref(), configmap.as_ref()).await? {
            Kept::Written => {}
            Kept::NotAtHand => {
                // Usually the ConfigMap changed under the step, and the next step has the text.
                debug!("a text the rollout's status names is neither kept nor in the ConfigMap; the status waits");
                return Ok(true);
            }
            Kept::TooLarge(size) => {
                // The step again, with the text judged invalid: a rollout in flight goes on, and the text is not
                // staged, said where every replica and `rollout-status` look.
                let reason = format!(
                    "not staged: the texts a rollout keeps would take {size} bytes as JSON, over {MAX_KEPT_BYTES} \
                     (a text of many escaped characters); shorten it"
                );
                let mut refused = observed.clone();
                if let Some(text) = refused.text.as_mut() {
                    text.judged = Err(reason.clone());
                }
                *memory = before;
                (next, notices) = step(&status, memory, &refused, &self.policy, Instant::now());
                next.coordinator = Some(Coordinator { holder: names.pod.clone(), term, lease: lease.to_owned() });
                if status.observed != next.observed {
                    notices.push(Notice { reason: "ConfigRolloutRefused", message: reason, warning: true });
                }
            }
        }
        if next != status {
            still_holds()?;
            let mut written = object.clone();
            written.status = Some(next.clone());
            // `written` carries the resourceVersion read at the start of the step: a write in between is a 409.
            bounded(rollouts.replace_status(&names.object, &PostParams::default(), &written)).await.map_err(api)?;
        }
        self.publish(&object, notices);
        let pending = next.phase == Phase::Progressing || next.last_good.is_none();
        Ok(pending)
    }

    /// The text as this replica judges it.
    fn judge(&self, configmap: Option<&ConfigMap>, text: &str) -> Text {
        let running = self.config.current();
        let rv = configmap.and_then(|c| c.metadata.resource_version.clone()).unwrap_or_default();
        let version = VersionRef { hash: DocumentHash::of(text).as_str().into(), resource_version: rv };
        let data = configmap.and_then(|c| c.data.clone()).unwrap_or_default();
        let judged = Document::from_configmap(&data, &self.names.namespace, running.settings.reload())
            .and_then(|document| judge(&self.layers, &document, &running.settings))
            .map(|verdict| verdict.restart_pending.iter().map(|c| c.key.to_owned()).collect())
            .map_err(|e| clip(&e.to_string(), 512).into_owned());
        Text { version, judged }
    }

    /// Writes the texts `status` and `next` name into the `ConfigRolloutDocument` before a status names them, and
    /// drops only texts neither names. `Ok(false)` when a text is not at hand (the ConfigMap changed under the step):
    /// the status waits for the next step.
    async fn keep_texts(
        &self,
        status: &RolloutStatus,
        next: &RolloutStatus,
        text: Option<&str>,
        configmap: Option<&ConfigMap>,
    ) -> Result<Kept, CoordinatorError> {
        let stored = named_texts(status);
        if named_texts(next).iter().all(|hash| stored.contains(hash)) {
            // The stored status was written after its texts were: nothing new to keep (pruning waits).
            return Ok(Kept::Written);
        }
        let documents = documents(self.client.clone(), &self.names.namespace);
        let existing = bounded(documents.get_opt(&self.names.object)).await.map_err(CoordinatorError::Api)?;
        let created = existing.is_none();
        let mut document: ConfigRolloutDocument = existing.unwrap_or_else(|| {
            ConfigRolloutDocument::new(&self.names.object, &document_resource(), DocumentSpec::default())
        });
        let rv = configmap.and_then(|c| c.metadata.resource_version.clone()).unwrap_or_default();
        let from_configmap = text.map(|t| KeptText {
            hash: DocumentHash::of(t).as_str().into(),
            resource_version: rv.clone(),
            text: t.into(),
        });
        let Some(texts) = kept_texts(&document.spec, status, next, from_configmap) else { return Ok(Kept::NotAtHand) };
        if texts == document.spec.texts && !created {
            return Ok(Kept::Written);
        }
        let size = serde_json::to_vec(&texts).map_or(usize::MAX, |json| json.len());
        if size > MAX_KEPT_BYTES {
            return Ok(Kept::TooLarge(size));
        }
        document.spec.texts = texts;
        let written = if created {
            bounded(documents.create(&PostParams::default(), &document)).await
        } else {
            // The resourceVersion just read: a write in between is a 409, and the step is taken again.
            bounded(documents.replace(&self.names.object, &PostParams::default(), &document)).await
        };
        written.map_err(CoordinatorError::Api)?;
        Ok(Kept::Written)
    }

    /// Records the step's notices as Events on the `ConfigRollout`, in the background.
    fn publish(&self, object: &ConfigRollout, notices: Vec<Notice>) {
        if notices.is_empty() {
            return;
        }
        let reference = ObjectReference {
            api_version: Some(format!("{}/{}", crate::rollout_objects::GROUP, crate::rollout_objects::VERSION)),
            kind: Some("ConfigRollout".into()),
            namespace: object.metadata.namespace.clone(),
            name: object.metadata.name.clone(),
            uid: object.metadata.uid.clone(),
            ..ObjectReference::default()
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let reporter = Arc::new(recorder);
        actix::spawn(async move {
            for notice in notices {
                let log = |n: &Notice| info!(reason = n.reason, message = %n.message, "staged rollout");
                if notice.warning {
                    warn!(reason = notice.reason, message = %notice.message, "staged rollout");
                } else {
                    log(&notice);
                }
                let event = Event {
                    type_: if notice.warning { EventType::Warning } else { EventType::Normal },
                    reason: notice.reason.into(),
                    note: Some(clip(&notice.message, 1000).into_owned()),
                    action: "Rollout".into(),
                    secondary: None,
                };
                let publish = reporter.publish(&event, &reference);
                if tokio::time::timeout(crate::transport::REQUEST_TIMEOUT, publish).await.is_err() {
                    debug!(reason = notice.reason, "recording the rollout's Event timed out");
                }
            }
        });
    }
}

/// The texts a document must keep while `status` is stored and `next` is about to be: every text either names (the
/// last good text, and a target in flight), found in `kept` or in `from_configmap`. `None` when one is nowhere.
#[must_use]
pub fn kept_texts(
    kept: &DocumentSpec,
    status: &RolloutStatus,
    next: &RolloutStatus,
    from_configmap: Option<KeptText>,
) -> Option<Vec<KeptText>> {
    let mut needed = named_texts(status);
    needed.extend(named_texts(next));
    let mut texts: Vec<KeptText> = Vec::new();
    for hash in needed {
        if texts.iter().any(|t| t.hash == hash) {
            continue;
        }
        let found = kept.find(hash).cloned().or_else(|| from_configmap.clone().filter(|t| t.hash == hash));
        texts.push(found?);
    }
    Some(texts)
}

/// The texts `status` names that a replica may need: the last good text, and the target while it is in flight.
fn named_texts(status: &RolloutStatus) -> Vec<&str> {
    let in_flight = matches!(status.phase, Phase::Progressing | Phase::Halted);
    let target = status.target.as_ref().filter(|_| in_flight).map(|t| t.hash.as_str());
    status.last_good.as_ref().map(|g| g.hash.as_str()).into_iter().chain(target).collect()
}
