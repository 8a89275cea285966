//! Every setting declared once: its key, when it applies, whether it is a secret, an example and one line of help.
//! [`crate::AppSettings`]'s fields, the restart-only split, the diff and every redaction are derived from a table of
//! [`Declaration`]s; this module holds the broker's, [`DECLARATIONS`].
//!
//! Adding a setting to the broker: the field in its section struct with its default (settings.rs), one line here,
//! and the code that reads it; then `cargo run -p brokkr-broker -- settings-docs --write` regenerates the README's
//! settings table, `values.yaml`'s comments and `values.schema.json`. The tests name whatever is still missing: the
//! TOML form (`fields_list_every_key_of_the_toml_form_once`), an example that is not valid, or docs not regenerated
//! (`brokkr-broker/tests/settings_docs.rs`).

use crate::Settings;

/// When a changed value takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// With the next reload.
    Live,
    /// At the next start; a reload reports it as waiting for a restart.
    AtRestart,
    /// At the next start, and the ConfigMap may repeat it but never change it, for the reason given (it locates the
    /// ConfigMap, or must match the pod's ports or mounts): a value no pod could start with is refused at the edit.
    Fixed(&'static str),
}

/// One setting of an application's settings type `S`: build it with [`crate::declare!`].
pub struct Declaration<S> {
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
    show: fn(&S) -> String,
    reveal: fn(&S) -> Option<String>,
    same: fn(&S, &S) -> bool,
    keep: fn(&mut S, &S),
}

impl<S> Clone for Declaration<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Declaration<S> {}

impl<S> std::fmt::Debug for Declaration<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Declaration").field("key", &self.key).field("applies", &self.applies).finish_non_exhaustive()
    }
}

impl<S> Declaration<S> {
    /// Used by [`crate::declare!`]; write declarations with the macro, which derives the functions from the field.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    #[must_use]
    pub const fn from_parts(
        key: &'static str,
        applies: Applies,
        secret: bool,
        help: &'static str,
        example: &'static str,
        show: fn(&S) -> String,
        reveal: fn(&S) -> Option<String>,
        same: fn(&S, &S) -> bool,
        keep: fn(&mut S, &S),
    ) -> Self {
        Self { key, applies, secret, help, example, show, reveal, same, keep }
    }

    /// The value in `settings` as TOML would show it; [`crate::secret::REDACTED`] for a secret that is set.
    #[must_use]
    pub fn shown(&self, settings: &S) -> String {
        (self.show)(settings)
    }

    /// A secret's value in `settings`, for the checks that must find it (never to show it); `None` for a setting
    /// that is not a secret.
    #[must_use]
    pub fn secret_value(&self, settings: &S) -> Option<String> {
        (self.reveal)(settings)
    }

    /// Whether `a` and `b` hold the same value (a secret is compared, never shown).
    #[must_use]
    pub fn same(&self, a: &S, b: &S) -> bool {
        (self.same)(a, b)
    }

    /// Sets this setting in `next` to its value in `from`.
    pub fn keep(&self, next: &mut S, from: &S) {
        (self.keep)(next, from);
    }

    /// Whether it applies live.
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.applies == Applies::Live
    }

    /// Why the ConfigMap may not change it, for a [`Applies::Fixed`] setting.
    #[must_use]
    pub fn fixed_because(&self) -> Option<&'static str> {
        match self.applies {
            Applies::Fixed(why) => Some(why),
            _ => None,
        }
    }
}

/// A [`Declaration`] of the field `section.field` of a settings type, which must be `Clone + PartialEq`:
///
/// ```text
/// declare!(cors.max_age, Live, show::duration, r#""1m""#, "how long browsers may cache a preflight answer")
/// declare!(server.listen, Fixed("must match the pod's ports"), show::display, r#""127.0.0.1:9090""#, "…")
/// declare!(secret admin.token, AtRestart, r#""an-example-token""#, "bearer token of the admin API")
/// ```
///
/// The third argument shows the field's value (see [`show`]); a `secret` field must be a
/// [`crate::secret::Secret`] (anything else does not compile) and is always shown redacted.
#[macro_export]
macro_rules! declare {
    ($section:ident . $field:ident, $applies:ident $(($why:literal))?, $show:expr, $example:literal, $help:literal) => {
        $crate::declare!(@ $section.$field, $applies $(($why))?, false, |s| ($show)(&s.$section.$field), |_| None,
            $example, $help)
    };
    (secret $section:ident . $field:ident, $applies:ident $(($why:literal))?, $example:literal, $help:literal) => {
        // Only a `Secret` has `shown` and `expose`: declaring a plain string as a secret does not compile.
        $crate::declare!(@ $section.$field, $applies $(($why))?, true, |s| s.$section.$field.shown().to_owned(),
            |s| Some(s.$section.$field.expose().to_owned()), $example, $help)
    };
    (@ $section:ident . $field:ident, $applies:ident $(($why:literal))?, $secret:expr, $show:expr, $reveal:expr,
        $example:literal, $help:literal) => {
        $crate::declaration::Declaration::from_parts(
            concat!(stringify!($section), ".", stringify!($field)),
            $crate::declaration::Applies::$applies $(($why))?,
            $secret,
            $help,
            $example,
            $show,
            $reveal,
            |a, b| a.$section.$field == b.$section.$field,
            |next, from| next.$section.$field.clone_from(&from.$section.$field),
        )
    };
}

