//! Range and syntax checks that types alone cannot express; each error names the key.

use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::{ConfigError, Result, Settings};

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), reason: reason.into() }
}

fn within(key: &str, value: Duration, min: Duration, max: Duration) -> Result<()> {
    if value < min || value > max {
        let show = |d| humantime::format_duration(d).to_string();
        return Err(invalid(key, format!("{} is out of range {}..={}", show(value), show(min), show(max))));
    }
    Ok(())
}

/// A Kubernetes name or namespace: an RFC 1123 subdomain (`max` 253) or label (`max` 63).
fn check_dns_name(key: &str, value: &str, max: usize, dots: bool) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.');
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if value.is_empty() || value.len() > max || !value.chars().all(ok_char) {
        return Err(invalid(
            key,
            format!("{value:?} is not a valid Kubernetes name (lower-case a-z, 0-9, '-', at most {max})"),
        ));
    }
    if !ends_ok(value.chars().next()) || !ends_ok(value.chars().last()) {
        return Err(invalid(key, format!("{value:?} must start and end with a letter or digit")));
    }
    Ok(())
}

fn check_origin(key: &str, origin: &str) -> Result<()> {
    if origin == "*" {
        return Ok(());
    }
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ', '*']) => Ok(()),
        _ => Err(invalid(key, format!("{origin:?} is not an origin like \"https://app.example.com\" or \"*\""))),
    }
}

/// Checks everything serde cannot: filter syntax, origins, names, and duration ranges.
pub(crate) fn validate(s: &Settings) -> Result<()> {
    EnvFilter::try_new(&s.log.level).map_err(|e| invalid("log.level", format!("invalid filter: {e}")))?;
    for (i, origin) in s.cors.allowed_origins.iter().enumerate() {
        check_origin(&format!("cors.allowed_origins[{i}]"), origin)?;
    }
    let secs = Duration::from_secs;
    within("cors.max_age", s.cors.max_age, Duration::ZERO, secs(86_400))?;
    let r = &s.config_reload;
    if let Some(ns) = &r.namespace {
        check_dns_name("config_reload.namespace", ns, 63, false)?;
    }
    check_dns_name("config_reload.configmap", &r.configmap, 253, true)?;
    let key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if r.key.is_empty() || r.key.len() > 253 || !r.key.chars().all(key_char) {
        return Err(invalid("config_reload.key", format!("{:?} is not a valid ConfigMap data key", r.key)));
    }
    within("config_reload.debounce", r.debounce, Duration::from_millis(100), secs(600))?;
    within("config_reload.max_wait", r.max_wait, Duration::from_millis(100), secs(3600))?;
    if r.max_wait < r.debounce {
        return Err(invalid(
            "config_reload.max_wait",
            format!(
                "must not be shorter than config_reload.debounce ({} < {})",
                humantime::format_duration(r.max_wait),
                humantime::format_duration(r.debounce)
            ),
        ));
    }
    within("config_reload.resync_interval", r.resync_interval, secs(10), secs(86_400))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(result: Result<()>) -> String {
        result.expect_err("must be rejected").key().unwrap_or_default().to_owned()
    }

    #[test]
    fn defaults_are_valid() {
        validate(&Settings::default()).expect("defaults validate");
    }

    #[test]
    fn max_wait_shorter_than_debounce_names_max_wait() {
        let mut s = Settings::default();
        s.config_reload.max_wait = Duration::from_secs(1);
        assert_eq!(key_of(validate(&s)), "config_reload.max_wait");
    }

    #[test]
    fn a_bad_filter_names_log_level() {
        let mut s = Settings::default();
        s.log.level = "info,[[".into();
        assert_eq!(key_of(validate(&s)), "log.level");
    }

    #[test]
    fn an_origin_with_a_path_names_its_index() {
        let mut s = Settings::default();
        s.cors.allowed_origins = vec!["https://ok.example".into(), "https://bad.example/path".into()];
        assert_eq!(key_of(validate(&s)), "cors.allowed_origins[1]");
    }

    #[test]
    fn out_of_range_durations_are_rejected() {
        let mut s = Settings::default();
        s.config_reload.resync_interval = Duration::from_secs(1);
        assert_eq!(key_of(validate(&s)), "config_reload.resync_interval");
    }

    #[test]
    fn an_invalid_configmap_name_is_rejected() {
        let mut s = Settings::default();
        s.config_reload.configmap = "Brokkr_Config".into();
        assert_eq!(key_of(validate(&s)), "config_reload.configmap");
    }
}
