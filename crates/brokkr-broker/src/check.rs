//! `check-config FILE`: validates a configuration file offline, like `promtool check config`.

use std::{path::Path, process::ExitCode};

use brokkr_config::{AppSettings, ConfigLayers};

/// Prints `FILE: OK` and the settings it yields, or the error naming the key; exit 1 on error.
#[must_use]
pub fn run(file: &Path) -> ExitCode {
    match ConfigLayers::new().with_file(file).and_then(|layers| layers.build(None)) {
        Ok(candidate) => {
            println!("{}: OK", file.display());
            for field in candidate.settings.fields() {
                let when = if field.live { "live" } else { "restart" };
                println!("  {:<32} {:<8} {}", field.key, when, field.value);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{}: {}", file.display(), crate::report::chain(&error));
            ExitCode::FAILURE
        }
    }
}
