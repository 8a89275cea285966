//! The checks every settings type gets from the machinery, before and beside its own [`AppSettings::own_checks`]:
//! every field read (each unknown or mistyped key reported, not only the first serde meets), no secret copied into
//! a setting that is shown, and the ranges of the reload section.

use std::time::Duration;

use toml::{Table, Value};

use crate::{AppSettings, ConfigError, ReloadSettings, Result, text::quote};

/// An invalid value of `key`.
pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), reason: reason.into() }
}

/// `value` within `min..=max`, else an error naming `key` and the range.
pub(crate) fn within(key: &str, value: Duration, min: Duration, max: Duration) -> Result<()> {
    if value < min || value > max {
        let show = |d| humantime::format_duration(d).to_string();
        return Err(invalid(key, format!("{} is out of range {}..={}", show(value), show(min), show(max))));
    }
    Ok(())
}

/// A Kubernetes name or namespace: an RFC 1123 subdomain (`max` 253) or label (`max` 63).
pub(crate) fn check_dns_name(key: &str, value: &str, max: usize, dots: bool) -> Result<()> {
    // Names and keys are never secrets (a secret copied into one is refused before this runs).
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.');
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if value.is_empty() || value.len() > max || !value.chars().all(ok_char) {
        return Err(invalid(
            key,
            format!("{} is not a valid Kubernetes name (lower-case a-z, 0-9, '-', at most {max})", quote(value)),
        ));
    }
    if !ends_ok(value.chars().next()) || !ends_ok(value.chars().last()) {
        return Err(invalid(key, format!("{} must start and end with a letter or digit", quote(value))));
    }
    Ok(())
}

/// Shortest secret whose appearance in another setting is refused; a shorter one would match ordinary text.
const SECRET_SEARCH_MIN: usize = 8;

/// A secret (in force, or to be) must not appear in a setting that is shown (logged on change, in the admin status,
/// in `Debug`): the admin token pasted into `log.level`, for example, would be a valid filter target and be written
/// out. Searched as it is and as `Debug` escapes it, the form a list shows it in.
fn secret_not_shown<S: AppSettings>(s: &S, secret: &str) -> Result<()> {
    if secret.len() < SECRET_SEARCH_MIN {
        return Ok(());
    }
    let escaped = format!("{secret:?}");
    let escaped = escaped.trim_matches('"');
    let shown = S::DECLARATIONS.iter().filter(|d| !d.secret).find(|d| {
        let value = d.shown(s);
        value.contains(secret) || value.contains(escaped)
    });
    match shown {
        Some(declaration) => Err(invalid(
            declaration.key,
            "contains the value of a secret; a secret must not be put in a setting that is shown (value not shown)",
        )),
        None => Ok(()),
    }
}

/// The most reloads a history may keep: each holds its changed values, up to 256 bytes each, old and new.
pub const MAX_HISTORY: usize = 100;

/// The reload section's own checks: names that locate the ConfigMap, and timings that keep the reload alive (a
/// resync of 0 s would fire without pause; a debounce of a century would never apply an edit).
fn reload_problems(r: &ReloadSettings, section: &str) -> Vec<ConfigError> {
    let key = |field: &str| format!("{section}.{field}");
    let secs = Duration::from_secs;
    let mut results = Vec::new();
    if let Some(ns) = &r.namespace {
        results.push(check_dns_name(&key("namespace"), ns, 63, false));
    }
    results.push(check_dns_name(&key("configmap"), &r.configmap, 253, true));
    let key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if r.key.is_empty() || r.key.len() > 253 || !r.key.chars().all(key_char) {
        results.push(Err(invalid(key("key"), format!("{} is not a valid ConfigMap data key", quote(&r.key)))));
    }
    results.push(within(&key("debounce"), r.debounce, Duration::from_millis(100), secs(600)));
    results.push(within(&key("max_wait"), r.max_wait, Duration::from_millis(100), secs(3600)));
    if r.max_wait < r.debounce {
        results.push(Err(invalid(
            key("max_wait"),
            format!(
                "must not be shorter than {} ({} < {})",
                key("debounce"),
                humantime::format_duration(r.max_wait),
                humantime::format_duration(r.debounce)
            ),
        )));
    }
    results.push(within(&key("resync_interval"), r.resync_interval, secs(10), secs(86_400)));
    if !(1..=MAX_HISTORY).contains(&r.history) {
        results.push(Err(invalid(key("history"), format!("is {}; from 1 to {MAX_HISTORY} are allowed", r.history))));
    }
    results.into_iter().filter_map(Result::err).collect()
}

/// A secret (its own, or one of `in_force`) copied into a setting that is shown: checked first and alone, as a
/// later check may quote a value, cut at a byte limit, and a secret cut in two could no longer be found and redacted.
pub(crate) fn secrets_not_shown<S: AppSettings>(s: &S, in_force: &[&str]) -> Result<()> {
    let own = s.secret_values();
    for secret in own.iter().map(String::as_str).chain(in_force.iter().copied()) {
        secret_not_shown(s, secret)?;
    }
    Ok(())
}

