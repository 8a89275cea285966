//! Decides whether the subsystem runs, connects to the API server without guessing, and registers the actors.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use actix::{Actor, Addr};
use brokkr_config::{AppSettings, ConfigLayers, ReloadableConfig, Settings};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::{
    config_actor::ConfigActor,
    debounce::DebounceActor,
    events::KubeReloadEvents,
    metrics::ReloadMetrics,
    options::Options,
    pod_status::PodStatus,
    source::{ConfigMapSource, KubeConfigMapSource},
    status::{WatcherState, WatcherStatus},
    supervisor::WatcherSupervisor,
    transport::{self, ApiProtocol},
};

const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Why the subsystem could not connect.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The kubeconfig that was named could not be read or used.
    #[error("failed to load kubeconfig {path}")]
    Kubeconfig {
        /// The file, or `KUBECONFIG` as given.
        path: String,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The in-cluster service account could not be used.
    #[error("failed to load in-cluster configuration")]
    InCluster(#[source] kube::config::InClusterError),
    /// A client could not be built from the configuration.
    #[error("failed to create Kubernetes client")]
    Client(#[source] transport::TransportError),
}

/// What the process knows about where it runs. Read once, injectable in tests.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `KUBERNETES_SERVICE_HOST`: set inside a pod.
    pub kubernetes_service_host: Option<String>,
    /// `--kubeconfig`.
    pub kubeconfig_flag: Option<PathBuf>,
    /// `KUBECONFIG`.
    pub kubeconfig_env: Option<String>,
    /// `POD_NAMESPACE` (downward API).
    pub pod_namespace: Option<String>,
    /// `POD_NAME` (downward API), used as the Events' reporting instance.
    pub pod_name: Option<String>,
    /// Content of the service account's namespace file.
    pub service_account_namespace: Option<String>,
}

impl Environment {
    /// Reads the process environment and the service account's namespace file.
    #[must_use]
    pub fn from_process(kubeconfig_flag: Option<PathBuf>) -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self {
            kubernetes_service_host: var("KUBERNETES_SERVICE_HOST"),
            kubeconfig_flag,
            kubeconfig_env: var("KUBECONFIG"),
            pod_namespace: var("POD_NAMESPACE"),
            pod_name: var("POD_NAME"),
            service_account_namespace: std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        }
    }
}

/// How to reach the API server; chosen explicitly, never by falling back to `~/.kube/config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// The pod's service account.
    InCluster,
    /// A kubeconfig named by `--kubeconfig` or `KUBECONFIG`.
    Kubeconfig(String),
}

/// Whether and how the subsystem runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing is registered and no API request is made.
    Disabled {
        /// Why, for the INFO line at start-up.
        reason: &'static str,
    },
    /// Watch `configmap` in `namespace` (or the kubeconfig's namespace when `None`).
    Enabled {
        /// The namespace, when settings or the environment name it.
        namespace: Option<String>,
        /// How to connect.
        connection: Connection,
    },
}

/// Decides from settings and environment alone; makes no request.
#[must_use]
pub fn plan<S: AppSettings>(settings: &S, env: &Environment) -> Plan {
    if !settings.reload().enabled {
        return Plan::Disabled { reason: "config_reload.enabled is false" };
    }
    let connection = match (&env.kubeconfig_flag, &env.kubeconfig_env, &env.kubernetes_service_host) {
        (Some(path), _, _) => Connection::Kubeconfig(path.display().to_string()),
        (None, Some(paths), _) => Connection::Kubeconfig(paths.clone()),
        (None, None, Some(_)) => Connection::InCluster,
        (None, None, None) => {
            return Plan::Disabled {
                reason: "not running in Kubernetes (KUBERNETES_SERVICE_HOST unset) and no --kubeconfig or KUBECONFIG given",
            };
        }
    };
    let namespace = settings
        .reload()
        .namespace
        .clone()
        .or_else(|| env.pod_namespace.clone())
        .or_else(|| env.service_account_namespace.clone());
    Plan::Enabled { namespace, connection }
}

/// A connection to the API server for the broker's ConfigMap; connecting makes no request.
#[derive(Clone)]
pub struct ApiAccess {
    /// The client every request of the subsystem goes through.
    pub client: kube::Client,
    /// The ConfigMap.
    pub source: Arc<KubeConfigMapSource>,
    /// Where Events about reloads go.
    pub events: Arc<KubeReloadEvents>,
    /// How the connection was chosen, for the start-up log line.
    pub connection: Connection,
    /// The broker's own Pod (`POD_NAME`), whose annotations say what is in force; `None` outside a pod.
    pub pod: Option<PodStatus>,
    /// The HTTP version the API server answers in.
    pub protocol: ApiProtocol,
}

