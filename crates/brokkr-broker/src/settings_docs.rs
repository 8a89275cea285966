//! The settings' documentation, generated from their declarations: `brokkr-broker settings-docs --write`.
//!
//! Three files show the settings: the README's table, the chart's `values.yaml` (a comment per setting, the
//! `config` block with every default) and `values.schema.json` (the `config` properties). Each holds a generated
//! part between markers; `settings-docs` without `--write` (and `tests/settings_docs.rs`) fails when a file differs
//! from what the declarations give.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use brokkr_config::{
    AppSettings, Settings,
    declaration::{Applies, DECLARATIONS, Declaration},
};
use serde_json::{Value as Json, json};
use toml::Value as Toml;

/// The command that regenerates the files, for error messages.
pub const COMMAND: &str = "cargo run -p brokkr-broker -- settings-docs --write";

/// Why the documentation could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    /// A file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file lacks the markers of its generated part.
    #[error("{path} has no generated part: expected a line `{begin}` and, after it, `{end}`")]
    Markers {
        /// The file.
        path: PathBuf,
        /// The line that opens the part.
        begin: &'static str,
        /// The line that closes it.
        end: &'static str,
    },
}

/// Settings the chart sets itself (environment variables, mounts), each with how; every other setting except a
/// secret is part of the chart's `config` value. Chart knowledge, so it lives with the broker, not with the declarations.
const SET_BY_CHART: &[(&str, &str)] = &[
    ("server.listen", "the chart sets `BROKKR__SERVER__LISTEN` to `0.0.0.0:<ports.http>`"),
    (
        "admin.token_file",
        "with `admin.existingSecret` set, the chart mounts key `admin.existingSecretKey` of that Secret read-only \
         at `/var/run/secrets/brokkr/admin/token` and sets `BROKKR__ADMIN__TOKEN_FILE` to it",
    ),
    (
        "admin.token_overlap",
        "with `admin.existingSecret` set, the chart sets `BROKKR__ADMIN__TOKEN_OVERLAP` to the chart value \
         `admin.tokenOverlap` (default `5m`); changing it rolls the pods",
    ),
    (
        "config_reload.namespace",
        "the chart leaves it unset and sets `POD_NAMESPACE` to the release namespace through the downward API",
    ),
    (
        "config_reload.configmap",
        "the chart sets `BROKKR__CONFIG_RELOAD__CONFIGMAP` to the name of its ConfigMap, the release's full name",
    ),
    ("config_reload.key", "the chart keeps this default and renders `config` under `broker.toml`"),
    (
        "webhook.enabled",
        "the chart always sets `BROKKR__WEBHOOK__ENABLED` to its value `webhook.enabled` (`false` included), so a ConfigMap cannot open the port",
    ),
    ("webhook.listen", "with the webhook on, the chart sets `BROKKR__WEBHOOK__LISTEN` to `0.0.0.0:<ports.webhook>`"),
    (
        "rollout.enabled",
        "the chart sets `BROKKR__ROLLOUT__ENABLED=true` when the chart value `rollout.enabled` is true, with the \
         objects and rights the rollout needs",
    ),
    (
        "rollout.steps",
        "with `rollout.enabled`, the chart sets `BROKKR__ROLLOUT__STEPS` from the chart value `rollout.steps`",
    ),
    (
        "rollout.bake",
        "with `rollout.enabled`, the chart sets `BROKKR__ROLLOUT__BAKE` from the chart value `rollout.bake`",
    ),
    (
        "rollout.progress_deadline",
        "with `rollout.enabled`, the chart sets `BROKKR__ROLLOUT__PROGRESS_DEADLINE` from the chart value \
         `rollout.progressDeadline`",
    ),
    (
        "rollout.max_error_ratio",
        "with `rollout.enabled`, the chart sets `BROKKR__ROLLOUT__MAX_ERROR_RATIO` from the chart value \
         `rollout.maxErrorRatio`",
    ),
    (
        "rollout.min_requests",
        "with `rollout.enabled`, the chart sets `BROKKR__ROLLOUT__MIN_REQUESTS` from the chart value \
         `rollout.minRequests`",
    ),
    (
        "webhook.cert_file",
        "the chart keeps this default and mounts the Secret `<fullname>-webhook-tls` read-only at \
         `/etc/brokkr/webhook-tls`",
    ),
    ("webhook.key_file", "the chart keeps this default, read from the same mounted Secret"),
];

/// JSON schema of a setting where its TOML type says too little; any other setting's schema follows from the type
/// of its default (a duration, a string, a boolean, a number, a list of strings).
fn schema_refinement(key: &str) -> Option<Json> {
    match key {
        "log.format" => Some(json!({"type": "string", "enum": ["text", "json"]})),
        "config_reload.history" => Some(json!({"type": "integer", "minimum": 1, "maximum": 100})),
        "cors.allowed_origins" => Some(json!({
            "type": "array",
            "items": {"type": "string", "pattern": "^(\\*|https?://[^/?#\\s]+)$"},
        })),
        _ => None,
    }
}

