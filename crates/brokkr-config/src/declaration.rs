//! Every setting declared once: its key, whether it applies live, whether it is a secret, and one line of help.
//! `Settings::fields`, the restart-only split, the diff and every redaction are derived from [`DECLARATIONS`].
//!
//! Adding a setting: the field in its section struct with its default (settings.rs), one line here, and the code
//! that reads it. The tests then name what else must agree: the TOML form (`fields_list_every_key_of_the_toml_form_once`),
//! the README's settings table, `values.yaml`'s comments (`chart_render`).

use std::time::Duration;

use crate::Settings;

/// When a changed value takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// With the next reload.
    Live,
    /// At the next start; a reload reports it as waiting for a restart.
    AtRestart,
}

/// One setting.
#[derive(Clone, Copy)]
pub struct Declaration {
    /// Dotted key, such as `cors.max_age`.
    pub key: &'static str,
    /// When a change takes effect.
    pub applies: Applies,
    /// Whether the value is a secret (a [`crate::secret::Secret`]): shown as `<redacted>`, never quoted.
    pub secret: bool,
    /// One line of help.
    pub help: &'static str,
    show: fn(&Settings) -> String,
    same: fn(&Settings, &Settings) -> bool,
    keep: fn(&mut Settings, &Settings),
}

impl std::fmt::Debug for Declaration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Declaration").field("key", &self.key).field("applies", &self.applies).finish_non_exhaustive()
    }
}

impl Declaration {
    /// The value in `settings` as TOML would show it; [`crate::secret::REDACTED`] for a secret that is set.
    #[must_use]
    pub fn shown(&self, settings: &Settings) -> String {
        (self.show)(settings)
    }

    /// Whether `a` and `b` hold the same value (a secret is compared, never shown).
    #[must_use]
    pub fn same(&self, a: &Settings, b: &Settings) -> bool {
        (self.same)(a, b)
    }

    /// Sets this setting in `next` to its value in `from`.
    pub fn keep(&self, next: &mut Settings, from: &Settings) {
        (self.keep)(next, from);
    }

    /// Whether it applies live.
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.applies == Applies::Live
    }
}

/// A declaration for `section.field`, shown with `show` (a function of the field's type).
macro_rules! declare {
    ($section:ident . $field:ident, $applies:ident, $show:expr, $help:literal) => {
        Declaration {
            key: concat!(stringify!($section), ".", stringify!($field)),
            applies: Applies::$applies,
            secret: false,
            help: $help,
            show: |s| ($show)(&s.$section.$field),
            same: |a, b| a.$section.$field == b.$section.$field,
            keep: |next, from| next.$section.$field.clone_from(&from.$section.$field),
        }
    };
    (secret $section:ident . $field:ident, $applies:ident, $help:literal) => {
        Declaration {
            key: concat!(stringify!($section), ".", stringify!($field)),
            applies: Applies::$applies,
            secret: true,
            help: $help,
            // Only a `Secret` has `shown`: declaring a plain string as a secret does not compile.
            show: |s| s.$section.$field.shown().to_owned(),
            same: |a, b| a.$section.$field == b.$section.$field,
            keep: |next, from| next.$section.$field.clone_from(&from.$section.$field),
        }
    };
}

fn text(value: &str) -> String {
    value.to_owned()
}

fn display<T: std::fmt::Display>(value: &T) -> String {
    value.to_string()
}

fn duration(value: &Duration) -> String {
    humantime::format_duration(*value).to_string()
}

fn list(value: &[String]) -> String {
    format!("{value:?}")
}

/// Every setting, in the order the README, `values.yaml` and the admin status list them.
pub const DECLARATIONS: &[Declaration] = &[
    declare!(server.listen, AtRestart, display, "address of the HTTP server"),
    declare!(secret admin.token, AtRestart, "bearer token of the admin API; empty locks the admin API"),
    declare!(log.level, Live, text, "tracing filter in EnvFilter syntax"),
    declare!(log.format, AtRestart, |f: &crate::LogFormat| format!("{f:?}").to_lowercase(), "text or json"),
    declare!(cors.allowed_origins, Live, list, "origins that browsers may call from, or \"*\""),
    declare!(cors.max_age, Live, duration, "how long browsers may cache a preflight answer"),
    declare!(config_reload.enabled, AtRestart, display, "watch the ConfigMap at all"),
    declare!(
        config_reload.namespace,
        AtRestart,
        |n: &Option<String>| n.clone().unwrap_or_default(),
        "namespace of the ConfigMap"
    ),
    declare!(config_reload.configmap, AtRestart, text, "name of the ConfigMap"),
    declare!(config_reload.key, AtRestart, text, "data key that holds the TOML"),
    declare!(config_reload.debounce, Live, duration, "quiet window after the last change before reloading"),
    declare!(config_reload.max_wait, Live, duration, "longest a change waits under constant churn"),
    declare!(config_reload.resync_interval, Live, duration, "period of the full re-read that catches a silent watch"),
    declare!(webhook.enabled, AtRestart, display, "serve the validating admission webhook"),
    declare!(webhook.listen, AtRestart, display, "address of the webhook's HTTPS listener"),
    declare!(
        webhook.cert_file,
        AtRestart,
        |p: &std::path::PathBuf| p.display().to_string(),
        "PEM certificate chain the webhook serves"
    ),
    declare!(
        webhook.key_file,
        AtRestart,
        |p: &std::path::PathBuf| p.display().to_string(),
        "PEM private key of that certificate"
    ),
];

/// The declaration of `key`.
#[must_use]
pub fn declaration(key: &str) -> Option<&'static Declaration> {
    DECLARATIONS.iter().find(|d| d.key == key)
}
