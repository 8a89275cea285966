//! The broker's settings, their defaults, which of them apply live, and the redacted diff between two snapshots.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{declaration::DECLARATIONS, secret::Secret};

/// Every setting of the broker. Unknown keys are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The HTTP server.
    pub server: ServerSettings,
    /// The admin API.
    pub admin: AdminSettings,
    /// Logging.
    pub log: LogSettings,
    /// Cross-origin resource sharing on every route.
    pub cors: CorsSettings,
    /// The ConfigMap hot-reload subsystem.
    pub config_reload: ReloadSettings,
    /// The validating admission webhook for the broker's ConfigMap.
    pub webhook: WebhookSettings,
    /// The staged rollout of ConfigMap edits: its policy, from the file or the environment only.
    pub rollout: RolloutSettings,
}

/// `[server]`: restart-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([0, 0, 0, 0], 8080)) }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Restart-only: bearer token of the admin API; empty locks the admin API unless `token_file` is set. A secret:
    /// its `Debug` and `Serialize` redact it, and the ConfigMap may not set it.
    pub token: Secret,
    /// Fixed: file that holds the token (a mounted Secret's key), read again when it changes; empty: not used.
    pub token_file: PathBuf,
    /// Fixed (file or environment only): how long the previous token is still accepted after `token_file` changes.
    #[serde(with = "crate::duration")]
    pub token_overlap: Duration,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self { token: Secret::default(), token_file: PathBuf::new(), token_overlap: Duration::from_secs(300) }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// Dynamic: the tracing filter, in `EnvFilter` syntax (`info,brokkr=debug`).
    pub level: String,
    /// Restart-only: `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[cors]`: live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins allowed to call the broker from a browser (`https://app.example.com`), or `*`. Empty disables CORS.
    pub allowed_origins: Vec<String>,
    /// How long browsers may cache a preflight answer.
    #[serde(with = "crate::duration")]
    pub max_age: Duration,
}

impl Default for CorsSettings {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), max_age: Duration::from_secs(600) }
    }
}

/// `[config_reload]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReloadSettings {
    /// Restart-only: watch the ConfigMap at all.
    pub enabled: bool,
    /// Restart-only: namespace of the ConfigMap; else `POD_NAMESPACE`, else the service account's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Restart-only: name of the ConfigMap.
    pub configmap: String,
    /// Restart-only: the data key holding the TOML.
    pub key: String,
    /// Dynamic: quiet window after the last change before reloading.
    #[serde(with = "crate::duration")]
    pub debounce: Duration,
    /// Dynamic: longest a change waits under constant churn.
    #[serde(with = "crate::duration")]
    pub max_wait: Duration,
    /// Dynamic: period of the full re-read that catches a silent watch.
    #[serde(with = "crate::duration")]
    pub resync_interval: Duration,
    /// Dynamic: how many reloads the history keeps (the admin API's `…/config/history`).
    #[serde(deserialize_with = "crate::count::deserialize")]
    pub history: usize,
}

impl Default for ReloadSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            namespace: None,
            configmap: "brokkr-broker".into(),
            key: "broker.toml".into(),
            debounce: Duration::from_secs(5),
            max_wait: Duration::from_secs(20),
            resync_interval: Duration::from_secs(300),
            history: 20,
        }
    }
}

/// `[webhook]`: restart-only. An HTTPS listener that validates edits of the broker's ConfigMap before the API
/// server stores them (a Kubernetes validating admission webhook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Serve the webhook at all.
    pub enabled: bool,
    /// Address the HTTPS listener binds.
    pub listen: SocketAddr,
    /// PEM certificate chain it serves; a renewed file is picked up at the next TLS handshake.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`.
    pub key_file: PathBuf,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            cert_file: PathBuf::from("/etc/brokkr/webhook-tls/tls.crt"),
            key_file: PathBuf::from("/etc/brokkr/webhook-tls/tls.key"),
        }
    }
}

/// `[rollout]`: fixed. The staged rollout's policy; the ConfigMap may repeat it but never change it, because the
/// policy that governs a change must not be changeable by that change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutSettings {
    /// Stage every ConfigMap edit through waves of replicas, with a health gate and automatic rollback.
    pub enabled: bool,
    /// The waves' steps: counts or shares of the replicas in all, growing, the last `100%`.
    pub steps: Vec<String>,
    /// How long every replica of a wave must stay healthy before the next wave.
    #[serde(with = "crate::duration")]
    pub bake: Duration,
    /// How long a wave may take to become healthy before the rollout halts.
    #[serde(with = "crate::duration")]
    pub progress_deadline: Duration,
    /// The highest share of failed requests (5xx and CORS refusals) a replica's gate passes.
    pub max_error_ratio: crate::ratio::Ratio,
    /// Fewer requests than this in a bake: the gate decides on readiness alone.
    #[serde(deserialize_with = "crate::count::deserialize")]
    pub min_requests: usize,
}