const README: (&str, &str, &str) =
    ("README.md", "<!-- settings:begin (generated: brokkr-broker settings-docs --write) -->", "<!-- settings:end -->");
const VALUES: (&str, &str, &str) = (
    "charts/brokkr-broker/values.yaml",
    "# settings:begin (generated: brokkr-broker settings-docs --write)",
    "# settings:end",
);
const SCHEMA: (&str, &str, &str) = ("charts/brokkr-broker/values.schema.json", "    \"config\": {", "    },");

/// Each file under `root` as the declarations give it, with whether it differs from the file as it is.
pub fn render(root: &Path) -> Result<Vec<(PathBuf, String, bool)>, DocsError> {
    let parts = [(README, readme_table()), (VALUES, values_block()), (SCHEMA, schema_config())];
    parts
        .into_iter()
        .map(|((file, begin, end), generated)| {
            let path = root.join(file);
            let text = std::fs::read_to_string(&path).map_err(|source| DocsError::Io { path: path.clone(), source })?;
            let updated = replace_between(&text, begin, end, &generated).ok_or_else(|| DocsError::Markers {
                path: path.clone(),
                begin,
                end,
            })?;
            let differs = updated != text;
            Ok((path, updated, differs))
        })
        .collect()
}

/// `settings-docs [--write]`: prints the files that differ (exit 1), or writes them.
#[must_use]
pub fn run(root: &Path, write: bool) -> ExitCode {
    let rendered = match render(root) {
        Ok(rendered) => rendered,
        Err(error) => {
            eprintln!("settings-docs: {}", crate::report::chain(&error));
            return ExitCode::FAILURE;
        }
    };
    let mut stale = false;
    for (path, text, differs) in rendered.into_iter().filter(|(_, _, differs)| *differs) {
        if write {
            if let Err(source) = std::fs::write(&path, text) {
                eprintln!("settings-docs: {}", crate::report::chain(&DocsError::Io { path, source }));
                return ExitCode::FAILURE;
            }
            println!("updated {}", path.display());
        } else {
            stale |= differs;
            println!("{} is out of date: run {COMMAND}", path.display());
        }
    }
    if stale { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// `text` with the lines strictly between the line `begin` and the next line `end` replaced by `generated`.
fn replace_between(text: &str, begin: &str, end: &str, generated: &str) -> Option<String> {
    let start = text.find(&format!("\n{begin}\n"))? + begin.len() + 2;
    let stop = start
        + text[start..]
            .find(&format!("\n{end}\n"))
            .map(|i| i + 1)
            .or_else(|| text[start..].starts_with(&format!("{end}\n")).then_some(0))?;
    Some(format!("{}{generated}{}", &text[..start], &text[stop..]))
}

/// `live`, `restart`, or `fixed` for a restart-only setting the ConfigMap may repeat but never change.
fn applies(d: &Declaration<Settings>) -> &'static str {
    match d.applies {
        Applies::Live => "live",
        Applies::AtRestart => "restart",
        Applies::Fixed(_) => "fixed",
    }
}

/// The default as the docs show it: in backticks, or `empty` for a secret and `unset` for anything else.
fn default_shown(d: &Declaration<Settings>) -> String {
    match d.shown(&Settings::default()) {
        value if value.is_empty() && d.secret => "empty".into(),
        value if value.is_empty() => "unset".into(),
        value => format!("`{value}`"),
    }
}

fn readme_table() -> String {
    let mut out = String::from("| key | applies | default | meaning |\n|---|---|---|---|\n");
    let (live, restart): (Vec<&Declaration<Settings>>, Vec<_>) = DECLARATIONS.iter().partition(|d| d.is_live());
    for d in live.into_iter().chain(restart) {
        let _ = writeln!(out, "| `{}` | {} | {} | {} |", d.key, applies(d), default_shown(d), d.help);
    }
    out
}

/// The help as a sentence: capitalized, ending with a full stop.
fn sentence(help: &str) -> String {
    let mut chars = help.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    let text = format!("{first}{}", chars.as_str());
    if text.ends_with('.') { text } else { format!("{text}.") }
}

fn comment(d: &Declaration<Settings>, note: Option<&str>) -> String {
    let default = d.shown(&Settings::default());
    let help = match note {
        Some(note) => sentence(&format!("{}; {note}", d.help)),
        None => sentence(d.help),
    };
    format!("# -- `{}` · {} · default `{default}`. {help}", d.key, applies(d))
}

/// Whether the chart's `config` holds `d`: every setting the chart does not set itself, except secrets, which never
/// go into a ConfigMap.
fn in_config(d: &Declaration<Settings>) -> bool {
    !d.secret && set_by_chart(d.key).is_none()
}

fn set_by_chart(key: &str) -> Option<&'static str> {
    SET_BY_CHART.iter().find(|(k, _)| *k == key).map(|(_, how)| *how)
}

