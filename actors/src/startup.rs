//! The start-up configuration from all four layers: one bounded read of the ConfigMap before the broker binds,
//! through the same build path the `ConfigActor` uses, so restart-only keys set in the ConfigMap take effect.

use std::{sync::Arc, time::Duration};

use brokkr_config::{Candidate, ConfigError, ConfigLayers, Settings, SourceRef, layers::LayerText};

use crate::{
    messages::{ConfigMapState, ConfigMapVersion},
    source::{ConfigMapSource, ReadError, read_within},
};

/// How long start-up waits for the ConfigMap before it starts on file and environment alone.
pub const STARTUP_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the candidate for `version` on top of `layers`: the one build path of every ConfigMap document.
///
/// `running` names the ConfigMap (namespace from `namespace`, name and data key from the settings in force). A
/// document that sets `config_reload.namespace` to another namespace than `namespace` is rejected.
pub fn candidate(
    layers: &ConfigLayers,
    version: &ConfigMapVersion,
    namespace: &str,
    running: &Settings,
) -> Result<Candidate, ConfigError> {
    let (name, key) = (&running.config_reload.configmap, &running.config_reload.key);
    let built = match version.data.get(key) {
        Some(text) => {
            let origin = format!("ConfigMap {namespace}/{name} key {key}");
            // The token in force may have come from an earlier ConfigMap: never let a setting or an error show it.
            layers.build_with_secret(Some(&LayerText { origin, text: text.clone() }), running.admin.token.expose())
        }
        None => Err(ConfigError::MissingDataKey { namespace: namespace.into(), name: name.clone(), key: key.clone() }),
    };
    built.and_then(|candidate| match &candidate.settings.config_reload.namespace {
        Some(ns) if ns != namespace => Err(ConfigError::Invalid {
            key: "config_reload.namespace".into(),
            reason: format!(
                "locates the ConfigMap, so the ConfigMap cannot change it (it is read from {namespace:?}); set it with \
                 --config or BROKKR__CONFIG_RELOAD__NAMESPACE"
            ),
        }),
        _ => Ok(candidate),
    })
}

/// What start-up found.
#[derive(Debug)]
pub enum Startup {
    /// The ConfigMap was read and is valid: start on all four layers.
    FromConfigMap {
        /// Settings from defaults, file, ConfigMap and environment.
        candidate: Box<Candidate>,
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
pub async fn read_startup(
    source: Arc<dyn ConfigMapSource>,
    layers: &ConfigLayers,
    boot: &Settings,
    timeout: Duration,
) -> Startup {
    let namespace = source.namespace();
    match read_within(source, timeout).await {
        Err(error) => Startup::Unreadable(error),
        Ok(ConfigMapState::Absent) => Startup::Absent,
        Ok(ConfigMapState::Present(version)) => match candidate(layers, &version, &namespace, boot) {
            Ok(candidate) => {
                let source = SourceRef {
                    namespace,
                    name: boot.config_reload.configmap.clone(),
                    resource_version: version.resource_version,
                };
                Startup::FromConfigMap { candidate: Box::new(candidate), source }
            }
            Err(error) => Startup::Invalid(error),
        },
    }
}
