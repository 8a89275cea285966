//! The configuration in force: lock-free reads, change notification, and the one place a reload is applied.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::SystemTime,
};

use arc_swap::ArcSwap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::{AppSettings, Candidate, Change, ConfigError, Outcome, Settings, diff};

/// Which ConfigMap version a snapshot came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRef {
    /// Namespace of the ConfigMap.
    pub namespace: String,
    /// Name of the ConfigMap.
    pub name: String,
    /// `metadata.resourceVersion` that was read.
    pub resource_version: Option<String>,
}

/// An immutable configuration that was put in force.
#[derive(Debug, Clone)]
pub struct ConfigSnapshot<S = Settings> {
    /// The settings in force.
    pub settings: S,
    /// Counts applied reloads; 0 is the start-up configuration.
    pub generation: u64,
    /// Short SHA-256 of the live settings: equal on every broker that follows the same ConfigMap, whatever
    /// per-instance restart-only values (such as `server.listen`) each has.
    pub hash: String,
    /// The ConfigMap the settings were read from, if any.
    pub source: Option<SourceRef>,
    /// When it was put in force.
    pub applied_at: SystemTime,
}

impl<S: AppSettings> ConfigSnapshot<S> {
    fn new(settings: S, generation: u64, source: Option<SourceRef>) -> Self {
        let hash = hash_of(&settings);
        Self { settings, generation, hash, source, applied_at: SystemTime::now() }
    }
}

fn hash_of<S: AppSettings>(settings: &S) -> String {
    let mut hasher = Sha256::new();
    for field in settings.fields().into_iter().filter(|f| f.live) {
        hasher.update(field.key.as_bytes());
        hasher.update([0]);
        hasher.update(field.value.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// New settings are in force.
    Applied {
        /// The new generation.
        generation: u64,
        /// The live settings that changed, secrets redacted.
        changes: Vec<Change>,
        /// Restart-only settings that differ and wait for the next start.
        restart_required: Vec<Change>,
    },
    /// Nothing that applies live changed.
    Unchanged {
        /// Restart-only settings that differ and wait for the next start.
        restart_required: Vec<Change>,
    },
    /// The candidate was invalid; the configuration in force did not change.
    Rejected {
        /// Why, naming the key at fault.
        reason: String,
    },
}

impl ReloadOutcome {
    /// [`Outcome::Applied`], [`Outcome::Unchanged`] or [`Outcome::Rejected`].
    #[must_use]
    pub fn label(&self) -> Outcome {
        match self {
            Self::Applied { .. } => Outcome::Applied,
            Self::Unchanged { .. } => Outcome::Unchanged,
            Self::Rejected { .. } => Outcome::Rejected,
        }
    }

    /// Restart-only settings that differ from the running ones.
    #[must_use]
    pub fn restart_required(&self) -> &[Change] {
        match self {
            Self::Applied { restart_required, .. } | Self::Unchanged { restart_required } => restart_required,
            Self::Rejected { .. } => &[],
        }
    }
}

/// The last reload attempt, for status reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastReload {
    /// What it did.
    pub outcome: Outcome,
    /// When it happened.
    pub at: SystemTime,
    /// Why it was rejected.
    pub error: Option<String>,
    /// Restart-only keys whose new value waits for the next start.
    pub restart_required: Vec<String>,
    /// ConfigMap keys that an environment variable overrides.
    pub shadowed_by_env: Vec<String>,
}

/// Shared handle to the configuration in force. Cheap to clone; reads never block.
#[derive(Debug)]
pub struct ReloadableConfig<S = Settings> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for ReloadableConfig<S> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

#[derive(Debug)]
struct Inner<S> {
    current: ArcSwap<ConfigSnapshot<S>>,
    notify: watch::Sender<Arc<ConfigSnapshot<S>>>,
    last_reload: Mutex<Option<LastReload>>,
}

impl<S: AppSettings> ReloadableConfig<S> {
    /// Puts the start-up settings in force as generation 0.
    #[must_use]
    pub fn new(settings: S) -> Self {
        Self::starting(settings, None)
    }

    /// Puts the start-up settings in force as generation 0, built with the ConfigMap version `source` when
    /// start-up read one (its restart-only keys are then in force, not waiting for a restart).
    #[must_use]
    pub fn starting(settings: S, source: Option<SourceRef>) -> Self {
        let snapshot = Arc::new(ConfigSnapshot::new(settings, 0, source));
        let (notify, _) = watch::channel(snapshot.clone());
        Self { inner: Arc::new(Inner { current: ArcSwap::new(snapshot), notify, last_reload: Mutex::new(None) }) }
    }

    /// The snapshot in force now.
    #[must_use]
    pub fn current(&self) -> Arc<ConfigSnapshot<S>> {
        self.inner.current.load_full()
    }

    /// A receiver that sees every snapshot put in force from now on.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<Arc<ConfigSnapshot<S>>> {
        self.inner.notify.subscribe()
    }

    /// The last reload attempt, if any.
    #[must_use]
    pub fn last_reload(&self) -> Option<LastReload> {
        self.inner.last_reload.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Applies `candidate` all-or-nothing: live settings switch together, restart-only differences are
    /// reported and left for the next start, and a rejected candidate changes nothing.
    ///
    /// Reloads must come from one place (the `ConfigActor`); concurrent callers could interleave generations.
    pub fn reload(&self, candidate: Result<Candidate<S>, ConfigError>, source: Option<SourceRef>) -> ReloadOutcome {
        let current = self.current();
        let previous = self.last_reload();
        let previous_shadowed = previous.as_ref().map(|r| r.shadowed_by_env.clone()).unwrap_or_default();
        // A rejected document changes nothing, so what was waiting for a restart still is.
        let previous_restart = previous.map(|r| r.restart_required).unwrap_or_default();
        let (outcome, shadowed_by_env) = match candidate {
            Err(error) => (ReloadOutcome::Rejected { reason: error.to_string() }, previous_shadowed),
            Ok(Candidate { settings, shadowed_by_env }) => {
                let restart_required: Vec<Change> =
                    diff(&current.settings, &settings).into_iter().filter(|c| !c.live).collect();
                let next = settings.with_restart_only_from(&current.settings);
                let changes = diff(&current.settings, &next);
                let outcome = if changes.is_empty() {
                    if source.is_some() && current.source != source {
                        // Same settings, newer ConfigMap version: record which version they match, quietly.
                        let mut same = (*current).clone();
                        same.source = source;
                        self.inner.current.store(Arc::new(same));
                    }
                    ReloadOutcome::Unchanged { restart_required }
                } else {
                    let generation = current.generation + 1;
                    let snapshot = Arc::new(ConfigSnapshot::new(next, generation, source));
                    self.inner.current.store(snapshot.clone());
                    self.inner.notify.send_replace(snapshot);
                    ReloadOutcome::Applied { generation, changes, restart_required }
                };
                (outcome, shadowed_by_env)
            }
        };
        let record = LastReload {
            outcome: outcome.label(),
            at: SystemTime::now(),
            error: match &outcome {
                ReloadOutcome::Rejected { reason } => Some(reason.clone()),
                _ => None,
            },
            restart_required: match &outcome {
                ReloadOutcome::Rejected { .. } => previous_restart,
                _ => outcome.restart_required().iter().map(|c| c.key.to_owned()).collect(),
            },
            shadowed_by_env,
        };
        *self.inner.last_reload.lock().unwrap_or_else(PoisonError::into_inner) = Some(record);
        outcome
    }
}
