//! Reads merged TOML into an application's settings type, reporting every field that is unknown or mistyped at
//! once: serde stops at the first, so an edit with three unparsable durations would otherwise take three rounds.

use serde_path_to_error::Segment;
use toml::{Table, Value};

use crate::{AppSettings, ConfigError};

/// `merged` as `S`, or `None` with every field error in `errors`.
///
/// Each round finds one error (serde stops at the first); the value at fault is put back to its default (or
/// removed, when it has none: an unknown key) and the rest is read again. A value only goes back to what the
/// defaults hold, so the rounds are bounded by the keys of `merged`, plus one.
pub(crate) fn read_every_field<S: AppSettings>(
    mut merged: Table,
    defaults: &Table,
    is_secret_section: impl Fn(&str) -> bool,
    errors: &mut Vec<ConfigError>,
) -> Option<S> {
    let rounds = merged.values().map(|v| v.as_table().map_or(1, Table::len)).sum::<usize>() + 1;
    for _ in 0..rounds {
        let error = match serde_path_to_error::deserialize::<_, S>(Value::Table(merged.clone())) {
            Ok(settings) => return Some(settings),
            Err(error) => error,
        };
        let key = error.path().to_string();
        let at: Vec<String> = error
            .path()
            .iter()
            .map_while(|segment| match segment {
                Segment::Map { key } => Some(key.clone()),
                _ => None,
            })
            .take(2)
            .collect();
        // Any error at or under a secret's section may quote it: `admin = "…"` is a type error on the section.
        let message = if is_secret_section(&key) {
            "invalid value (not shown: the key holds a secret)".to_owned()
        } else {
            // One clean line: the deserializer may append "in `key`" on a line of its own; the key is named by the
            // error already.
            let inner = error.into_inner().to_string();
            inner.lines().next().unwrap_or_default().trim_end().to_owned()
        };
        errors.push(ConfigError::Field { key, message });
        let at: Vec<&str> = at.iter().map(String::as_str).collect();
        if !restore_default(&mut merged, defaults, &at) {
            return None;
        }
    }
    None
}

/// Puts the value at `section.key` (or the whole `section`) back to its default, or removes it when the defaults
/// have none; false when nothing could change (the error is not at a key, or the default itself is refused).
fn restore_default(merged: &mut Table, defaults: &Table, at: &[&str]) -> bool {
    match at {
        [section] => match defaults.get(*section) {
            Some(default) if merged.get(*section) != Some(default) => {
                merged.insert((*section).to_owned(), default.clone());
                true
            }
            Some(_) => false,
            None => merged.remove(*section).is_some(),
        },
        [section, key] => {
            let default = defaults.get(*section).and_then(Value::as_table).and_then(|t| t.get(*key));
            let Some(Value::Table(table)) = merged.get_mut(*section) else {
                return false;
            };
            match default {
                Some(default) if table.get(*key) != Some(default) => {
                    table.insert((*key).to_owned(), default.clone());
                    true
                }
                Some(_) => false,
                None => table.remove(*key).is_some(),
            }
        }
        _ => false,
    }
}
