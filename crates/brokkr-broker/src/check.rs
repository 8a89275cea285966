//! `check-config FILE [--configmap]`: validates a configuration file offline, like `promtool check config`.

use std::{path::Path, process::ExitCode};

use brokkr_config::{AppSettings, ConfigError, ConfigLayers, layers::LayerText};

/// Prints `FILE: OK` and the settings it yields, or the error naming the key; exit 1 on error. With `configmap`,
/// the file is built as the ConfigMap's document over the defaults, exactly as a reload builds it.
#[must_use]
pub fn run(file: &Path, configmap: bool) -> ExitCode {
    let built = if configmap {
        std::fs::read_to_string(file)
            .map_err(|source| ConfigError::ReadFile { path: file.to_owned(), source })
            .and_then(|text| {
                let origin = format!("ConfigMap document {}", file.display());
                ConfigLayers::new().build(Some(&LayerText { origin, text }))
            })
    } else {
        ConfigLayers::new().with_file(file).and_then(|layers| layers.build(None))
    };
    match built {
        Ok(candidate) => {
            println!("{}: OK", file.display());
            for field in candidate.settings.fields() {
                let when = if field.live { "live" } else { "restart" };
                // A value (a log filter's span field, say) may hold any character: shown, never obeyed.
                println!("  {:<32} {:<8} {}", field.key, when, brokkr_config::text::escape(&field.value));
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{}: {}", file.display(), crate::report::chain(&error));
            ExitCode::FAILURE
        }
    }
}
