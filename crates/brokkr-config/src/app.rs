//! What the reload subsystem needs from an application's settings type: [`AppSettings`], and what it derives.

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    Result,
    declaration::Declaration,
    settings::{Change, FieldInfo, ReloadSettings},
};

/// An application's settings type, as the layers, [`crate::ReloadableConfig`] and the reload actors use it.
///
/// Implement it with a table of [`crate::declare!`] lines, one per setting; everything else (the field list, the
/// restart-only split, the diff, every redaction, the environment layer) is derived from that table. The broker's
/// [`crate::Settings`] is one; `actors/examples/embedded.rs` embeds the subsystem with another.
pub trait AppSettings:
    Clone + PartialEq + std::fmt::Debug + Default + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Every setting, once, in the order fields, diffs and `check-config` list them.
    const DECLARATIONS: &'static [Declaration<Self>];

    /// Environment variables `<ENV_PREFIX>SECTION__KEY` set a key above every other layer, such as `BROKKR__`.
    const ENV_PREFIX: &'static str;

    /// The application's own checks of what types alone cannot express, returning every problem at once
    /// ([`crate::ConfigError::Several`]), each naming its key. Every settings type also gets, without writing them:
    /// a secret (its own, or one of `in_force`, the secrets in force) copied into a setting that is shown is refused
    /// before this runs, and the reload section's names and ranges are checked beside it. `in_force` is given so
    /// that a check that quotes a value can blank them first.
    fn own_checks(&self, in_force: &[&str]) -> Result<()>;

    /// Where the ConfigMap is and how reloads are timed: the [`ReloadSettings`] section of these settings.
    fn reload(&self) -> &ReloadSettings;

    /// The name of that section (`config_reload`), as [`crate::declarations!`] declared it.
    #[must_use]
    fn reload_section() -> &'static str {
        // From the end: `declarations!` puts the reload section after the application's own settings, one of which
        // may also be called `resync_interval`.
        Self::DECLARATIONS.iter().rev().find_map(|d| d.key.strip_suffix(".resync_interval")).unwrap_or("config_reload")
    }

    /// Every setting with its printable value, secrets redacted, in the order of [`AppSettings::DECLARATIONS`].
    fn fields(&self) -> Vec<FieldInfo> {
        Self::DECLARATIONS.iter().map(|d| FieldInfo { key: d.key, live: d.is_live(), value: d.shown(self) }).collect()
    }

    /// These settings with every restart-only value taken from `running`: what a reload may put in force.
    #[must_use]
    fn with_restart_only_from(&self, running: &Self) -> Self {
        let mut next = self.clone();
        for declaration in Self::DECLARATIONS.iter().filter(|d| !d.is_live()) {
            declaration.keep(&mut next, running);
        }
        next
    }

    /// The value of every secret that is set, for the checks that must find them (never to show them).
    fn secret_values(&self) -> Vec<String> {
        Self::DECLARATIONS.iter().filter_map(|d| d.secret_value(self)).filter(|v| !v.is_empty()).collect()
    }
}

/// The settings that differ between `old` and `new`, in the order of their declarations.
///
/// A secret shows as `<redacted>` on both sides, so its change is visible but its value never is.
#[must_use]
pub fn diff<S: AppSettings>(old: &S, new: &S) -> Vec<Change> {
    S::DECLARATIONS
        .iter()
        .filter(|d| !d.same(old, new))
        .map(|d| Change { key: d.key, old: d.shown(old), new: d.shown(new), live: d.is_live() })
        .collect()
}

/// Whether `S`'s declarations cover its TOML form: every key of `sample` (a value with every optional field set)
/// declared exactly once, with help, and no declaration without a key. For an application's own test: a field that
/// is not declared would be swapped in with no diff, no audit record and no redaction.
///
/// # Errors
/// What is missing, extra or repeated, naming the keys.
pub fn check_declarations<S: AppSettings>(sample: &S) -> std::result::Result<(), String> {
    let form = toml::Value::try_from(sample).map_err(|e| format!("the settings do not serialize: {e}"))?;
    let mut in_form: Vec<String> = Vec::new();
    for (section, table) in form.as_table().into_iter().flatten() {
        match table.as_table() {
            Some(table) => in_form.extend(table.keys().map(|key| format!("{section}.{key}"))),
            None => in_form.push(section.clone()),
        }
    }
    let declared: Vec<&str> = S::DECLARATIONS.iter().map(|d| d.key).collect();
    let mut problems: Vec<String> = Vec::new();
    problems.extend(in_form.iter().filter(|k| !declared.contains(&k.as_str())).map(|k| format!("{k} is not declared")));
    problems.extend(
        declared
            .iter()
            .filter(|k| !in_form.iter().any(|f| f == *k))
            .map(|k| format!("{k} is declared but not a field")),
    );
    for d in S::DECLARATIONS {
        if declared.iter().filter(|k| **k == d.key).count() > 1 {
            problems.push(format!("{} is declared more than once", d.key));
        }
        if d.help.is_empty() {
            problems.push(format!("{} has no help", d.key));
        }
    }
    problems.dedup();
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}
