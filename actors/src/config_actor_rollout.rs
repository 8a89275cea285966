//! `ConfigActor`'s two rollout messages: [`Readmit`] judges the version the admission held back again, and
//! [`Rollback`] puts the last good document back without asking the admission or the version order.

use actix::{Context, Handler, MessageResult};
use brokkr_config::{AppSettings, Document, Outcome, Place, SourceRef, judge, layers::LayerText};
use tracing::{info, warn};

use crate::{
    admission::DocumentHash,
    config_actor::ConfigActor,
    history::ReloadRecord,
    messages::{ConfigMapState, Readmit, ReloadReport, Rollback, Trigger},
};

impl<S: AppSettings> ConfigActor<S> {
    /// A valid version the admission held back: counted and recorded, nothing applied.
    pub(crate) fn hold(&mut self, reason: String, source: &SourceRef, trigger: Trigger) -> ReloadReport {
        let now = self.config.current();
        self.metrics.record_reload(Outcome::Held, now.generation, &now.hash, 0);
        let rv = source.resource_version.as_deref().unwrap_or("");
        info!(resource_version = rv, trigger = trigger.as_str(), %reason, "valid version held by the staged rollout");
        let mut record = ReloadRecord::new(trigger, Outcome::Held, Vec::new());
        (record.generation, record.hash) = (now.generation, now.hash.clone());
        record.resource_version.clone_from(&source.resource_version);
        record.error = Some(reason.clone());
        self.history.record(record, now.settings.reload().history);
        ReloadReport { outcome: Outcome::Held, changes: Vec::new(), generation: now.generation, error: Some(reason) }
    }
}

impl<S: AppSettings> Handler<Readmit> for ConfigActor<S> {
    type Result = Option<ReloadReport>;

    /// `None` when nothing is held: the version in force is the newest valid one.
    fn handle(&mut self, _: Readmit, ctx: &mut Self::Context) -> Self::Result {
        let held = self.held.take()?;
        // Not older than the newest acted on: it was the newest when it was held, and a newer one clears it.
        Some(self.apply(ConfigMapState::Present(held), Trigger::Rollout, false, ctx))
    }
}

impl<S: AppSettings> Handler<Rollback> for ConfigActor<S> {
    type Result = MessageResult<Rollback>;

    /// Judged over this replica's own layers like any document: if they refuse it (the environment changed since
    /// it was good), what is in force stays and the report says why.
    /// A version held for a later wave stays held: the admission refuses the failed text on its own.
    fn handle(&mut self, msg: Rollback, ctx: &mut Context<Self>) -> Self::Result {
        let running = self.config.current();
        let namespace = self.source.namespace();
        let source = SourceRef {
            namespace: namespace.clone(),
            name: running.settings.reload().configmap.clone(),
            resource_version: msg.resource_version,
        };
        let hash = DocumentHash::of(&msg.text);
        let document = Document {
            layer: LayerText { origin: format!("the last good configuration (ConfigMap {namespace})"), text: msg.text },
            place: Place::ConfigMap { namespace: Some(namespace) },
        };
        let candidate = judge(&self.layers, &document, &running.settings).map(|verdict| verdict.candidate);
        let report = self.put_in_force(candidate, Some(hash), &source, Trigger::Rollback, ctx);
        match &report.error {
            None => {
                info!(reason = %msg.reason, generation = report.generation, "rolled back to the last good configuration")
            }
            Some(error) => {
                warn!(reason = %msg.reason, %error, "could not roll back: this replica refuses the last good configuration")
            }
        }
        MessageResult(report)
    }
}