impl Default for RolloutSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            steps: vec!["1".into(), "25%".into(), "100%".into()],
            bake: Duration::from_secs(120),
            progress_deadline: Duration::from_secs(600),
            max_error_ratio: crate::ratio::Ratio::from_millionths(50_000),
            min_requests: 20,
        }
    }
}

/// One setting as an operator sees it: its key, whether it applies live, and its value ready to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldInfo {
    /// Dotted key, such as `cors.max_age`.
    pub key: &'static str,
    /// Applied live (`true`) or only at the next start (`false`).
    pub live: bool,
    /// The value as TOML would show it; `<redacted>` for a secret that is set.
    pub value: String,
}

impl crate::AppSettings for Settings {
    const DECLARATIONS: &'static [crate::declaration::Declaration<Self>] = DECLARATIONS;
    const ENV_PREFIX: &'static str = "BROKKR__";

    fn own_checks(&self, in_force: &[&str]) -> crate::Result<()> {
        crate::broker_checks::broker_checks(self, in_force)
    }

    fn reload(&self) -> &ReloadSettings {
        &self.config_reload
    }
}

/// One changed setting between two snapshots, with secret values redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Dotted key.
    pub key: &'static str,
    /// The value before.
    pub old: String,
    /// The value after.
    pub new: String,
    /// Whether the change applies live.
    pub live: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppSettings, diff, secret::REDACTED};

    #[test]
    fn a_changed_secret_is_reported_without_its_value() {
        let (mut old, mut new) = (Settings::default(), Settings::default());
        old.admin.token = "hunter2".into();
        new.admin.token = "swordfish".into();
        assert!(!format!("{:?}", serde_json::to_string(&new)).contains("swordfish"), "nor in JSON");
        let changes = diff(&old, &new);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].key, "admin.token");
        assert_eq!((changes[0].old.as_str(), changes[0].new.as_str()), (REDACTED, REDACTED));
        assert!(!format!("{changes:?}").contains("hunter2"));
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let mut s = Settings::default();
        s.admin.token = "hunter2".into();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn the_restart_only_split_agrees_with_the_field_list() {
        // A candidate that differs from the running settings in every key (each declaration's example): after keeping
        // restart-only values, exactly the live keys may still differ. Catches an example equal to its default, and
        // a restart-only setting that `keep` does not copy.
        // Each example is valid on its own (some exclude each other: `admin.token` and `admin.token_file`).
        let running = Settings::default();
        let mut document = toml::Table::new();
        for d in DECLARATIONS {
            let (section, key) = d.key.split_once('.').expect("section.key");
            let mut parsed: toml::Table = format!("v = {}", d.example).parse().expect("the example is TOML");
            let value = parsed.remove("v").expect("a value");
            let mut alone = toml::Table::new();
            alone.insert(
                section.to_owned(),
                toml::Value::Table([(key.to_owned(), value.clone())].into_iter().collect()),
            );
            let alone: Settings = toml::Value::Table(alone).try_into().expect("the example has the right type");
            crate::checks::check(&alone, &[]).unwrap_or_else(|e| panic!("{}'s example is not valid: {e}", d.key));
            let section = document.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            section.as_table_mut().expect("a section").insert(key.to_owned(), value);
        }
        let candidate: Settings = toml::Value::Table(document).try_into().expect("every example has the right type");
        // Together too, for the rules across keys (`max_wait` at least `debounce`), but for those that exclude: a
        // token with a token file, a staged rollout with the watch off.
        let mut together = candidate.clone();
        together.admin.token = Settings::default().admin.token;
        together.config_reload.enabled = true;
        crate::checks::check(&together, &[]).expect("the examples are valid together");
        assert_eq!(diff(&running, &candidate).len(), running.fields().len(), "the candidate differs in every key");
        let kept = candidate.with_restart_only_from(&running);
        let differing: Vec<_> = diff(&running, &kept).into_iter().map(|c| c.key).collect();
        let live: Vec<_> = running.fields().into_iter().filter(|f| f.live).map(|f| f.key).collect();
        assert_eq!(differing, live);
    }

    #[test]
    fn identical_settings_have_no_diff() {
        assert!(diff(&Settings::default(), &Settings::default()).is_empty());
    }

    #[test]
    fn restart_only_values_are_kept_from_the_running_settings() {
        let running = Settings::default();
        let mut candidate = Settings::default();
        candidate.server.listen = SocketAddr::from(([127, 0, 0, 1], 9999));
        candidate.log.level = "debug".into();
        let next = candidate.with_restart_only_from(&running);
        assert_eq!(next.server.listen, running.server.listen);
        assert_eq!(next.log.level, "debug");
    }

    #[test]
    fn fields_list_every_key_of_the_toml_form_once() {
        let mut sample = Settings::default();
        sample.config_reload.namespace = Some("brokkr".into());
        if let Err(problems) = crate::check_declarations(&sample) {
            panic!("brokkr_config::declaration::DECLARATIONS and the settings disagree: {problems}");
        }
    }
}