impl std::fmt::Debug for ApiAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiAccess").field("source", &self.source).field("connection", &self.connection).finish()
    }
}

/// Follows `plan`: `None` when it is disabled (nothing is read, not even a kubeconfig), else a client for the
/// ConfigMap that `settings` name, whose Events report as `options.event_controller`. Logs nothing: the broker
/// logs once logging is set up.
pub async fn connect<S: AppSettings>(
    plan: &Plan,
    env: &Environment,
    settings: &S,
    options: &Options,
) -> Result<Option<ApiAccess>, RegistrationError> {
    let Plan::Enabled { namespace, connection } = plan else {
        return Ok(None);
    };
    let kube_config = match connection {
        Connection::InCluster => kube::Config::incluster().map_err(RegistrationError::InCluster)?,
        Connection::Kubeconfig(paths) => {
            let kubeconfig = load_kubeconfig(paths)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|source| RegistrationError::Kubeconfig { path: paths.clone(), source })?
        }
    };
    let namespace = namespace.clone().unwrap_or_else(|| kube_config.default_namespace.clone());
    let (client, protocol) = transport::client(kube_config).map_err(RegistrationError::Client)?;
    let name = &settings.reload().configmap;
    let source = Arc::new(KubeConfigMapSource::new(client.clone(), &namespace, name));
    // The Pod's own namespace, which `config_reload.namespace` may not be.
    let pod_namespace = env.pod_namespace.clone().or_else(|| env.service_account_namespace.clone());
    let pod_namespace = pod_namespace.unwrap_or_else(|| namespace.clone());
    let pod = env.pod_name.as_deref().map(|pod| PodStatus::new(client.clone(), &pod_namespace, pod));
    let events = Arc::new(KubeReloadEvents::new(client.clone(), &options.event_controller, env.pod_name.clone()));
    Ok(Some(ApiAccess { client, source, events, connection: connection.clone(), pod, protocol }))
}

/// What a staged rollout hands the `ConfigActor`: the admission to ask, and where to publish the hashes.
pub struct Staging {
    /// Asked before any valid version is applied.
    pub admission: Arc<dyn crate::admission::Admission>,
    /// The hash of the document in force.
    pub document_hash: tokio::sync::watch::Sender<Option<crate::admission::DocumentHash>>,
    /// The newest document judged, valid or not.
    pub judged_hash: tokio::sync::watch::Sender<Option<crate::admission::Judged>>,
}

/// The running (or deliberately absent) subsystem, as the broker's HTTP handlers see it.
pub struct Subsystem<S: AppSettings = Settings> {
    /// Where to send [`crate::ReloadNow`]; `None` when disabled.
    pub config_actor: Option<Addr<ConfigActor<S>>>,
    /// The watcher's state and restarts.
    pub watcher: WatcherStatus,
    /// True once a configuration is in force.
    pub ready: Arc<AtomicBool>,
    /// The HTTP version the API server answers in (unknown when disabled or registered on another source).
    pub protocol: ApiProtocol,
}

impl<S: AppSettings> Clone for Subsystem<S> {
    fn clone(&self) -> Self {
        Self {
            config_actor: self.config_actor.clone(),
            watcher: self.watcher.clone(),
            ready: self.ready.clone(),
            protocol: self.protocol.clone(),
        }
    }
}

impl<S: AppSettings> Subsystem<S> {
    /// No actors; ready at once.
    #[must_use]
    pub fn disabled() -> Self {
        Self {
            config_actor: None,
            watcher: WatcherStatus::new(WatcherState::Disabled),
            ready: Arc::new(AtomicBool::new(true)),
            protocol: ApiProtocol::default(),
        }
    }

    /// Registers the actors on `access`, or returns [`Subsystem::disabled`] when there is none (hot reload off,
    /// outside Kubernetes, or turned off by the start-up settings).
    #[must_use]
    pub fn start(
        access: Option<ApiAccess>,
        config: ReloadableConfig<S>,
        layers: ConfigLayers<S>,
        metrics: ReloadMetrics,
        options: &Options,
    ) -> Self {
        match access {
            Some(access) => Self {
                protocol: access.protocol,
                ..Self::register(access.source, config, layers, metrics, Some(access.events), options)
            },
            None => Self::disabled(),
        }
    }

