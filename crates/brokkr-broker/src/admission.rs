//! Admission review of the broker's ConfigMap through the reload's own judgement ([`brokkr_config::judge`]).

use brokkr_config::{ConfigLayers, Document, ReloadableConfig, judge, settings::WebhookSettings, text::clip};
use kube::core::admission::{AdmissionResponse, Operation};
use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tracing::{debug, info};

use crate::review::{ObjectView, ReviewRequest};

/// The most bytes of one warning: the API server may cut warnings over 256 characters.
pub const WARNING_LIMIT: usize = 240;

/// The most bytes of all warnings of one answer: the API server starts cutting and dropping them past 4096
/// characters in total.
pub const WARNINGS_TOTAL_LIMIT: usize = 3 * 1024;

/// The most bytes of a denial's message.
pub const DENIAL_LIMIT: usize = 1024;

/// Counts reviews by `result`: `allowed`, `warned` (allowed with warnings), `denied`, `skipped` (not the
/// broker's ConfigMap; the webhook registration should never send those), `refused` (not read or not a review: too
/// large, too slow, over the shared budget, not JSON; the API server never sends those either).
#[derive(Debug, Clone, Default)]
pub struct ReviewMetrics {
    reviews: Family<Vec<(String, String)>, Counter>,
}

impl ReviewMetrics {
    /// Registers `brokkr_webhook_reviews_total`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register("brokkr_webhook_reviews", "Admission reviews answered, by result", metrics.reviews.clone());
        for result in ["allowed", "warned", "denied", "skipped", "refused"] {
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

    /// Counts a request that was refused before it could be reviewed.
    pub fn refused(&self) {
        self.metrics.count("refused");
    }

    /// The answer to one request: denied with the reload's own error, or allowed with warnings about keys that
    /// will not take effect now (restart-only) or at all (overridden by the environment).
    #[must_use]
    pub fn review(&self, request: &ReviewRequest) -> AdmissionResponse {
        let response = request.response();
        let running = self.config.current().settings.clone();
        let name = &running.config_reload.configmap;
        let ours = matches!(request.operation, Operation::Create | Operation::Update)
            && request.kind.kind == "ConfigMap"
            && request.kind.group.is_empty()
            && request.name == *name
            && self.namespace.as_ref().is_none_or(|ns| request.namespace.as_ref() == Some(ns));
        let Some(object) = request.object.as_ref().filter(|_| ours) else {
            // Name and namespace are the client's: cut before they are logged.
            let (name, namespace) =
                (clip(&request.name, 128), clip(request.namespace.as_deref().unwrap_or_default(), 128));
            debug!(%name, %namespace, operation = ?request.operation, "admission review skipped: not the broker's ConfigMap");
            self.metrics.count("skipped");
            return response;
        };
        let namespace = request.namespace.clone().unwrap_or_default();
        let key = &running.config_reload.key;
        let data = object.data_value(key).map(|v| (key.clone(), v)).into_iter().collect();
        // Logged: whoever reaches the port chooses it.
        let user = clip(request.user_info.username.as_deref().unwrap_or_default(), 128);
        let verdict = Document::from_configmap(&data, &namespace, &running.config_reload)
            .and_then(|document| judge(&self.layers, &document, &running));
        match verdict {
            Err(error) if unchanged_document(request, &running.config_reload.key) => {
                // Already stored (while no broker answered, or accepted by an older broker): refusing an update
                // that leaves it as it is (a label, a finalizer) protects nothing and blocks the tools making it.
                let reason = error.to_string();
                debug!(user = %user, %reason, "webhook allowed an update that leaves an invalid document unchanged");
                self.metrics.count("warned");
                let mut response = response;
                response.warnings = fit_warnings(vec![format!("the stored broker configuration is invalid: {reason}")]);
                response
            }
            Err(error) => {
                let reason = clip(&error.to_string(), DENIAL_LIMIT).into_owned();
                info!(user = %user, dry_run = request.dry_run, %reason, "webhook denied an edit of the ConfigMap");
                self.metrics.count("denied");
                response.deny(reason)
            }
            Ok(verdict) => {
                let mut warnings = verdict.warnings();
                warnings.extend(unreadable_certificate_warnings(&verdict.candidate.settings.webhook));
                debug!(
                    user = %user,
                    dry_run = request.dry_run,
                    warnings = warnings.len(),
                    "webhook allowed an edit of the ConfigMap"
                );
                self.metrics.count(if warnings.is_empty() { "allowed" } else { "warned" });
                let mut response = response;
                response.warnings = fit_warnings(warnings);
                response
            }
        }
    }
}

/// Whether an UPDATE leaves the data key holding the broker's document exactly as it was stored.
fn unchanged_document(request: &ReviewRequest, key: &str) -> bool {
    let document = |object: Option<&ObjectView>| object.map(|o| o.data_value(key));
    request.operation == Operation::Update
        && document(request.old_object.as_ref()).is_some()
        && document(request.old_object.as_ref()) == document(request.object.as_ref())
}

/// Each warning cut to [`WARNING_LIMIT`], and no more of them than fit in [`WARNINGS_TOTAL_LIMIT`] (the rest
/// counted in a last one); `None` when there are none.
fn fit_warnings(warnings: Vec<String>) -> Option<Vec<String>> {
    let total = warnings.len();
    let mut fitted = Vec::new();
    let mut bytes = 0;
    for warning in warnings {
        let warning = clip(&warning, WARNING_LIMIT).into_owned();
        // Room is kept for the last line that counts what was left out.
        if bytes + warning.len() > WARNINGS_TOTAL_LIMIT - 64 {
            fitted.push(format!("and {} more warnings", total - fitted.len()));
            break;
        }
        bytes += warning.len();
        fitted.push(warning);
    }
    Some(fitted).filter(|w| !w.is_empty())
}

/// With the webhook on, a warning per certificate file that cannot be read here: it would serve no certificate.
fn unreadable_certificate_warnings(webhook: &WebhookSettings) -> Vec<String> {
    if !webhook.enabled {
        return Vec::new();
    }
    [("webhook.cert_file", &webhook.cert_file), ("webhook.key_file", &webhook.key_file)]
        .into_iter()
        .filter_map(|(key, path)| {
            let error = std::fs::File::open(path).err()?;
            Some(format!("{key} {} cannot be read ({error}): the webhook would serve no certificate", path.display()))
        })
        .collect()
}
