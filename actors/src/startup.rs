//! The start-up configuration from all four layers: one bounded read of the ConfigMap before the broker binds,
//! through the same judgement the `ConfigActor` uses, so restart-only keys set in the ConfigMap take effect.

use std::{sync::Arc, time::Duration};

use brokkr_config::{
    AppSettings, Candidate, ConfigError, ConfigLayers, Outcome, ReloadableConfig, Settings, SourceRef, judge,
};

use crate::{
    history::ReloadRecord,
    messages::{ConfigMapState, Trigger},
    source::{ConfigMapSource, ReadError, read_within},
};

/// How long start-up waits for the ConfigMap before it starts on file and environment alone.
pub const STARTUP_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What start-up found.
#[derive(Debug)]
pub enum Startup<S = Settings> {
    /// The ConfigMap was read and is valid: start on all four layers.
    FromConfigMap {
        /// Settings from defaults, file, ConfigMap and environment.
        candidate: Box<Candidate<S>>,
        /// The version read.
        source: SourceRef,
    },
    /// The ConfigMap does not exist: start on file and environment.
    Absent,
    /// The ConfigMap exists but is invalid: start on file and environment; the watch reports the error too.
    Invalid {
        /// Why it was rejected.
        error: ConfigError,
        /// The version rejected.
        source: SourceRef,
    },
    /// The ConfigMap could not be read in time: start on file and environment; the watch catches up.
    Unreadable(ReadError),
}

/// Reads the ConfigMap once (at most `timeout`) and builds the start-up settings over `boot` (file + env).
pub async fn read_startup<S: AppSettings>(
    source: Arc<dyn ConfigMapSource>,
    layers: &ConfigLayers<S>,
    boot: &S,
    timeout: Duration,
) -> Startup<S> {
    let namespace = source.namespace();
    match read_within(source.clone(), timeout).await {
        Err(error) => Startup::Unreadable(error),
        Ok(ConfigMapState::Absent) => Startup::Absent,
        Ok(ConfigMapState::Present(version)) => {
            let built = source
                .document(&version, boot.reload())
                .and_then(|document| judge(layers, &document, boot))
                .map(|verdict| verdict.candidate);
            let name = boot.reload().configmap.clone();
            let source = SourceRef { namespace, name, resource_version: version.resource_version };
            match built {
                Ok(candidate) => Startup::FromConfigMap { candidate: Box::new(candidate), source },
                Err(error) => Startup::Invalid { error, source },
            }
        }
    }
}

/// The history's first record: what `startup` judged, with `config` the configuration it started on. The Pod's
/// annotations come from it, so a new container never leaves a previous one's standing.
#[must_use]
pub fn startup_record<S: AppSettings>(startup: &Startup<S>, config: &ReloadableConfig<S>) -> Option<ReloadRecord> {
    let now = config.current();
    let (outcome, error, judged) = match startup {
        Startup::FromConfigMap { source, .. } => (Outcome::Applied, None, Some(source)),
        Startup::Invalid { error, source } => (Outcome::Rejected, Some(error.to_string()), Some(source)),
        Startup::Absent => (Outcome::Unread, Some("the ConfigMap was not found at start-up".to_owned()), None),
        Startup::Unreadable(error) => (Outcome::Unread, Some(format!("not read at start-up: {error}")), None),
    };
    let mut record = ReloadRecord::new(Trigger::Startup, outcome, Vec::new());
    record.error = error;
    (record.generation, record.hash) = (now.generation, now.hash.clone());
    record.resource_version = judged.and_then(|s| s.resource_version.clone());
    Some(record)
}
