//! The start-up configuration from all four layers: one bounded read of the ConfigMap before the broker binds,
//! through the same build path the `ConfigActor` uses, so restart-only keys set in the ConfigMap take effect.

use std::{sync::Arc, time::Duration};

use brokkr_config::{AppSettings, Candidate, ConfigError, ConfigLayers, Settings, SourceRef};

use crate::{
    document::build_candidate,
    messages::ConfigMapState,
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
    Invalid(ConfigError),
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
    match read_within(source, timeout).await {
        Err(error) => Startup::Unreadable(error),
        Ok(ConfigMapState::Absent) => Startup::Absent,
        Ok(ConfigMapState::Present(version)) => match build_candidate(layers, &version, &namespace, boot) {
            Ok(candidate) => {
                let source = SourceRef {
                    namespace,
                    name: boot.reload().configmap.clone(),
                    resource_version: version.resource_version,
                };
                Startup::FromConfigMap { candidate: Box::new(candidate), source }
            }
            Err(error) => Startup::Invalid(error),
        },
    }
}
