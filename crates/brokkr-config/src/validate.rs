//! Range and syntax checks that types alone cannot express; each error names the key.

use std::time::Duration;

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

/// `*`, or an origin exactly as a browser serializes it in `Origin` (Fetch standard): anything else never matches.
fn check_origin(key: &str, origin: &str) -> Result<()> {
    if origin == "*" {
        return Ok(());
    }
    let url = url::Url::parse(origin).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
    let Some(url) = url else {
        return Err(invalid(
            key,
            format!("{origin:?} is not a serialized origin like \"https://app.example.com\" (http or https) or \"*\""),
        ));
    };
    if url.host_str().is_some_and(|h| h.contains('*')) {
        return Err(invalid(key, format!("{origin:?}: wildcard hosts are not supported; list each origin, or \"*\"")));
    }
    let serialized = url.origin().ascii_serialization();
    if serialized != origin {
        return Err(invalid(key, format!("{origin:?} is not a serialized origin; did you mean {serialized:?}?")));
    }
    Ok(())
}

/// A bearer token must fit in an HTTP header: visible ASCII only. The reason never shows the value, a secret.
fn check_token(token: &str) -> Result<()> {
    if !token.bytes().all(|b| (0x21..=0x7E).contains(&b)) {
        return Err(invalid(
            "admin.token",
            "contains a character that cannot be sent in an HTTP header (only visible ASCII is allowed); \
             value not shown: it is a secret",
        ));
    }
    Ok(())
}

/// Shortest token whose appearance in another setting is refused; a shorter one would match ordinary text.
const TOKEN_SEARCH_MIN: usize = 8;

/// The admin token must not appear in a setting that is shown (logged on change, in the admin status, in `Debug`):
/// pasted into `log.level`, for example, it would be a valid filter target and be written out.
fn check_token_not_shown(s: &Settings) -> Result<()> {
    let token = &s.admin.token;
    if token.len() < TOKEN_SEARCH_MIN {
        return Ok(());
    }
    match s.fields().into_iter().find(|f| f.key != "admin.token" && f.value.contains(token.as_str())) {
        Some(field) => Err(invalid(
            field.key,
            "contains the value of admin.token; a secret must not be put in a setting that is shown (value not shown)",
        )),
        None => Ok(()),
    }
}

/// Checks everything serde cannot: filter syntax, origins, the admin token, names, and duration ranges.
pub(crate) fn validate(s: &Settings) -> Result<()> {
    crate::parse_log_filter(&s.log.level).map_err(|e| invalid("log.level", format!("invalid filter: {e}")))?;
    for (i, origin) in s.cors.allowed_origins.iter().enumerate() {
        check_origin(&format!("cors.allowed_origins[{i}]"), origin)?;
    }
    check_token(&s.admin.token)?;
    check_token_not_shown(s)?;
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

    fn with_origin(origin: &str) -> Settings {
        let mut s = Settings::default();
        s.cors.allowed_origins = vec!["https://ok.example".into(), origin.into()];
        s
    }

    #[test]
    fn only_origins_as_browsers_send_them_are_accepted() {
        let accepted = [
            "*",
            "https://a.example",
            "http://localhost:8080",
            "https://a.example:8443",
            "https://xn--4ca.example",
            "http://[::1]:8080",
        ];
        for origin in accepted {
            if let Err(error) = validate(&with_origin(origin)) {
                panic!("{origin} must be accepted: {error}");
            }
        }
        // Most of these were accepted before, yet none of them can ever equal the `Origin` a browser sends.
        let rejected = [
            "https://a.example/",
            "https://a.example:443",
            "http://a.example:80",
            "https://A.example",
            "https://user@a.example",
            "ftp://a.example",
            "https://a.example?x=1",
            "https://\u{e4}.example",
            "https://a.example#top",
            "https://*.example",
            "a.example",
        ];
        for origin in rejected {
            assert_eq!(key_of(validate(&with_origin(origin))), "cors.allowed_origins[1]", "{origin}");
        }
    }

    #[test]
    fn a_near_miss_origin_suggests_its_serialization() {
        let error = validate(&with_origin("https://A.example/")).expect_err("must be rejected");
        assert_eq!(error.key(), Some("cors.allowed_origins[1]"));
        let expected = r#""https://A.example/" is not a serialized origin; did you mean "https://a.example"?"#;
        assert!(error.to_string().ends_with(expected), "{error}");
        let error = validate(&with_origin("https://\u{e4}.example")).expect_err("must be rejected");
        assert!(error.to_string().contains("did you mean \"https://xn--4ca.example\"?"), "{error}");
        let error = validate(&with_origin("ftp://a.example")).expect_err("must be rejected");
        assert!(!error.to_string().contains("did you mean"), "no http(s) origin to suggest: {error}");
    }

    #[test]
    fn a_token_that_cannot_be_sent_in_a_header_is_rejected_without_showing_it() {
        for token in ["k9\u{e9}Zq-tok", "k9Zq tok3n", "k9Zq\ttok3n", "k9Zq\u{7f}"] {
            let mut s = Settings::default();
            s.admin.token = token.into();
            let error = validate(&s).expect_err("must be rejected");
            assert_eq!(error.key(), Some("admin.token"));
            let shown = format!("{error} {error:?}");
            for part in token.split(|c: char| !c.is_ascii_graphic()).filter(|p| !p.is_empty()) {
                assert!(!shown.contains(part), "{part:?} is shown in {shown:?}");
            }
        }
        let mut s = Settings::default();
        s.admin.token = "Visible-ASCII_0.9~+/=!".into();
        validate(&s).expect("visible ASCII is a valid token");
    }
}