/// Every other problem of `s` at once: the application's own checks ([`AppSettings::own_checks`]) and the reload
/// section's.
pub(crate) fn every_check<S: AppSettings>(s: &S, in_force: &[&str]) -> Vec<ConfigError> {
    let mut errors = match s.own_checks(in_force) {
        Ok(()) => Vec::new(),
        Err(ConfigError::Several(errors)) => errors,
        Err(error) => vec![error],
    };
    errors.extend(reload_problems(s.reload(), S::reload_section()));
    errors
}

/// [`secrets_not_shown`], then [`every_check`], as one result: what a document's settings meet.
#[cfg(test)]
pub(crate) fn check<S: AppSettings>(s: &S, in_force: &[&str]) -> Result<()> {
    secrets_not_shown(s, in_force)?;
    let errors = every_check(s, in_force);
    if errors.is_empty() { Ok(()) } else { Err(ConfigError::all(errors)) }
}

/// The most field errors [`read_every_field`] names; past them it stops reading (an error lists 8 of them).
pub(crate) const MAX_FIELD_ERRORS: usize = 16;

/// `merged` as `S`, or `None` with every field error in `errors` (at most [`MAX_FIELD_ERRORS`]).
///
/// Serde stops at the first error. So when the whole table does not read, each value that differs from `below`
/// (the layers under the document, and the environment) is read alone over `below`: one read per value, so every
/// unknown or mistyped key is named, and a large valid value is read once, not once per error. A value that does
/// not read is put back to `below`'s (or removed, when it has none: an unknown key), and the rest read as one.
pub(crate) fn read_every_field<S: AppSettings>(
    mut merged: Table,
    below: &Table,
    is_secret_section: impl Fn(&str) -> bool,
    errors: &mut Vec<ConfigError>,
) -> Option<S> {
    let read = |table: Table| serde_path_to_error::deserialize::<_, S>(Value::Table(table));
    let field_error = |error: serde_path_to_error::Error<toml::de::Error>| {
        let key = error.path().to_string();
        // Any error at or under a secret's section may quote it: `admin = "…"` is a type error on the section.
        let message = if is_secret_section(&key) {
            "invalid value (not shown: the key holds a secret)".to_owned()
        } else {
            // One clean line: the deserializer may append "in `key`" on a line of its own; the key is named by the
            // error already.
            let inner = error.into_inner().to_string();
            inner.lines().next().unwrap_or_default().trim_end().to_owned()
        };
        ConfigError::Field { key, message }
    };
    let first = match read(merged.clone()) {
        Ok(settings) => return Some(settings),
        Err(error) => error,
    };
    let changed: Vec<(String, Option<String>)> = merged
        .iter()
        .flat_map(|(section, value)| match (value.as_table(), below.get(section).and_then(Value::as_table)) {
            (Some(table), Some(under)) => table
                .iter()
                .filter(|(key, value)| under.get(*key) != Some(*value))
                .map(|(key, _)| (section.clone(), Some(key.clone())))
                .collect::<Vec<_>>(),
            _ if below.get(section) == Some(value) => Vec::new(),
            _ => vec![(section.clone(), None)],
        })
        .collect();
    for (section, key) in changed {
        if errors.len() >= MAX_FIELD_ERRORS {
            return None;
        }
        let mut probe = below.clone();
        let value = match &key {
            Some(key) => merged.get(&section).and_then(Value::as_table).and_then(|t| t.get(key)),
            None => merged.get(&section),
        };
        let Some(value) = value.cloned() else { continue };
        match &key {
            Some(key) => {
                let table = probe.entry(section.clone()).or_insert_with(|| Value::Table(Table::new()));
                if let Value::Table(table) = table {
                    table.insert(key.clone(), value);
                }
            }
            None => {
                probe.insert(section.clone(), value);
            }
        }
        if let Err(error) = read(probe) {
            errors.push(field_error(error));
            let at: Vec<&str> = std::iter::once(section.as_str()).chain(key.as_deref()).collect();
            restore(&mut merged, below, &at);
        }
    }
    match read(merged) {
        Ok(settings) => Some(settings),
        Err(error) => {
            // Only in combination, or past what was read alone: named as serde met it.
            if errors.is_empty() || errors.len() < MAX_FIELD_ERRORS {
                errors.push(field_error(if errors.is_empty() { first } else { error }));
            }
            None
        }
    }
}

/// Puts the value at `section.key` (or the whole `section`) back to `below`'s, or removes it when `below` has none.
fn restore(merged: &mut Table, below: &Table, at: &[&str]) {
    match at {
        [section] => match below.get(*section) {
            Some(under) => {
                merged.insert((*section).to_owned(), under.clone());
            }
            None => {
                merged.remove(*section);
            }
        },
        [section, key] => {
            let under = below.get(*section).and_then(Value::as_table).and_then(|t| t.get(*key));
            if let Some(Value::Table(table)) = merged.get_mut(*section) {
                match under {
                    Some(under) => table.insert((*key).to_owned(), under.clone()),
                    None => table.remove(*key),
                };
            }
        }
        _ => {}
    }
}
