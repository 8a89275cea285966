//! `check-config FILE [--configmap [--config BASE] [--env-file VARS] [--namespace NS]]`: judges a configuration offline, like
//! `promtool check config`, through the same [`brokkr_config::judge`] a reload and the webhook call.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use brokkr_config::{
    AppSettings, ConfigError, ConfigLayers, Document, Place, Settings, judge, layers::LayerText, text::escape,
};

/// The layers a pod has under and over its ConfigMap's document: its `--config` file and its environment.
#[derive(Debug, Default)]
pub struct Over {
    /// The pod's `--config` file.
    pub config: Option<PathBuf>,
    /// The pod's `BROKKR__…=value` variables, one per line.
    pub env_file: Option<PathBuf>,
    /// The namespace the pod reads its ConfigMap from.
    pub namespace: Option<String>,
}

/// The largest variables file read: a pod's environment is a few KiB.
const MAX_ENV_FILE: u64 = 1024 * 1024;

/// Prints `FILE: OK`, the warnings and the settings it yields, or every error naming its key; exit 1 on error.
/// With `configmap`, the file is judged as the ConfigMap's document over the layers given, as a reload judges it.
#[must_use]
pub fn run(file: &Path, configmap: Option<Over>) -> ExitCode {
    let judged = match configmap {
        Some(over) => judge_document(file, &over),
        None => ConfigLayers::new().with_file(file).and_then(|layers| layers.build(None)).map(|c| (c.settings, vec![])),
    };
    match judged {
        Ok((settings, warnings)) => {
            println!("{}: OK", file.display());
            for warning in warnings {
                println!("  warning: {}", escape(&warning));
            }
            for field in settings.fields() {
                let when = if field.live { "live" } else { "restart" };
                // A value (a log filter's span field, say) may hold any character: shown, never obeyed.
                println!("  {:<32} {:<8} {}", field.key, when, escape(&field.value));
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{}: {}", file.display(), crate::report::chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// `file` judged as the ConfigMap's document over `over`, for a broker running on those layers alone.
fn judge_document(file: &Path, over: &Over) -> Result<(Settings, Vec<String>), ConfigError> {
    let mut layers = ConfigLayers::new();
    if let Some(config) = &over.config {
        layers = layers.with_file(config)?;
    }
    if let Some(env_file) = &over.env_file {
        layers = layers.with_env(read_env_file(env_file)?)?;
    }
    let running = layers.build(None)?.settings;
    let text =
        std::fs::read_to_string(file).map_err(|source| ConfigError::ReadFile { path: file.to_owned(), source })?;
    let document = Document {
        layer: LayerText { origin: format!("ConfigMap document {}", file.display()), text },
        place: Place::ConfigMap { namespace: over.namespace.clone() },
    };
    let verdict = judge(&layers, &document, &running)?;
    let warnings = verdict.warnings();
    Ok((verdict.candidate.settings, warnings))
}

/// The `BROKKR__…=value` lines of `path`; every other line is skipped.
fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let bytes = brokkr_reload::mounted_file::read_capped(path, MAX_ENV_FILE)
        .map_err(|source| ConfigError::ReadFile { path: path.to_owned(), source })?;
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::ReadFile {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
    })?;
    let mut vars = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l))) {
        // `export NAME=value` as a shell file writes it, `NAME=value` as `kubectl set env --list` prints it.
        let line = line.trim_start();
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        // Only the settings' variables are read; any other line (a comment, another variable, the rest of a value
        // that spans lines) is skipped. A value is kept as it is, spaces included.
        if !line.starts_with(Settings::ENV_PREFIX) {
            continue;
        }
        // The line is not quoted: it may hold a secret.
        let Some((name, value)) = line.split_once('=') else {
            let var = format!("on line {number} of {}", path.display());
            return Err(ConfigError::Env { var, reason: "the line has no '=' (NAME=value)".into() });
        };
        vars.push((name.trim_end().to_owned(), value.to_owned()));
    }
    Ok(vars)
}
