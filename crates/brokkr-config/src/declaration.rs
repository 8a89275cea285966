//! Every setting declared once: its key, whether it applies live, whether it is a secret, and one line of help.
//! `Settings::fields`, the restart-only split, the diff and every redaction are derived from [`DECLARATIONS`].
//!
//! Adding a setting: the field in its section struct with its default (settings.rs), one line here, and the code
//! that reads it. The tests then name what else must agree: the TOML form (`fields_list_every_key_of_the_toml_form_once`),
//! the README's settings table and `values.yaml`'s comments (`brokkr-config/tests/declarations.rs`). Still by hand:
//! `values.schema.json`, for a setting the chart's `config` may set.

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
    /// A valid value other than the default, as TOML (`"1m"`, `true`): for examples and for the tests that change
    /// every setting at once.
    pub example: &'static str,
    show: fn(&Settings) -> String,
    reveal: fn(&Settings) -> Option<String>,
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

    /// A secret's value in `settings`, for the checks that must find it (never to show it); `None` for a setting
    /// that is not a secret.
    #[must_use]
    pub fn secret_value(&self, settings: &Settings) -> Option<String> {
        (self.reveal)(settings)
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

/// A declaration for `section.field`, shown with `show` (a function of the field's type); `secret` fields are shown
/// redacted and found through `reveal`.
macro_rules! declare {
    ($section:ident . $field:ident, $applies:ident, $show:expr, $example:literal, $help:literal) => {
        declare!(@ $section.$field, $applies, false, |s| ($show)(&s.$section.$field), |_| None, $example, $help)
    };
    (secret $section:ident . $field:ident, $applies:ident, $example:literal, $help:literal) => {
        // Only a `Secret` has `shown` and `expose`: declaring a plain string as a secret does not compile.
        declare!(@ $section.$field, $applies, true, |s| s.$section.$field.shown().to_owned(),
            |s| Some(s.$section.$field.expose().to_owned()), $example, $help)
    };
    (@ $section:ident . $field:ident, $applies:ident, $secret:expr, $show:expr, $reveal:expr, $example:literal,
        $help:literal) => {
        Declaration {
            key: concat!(stringify!($section), ".", stringify!($field)),
            applies: Applies::$applies,
            secret: $secret,
            help: $help,
            example: $example,
            show: $show,
            reveal: $reveal,
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

/// Every setting, in the order `fields()`, the diff and `check-config` list them.
pub const DECLARATIONS: &[Declaration] = &[
    declare!(server.listen, AtRestart, display, r#""127.0.0.1:9090""#, "address of the HTTP server"),
    declare!(secret admin.token, AtRestart, r#""an-example-token""#, "bearer token of the admin API; empty locks it"),
    declare!(log.level, Live, text, r#""info,brokkr_reload=debug""#, "tracing filter in EnvFilter syntax"),
    declare!(
        log.format,
        AtRestart,
        |f: &crate::LogFormat| format!("{f:?}").to_lowercase(),
        r#""json""#,
        "text or json"
    ),
    declare!(
        cors.allowed_origins,
        Live,
        list,
        r#"["https://app.example.com"]"#,
        "origins browsers may call from, or \"*\""
    ),
    declare!(cors.max_age, Live, duration, r#""1m""#, "how long browsers may cache a preflight answer"),
    declare!(config_reload.enabled, AtRestart, display, "false", "watch the ConfigMap at all"),
    declare!(
        config_reload.namespace,
        AtRestart,
        |n: &Option<String>| n.clone().unwrap_or_default(),
        r#""brokkr""#,
        "namespace of the ConfigMap"
    ),
    declare!(config_reload.configmap, AtRestart, text, r#""brokkr-config""#, "name of the ConfigMap"),
    declare!(config_reload.key, AtRestart, text, r#""config.toml""#, "data key that holds the TOML"),
    declare!(config_reload.debounce, Live, duration, r#""1s""#, "quiet window after the last change before reloading"),
    declare!(config_reload.max_wait, Live, duration, r#""30s""#, "longest a change waits under constant churn"),
    declare!(
        config_reload.resync_interval,
        Live,
        duration,
        r#""10m""#,
        "period of the full re-read that catches a silent watch"
    ),
    declare!(webhook.enabled, AtRestart, display, "true", "serve the validating admission webhook"),
    declare!(webhook.listen, AtRestart, display, r#""127.0.0.1:9443""#, "address of the webhook's HTTPS listener"),
    declare!(
        webhook.cert_file,
        AtRestart,
        |p: &std::path::PathBuf| p.display().to_string(),
        r#""/tls/tls.crt""#,
        "PEM certificate chain the webhook serves"
    ),
    declare!(
        webhook.key_file,
        AtRestart,
        |p: &std::path::PathBuf| p.display().to_string(),
        r#""/tls/tls.key""#,
        "PEM private key of that certificate"
    ),
];

/// The declaration of `key`.
#[must_use]
pub fn declaration(key: &str) -> Option<&'static Declaration> {
    DECLARATIONS.iter().find(|d| d.key == key)
}
