//! Merges the configuration sources, lowest to highest: defaults < file < ConfigMap < environment.

use std::{
    fmt,
    sync::{Arc, OnceLock},
};

use toml::{Table, Value};

use crate::{AppSettings, ConfigError, Result, Settings, secret::SecretsElsewhere};
use start::EnvEntry;

/// Prefix of the broker's environment variables that set a key: `BROKKR__SECTION__KEY`.
pub const ENV_PREFIX: &str = <Settings as AppSettings>::ENV_PREFIX;

/// The largest ConfigMap document parsed, in bytes. Measured: parsing 1 MiB of `a = [0,0,…]` peaked at 88 MiB, and
/// a reload and an admission review may parse at once, against the chart's 128 MiB limit. A `broker.toml` with
/// every setting is under 2 KiB.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Settings built from every layer, ready to be put in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<S = Settings> {
    /// The merged, validated settings.
    pub settings: S,
    /// Keys set in the ConfigMap that an environment variable overrides.
    pub shadowed_by_env: Vec<String>,
}

/// Where a document sits among the layers, which decides what it may set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The ConfigMap's document, read from the API server or from the volume the kubelet mounts, between the file
    /// and the environment. Anyone with `view` reads a ConfigMap and anyone with `edit` writes it, so it may not set
    /// a secret nor change a setting declared [`crate::declaration::Applies::Fixed`]; read from `namespace` (when
    /// known), it may not say it lives in another.
    ConfigMap {
        /// The namespace it was read from.
        namespace: Option<String>,
    },
    /// The `--config` file itself, read again while the program runs: it takes the file layer's place and may set
    /// what the file may at start-up. A changed restart-only or fixed setting waits for the next start.
    ConfigFile,
}

/// TOML text with a description of where it came from, used in error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct LayerText {
    /// Such as `ConfigMap brokkr/brokkr-broker key broker.toml`.
    pub origin: String,
    /// The TOML document.
    pub text: String,
}

/// Shows where the text came from and its size, never the text: it may hold a secret.
impl fmt::Debug for LayerText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerText")
            .field("origin", &self.origin)
            .field("text", &format!("<{} bytes>", self.text.len()))
            .finish()
    }
}

/// The layers that do not change while the broker runs (defaults, file, environment).
/// [`ConfigLayers::build`] puts a ConfigMap document between the file and the environment.
pub struct ConfigLayers<S = Settings> {
    file: Table,
    env: Vec<EnvEntry>,
    elsewhere: SecretsElsewhere,
    /// The settings of these layers alone, built once when first needed.
    base: Arc<OnceLock<S>>,
}

impl<S> Clone for ConfigLayers<S> {
    fn clone(&self) -> Self {
        Self {
            file: self.file.clone(),
            env: self.env.clone(),
            elsewhere: self.elsewhere.clone(),
            base: self.base.clone(),
        }
    }
}

impl<S> Default for ConfigLayers<S> {
    fn default() -> Self {
        Self { file: Table::new(), env: Vec::new(), elsewhere: SecretsElsewhere::default(), base: Arc::default() }
    }
}

/// Shows which keys each layer sets, never their values.
impl<S> fmt::Debug for ConfigLayers<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file: Vec<String> = self
            .file
            .iter()
            .flat_map(|(section, value)| match value.as_table() {
                Some(table) => table.keys().map(|k| format!("{section}.{k}")).collect(),
                None => vec![section.clone()],
            })
            .collect();
        f.debug_struct("ConfigLayers").field("file", &file).field("env", &self.env).finish()
    }
}

impl<S: AppSettings> ConfigLayers<S> {
    /// Builds and validates settings with `configmap` (if any) between the file and the environment.
    ///
    /// An error never shows the value of `admin.token` from any layer, even one pasted into another key.
    pub fn build(&self, configmap: Option<&LayerText>) -> Result<Candidate<S>> {
        self.build_over(configmap, None)
    }

    /// As [`ConfigLayers::build`], with the secrets of `running` (the settings in force) and those held elsewhere
    /// ([`ConfigLayers::with_secrets_elsewhere`]) treated as secrets too: refused in any setting that is shown, and
    /// redacted from an error before the error is cut to its byte limit.
    pub fn build_over(&self, configmap: Option<&LayerText>, running: Option<&S>) -> Result<Candidate<S>> {
        self.build_at(configmap, &Place::ConfigMap { namespace: None }, running)
    }

