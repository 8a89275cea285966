//! Kubernetes Events on the ConfigMap about each reload; publishing never blocks or fails a reload.

use brokkr_config::{ReloadOutcome, SourceRef};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client,
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use tracing::debug;

/// The most bytes an Event's note may hold (`events.k8s.io/v1`: "at most 1 kB").
pub const NOTE_LIMIT: usize = 1024;

/// What about an outcome is news, as opposed to a re-read of something already announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct News {
    /// The set of restart-only keys waiting for a restart changed (and is not empty).
    pub restart: bool,
    /// A rejection whose reason differs from the last one announced (a re-read of the same broken document is not).
    pub rejection: bool,
}

/// Something told about every reload outcome; must return at once.
pub trait ReloadEvents: Send + Sync + 'static {
    /// Called after `outcome` was applied for the ConfigMap `source`; `news` says what deserves an Event.
    fn reloaded(&self, source: &SourceRef, outcome: &ReloadOutcome, news: News);
}

/// `note` escaped and cut to at most [`NOTE_LIMIT`] bytes, the cut marker included (the API server's limit).
fn fit_note(note: String) -> String {
    brokkr_config::text::clip(&note, NOTE_LIMIT - brokkr_config::text::CUT.len()).into_owned()
}

/// Publishes `ConfigApplied`, `ConfigRejected` and `RestartRequired` Events with kube-runtime's recorder.
///
/// A fresh `Recorder` per reload: kube's recorder merges an Event into an earlier one with the same reason for
/// 6 minutes, keeping the earlier note, so a second `RestartRequired` would still name the first keys. The actor
/// already publishes only news, so every Event it asks for is created as its own object.
#[derive(Clone)]
pub struct KubeReloadEvents {
    client: Client,
    reporter: Reporter,
}

impl KubeReloadEvents {
    /// A publisher reporting as `controller` (such as `brokkr-broker`), instance `instance` (the pod name, if
    /// known).
    #[must_use]
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        Self { client, reporter: Reporter { controller: controller.to_owned(), instance } }
    }
}

/// The Events an outcome deserves: changed keys and reasons, never values. `ConfigRejected` and
/// `RestartRequired` only when `news` says so.
#[must_use]
pub fn events_for(outcome: &ReloadOutcome, news: News) -> Vec<Event> {
    let event = |type_, reason: &str, note: String| Event {
        type_,
        reason: reason.into(),
        note: Some(fit_note(note)),
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
        ReloadOutcome::Rejected { reason } if news.rejection => {
            events.push(event(EventType::Warning, "ConfigRejected", reason.clone()));
        }
        ReloadOutcome::Rejected { .. } => {}
        ReloadOutcome::Unchanged { .. } => {}
    }
    if news.restart && !outcome.restart_required().is_empty() {
        events.push(event(
            EventType::Warning,
            "RestartRequired",
            format!("restart to apply: {}", keys(outcome.restart_required())),
        ));
    }
    events
}

impl KubeReloadEvents {
    /// Records one Warning Event `reason` (action `action`) with `note` on the ConfigMap `source`, in the
    /// background; like every Event here, it never blocks or fails the caller.
    pub fn warn(&self, source: &SourceRef, reason: &str, action: &str, note: String) {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(fit_note(note)),
            action: action.into(),
            secondary: None,
        };
        self.publish(source, vec![event]);
    }

    fn publish(&self, source: &SourceRef, events: Vec<Event>) {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            namespace: Some(source.namespace.clone()),
            name: Some(source.name.clone()),
            ..ObjectReference::default()
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        actix::spawn(async move {
            for event in events {
                let publish = recorder.publish(&event, &reference);
                match tokio::time::timeout(crate::transport::REQUEST_TIMEOUT, publish).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        // The API server's message: any size, any characters.
                        let error = brokkr_config::text::clip(&error.to_string(), brokkr_config::text::ERROR_LIMIT)
                            .into_owned();
                        debug!(%error, reason = %event.reason, "could not record Event");
                    }
                    Err(_) => debug!(reason = %event.reason, "recording Event timed out"),
                }
            }
        });
    }
}

impl ReloadEvents for KubeReloadEvents {
    fn reloaded(&self, source: &SourceRef, outcome: &ReloadOutcome, news: News) {
        let events = events_for(outcome, news);
        if !events.is_empty() {
            self.publish(source, events);
        }
    }
}
