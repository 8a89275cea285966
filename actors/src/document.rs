//! The one build path of every ConfigMap document: a reload, the start-up read and an admission review all judge a
//! document through [`build_candidate`], so they can never disagree.

use brokkr_config::{AppSettings, Candidate, ConfigError, ConfigLayers, layers::LayerText};

use crate::messages::ConfigMapVersion;

/// Builds the candidate for `version` on top of `layers`: the one build path of every ConfigMap document.
///
/// `running` names the ConfigMap (namespace from `namespace`, name and data key from the settings in force). A
/// document that sets `config_reload.namespace` to another namespace than `namespace` is rejected.
pub fn build_candidate<S: AppSettings>(
    layers: &ConfigLayers<S>,
    version: &ConfigMapVersion,
    namespace: &str,
    running: &S,
) -> Result<Candidate<S>, ConfigError> {
    let (name, key) = (&running.reload().configmap, &running.reload().key);
    let built = match version.data.get(key) {
        Some(text) => {
            let origin = format!("ConfigMap {namespace}/{name} key {key}");
            // A secret in force may have come from an earlier ConfigMap: never let a setting or an error show it.
            layers.build_over(Some(&LayerText { origin, text: text.clone() }), Some(running))
        }
        None => Err(ConfigError::MissingDataKey { namespace: namespace.into(), name: name.clone(), key: key.clone() }),
    };
    built.and_then(|candidate| match &candidate.settings.reload().namespace {
        Some(ns) if ns != namespace => Err(ConfigError::Invalid {
            key: format!("{}.namespace", S::reload_section()),
            reason: format!(
                "locates the ConfigMap, so the ConfigMap cannot change it (it is read from {namespace:?}); set it with \
                 --config or {}{}__NAMESPACE",
                S::ENV_PREFIX,
                S::reload_section().to_ascii_uppercase()
            ),
        }),
        _ => Ok(candidate),
    })
}