    /// The build [`crate::judge`] runs: `document` at `place` among the layers (see [`Place`]).
    pub(crate) fn build_at(
        &self,
        document: Option<&LayerText>,
        place: &Place,
        running: Option<&S>,
    ) -> Result<Candidate<S>> {
        let mut in_force = running.map(AppSettings::secret_values).unwrap_or_default();
        in_force.extend(self.elsewhere.values());
        self.build_unredacted(document, place, &in_force).map_err(|error| {
            let document = document.filter(|layer| layer.text.len() <= MAX_DOCUMENT_BYTES).and_then(parse_quietly);
            let tables = [Some(&self.file), document.as_ref()];
            let secrets = secret_keys::<S>()
                .flat_map(|(section, key)| {
                    let from_tables = tables
                        .iter()
                        .flatten()
                        .filter_map(move |t| t.get(section)?.as_table()?.get(key)?.as_str().map(str::to_owned));
                    let from_env = self
                        .env
                        .iter()
                        .filter(move |e| e.section == section && e.key == key)
                        .filter_map(|e| e.value.as_str().map(str::to_owned));
                    from_tables.chain(from_env).collect::<Vec<_>>()
                })
                .chain(in_force.iter().cloned());
            secrets.fold(error, |error, secret| error.redact(&secret)).bounded()
        })
    }

