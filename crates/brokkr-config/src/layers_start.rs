//! Building the layers that do not change while the program runs: the `--config` file, the environment and the
//! secrets held elsewhere, each checked when added, so a wrong file or variable stops the start, not a reload.

use std::{
    fmt,
    path::Path,
    sync::{Arc, OnceLock},
};

use toml::{Table, Value};

use super::{ConfigLayers, LayerText, defaults_table, parse};
use crate::{AppSettings, ConfigError, Result, secret::SecretsElsewhere};

#[derive(Clone)]
pub(super) struct EnvEntry {
    pub(super) var: String,
    pub(super) section: String,
    pub(super) key: String,
    pub(super) value: Value,
}

/// Shows the setting an environment variable sets, never its value.
impl fmt::Debug for EnvEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} = <set>", self.section, self.key)
    }
}

impl ConfigLayers {
    /// Only the broker's built-in defaults; `ConfigLayers::<S>::default()` for another settings type.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S: AppSettings> ConfigLayers<S> {
    /// Adds the TOML file at `path` above the defaults.
    pub fn with_file(self, path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile { path: path.to_owned(), source })?;
        self.with_file_text(&LayerText { origin: format!("config file {}", path.display()), text })
    }

    /// Adds a TOML document as the file layer.
    pub fn with_file_text(mut self, layer: &LayerText) -> Result<Self> {
        self.file = parse(layer)?;
        // Fail at start-up, not at the first reload, when the file itself is wrong.
        self.base = Arc::new(OnceLock::from(self.build(None)?.settings));
        Ok(self)
    }

    /// Treats the secrets `elsewhere` holds (a token read from a file) as secrets in force in every build.
    #[must_use]
    pub fn with_secrets_elsewhere(mut self, elsewhere: SecretsElsewhere) -> Self {
        self.elsewhere = elsewhere;
        self
    }

    /// Adds every `<ENV_PREFIX>SECTION__KEY` variable among `vars` (`BROKKR__SECTION__KEY` for the broker) as the
    /// top layer.
    pub fn with_env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let defaults = defaults_table::<S>();
        for (var, raw) in vars {
            let Some(rest) = var.strip_prefix(S::ENV_PREFIX) else {
                continue;
            };
            let env_err = |reason: String| ConfigError::Env { var: var.clone(), reason };
            let Some((section, key)) =
                rest.to_ascii_lowercase().split_once("__").map(|(s, k)| (s.to_owned(), k.to_owned()))
            else {
                return Err(env_err(format!("expected {}SECTION__KEY", S::ENV_PREFIX)));
            };
            let default = match defaults.get(&section).and_then(Value::as_table) {
                Some(table) => table.get(&key),
                None => return Err(env_err(format!("there is no section [{section}]"))),
            };
            // A declared setting without a default in the TOML form is optional text (`config_reload.namespace`).
            let declared = S::DECLARATIONS.iter().any(|d| d.key.split_once('.') == Some((&section, &key)));
            let is_text = matches!(default, Some(Value::String(_))) || (default.is_none() && declared);
            if default.is_none() && !is_text {
                return Err(env_err(format!("there is no setting {section}.{key}")));
            }
            if let Some(earlier) = self.env.iter().find(|e| e.section == section && e.key == key) {
                let why = if earlier.var == var {
                    "it is given twice".to_owned()
                } else {
                    format!(
                        "{} sets {section}.{key} too, and the names differ only in case after {}",
                        earlier.var,
                        S::ENV_PREFIX
                    )
                };
                return Err(env_err(format!("{why}: one of them would win by chance")));
            }
            let value = if is_text { Value::String(raw) } else { parse_env_value(&raw).map_err(env_err)? };
            self.env.push(EnvEntry { var: var.clone(), section, key, value });
        }
        self.base = Arc::new(OnceLock::from(self.build(None)?.settings));
        Ok(self)
    }
}

/// An environment value is TOML when it parses as TOML (`false`, `["a", "b"]`), else a plain string (`5s`).
fn parse_env_value(raw: &str) -> std::result::Result<Value, String> {
    let text = format!("value = {raw}");
    // Nested too deep to build safely: kept as the string it is (and refused by the setting's type, if not one).
    let parsed = Some(text)
        .filter(|text| crate::depth::too_deep(text).is_none())
        .and_then(|text| text.parse::<Table>().ok())
        .and_then(|mut t| t.remove("value"));
    Ok(parsed.unwrap_or_else(|| Value::String(raw.to_owned())))
}