/// A settings type's declaration table: its own [`crate::declare!`] lines, then the eight settings of its
/// [`crate::ReloadSettings`] section `section` (where the ConfigMap is and how reloads are timed), declared once
/// here for every application.
///
/// ```text
/// const DECLARATIONS: &'static [Declaration<Self>] = declarations![config_reload;
///     declare!(greeting.text, Live, show::text, r#""hej""#, "what the shop says"),
/// ];
/// ```
#[macro_export]
macro_rules! declarations {
    ($section:ident; $($declaration:expr),* $(,)?) => {
        &[
            $($declaration,)*
            $crate::declare!($section.enabled, AtRestart, $crate::declaration::show::display, "false",
                "watch the ConfigMap at all"),
            $crate::declare!($section.namespace, Fixed("locates the ConfigMap"), $crate::declaration::show::optional,
                r#""my-namespace""#, "namespace of the ConfigMap. If unset: `POD_NAMESPACE`, then the service account's \
                namespace, then the kubeconfig context's namespace"),
            $crate::declare!($section.configmap, Fixed("locates the ConfigMap"), $crate::declaration::show::text,
                r#""my-app-config""#, "name of the ConfigMap"),
            $crate::declare!($section.key, Fixed("locates the ConfigMap"), $crate::declaration::show::text,
                r#""app.toml""#, "data key that holds the TOML"),
            $crate::declare!($section.debounce, Live, $crate::declaration::show::duration, r#""1s""#,
                "quiet window after the last change before reloading (100 ms to 10 min)"),
            $crate::declare!($section.max_wait, Live, $crate::declaration::show::duration, r#""30s""#,
                "longest a change waits under constant churn (at least `debounce`, at most 1 h)"),
            $crate::declare!($section.resync_interval, Live, $crate::declaration::show::duration, r#""10m""#,
                "period of the full re-read that catches a silent watch (10 s to 24 h)"),
            $crate::declare!($section.history, Live, $crate::declaration::show::display, "50",
                "how many reloads the admin API's history keeps, newest last (1 to 100); a resync that finds the \
                version in force is not recorded, a manual reload always is"),
        ]
    };
}

/// Ways to show a value, for the third argument of [`crate::declare!`].
pub mod show {
    use std::time::Duration;

    /// A string as it is.
    #[must_use]
    pub fn text(value: &str) -> String {
        value.to_owned()
    }

    /// Anything with `Display` (numbers, booleans, addresses).
    #[must_use]
    pub fn display<T: std::fmt::Display>(value: &T) -> String {
        value.to_string()
    }

    /// A duration in humantime form (`1m 30s`).
    #[must_use]
    pub fn duration(value: &Duration) -> String {
        humantime::format_duration(*value).to_string()
    }

    /// A list of strings, quoted.
    #[must_use]
    pub fn list(value: &[String]) -> String {
        format!("{value:?}")
    }

    /// A path.
    #[must_use]
    pub fn path(value: &std::path::Path) -> String {
        value.display().to_string()
    }

    /// An optional string, empty when unset.
    #[must_use]
    pub fn optional(value: &Option<String>) -> String {
        value.clone().unwrap_or_default()
    }
}

use show::{display, duration, list, path, text};

/// Every setting, in the order `fields()`, the diff and `check-config` list them.
pub const DECLARATIONS: &[Declaration<Settings>] = declarations![config_reload;
    declare!(
        server.listen,
        Fixed("must match the pod's ports"),
        display,
        r#""127.0.0.1:9090""#,
        "address of the HTTP server"
    ),
    declare!(
        secret admin.token,
        AtRestart,
        r#""an-example-token""#,
        "bearer token of the admin API (a secret: never logged, shown as `<redacted>`); visible ASCII only, so it can \
         be sent in a header; a document that puts its value into another setting is rejected; empty locks the admin \
         API unless `admin.token_file` is set; at least 16 bytes (`openssl rand -hex 24`): a shorter one stops the start. The ConfigMap may not set it (anyone with the `view` role can read a \
         ConfigMap): use `admin.token_file`, or the environment. Set at most one of the two"
    ),
    declare!(
        admin.token_file,
        Fixed("must match the pod's mounts"),
        path,
        r#""/var/run/secrets/brokkr/admin/token""#,
        "file that holds the admin token, such as a key of a mounted Secret (one trailing newline is ignored); read at \
         start, then checked once a second (and read once a minute), so a rotated Secret (the kubelet's `..data` \
         swap) or a file written anew is in force within about a second, without a restart. A file that is missing, \
         empty, shorter than 16 bytes, over 4 KiB, not a regular file or not visible ASCII keeps the token in force; that is logged, without the value, and shown by \
         `brokkr_admin_token_file_valid` and the admin status. Empty: not used"
    ),
    declare!(
        admin.token_overlap,
        Fixed("it bounds how long a replaced admin token stays valid"),
        duration,
        r#""30s""#,
        "how long a replaced token is still accepted after `admin.token_file` changes, so that clients switch over \
         without a lock-out (0 to 1 h); taken when the token is replaced. Only the file or the environment sets it: \
         whoever can edit the ConfigMap must not keep a replaced token valid"
    ),
    declare!(
        log.level,
        Live,
        text,
        r#""info,brokkr_reload=debug""#,
        "tracing filter in `EnvFilter` syntax (`info,brokkr_reload=debug`), at most 64 directives and 4096 bytes; \
         field values match as plain text, never as regexes. No value, not even `off`, hides the reload's audit lines \
         (target `brokkr_reload::audit`: each changed key, applied, rejected, restart required)"
    ),
    declare!(
        log.format,
        AtRestart,
        |f: &crate::LogFormat| format!("{f:?}").to_lowercase(),
        r#""json""#,
        "`text` or `json`"
    ),
    declare!(
        cors.allowed_origins,
        Live,
        list,
        r#"["https://app.example.com"]"#,
        "origins that browsers may call from, or `\"*\"`; empty turns CORS off. Each entry must be a serialized origin \
         exactly as browsers send it (`https://app.example.com`, `http://localhost:8080`: lower-case host, punycode, \
         no default port, no path or trailing `/`); anything else is rejected with a suggestion. At most 256 entries"
    ),
    declare!(cors.max_age, Live, duration, r#""1m""#, "how long browsers may cache a preflight answer (0 to 24 h)"),
    declare!(
        webhook.enabled,
        AtRestart,
        display,
        "true",
        "serve the validating admission webhook (see [Install on Kubernetes](#install-on-kubernetes))"
    ),
    declare!(
        webhook.listen,
        Fixed("must match the pod's ports"),
        display,
        r#""127.0.0.1:9443""#,
        "address of its HTTPS listener; it serves only `POST /validate/configmap`"
    ),
    declare!(
        webhook.cert_file,
        Fixed("must match the pod's mounts"),
        path,
        r#""/tls/tls.crt""#,
        "PEM certificate chain it serves; a renewed file is used from the next TLS handshake, and a renewal that does \
         not load (half-written, key not matching) is logged and the previous certificate stays in use. A \
         certificate up to 5 minutes ahead of this clock (NotBefore) is served; one further ahead is tried again \
         every few seconds and served once it is valid, without the files changing"
    ),
    declare!(
        webhook.key_file,
        Fixed("must match the pod's mounts"),
        path,
        r#""/tls/tls.key""#,
        "PEM private key of that certificate"
    ),
    declare!(
        rollout.enabled,
        Fixed("the policy that governs a change must not be changeable by that change"),
        display,
        "true",
        "stage every ConfigMap edit: the first wave of replicas applies it, each next wave after every earlier replica stayed healthy for `rollout.bake`, and a failed health gate rolls it back everywhere (see [Staged rollout](docs/OPERATIONS.md#staged-rollout)). Needs the chart's `rollout.enabled`"
    ),
    declare!(
        rollout.steps,
        Fixed("the policy that governs a change must not be changeable by that change"),
        list,
        r#"["1", "50%", "100%"]"#,
        "the waves, as replicas in all: counts (`1`) or shares rounded up (`25%`), growing, the last `100%`; the first wave has at least one replica, and a step that adds none is skipped"
    ),
    declare!(
        rollout.bake,
        Fixed("the policy that governs a change must not be changeable by that change"),
        duration,
        r#""5m""#,
        "how long every replica of a wave must stay healthy before the next wave (1 s to 24 h)"
    ),
    declare!(
        rollout.progress_deadline,
        Fixed("the policy that governs a change must not be changeable by that change"),
        duration,
        r#""30m""#,
        "how long a wave may take to become healthy before the rollout halts, with the reason (at least `rollout.bake`, at most 24 h)"
    ),
    declare!(
        rollout.max_error_ratio,
        Fixed("the policy that governs a change must not be changeable by that change"),
        display,
        "0.01",
        "the traffic gate fails when more than this share of a replica's requests since it applied the text failed (answered 5xx, or refused by CORS): 0 to 1"
    ),
    declare!(
        rollout.min_requests,
        Fixed("the policy that governs a change must not be changeable by that change"),
        display,
        "100",
        "with fewer requests than this since it applied the text, a replica's gate decides on readiness alone (and says so)"
    ),
];

/// The declaration of `key`.
#[must_use]
pub fn declaration(key: &str) -> Option<&'static Declaration<Settings>> {
    DECLARATIONS.iter().find(|d| d.key == key)
}