    /// Every problem of the build at once: the unknown and mistyped keys, then (on the values that could be read,
    /// the others at their defaults) the checks, the fixed keys and the namespace. A syntax error, an oversized
    /// document, a secret in a ConfigMap or a secret copied into a shown setting is reported alone.
    fn build_unredacted(
        &self,
        document: Option<&LayerText>,
        place: &Place,
        in_force: &[String],
    ) -> Result<Candidate<S>> {
        if let Some(layer) = document.filter(|l| l.text.len() > MAX_DOCUMENT_BYTES) {
            return Err(ConfigError::TooLarge {
                origin: layer.origin.clone(),
                bytes: layer.text.len(),
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        // On the application's own defaults, so that a section set in part keeps the rest of its defaults: a
        // reload section that is `#[serde(default)]` would otherwise take `ReloadSettings::default()`'s names.
        let document = document.map(parse).transpose()?.unwrap_or_default();
        // The layers under the document, and over it the environment: what a value the document got wrong is put
        // back to while the rest is checked.
        let defaults = defaults_without_secrets::<S>();
        let mut below = defaults.clone();
        merge(&mut below, &self.file);
        let mut merged = match place {
            Place::ConfigMap { .. } => {
                refuse_secrets::<S>(&document)?;
                below.clone()
            }
            // The file itself, read again: it takes the file layer's place (a value it gets wrong is put back to
            // the one it had at start).
            Place::ConfigFile => defaults,
        };
        merge(&mut merged, &document);
        let mut errors = Vec::new();
        // Every section must be a table: serde would build a section from an array (`admin = []` gives the
        // defaults), and the environment's values could not be put into it.
        for (section, default) in defaults_table::<S>() {
            if merged.get(&section).is_some_and(|value| !value.is_table()) {
                let message = format!("must be a table, written [{section}]");
                errors.push(ConfigError::Field { key: section.clone(), message });
                merged.insert(section.clone(), below.get(&section).cloned().unwrap_or(default));
            }
        }
        let mut shadowed_by_env = Vec::new();
        for entry in &self.env {
            for table in [&mut merged, &mut below] {
                let section = table.entry(entry.section.clone()).or_insert_with(|| Value::Table(Table::new()));
                if let Value::Table(table) = section {
                    table.insert(entry.key.clone(), entry.value.clone());
                }
            }
            let in_document =
                document.get(&entry.section).and_then(Value::as_table).is_some_and(|t| t.contains_key(&entry.key));
            if in_document {
                shadowed_by_env.push(format!("{}.{}", entry.section, entry.key));
            }
        }
        let in_secret_section = |key: &str| {
            secret_keys::<S>()
                .any(|(section, _)| key == section || key.strip_prefix(section).is_some_and(|r| r.starts_with('.')))
        };
        let Some(settings) = crate::checks::read_every_field::<S>(merged, &below, in_secret_section, &mut errors)
        else {
            return Err(ConfigError::all(errors));
        };
        let in_force: Vec<&str> = in_force.iter().map(String::as_str).collect();
        crate::checks::secrets_not_shown(&settings, &in_force)?;
        // A key the document got wrong was put back to the layers' value: a check of it would be about a value
        // nobody wrote in this document.
        // Compared as `section.key`: a field error may be deeper (`cors.allowed_origins[0]`).
        let setting =
            |key: &str| key.split('[').next().unwrap_or_default().splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
        let unread: Vec<String> = errors.iter().filter_map(|e| e.key().map(setting)).collect();
        let about_unread = |e: &ConfigError| e.key().is_some_and(|k| unread.contains(&setting(k)));
        errors.extend(crate::checks::every_check(&settings, &in_force).into_iter().filter(|e| !about_unread(e)));
        if let Place::ConfigMap { namespace } = place {
            errors.extend(self.fixed_changes(&settings, &document)?);
            errors.extend(namespace_moved(&settings, namespace.as_deref()));
        }
        match errors.is_empty() {
            true => Ok(Candidate { settings, shadowed_by_env }),
            false => Err(ConfigError::all(errors)),
        }
    }

    /// The settings of the layers alone (defaults, file, environment), built once.
    fn base(&self) -> Result<&S> {
        if let Some(base) = self.base.get() {
            return Ok(base);
        }
        let built = self.build_unredacted(None, &Place::ConfigMap { namespace: None }, &[])?.settings;
        Ok(self.base.get_or_init(|| built))
    }

    /// The ConfigMap cannot change a [`crate::declaration::Applies::Fixed`] setting; repeating the value in force
    /// is fine, as a ConfigMap that holds a full copy of `broker.toml` does.
    fn fixed_changes(&self, settings: &S, document: &Table) -> Result<Vec<ConfigError>> {
        let sets = |key: &str| {
            let (section, key) = key.split_once('.').unwrap_or_default();
            document.get(section).and_then(Value::as_table).is_some_and(|t| t.contains_key(key))
        };
        let fixed: Vec<_> =
            S::DECLARATIONS.iter().filter_map(|d| Some((d, d.fixed_because()?))).filter(|(d, _)| sets(d.key)).collect();
        if fixed.is_empty() {
            return Ok(Vec::new());
        }
        let base = self.base()?;
        // The reload section's namespace, when the file and the environment leave it unset, is resolved later from
        // the pod, and whoever resolves it checks the ConfigMap against it (see `namespace_moved`).
        let namespace = format!("{}.namespace", S::reload_section());
        Ok(fixed
            .into_iter()
            .filter(|(d, _)| {
                let resolved_later = d.key == namespace && d.shown(base).is_empty();
                !resolved_later && !d.same(settings, base)
            })
            .map(|(d, why)| ConfigError::Invalid {
                key: d.key.to_owned(),
                reason: format!(
                    "{why}, so the ConfigMap cannot change it; set it with --config or {}{}",
                    S::ENV_PREFIX,
                    d.key.replace('.', "__").to_ascii_uppercase()
                ),
            })
            .collect())
    }
}

/// A document read from `namespace` may not say it lives in another one: the namespace locates the ConfigMap.
fn namespace_moved<S: AppSettings>(settings: &S, namespace: Option<&str>) -> Option<ConfigError> {
    let (Some(read_from), Some(said)) = (namespace, settings.reload().namespace.as_deref()) else {
        return None;
    };
    (read_from != said).then(|| ConfigError::Invalid {
        key: format!("{}.namespace", S::reload_section()),
        reason: format!(
            "locates the ConfigMap, so the ConfigMap cannot change it (it is read from {read_from:?}); set it with \
             --config or {}{}__NAMESPACE",
            S::ENV_PREFIX,
            S::reload_section().to_ascii_uppercase()
        ),
    })
}

/// A ConfigMap can be read by anyone with the `view` role: one that sets a secret is refused, whatever the value.
fn refuse_secrets<S: AppSettings>(configmap: &Table) -> Result<()> {
    let set = |(section, key): &(&str, &str)| {
        configmap.get(*section).and_then(Value::as_table).is_some_and(|t| t.contains_key(*key))
    };
    let Some((section, key)) = secret_keys::<S>().find(set) else {
        return Ok(());
    };
    let (key, variable) = (format!("{section}.{key}"), format!("{}{}", S::ENV_PREFIX, env_name(section, key)));
    let file_key = format!("{key}_file");
    let instead = if S::DECLARATIONS.iter().any(|d| d.key == file_key) {
        format!("mount it from a Secret and set {file_key} to the mounted file (or set {variable}, without {file_key})")
    } else {
        format!("set it with --config or {variable}")
    };
    Err(ConfigError::SecretInConfigMap { key, instead })
}

/// `SECTION__KEY`, the part of an environment variable's name after the prefix.
fn env_name(section: &str, key: &str) -> String {
    format!("{section}__{key}").to_ascii_uppercase()
}

/// `(section, key)` of every secret setting.
fn secret_keys<S: AppSettings>() -> impl Iterator<Item = (&'static str, &'static str)> {
    S::DECLARATIONS.iter().filter(|d| d.secret).filter_map(|d| d.key.split_once('.'))
}

/// Parses a document; the error gives line and column but never quotes the text, which may hold a secret.
fn parse(layer: &LayerText) -> Result<Table> {
    // Spans are byte offsets; never slice inside a character, whatever the parser reports.
    let position = |offset: usize| {
        let before = &layer.text[..crate::text::floor_boundary(&layer.text, offset)];
        let line = before.matches('\n').count() + 1;
        let column = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
        format!(" at line {line}, column {column}")
    };
    if let Some(offset) = crate::depth::too_deep(&layer.text) {
        return Err(ConfigError::Syntax {
            origin: layer.origin.clone(),
            message: format!("nested deeper than {} tables and arrays{}", crate::depth::MAX_DEPTH, position(offset)),
        });
    }
    layer.text.parse::<Table>().map_err(|source| {
        let syntax = |message: String| ConfigError::Syntax { origin: layer.origin.clone(), message };
        let Some(span) = source.span() else {
            return syntax(source.message().trim_end().to_owned());
        };
        // The first as toml words it, then the errors on other lines that toml_parser recovers past: all at once.
        let line_of =
            |offset: usize| layer.text[..crate::text::floor_boundary(&layer.text, offset)].matches('\n').count();
        let mut errors = vec![syntax(format!("{}{}", source.message().trim_end(), position(span.start)))];
        let mut lines = vec![line_of(span.start)];
        for (description, offset) in crate::syntax::errors(&layer.text) {
            if errors.len() >= crate::syntax::MAX_SYNTAX_ERRORS {
                break;
            }
            if !lines.contains(&line_of(offset)) {
                lines.push(line_of(offset));
                errors.push(syntax(format!("{description}{}", position(offset))));
            }
        }
        ConfigError::all(errors)
    })
}

/// The document's table, or `None`: for finding the secrets it sets, after its errors were reported.
fn parse_quietly(layer: &LayerText) -> Option<Table> {
    Some(&layer.text).filter(|text| crate::depth::too_deep(text).is_none()).and_then(|text| text.parse().ok())
}

/// The defaults as TOML, without the secrets: a secret serializes as `<redacted>` and must keep its own default.
fn defaults_without_secrets<S: AppSettings>() -> Table {
    let mut table = defaults_table::<S>();
    for (section, key) in secret_keys::<S>() {
        if let Some(Value::Table(section)) = table.get_mut(section) {
            section.remove(key);
        }
    }
    table
}

fn defaults_table<S: AppSettings>() -> Table {
    match Value::try_from(S::default()) {
        Ok(Value::Table(t)) => t,
        _ => Table::new(),
    }
}

/// Deep-merges `top` over `base`: tables merge key by key, anything else is replaced.
fn merge(base: &mut Table, top: &Table) {
    for (key, value) in top {
        match (base.get_mut(key), value) {
            (Some(Value::Table(b)), Value::Table(t)) => merge(b, t),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

#[path = "layers_start.rs"]
mod start;

#[cfg(test)]
#[path = "layers_tests.rs"]
mod tests;
