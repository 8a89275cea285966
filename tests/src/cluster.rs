//! The real control plane plus the Kubernetes objects the tests need: namespace, ConfigMap, RBAC, Events.

use std::{collections::BTreeMap, path::PathBuf};

use brokkr_testenv::ControlPlane;
use k8s_openapi::api::{
    core::v1::{ConfigMap, Namespace},
    events::v1::Event,
    rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams},
};

use crate::Broker;

/// Name of the ConfigMap the brokers watch (the default `config_reload.configmap`).
pub const CONFIGMAP: &str = "brokkr-broker";
/// The identity the brokers use: a client certificate with this common name and no groups.
pub const BROKER_USER: &str = "brokkr-broker";

/// A control plane with one namespace for the test.
pub struct Cluster {
    /// The processes.
    pub plane: ControlPlane,
    /// A cluster-admin client.
    pub admin: Client,
    /// The test's namespace.
    pub namespace: String,
}

impl Cluster {
    /// Starts a control plane and creates `namespace`.
    pub async fn start(namespace: &str) -> Self {
        Self::start_with(namespace, &[]).await
    }

    /// Starts a control plane whose API server gets the `extra` flags, and creates `namespace`.
    pub async fn start_with(namespace: &str, extra: &[&str]) -> Self {
        Self::on(ControlPlane::start_with(extra).await.expect("control plane starts"), namespace).await
    }

    /// A cluster on `plane`, with `namespace` created.
    pub async fn on(plane: ControlPlane, namespace: &str) -> Self {
        let admin = plane.admin_client().await.expect("admin client");
        let ns = Namespace { metadata: meta(namespace, None), ..Namespace::default() };
        Api::<Namespace>::all(admin.clone()).create(&PostParams::default(), &ns).await.expect("namespace");
        Self { plane, admin, namespace: namespace.to_owned() }
    }

    /// Starts a control plane, creates `namespace`, grants the broker its Role and writes the ConfigMap.
    pub async fn with_config(namespace: &str, toml: &str) -> Self {
        let cluster = Self::start(namespace).await;
        cluster.grant_broker_role().await;
        cluster.apply_config(toml).await;
        cluster
    }

    /// Starts a broker with the restricted identity that reaches the API server through `proxy`.
    pub async fn start_broker_via(&self, proxy: &brokkr_testenv::FaultProxy, env: &[(&str, &str)]) -> Broker {
        let kubeconfig = self.plane.user_kubeconfig_via(BROKER_USER, proxy.addr()).expect("kubeconfig");
        Broker::start(&kubeconfig, &self.namespace, env, self.plane.dir()).await
    }

    /// Starts a broker with the restricted identity in this namespace, with extra `env`.
    pub async fn start_broker(&self, env: &[(&str, &str)]) -> Broker {
        Broker::start(&self.broker_kubeconfig(), &self.namespace, env, self.plane.dir()).await
    }

    /// A kubeconfig for the broker's restricted identity.
    #[must_use]
    pub fn broker_kubeconfig(&self) -> PathBuf {
        self.plane.user_kubeconfig(BROKER_USER).expect("kubeconfig")
    }

