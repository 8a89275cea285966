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
use tokio::time::Instant;
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
}

impl<S: AppSettings> CoordinatorRun<S> {
    /// Steps while `lock` holds term `term`, until the rollout needs no coordinator (then the Lease is released) or
    /// the Lease is lost.
    ///
    /// # Errors
    /// An API error or a lost Lease; the Lease is released on the way out where it can be.
    pub async fn run(&self, lock: &mut LeaseLock, term: i32) -> Result<(), CoordinatorError> {
        let mut memory = Memory::default();
        let mut renewed = Instant::now();
        // Any change of a broker Pod (a verdict written, readiness lost) steps at once, not at the next period.
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.names.namespace);
        let config = watcher::Config::default().labels(&self.names.pods);
        let mut changes = watcher::watcher(pods, config).default_backoff().boxed();
        let result = loop {
            if renewed.elapsed() >= STEP_EVERY * 2 {
                match lock.try_acquire_or_renew().await.map_err(CoordinatorError::Api) {
                    Ok(Attempt::Holds { term: now }) if now == term => renewed = Instant::now(),
                    Ok(_) => break Err(CoordinatorError::Fenced("the Lease moved to another replica".into())),
                    Err(error) if lock.holds(Instant::now()) => debug!(%error, "could not renew the Lease yet"),
                    Err(error) => break Err(error),
                }
            }
            if !lock.holds(Instant::now()) {
                break Err(CoordinatorError::Fenced("the Lease lapsed before it was renewed".into()));
            }
            match self.step_once(&mut memory, term).await {
                Ok(true) => next_change(&mut changes).await,
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

    /// One step: read, decide, write. `Ok(true)` while a coordinator is still needed.
    async fn step_once(&self, memory: &mut Memory, term: i32) -> Result<bool, CoordinatorError> {
        let api = |e| CoordinatorError::Api(e);
        let names = &self.names;
        let rollouts = rollouts(self.client.clone(), &names.namespace);
        let object = match rollouts.get_opt(&names.object).await.map_err(api)? {
            Some(object) => object,
            // First use: the chart cannot create an object of a kind it defines in the same install.
            None => {
                let empty = ConfigRollout::new(&names.object, &rollout_resource(), RolloutSpec::default());
                rollouts.create(&PostParams::default(), &empty).await.map_err(api)?
            }
        };
        let status = object.status.clone().unwrap_or_default();
        if let Some(other) = status.coordinator.as_ref().filter(|c| c.term > term) {
            return Err(CoordinatorError::Fenced(format!("{} writes in term {}", other.holder, other.term)));
        }
        let configmaps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &names.namespace);
        let configmap = configmaps.get_opt(&names.configmap).await.map_err(api)?;
        let text = configmap.as_ref().and_then(|c| c.data.as_ref()).and_then(|d| d.get(&names.key)).cloned();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &names.namespace);
        let listed = pods.list(&ListParams::default().labels(&names.pods)).await.map_err(api)?.items;
        let judged = text.as_ref().map(|t| self.judge(configmap.as_ref(), t));
        let observed = Observed {
            text: judged,
            pods: listed.iter().filter_map(|p| pod_view(p, &names.container)).collect(),
            deployment_rolling: deployment_rolling(&listed),
            promote: object.spec.promote.clone(),
            abort: object.spec.abort.clone(),
            wall: std::time::SystemTime::now(),
            fresh_id: format!("r-{:012x}", fastrand::u64(..1 << 48)),
        };
        let (mut next, notices) = step(&status, memory, &observed, &self.policy, Instant::now());
        next.coordinator = Some(Coordinator { holder: names.pod.clone(), term });
        let kept = self.keep_texts(&status, &next, text.as_deref(), configmap.as_ref()).await?;
        if !kept {
            return Ok(true);
        }
        if next != status {
            let mut written = object.clone();
            written.status = Some(next.clone());
            // `written` carries the resourceVersion read at the start of the step: a write in between is a 409.
            rollouts.replace_status(&names.object, &PostParams::default(), &written).await.map_err(api)?;
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

    /// Writes the texts `next` names into the `ConfigRolloutDocument` before the status names them. `Ok(false)`
    /// when a text is not at hand (the ConfigMap changed under the step): the status waits for the next step.
    async fn keep_texts(
        &self,
        status: &RolloutStatus,
        next: &RolloutStatus,
        text: Option<&str>,
        configmap: Option<&ConfigMap>,
    ) -> Result<bool, CoordinatorError> {
        let new_target =
            next.target.as_ref().filter(|t| status.target.as_ref() != Some(*t) && next.phase == Phase::Progressing);
        let new_good = next.last_good.as_ref().filter(|g| status.last_good.as_ref() != Some(*g));
        if new_target.is_none() && new_good.is_none() {
            return Ok(true);
        }
        let documents = documents(self.client.clone(), &self.names.namespace);
        let existing = documents.get_opt(&self.names.object).await.map_err(CoordinatorError::Api)?;
        let created = existing.is_none();
        let mut document: ConfigRolloutDocument = existing.unwrap_or_else(|| {
            ConfigRolloutDocument::new(&self.names.object, &document_resource(), DocumentSpec::default())
        });
        let rv = configmap.and_then(|c| c.metadata.resource_version.clone()).unwrap_or_default();
        let from_configmap = |hash: &str| {
            text.filter(|t| DocumentHash::of(t).as_str() == hash).map(|t| KeptText {
                hash: hash.into(),
                resource_version: rv.clone(),
                text: t.into(),
            })
        };
        if let Some(target) = new_target {
            let Some(kept) = from_configmap(&target.hash) else { return Ok(false) };
            document.spec.target = Some(kept);
        }
        if let Some(good) = new_good {
            let kept =
                document.spec.target.clone().filter(|t| t.hash == good.hash).or_else(|| from_configmap(&good.hash));
            let Some(kept) = kept else { return Ok(false) };
            document.spec.last_good = Some(kept);
        }
        let written = if created {
            documents.create(&PostParams::default(), &document).await
        } else {
            // The resourceVersion just read: a write in between is a 409, and the step is taken again.
            documents.replace(&self.names.object, &PostParams::default(), &document).await
        };
        written.map_err(CoordinatorError::Api)?;
        Ok(true)
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
