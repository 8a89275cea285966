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

    /// Checks what types alone cannot express, returning every problem at once ([`crate::ConfigError::Several`]),
    /// each naming its key. `in_force` are secrets in force that these settings may not show in any setting that
    /// is not a secret (a token an earlier ConfigMap set), besides their own.
    fn validate(&self, in_force: &[&str]) -> Result<()>;

    /// Where the ConfigMap is and how reloads are timed: the [`ReloadSettings`] section of these settings.
    fn reload(&self) -> &ReloadSettings;

    /// The name of that section, for error messages (`config_reload.namespace`).
    const RELOAD_SECTION: &'static str = "config_reload";

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
