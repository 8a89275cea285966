//! Where the actors read the ConfigMap: a field-selected watch and a one-shot read, behind a trait for tests.

use std::{fmt, sync::Arc, time::Duration};

use brokkr_config::{ConfigError, Document, ReloadSettings};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    runtime::watcher::{self, watcher},
};

pub use crate::messages::ReadError;
use crate::messages::{ConfigMapState, ConfigMapVersion};

pub use crate::transport::{WATCH_TIMEOUT_MAX_SECS, WATCH_TIMEOUT_MIN_SECS, random_watch_timeout};

/// The longest any single read of the ConfigMap (resync, on demand) may take before it is given up: the bound of
/// every request ([`crate::transport::REQUEST_TIMEOUT`]). Over HTTP/1.1 dropping the request also drops its
/// connection; over HTTP/2 the connection is shared and closed by its unanswered PING.
pub const READ_TIMEOUT: Duration = crate::transport::REQUEST_TIMEOUT;

/// Reads the ConfigMap once through `source`, giving up after `timeout`.
pub async fn read_within(source: Arc<dyn ConfigMapSource>, timeout: Duration) -> Result<ConfigMapState, ReadError> {
    match tokio::time::timeout(timeout, source.read()).await {
        // Only a file source gives `ReadEvents` from a one-shot read (kube's own `get` never does).
        Ok(read) => read.map_err(|error| match error {
            kube::Error::ReadEvents(error) => ReadError::File(error),
            error => ReadError::Api(error),
        }),
        Err(_) => Err(ReadError::TimedOut(timeout)),
    }
}

/// A stream of watch events, as kube-runtime's `watcher` yields them.
pub type WatchStream = BoxStream<'static, Result<watcher::Event<ConfigMap>, watcher::Error>>;

/// The ConfigMap as seen through some API.
pub trait ConfigMapSource: Send + Sync + 'static {
    /// A new watch that starts with a full list.
    fn watch(&self) -> WatchStream;
    /// Reads the ConfigMap once.
    fn read(&self) -> BoxFuture<'static, Result<ConfigMapState, kube::Error>>;
    /// Namespace of the ConfigMap.
    fn namespace(&self) -> String;
    /// `namespace/name`, for logs.
    fn describe(&self) -> String;
    /// What it is, for messages: `ConfigMap namespace/name` by default.
    fn what(&self) -> String {
        format!("ConfigMap {}", self.describe())
    }
    /// Whether the `ConfigActor` reads it again every `resync_interval`; a source read only on demand says no.
    fn resyncs(&self) -> bool {
        true
    }
    /// The document `version` holds for the reload section in force, `reload`, and its place among the layers: by
    /// default the ConfigMap's data key, read from [`ConfigMapSource::namespace`].
    ///
    /// # Errors
    /// [`ConfigError::MissingDataKey`] when the data key is absent.
    fn document(&self, version: &ConfigMapVersion, reload: &ReloadSettings) -> Result<Document, ConfigError> {
        Document::from_configmap(&version.data, &self.namespace(), reload)
    }
}

/// The broker's own ConfigMap through the Kubernetes API.
#[derive(Clone)]
pub struct KubeConfigMapSource {
    api: Api<ConfigMap>,
    namespace: String,
    name: String,
}

impl fmt::Debug for KubeConfigMapSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KubeConfigMapSource({}/{})", self.namespace, self.name)
    }
}

impl KubeConfigMapSource {
    /// The ConfigMap `name` in `namespace`.
    #[must_use]
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        Self { api: Api::namespaced(client, namespace), namespace: namespace.into(), name: name.into() }
    }
}

impl ConfigMapSource for KubeConfigMapSource {
    fn watch(&self) -> WatchStream {
        // A field selector, never a label selector: RBAC can then limit the broker to this one object. Bookmarks
        // are on (kube-runtime's default), so a resume after the timeout starts from a recent version.
        let config =
            watcher::Config::default().fields(&format!("metadata.name={}", self.name)).timeout(random_watch_timeout());
        watcher(self.api.clone(), config).boxed()
    }

    fn read(&self) -> BoxFuture<'static, Result<ConfigMapState, kube::Error>> {
        let api = self.api.clone();
        let name = self.name.clone();
        async move { Ok(api.get_opt(&name).await?.map_or(ConfigMapState::Absent, |cm| state_of(&cm))) }.boxed()
    }

    fn namespace(&self) -> String {
        self.namespace.clone()
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The parts of a ConfigMap that a reload needs.
#[must_use]
pub fn state_of(cm: &ConfigMap) -> ConfigMapState {
    ConfigMapState::Present(ConfigMapVersion {
        data: cm.data.clone().unwrap_or_default(),
        resource_version: cm.metadata.resource_version.clone(),
        uid: cm.metadata.uid.clone(),
    })
}
