//! The one build path of every ConfigMap document: a reload, the start-up read and an admission review all judge a
//! document through [`build_candidate`], so they can never disagree.

use brokkr_config::{Candidate, ConfigError, ConfigLayers, Settings, layers::LayerText};

use crate::messages::ConfigMapVersion;

/// Builds the candidate for `version` on top of `layers`: the one build path of every ConfigMap document.
///
/// `running` names the ConfigMap (namespace from `namespace`, name and data key from the settings in force). A
/// document that sets `config_reload.namespace` to another namespace than `namespace` is rejected.
pub fn build_candidate(
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
