//! The one judgement of a configuration document: the layers, the document and the settings in force in; a typed
//! [`Verdict`] out, or every error at once. A reload, the start-up read, an admission review and `check-config`
//! all call [`judge`], so they cannot disagree.

use std::collections::BTreeMap;

use crate::{
    AppSettings, Candidate, Change, ConfigError, ConfigLayers, ReloadSettings, Result, diff,
    layers::{LayerText, Place},
    text::clip,
};

/// A document to judge: its text with where it came from, and its place among the layers. Its `Debug` shows the
/// text's size, never the text (see [`LayerText`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The TOML text, and its origin (such as `ConfigMap brokkr/brokkr-broker key broker.toml`) for errors.
    pub layer: LayerText,
    /// Its place among the layers.
    pub place: Place,
}

impl Document {
    /// The document under the data key of `reload` (the reload section in force) in the `data` of the ConfigMap
    /// it names in `namespace`, or [`ConfigError::MissingDataKey`].
    pub fn from_configmap(data: &BTreeMap<String, String>, namespace: &str, reload: &ReloadSettings) -> Result<Self> {
        let (name, key) = (&reload.configmap, &reload.key);
        match data.get(key) {
            Some(text) => Ok(Self {
                layer: LayerText { origin: format!("ConfigMap {namespace}/{name} key {key}"), text: text.clone() },
                place: Place::ConfigMap { namespace: Some(namespace.to_owned()) },
            }),
            // The namespace may be an admission request's own: the error is cut before anyone quotes it.
            None => {
                Err(ConfigError::MissingDataKey { namespace: namespace.into(), name: name.clone(), key: key.clone() }
                    .bounded())
            }
        }
    }
}

/// What a valid document would put in force, and what it would not.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict<S> {
    /// The settings from every layer, checked: what a reload applies (its restart-only values wait).
    pub candidate: Candidate<S>,
    /// Restart-only settings that differ from the running ones: they take effect at the next start.
    pub restart_pending: Vec<Change>,
    /// The environment variables that override a key the document sets, as `(key, variable)`.
    pub shadowed: Vec<(String, String)>,
}

/// The most bytes of a setting's value quoted in a warning.
const WARNING_VALUE_LIMIT: usize = 48;

impl<S> Verdict<S> {
    /// One line per key that will not take effect now: restart-only values, then keys the environment overrides.
    /// Short: kubectl prints each on one line, and the API server may cut a warning over 256 bytes.
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        let restart = self.restart_pending.iter().map(|change| {
            let (old, new) = (clip(&change.old, WARNING_VALUE_LIMIT), clip(&change.new, WARNING_VALUE_LIMIT));
            format!("{} changes from {old} to {new} at the next broker restart, not live", change.key)
        });
        let shadowed = self
            .shadowed
            .iter()
            .map(|(key, variable)| format!("{key} has no effect: the broker's environment sets it ({variable})"));
        restart.chain(shadowed).collect()
    }
}

/// Judges `document` among `layers` (defaults, file, environment) for a program running with `running`: the verdict
/// of what it would put in force, or every problem at once, each naming its key (no secret is ever shown).
///
/// # Errors
/// The document's problems: syntax, size, unknown or mistyped keys, values out of range, a secret or a fixed key
/// where the document may not set them ([`Place`]).
pub fn judge<S: AppSettings>(layers: &ConfigLayers<S>, document: &Document, running: &S) -> Result<Verdict<S>> {
    let candidate = layers.build_at(Some(&document.layer), &document.place, Some(running))?;
    let restart_pending = diff(running, &candidate.settings).into_iter().filter(|c| !c.live).collect();
    let shadowed = candidate
        .shadowed_by_env
        .iter()
        .map(|key| (key.clone(), format!("{}{}", S::ENV_PREFIX, key.replace('.', "__").to_ascii_uppercase())))
        .collect();
    Ok(Verdict { candidate, restart_pending, shadowed })
}