    fn configmaps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.admin.clone(), &self.namespace)
    }

    /// Creates or replaces the ConfigMap with `broker.toml = toml`; returns its new resourceVersion.
    pub async fn apply_config(&self, toml: &str) -> String {
        self.apply_configmap(CONFIGMAP, toml).await
    }

    /// Creates or replaces the ConfigMap `name` with `broker.toml = toml`; returns its new resourceVersion.
    pub async fn apply_configmap(&self, name: &str, toml: &str) -> String {
        let api = self.configmaps();
        let mut cm = ConfigMap {
            metadata: meta(name, Some(&self.namespace)),
            data: Some(BTreeMap::from([("broker.toml".to_owned(), toml.to_owned())])),
            ..ConfigMap::default()
        };
        let written = match api.get_opt(name).await.expect("get ConfigMap") {
            Some(existing) => {
                cm.metadata.resource_version = existing.metadata.resource_version;
                api.replace(name, &PostParams::default(), &cm).await.expect("replace ConfigMap")
            }
            None => api.create(&PostParams::default(), &cm).await.expect("create ConfigMap"),
        };
        written.metadata.resource_version.unwrap_or_default()
    }

    /// Deletes the ConfigMap if it exists.
    pub async fn delete_config_if_present(&self) {
        if self.configmaps().get_opt(CONFIGMAP).await.expect("get ConfigMap").is_some() {
            self.delete_config().await;
        }
    }

    /// Changes only a label of the ConfigMap, if it exists: returns the resourceVersions before and after.
    pub async fn touch_label(&self) -> Option<(String, String)> {
        let api = self.configmaps();
        let mut cm = api.get_opt(CONFIGMAP).await.expect("get ConfigMap")?;
        let before = cm.metadata.resource_version.clone().unwrap_or_default();
        let labels = cm.metadata.labels.get_or_insert_with(BTreeMap::new);
        let next = labels.get("touched").and_then(|v| v.parse::<u64>().ok()).unwrap_or_default() + 1;
        labels.insert("touched".into(), next.to_string());
        let written = api.replace(CONFIGMAP, &PostParams::default(), &cm).await.expect("replace ConfigMap");
        Some((before, written.metadata.resource_version.unwrap_or_default()))
    }

    /// Takes the broker's RoleBinding away: its requests are forbidden until [`Cluster::restore_broker_binding`].
    pub async fn revoke_broker_binding(&self) {
        let api = Api::<RoleBinding>::namespaced(self.admin.clone(), &self.namespace);
        let _ = api.delete("brokkr-broker", &DeleteParams::default()).await;
    }

    /// Gives the broker its RoleBinding back (the Role stays).
    pub async fn restore_broker_binding(&self) {
        let api = Api::<RoleBinding>::namespaced(self.admin.clone(), &self.namespace);
        let _ = api.create(&PostParams::default(), &broker_binding(&self.namespace)).await;
    }

    /// Deletes the ConfigMap.
    pub async fn delete_config(&self) {
        self.configmaps().delete(CONFIGMAP, &DeleteParams::default()).await.expect("delete ConfigMap");
    }

    /// The least the broker needs: read its own ConfigMap, record Events.
    pub async fn grant_broker_role(&self) {
        self.grant_broker_role_with(&["get", "list", "watch"]).await;
    }

    /// A Role that allows `verbs` on the broker's ConfigMap (and Events), bound to the broker's identity.
    pub async fn grant_broker_role_with(&self, verbs: &[&str]) {
        let role = Role {
            metadata: meta("brokkr-broker", Some(&self.namespace)),
            rules: Some(vec![
                PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["configmaps".into()]),
                    resource_names: Some(vec![CONFIGMAP.into()]),
                    verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
                    ..PolicyRule::default()
                },
                PolicyRule {
                    api_groups: Some(vec!["events.k8s.io".into()]),
                    resources: Some(vec!["events".into()]),
                    verbs: vec!["create".into(), "patch".into()],
                    ..PolicyRule::default()
                },
            ]),
        };
        let binding = broker_binding(&self.namespace);
        let pp = PostParams::default();
        Api::<Role>::namespaced(self.admin.clone(), &self.namespace).create(&pp, &role).await.expect("Role");
        Api::<RoleBinding>::namespaced(self.admin.clone(), &self.namespace)
            .create(&pp, &binding)
            .await
            .expect("RoleBinding");
    }

    /// Events in the namespace about the ConfigMap, as `(type, reason, note)`.
    pub async fn configmap_events(&self) -> Vec<(String, String, String)> {
        let events = Api::<Event>::namespaced(self.admin.clone(), &self.namespace)
            .list(&ListParams::default())
            .await
            .expect("list Events");
        events
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(CONFIGMAP))
            .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }
}

/// Binds the Role `brokkr-broker` to the broker's identity.
fn broker_binding(namespace: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta("brokkr-broker", Some(namespace)),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "brokkr-broker".into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: BROKER_USER.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Subject::default()
        }]),
    }
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: namespace.map(Into::into), ..ObjectMeta::default() }
}
