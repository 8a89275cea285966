//! The start-up read under a staged rollout (docs/ARCHITECTURE.md, "Start-up is a whitelist"): a replica starts on
//! the ConfigMap's text only when the rollout admits it (the last good text, or a target in this Pod's admitted
//! wave); otherwise it starts on the kept last good text. So a replica restarted after a rollback, with the failed
//! text still in the ConfigMap, starts on the last good configuration.

use std::sync::{Arc, Mutex, PoisonError};

use futures::{FutureExt, future::BoxFuture};
use kube::Client;

use crate::{
    admission::{Admit, DocumentHash},
    messages::{ConfigMapState, ConfigMapVersion},
    rollout_admission::decide,
    rollout_objects::{documents, rollouts},
    source::{ConfigMapSource, WatchStream},
};

/// A [`ConfigMapSource`] for the start-up read only: the ConfigMap, with its text replaced by the kept last good
/// one where the rollout does not admit it. Its watch is the ConfigMap's own.
pub struct StagedStart {
    inner: Arc<dyn ConfigMapSource>,
    client: Client,
    object: String,
    key: String,
    uid: String,
    started_on: Arc<Mutex<Option<DocumentHash>>>,
}

impl StagedStart {
    /// Reads through `inner`, judging against the `ConfigRollout` `object` for the Pod `uid`; `key` is the data key.
    #[must_use]
    pub fn new(inner: Arc<dyn ConfigMapSource>, client: Client, object: String, key: String, uid: String) -> Self {
        Self { inner, client, object, key, uid, started_on: Arc::default() }
    }

    /// The hash of the text the last read returned: what the replica starts on.
    #[must_use]
    pub fn started_on(&self) -> Option<DocumentHash> {
        self.started_on.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl ConfigMapSource for StagedStart {
    fn watch(&self) -> WatchStream {
        self.inner.watch()
    }

    fn read(&self) -> BoxFuture<'static, Result<ConfigMapState, kube::Error>> {
        let read = self.inner.read();
        let namespace = self.inner.namespace();
        let (client, object, key, uid) = (self.client.clone(), self.object.clone(), self.key.clone(), self.uid.clone());
        let started_on = self.started_on.clone();
        async move {
            let ConfigMapState::Present(version) = read.await? else { return Ok(ConfigMapState::Absent) };
            let version = whitelisted(version, &client, &namespace, &object, &key, &uid).await?;
            let hash = version.data.get(&key).map(|text| DocumentHash::of(text));
            *started_on.lock().unwrap_or_else(PoisonError::into_inner) = hash;
            Ok(ConfigMapState::Present(version))
        }
        .boxed()
    }

    fn namespace(&self) -> String {
        self.inner.namespace()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// `version` if the rollout admits its text for `uid`, else the kept last good text in its place. A rollout that
/// has not adopted a last good text yet admits any, as without the policy.
async fn whitelisted(
    mut version: ConfigMapVersion,
    client: &Client,
    namespace: &str,
    object: &str,
    key: &str,
    uid: &str,
) -> Result<ConfigMapVersion, kube::Error> {
    let Some(text) = version.data.get(key) else { return Ok(version) };
    let status = rollouts(client.clone(), namespace).get_opt(object).await?.and_then(|o| o.status);
    let Some(status) = status else { return Ok(version) };
    let Admit::Hold { reason } = decide(&status, uid, DocumentHash::of(text).as_str()) else { return Ok(version) };
    let Some(good) = status.last_good else { return Ok(version) };
    let document = documents(client.clone(), namespace).get(object).await?;
    match document.spec.find(&good.hash).cloned() {
        Some(kept) => {
            tracing::info!(%reason, "starting on the last good configuration, not the ConfigMap's text");
            version.data.insert(key.to_owned(), kept.text);
            version.resource_version = Some(kept.resource_version).filter(|rv| !rv.is_empty());
            Ok(version)
        }
        // The kept text is missing or does not match: the start-up read fails, and the broker starts on its file
        // and environment until the watch delivers an admitted text.
        None => Err(kube::Error::Service("the kept last good text does not match the rollout status".into())),
    }
}
