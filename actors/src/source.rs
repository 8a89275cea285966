//! Where the actors read the ConfigMap: a field-selected watch and a one-shot read, behind a trait for tests.

use std::fmt;

use futures::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    runtime::watcher::{self, watcher},
};

use crate::messages::{ConfigMapState, ConfigMapVersion};

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
        // A field selector, never a label selector: RBAC can then limit the broker to this one object.
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
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