    /// Registers the actors on `source`: supervisor → watcher → debounce → config.
    #[must_use]
    pub fn register(
        source: Arc<dyn ConfigMapSource>,
        config: ReloadableConfig<S>,
        layers: ConfigLayers<S>,
        metrics: ReloadMetrics,
        events: Option<Arc<dyn crate::events::ReloadEvents>>,
        options: &Options,
    ) -> Self {
        Self::register_staged(source, config, layers, metrics, events, options, None)
    }

    /// As [`Subsystem::register`], with the `ConfigActor` asking `staging`'s admission before it applies and
    /// publishing the hashes a staged rollout follows.
    #[must_use]
    pub fn register_staged(
        source: Arc<dyn ConfigMapSource>,
        config: ReloadableConfig<S>,
        layers: ConfigLayers<S>,
        metrics: ReloadMetrics,
        events: Option<Arc<dyn crate::events::ReloadEvents>>,
        options: &Options,
        staging: Option<Staging>,
    ) -> Self {
        let ready = Arc::new(AtomicBool::new(false));
        let mut actor = ConfigActor::new(config.clone(), layers, source.clone(), metrics.clone())
            .ready_flag(ready.clone())
            .audit(options.audit.clone())
            .history(options.history.clone());
        if let Some(events) = events {
            actor = actor.events(events);
        }
        if let Some(staging) = staging {
            actor = actor
                .admission(staging.admission)
                .document_hash(staging.document_hash)
                .judged_hash(staging.judged_hash);
        }
        let config_actor = actor.start();
        let debounce = DebounceActor::new(config, config_actor.clone().recipient(), metrics.clone()).start();
        let watcher = WatcherStatus::new(WatcherState::Listing);
        WatcherSupervisor::new(source, debounce.recipient(), metrics, watcher.clone()).start();
        Self { config_actor: Some(config_actor), watcher, ready, protocol: ApiProtocol::default() }
    }

    /// Whether a configuration is in force.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

fn load_kubeconfig(paths: &str) -> Result<Kubeconfig, RegistrationError> {
    let err = |source| RegistrationError::Kubeconfig { path: paths.to_owned(), source };
    let mut merged: Option<Kubeconfig> = None;
    for path in std::env::split_paths(paths).filter(|p| !p.as_os_str().is_empty()) {
        let next = Kubeconfig::read_from(&path).map_err(err)?;
        merged = Some(match merged {
            Some(acc) => acc.merge(next).map_err(err)?,
            None => next,
        });
    }
    merged.ok_or_else(|| err(kube::config::KubeconfigError::FindPath))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(enabled: bool) -> Settings {
        let mut s = Settings::default();
        s.config_reload.enabled = enabled;
        s
    }

    #[test]
    fn the_flag_off_disables_even_inside_kubernetes() {
        let env = Environment { kubernetes_service_host: Some("10.0.0.1".into()), ..Environment::default() };
        assert!(matches!(plan(&settings(false), &env), Plan::Disabled { .. }));
    }

    #[test]
    fn outside_kubernetes_without_a_named_kubeconfig_nothing_runs() {
        assert!(matches!(plan(&settings(true), &Environment::default()), Plan::Disabled { .. }));
    }

    #[test]
    fn an_explicit_kubeconfig_wins_and_the_namespace_falls_back_in_order() {
        let env = Environment {
            kubeconfig_flag: Some("/tmp/kc".into()),
            kubeconfig_env: Some("/other".into()),
            pod_namespace: Some("from-pod".into()),
            service_account_namespace: Some("from-sa".into()),
            ..Environment::default()
        };
        let Plan::Enabled { namespace, connection } = plan(&settings(true), &env) else { panic!("enabled") };
        assert_eq!(connection, Connection::Kubeconfig("/tmp/kc".into()));
        assert_eq!(namespace.as_deref(), Some("from-pod"));
        let mut s = settings(true);
        s.config_reload.namespace = Some("from-settings".into());
        let Plan::Enabled { namespace, .. } = plan(&s, &env) else { panic!("enabled") };
        assert_eq!(namespace.as_deref(), Some("from-settings"));
    }

    #[test]
    fn in_cluster_uses_the_service_account() {
        let env = Environment {
            kubernetes_service_host: Some("10.0.0.1".into()),
            service_account_namespace: Some("brokkr".into()),
            ..Environment::default()
        };
        let Plan::Enabled { namespace, connection } = plan(&settings(true), &env) else { panic!("enabled") };
        assert_eq!((namespace.as_deref(), connection), (Some("brokkr"), Connection::InCluster));
    }
}