/// The default of `key` in the TOML form of the default settings.
fn default_value(key: &str) -> Option<Toml> {
    let (section, field) = key.split_once('.')?;
    Toml::try_from(Settings::default()).ok()?.get(section)?.get(field).cloned()
}

/// A YAML scalar or flow sequence for a TOML default: plain when YAML reads it back as the same string.
fn yaml(value: &Toml) -> String {
    match value {
        Toml::String(s) => {
            // Quoted when YAML 1.1 or 1.2 could read it as something else: a number (`1_000`, `0x10`, `.inf`), a
            // boolean (`True`, `y`, `off`) or null.
            let lower = s.to_ascii_lowercase();
            let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '/')
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "_./:-".contains(c))
                && !matches!(lower.as_str(), "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n");
            if plain { s.clone() } else { Json::String(s.clone()).to_string() }
        }
        Toml::Array(items) => format!("[{}]", items.iter().map(yaml).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

fn values_block() -> String {
    let mut out = String::from(
        "# Settings the chart sets for you (not in `config`): the chart passes them as environment variables, which \
         win over\n# the ConfigMap, and the schema refuses them in `config`.\n",
    );
    for d in DECLARATIONS.iter().filter(|d| !in_config(d)) {
        let how = set_by_chart(d.key).map_or_else(
            || {
                format!(
                    "a secret, so never in `config` (a ConfigMap that anyone with the `view` role can read), and the \
                     chart does not set it: set `{}{}` from a Secret",
                    <Settings as AppSettings>::ENV_PREFIX,
                    d.key.replace('.', "__").to_ascii_uppercase()
                )
            },
            str::to_owned,
        );
        let _ = writeln!(out, "{}", comment(d, Some(&how)));
    }
    out.push_str(
        "#\n# -- Broker settings, rendered with `toToml` into the ConfigMap key `broker.toml`. Live settings apply \
         within\n# seconds of an edit, on every pod, without a rollout; restart-only ones at the next start (see\n# \
         `restartOnConfigChange`). `helm install` rejects unknown keys and mistyped values here.\nconfig:\n",
    );
    let mut section = "";
    for d in DECLARATIONS.iter().filter(|d| in_config(d)) {
        let (name, field) = d.key.split_once('.').unwrap_or((d.key, ""));
        if name != section {
            let _ = writeln!(out, "  {name}:");
            section = name;
        }
        let value = default_value(d.key).map_or_else(|| "null".into(), |v| yaml(&v));
        let _ = writeln!(out, "    {}\n    {field}: {value}", comment(d, None));
    }
    out
}

/// The JSON schema of one setting, from its refinement or the type of its default.
fn schema_of(d: &Declaration<Settings>) -> Json {
    let mut schema = schema_refinement(d.key).unwrap_or_else(|| match default_value(d.key) {
        Some(Toml::String(s)) if humantime::parse_duration(&s).is_ok() => {
            json!({"$ref": "#/definitions/humantimeDuration"})
        }
        Some(Toml::Boolean(_)) => json!({"type": "boolean"}),
        Some(Toml::Integer(_)) => json!({"type": "integer"}),
        Some(Toml::Float(_)) => json!({"type": "number"}),
        Some(Toml::Array(_)) => json!({"type": "array", "items": {"type": "string"}}),
        _ => json!({"type": "string"}),
    });
    if let Some(object) = schema.as_object_mut().filter(|o| !o.contains_key("$ref")) {
        object.insert("description".into(), Json::String(sentence(d.help)));
    }
    schema
}

fn schema_config() -> String {
    let mut sections = serde_json::Map::new();
    for d in DECLARATIONS.iter().filter(|d| in_config(d)) {
        let (name, field) = d.key.split_once('.').unwrap_or((d.key, ""));
        let section = sections
            .entry(name)
            .or_insert_with(|| json!({"type": "object", "additionalProperties": false, "properties": {}}));
        section["properties"][field] = schema_of(d);
    }
    let config = json!({
        "description": "The broker's settings, rendered into broker.toml. Settings the chart sets through the \
                        environment are refused here.",
        "type": "object",
        "additionalProperties": false,
        "properties": sections,
    });
    let pretty = serde_json::to_string_pretty(&config).unwrap_or_default();
    // Inside the braces of `"config": {` … `},` at the file's indentation.
    let inner = pretty.trim_start_matches('{').trim_end_matches('}').trim_matches('\n');
    inner.lines().map(|line| format!("    {line}\n")).collect()
}

/// Every setting is either declared in the chart's `config` or set by the chart: a key in [`SET_BY_CHART`] that is
/// not declared is a mistake.
#[must_use]
pub fn undeclared_chart_keys() -> Vec<&'static str> {
    SET_BY_CHART
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| <Settings as AppSettings>::DECLARATIONS.iter().all(|d| d.key != *k))
        .collect()
}
