//! Kubernetes Events on the ConfigMap about each reload; publishing never blocks or fails a reload.

use std::time::Duration;

use brokkr_config::{ReloadOutcome, SourceRef};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client,
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use tracing::debug;

/// Something told about every reload outcome; must return at once.
pub trait ReloadEvents: Send + Sync + 'static {
    /// Called after `outcome` was applied for the ConfigMap `source`.
    fn reloaded(&self, source: &SourceRef, outcome: &ReloadOutcome);
}

/// Publishes `ConfigApplied`, `ConfigRejected` and `RestartRequired` Events with kube-runtime's recorder.
#[derive(Clone)]
pub struct KubeReloadEvents {
    recorder: Recorder,
}

impl KubeReloadEvents {
    /// A publisher reporting as controller `brokkr-broker`, instance `instance` (the pod name, if known).
    #[must_use]
    pub fn new(client: Client, instance: Option<String>) -> Self {
        Self { recorder: Recorder::new(client, Reporter { controller: "brokkr-broker".into(), instance }) }
    }
}

/// The Events an outcome deserves: changed keys and reasons, never values.
#[must_use]
pub fn events_for(outcome: &ReloadOutcome) -> Vec<Event> {
    let event = |type_, reason: &str, note: String| Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reload".into(),
        secondary: None,
    };
    let keys = |changes: &[brokkr_config::Change]| changes.iter().map(|c| c.key).collect::<Vec<_>>().join(", ");
    let mut events = Vec::new();
    match outcome {
        ReloadOutcome::Applied { generation, changes, .. } => events.push(event(
            EventType::Normal,
            "ConfigApplied",
            format!("generation {generation}: changed {}", keys(changes)),
        )),
        ReloadOutcome::Rejected { reason } => events.push(event(EventType::Warning, "ConfigRejected", reason.clone())),
        ReloadOutcome::Unchanged { .. } => {}
    }
    if !outcome.restart_required().is_empty() {
        events.push(event(
            EventType::Warning,
            "RestartRequired",
            format!("restart to apply: {}", keys(outcome.restart_required())),
        ));
    }
    events
}

impl ReloadEvents for KubeReloadEvents {
    fn reloaded(&self, source: &SourceRef, outcome: &ReloadOutcome) {
        let events = events_for(outcome);
        if events.is_empty() {
            return;
        }
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            namespace: Some(source.namespace.clone()),
            name: Some(source.name.clone()),
            ..ObjectReference::default()
        };
        let recorder = self.recorder.clone();
        actix::spawn(async move {
            for event in events {
                let publish = recorder.publish(&event, &reference);
                match tokio::time::timeout(Duration::from_secs(10), publish).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => debug!(%error, reason = %event.reason, "could not record Event"),
                    Err(_) => debug!(reason = %event.reason, "recording Event timed out"),
                }
            }
        });
    }
}
