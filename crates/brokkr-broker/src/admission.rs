//! Admission review of the broker's ConfigMap through the reload's own build and validation.

use std::collections::BTreeMap;

use brokkr_config::{Change, ConfigLayers, ReloadableConfig, diff};
use brokkr_reload::{messages::ConfigMapVersion, startup::candidate};
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, Operation},
};
use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tracing::{debug, info};

/// Counts reviews by `result`: `allowed`, `warned` (allowed with warnings), `denied`, `skipped` (not the
/// broker's ConfigMap; the webhook registration should never send those).
#[derive(Debug, Clone, Default)]
pub struct ReviewMetrics {
    reviews: Family<Vec<(String, String)>, Counter>,
}

impl ReviewMetrics {
    /// Registers `brokkr_webhook_reviews_total`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register("brokkr_webhook_reviews", "Admission reviews answered, by result", metrics.reviews.clone());
        for result in ["allowed", "warned", "denied", "skipped"] {
            drop(metrics.reviews.get_or_create(&vec![("result".into(), result.into())]));
        }
        metrics
    }

    fn count(&self, result: &str) {
        self.reviews.get_or_create(&vec![("result".into(), result.into())]).inc();
    }
}

/// Answers admission reviews for one ConfigMap, as the `ConfigActor` of this broker would judge the document.
#[derive(Debug, Clone)]
pub struct ConfigMapReviewer {
    layers: ConfigLayers,
    config: ReloadableConfig,
    namespace: Option<String>,
    metrics: ReviewMetrics,
}

impl ConfigMapReviewer {
    /// Reviews edits of the ConfigMap named by `config`'s settings in `namespace` (any namespace when `None`),
    /// building them over `layers` (file and environment) like a reload does.
    #[must_use]
    pub fn new(
        layers: ConfigLayers,
        config: ReloadableConfig,
        namespace: Option<String>,
        metrics: ReviewMetrics,
    ) -> Self {
        Self { layers, config, namespace, metrics }
    }

    /// The answer to one request: denied with the reload's own error, or allowed with warnings about keys that
    /// will not take effect now (restart-only) or at all (overridden by the environment).
    #[must_use]
    pub fn review(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let response = AdmissionResponse::from(request);
        let running = self.config.current().settings.clone();
        let name = &running.config_reload.configmap;
        let ours = matches!(request.operation, Operation::Create | Operation::Update)
            && request.kind.kind == "ConfigMap"
            && request.kind.group.is_empty()
            && request.name == *name
            && self.namespace.as_ref().is_none_or(|ns| request.namespace.as_ref() == Some(ns));
        let Some(object) = request.object.as_ref().filter(|_| ours) else {
            debug!(name = %request.name, namespace = ?request.namespace, operation = ?request.operation, "admission review skipped: not the broker's ConfigMap");
            self.metrics.count("skipped");
            return response;
        };
        let namespace = request.namespace.clone().unwrap_or_default();
        let version = ConfigMapVersion {
            data: string_data(object),
            resource_version: object.metadata.resource_version.clone(),
            uid: object.metadata.uid.clone(),
        };
        let user = request.user_info.username.as_deref().unwrap_or_default();
        match candidate(&self.layers, &version, &namespace, &running) {
            Err(error) if unchanged_document(request, &running.config_reload.key) => {
                // Already stored (while no broker answered, or accepted by an older broker): refusing an update
                // that leaves it as it is (a label, a finalizer) protects nothing and blocks the tools making it.
                let reason = error.to_string();
                debug!(user, %reason, "webhook allowed an update that leaves an invalid document unchanged");
                self.metrics.count("warned");
                let mut response = response;
                response.warnings = Some(vec![format!("the stored broker configuration is invalid: {reason}")]);
                response
            }
            Err(error) => {
                let reason = error.to_string();
                info!(user, dry_run = request.dry_run, %reason, "webhook denied an edit of the ConfigMap");
                self.metrics.count("denied");
                response.deny(reason)
            }
            Ok(built) => {
                let pending: Vec<Change> = diff(&running, &built.settings).into_iter().filter(|c| !c.dynamic).collect();
                let mut warnings: Vec<String> = pending.iter().map(restart_warning).collect();
                warnings.extend(built.shadowed_by_env.iter().map(|key| shadow_warning(key)));
                debug!(
                    user,
                    dry_run = request.dry_run,
                    warnings = warnings.len(),
                    "webhook allowed an edit of the ConfigMap"
                );
                self.metrics.count(if warnings.is_empty() { "allowed" } else { "warned" });
                let mut response = response;
                response.warnings = Some(warnings).filter(|w| !w.is_empty());
                response
            }
        }
    }
}

/// Whether an UPDATE leaves the data key holding the broker's document exactly as it was stored.
fn unchanged_document(request: &AdmissionRequest<DynamicObject>, key: &str) -> bool {
    let document = |object: Option<&DynamicObject>| object.map(|o| string_data(o).remove(key));
    request.operation == Operation::Update
        && document(request.old_object.as_ref()).is_some()
        && document(request.old_object.as_ref()) == document(request.object.as_ref())
}

/// `data` as strings; a value that is not a string (the API server never sends one) is left out, which the
/// build then reports as a missing key if it is the broker's.
fn string_data(object: &DynamicObject) -> BTreeMap<String, String> {
    object
        .data
        .get("data")
        .and_then(serde_json::Value::as_object)
        .map(|data| data.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

/// Kept short: kubectl prints each warning on one line, and the API server may cut warnings over 256 bytes.
fn restart_warning(change: &Change) -> String {
    format!("{} changes from {} to {} at the next broker restart, not live", change.key, change.old, change.new)
}

fn shadow_warning(key: &str) -> String {
    let var = format!("BROKKR__{}", key.replace('.', "__").to_uppercase());
    format!("{key} has no effect: the broker's environment sets it ({var})")
}
