//! Range and syntax checks that types alone cannot express; each error names the key.

use std::time::Duration;

use std::net::SocketAddr;

use crate::{
    AppSettings, ConfigError, Result, Settings,
    checks::{invalid, within},
    text::quote,
};

/// The most entries in `cors.allowed_origins`: each request compares its `Origin` with every entry.
pub const MAX_ORIGINS: usize = 256;

/// `*`, or an origin exactly as a browser serializes it in `Origin` (Fetch standard): anything else never matches.
/// Every secret is blanked before the origin is quoted: a quote is cut at a byte limit, and a secret cut in two
/// could no longer be found and redacted afterwards.
fn check_origin(key: &str, origin: &str, secrets: &[String]) -> Result<()> {
    let quote = |value: &str| {
        quote(&secrets.iter().fold(value.to_owned(), |v, secret| v.replace(secret.as_str(), "<redacted>")))
    };
    if origin == "*" {
        return Ok(());
    }
    let url = url::Url::parse(origin).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
    let Some(url) = url else {
        return Err(invalid(
            key,
            format!(
                "{} is not a serialized origin like \"https://app.example.com\" (http or https) or \"*\"",
                quote(origin)
            ),
        ));
    };
    if url.host_str().is_some_and(|h| h.contains('*')) {
        return Err(invalid(
            key,
            format!("{}: wildcard hosts are not supported; list each origin, or \"*\"", quote(origin)),
        ));
    }
    let serialized = url.origin().ascii_serialization();
    if serialized != origin && secrets.iter().any(|secret| origin.contains(secret.as_str())) {
        // No suggestion: it would show the token, lower-cased, where the blanking above does not find it.
        return Err(invalid(key, format!("{} is not a serialized origin", quote(origin))));
    }
    if serialized != origin {
        return Err(invalid(
            key,
            format!("{} is not a serialized origin; did you mean {}?", quote(origin), quote(&serialized)),
        ));
    }
    Ok(())
}

/// A bearer token must fit in an HTTP header (visible ASCII only) and be hard to guess: at least
/// [`crate::secret::MIN_TOKEN_BYTES`], as `admin.token_file`'s. The reason never shows the value, a secret.
fn check_token(token: &str) -> Result<()> {
    if !crate::secret::is_visible_ascii(token) {
        return Err(invalid(
            "admin.token",
            "contains a character that cannot be sent in an HTTP header (only visible ASCII is allowed); \
             value not shown: it is a secret",
        ));
    }
    if !token.is_empty() && token.len() < crate::secret::MIN_TOKEN_BYTES {
        return Err(invalid(
            "admin.token",
            format!(
                "is shorter than {} bytes, too easy to guess (value not shown: it is a secret); use a random one \
                 (openssl rand -hex 24), best in a Secret mounted as admin.token_file",
                crate::secret::MIN_TOKEN_BYTES
            ),
        ));
    }
    Ok(())
}

/// The longest `log.level`, in bytes. Building a filter costs more than linear time in its directives (50,000 took
/// 2.7 s in a release build), and it is built on the reload path and for every admission review.
pub const LOG_LEVEL_MAX_BYTES: usize = 4096;

/// The most directives (comma-separated parts) in `log.level`.
pub const LOG_LEVEL_MAX_DIRECTIVES: usize = 64;

/// Refuses a `log.level` over [`LOG_LEVEL_MAX_BYTES`] or [`LOG_LEVEL_MAX_DIRECTIVES`] before it is parsed.
fn check_log_level_size(level: &str) -> Result<()> {
    if level.len() > LOG_LEVEL_MAX_BYTES {
        return Err(invalid(
            "log.level",
            format!("is {} bytes long; at most {LOG_LEVEL_MAX_BYTES} bytes are allowed", level.len()),
        ));
    }
    let directives = level.split(',').filter(|d| !d.trim().is_empty()).count();
    if directives > LOG_LEVEL_MAX_DIRECTIVES {
        return Err(invalid(
            "log.level",
            format!("has {directives} directives; at most {LOG_LEVEL_MAX_DIRECTIVES} are allowed"),
        ));
    }
    Ok(())
}

/// A path as the kernel will open it: not empty, and written in its one plain form (no trailing `/`, `//` or `/./`),
/// so that two spellings of one path cannot differ where only one of them names a file.
fn check_path(key: &str, path: &std::path::Path) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    let plain: std::path::PathBuf = path.components().collect();
    if plain.as_os_str() != path.as_os_str() {
        return Err(invalid(
            key,
            format!(
                "{} is not written plainly; write {}",
                quote(&path.display().to_string()),
                quote(&plain.display().to_string())
            ),
        ));
    }
    Ok(())
}

/// Whether two listeners would bind the same port on an overlapping address (equal, or one of them unspecified).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The webhook's listener must not take the HTTP server's address: one of the two could not bind.
fn check_listeners(s: &Settings) -> Result<()> {
    if s.webhook.enabled && s.webhook.listen.port() != 0 && overlaps(s.webhook.listen, s.server.listen) {
        return Err(invalid(
            "webhook.listen",
            format!(
                "{} overlaps server.listen {}: the two listeners need different ports",
                s.webhook.listen, s.server.listen
            ),
        ));
    }
    Ok(())
}

/// The broker's own checks (see [`crate::AppSettings::own_checks`]): the admin token, filter syntax, origins, listeners,
/// paths and ranges. The reload section and secrets copied into shown settings are checked by `checks` for every
/// settings type. `in_force` are secrets in force, blanked before an origin is quoted.
pub(crate) fn broker_checks(s: &Settings, in_force: &[&str]) -> Result<()> {
    // First and alone: a check below may quote a value, cut at a byte limit, and a token that cannot be sent in a
    // header is reported without any.
    check_token(s.admin.token.expose())?;
    let secrets: Vec<String> = s
        .secret_values()
        .into_iter()
        .chain(in_force.iter().filter(|s| !s.is_empty()).map(|s| (*s).to_owned()))
        .collect();
    // Every other problem at once, so that an edit with three mistakes needs one round trip, not three.
    let mut errors = Vec::new();
    let mut check = |result: Result<()>| errors.extend(result.err());
    check(check_log_level_size(&s.log.level).and_then(|()| {
        crate::parse_log_filter(&s.log.level)
            .map(drop)
            .map_err(|e| invalid("log.level", format!("invalid filter: {e}")))
    }));
    check(check_listeners(s));
    if s.cors.allowed_origins.len() > MAX_ORIGINS {
        check(Err(invalid(
            "cors.allowed_origins",
            format!("has {} entries; at most {MAX_ORIGINS} are allowed", s.cors.allowed_origins.len()),
        )));
    } else {
        for (i, origin) in s.cors.allowed_origins.iter().enumerate() {
            check(check_origin(&format!("cors.allowed_origins[{i}]"), origin, &secrets));
        }
    }
    let secs = Duration::from_secs;
    check(within("cors.max_age", s.cors.max_age, Duration::ZERO, secs(86_400)));
    if !s.admin.token_file.as_os_str().is_empty() {
        check(check_path("admin.token_file", &s.admin.token_file));
        if !s.admin.token.is_empty() {
            check(Err(invalid(
                "admin.token_file",
                "is set and so is admin.token: set one of them (admin.token_file, to rotate the token without a restart)",
            )));
        }
    }
    check(within("admin.token_overlap", s.admin.token_overlap, Duration::ZERO, secs(3600)));
    check(check_path("webhook.cert_file", &s.webhook.cert_file));
    check(check_path("webhook.key_file", &s.webhook.key_file));
    errors.extend(crate::rollout_steps::check_policy(&s.rollout));
    if s.rollout.enabled && !s.config_reload.enabled {
        // A replica restarted on such a text would stop following the rollout, and keep it whatever the rollout
        // decides (a rollback included) until its next restart.
        errors.push(invalid(
            "config_reload.enabled",
            "is false while rollout.enabled is on: a replica must follow its ConfigMap to take part in a staged rollout",
        ));
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(ConfigError::Several(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // Every check a document meets: the broker's own and those every settings type gets.
    use crate::checks::check;

    fn key_of(result: Result<()>) -> String {
        result.expect_err("must be rejected").key().unwrap_or_default().to_owned()
    }

    #[test]
    fn defaults_are_valid() {
        check(&Settings::default(), &[]).expect("defaults validate");
    }

    #[test]
    fn max_wait_shorter_than_debounce_names_max_wait() {
        let mut s = Settings::default();
        s.config_reload.max_wait = Duration::from_secs(1);
        assert_eq!(key_of(check(&s, &[])), "config_reload.max_wait");
    }

    #[test]
    fn every_invalid_value_is_reported_at_once_each_with_its_key() {
        let mut s = Settings::default();
        s.log.level = "info,[[".into();
        s.cors.allowed_origins = vec!["https://ok.example".into(), "https://bad.example/".into()];
        s.config_reload.debounce = Duration::from_millis(50);
        let error = check(&s, &[]).expect_err("three mistakes");
        let ConfigError::Several(errors) = &error else { panic!("one error only: {error}") };
        let keys: Vec<_> = errors.iter().filter_map(ConfigError::key).collect();
        assert_eq!(keys, ["log.level", "cors.allowed_origins[1]", "config_reload.debounce"]);
        let shown = error.to_string();
        assert!(!shown.contains('\n'), "one line: {shown}");
        assert!(keys.iter().all(|k| shown.contains(k)), "{shown}");
        assert_eq!(error.key(), Some("log.level"), "the first one's key");
    }

    #[test]
    fn several_errors_fit_an_event_note_and_count_what_is_left_out() {
        let mut s = Settings::default();
        s.cors.allowed_origins = (0..40).map(|i| format!("https://{}{i}.example/", "o".repeat(100))).collect();
        let error = check(&s, &[]).expect_err("forty bad origins");
        let shown = error.to_string();
        assert!(shown.len() <= crate::error::SEVERAL_BYTES + 32, "{} bytes", shown.len());
        assert!(shown.starts_with("cors.allowed_origins[0]: "), "{shown}");
        assert!(shown.ends_with(" more"), "{shown}");
    }

    #[test]
    fn the_watch_cannot_be_turned_off_under_a_staged_rollout() {
        // A text that turns the watch off would, once a replica restarts on it, leave that replica outside the
        // rollout: it would keep the text whatever the rollout decides, rolled back or not.
        let mut s = Settings::default();
        s.rollout.enabled = true;
        s.config_reload.enabled = false;
        assert_eq!(key_of(check(&s, &[])), "config_reload.enabled");
        s.config_reload.enabled = true;
        check(&s, &[]).expect("the watch on");
        s.rollout.enabled = false;
        s.config_reload.enabled = false;
        check(&s, &[]).expect("no staged rollout: the watch may be off");
    }

    #[test]
    fn a_bad_filter_names_log_level() {
        let mut s = Settings::default();
        s.log.level = "info,[[".into();
        assert_eq!(key_of(check(&s, &[])), "log.level");
    }

    #[test]
    fn an_origin_with_a_path_names_its_index() {
        let mut s = Settings::default();
        s.cors.allowed_origins = vec!["https://ok.example".into(), "https://bad.example/path".into()];
        assert_eq!(key_of(check(&s, &[])), "cors.allowed_origins[1]");
    }

    #[test]
    fn a_log_level_over_its_bounds_is_refused_with_the_limit_named() {
        let mut s = Settings::default();
        s.log.level = vec!["a=debug"; LOG_LEVEL_MAX_DIRECTIVES].join(",");
        check(&s, &[]).expect("the most directives allowed");
        s.log.level = vec!["a"; LOG_LEVEL_MAX_DIRECTIVES + 1].join(",");
        let error = check(&s, &[]).expect_err("too many directives");
        assert_eq!(error.key(), Some("log.level"));
        assert!(error.to_string().contains("has 65 directives; at most 64"), "{error}");
        // 50,000 directives took 3.9 s to parse in a debug build; refused by their length before that.
        s.log.level = (0..50_000).map(|i| format!("t{i}=debug")).collect::<Vec<_>>().join(",");
        let started = std::time::Instant::now();
        assert_eq!(key_of(check(&s, &[])), "log.level");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "refused before it is parsed");
        s.log.level = format!("info,{}=debug", "t".repeat(LOG_LEVEL_MAX_BYTES));
        let error = check(&s, &[]).expect_err("too long");
        assert!(error.to_string().contains("at most 4096 bytes"), "{error}");
    }

    #[test]
    fn the_webhook_cannot_listen_on_the_http_servers_address() {
        let mut s = Settings::default();
        s.webhook.enabled = true;
        s.webhook.listen = "127.0.0.1:8080".parse().expect("addr");
        assert_eq!(key_of(check(&s, &[])), "webhook.listen", "0.0.0.0:8080 covers 127.0.0.1:8080");
        s.webhook.listen = "0.0.0.0:8443".parse().expect("addr");
        s.server.listen = "127.0.0.1:8443".parse().expect("addr");
        assert_eq!(key_of(check(&s, &[])), "webhook.listen");
        s.server.listen = "127.0.0.1:8080".parse().expect("addr");
        check(&s, &[]).expect("different ports");
        s.webhook.enabled = false;
        s.webhook.listen = "0.0.0.0:8080".parse().expect("addr");
        check(&s, &[]).expect("a webhook that is off binds nothing");
    }

    #[test]
    fn a_token_pasted_where_a_quote_cuts_it_is_never_shown_in_part() {
        let mut s = Settings::default();
        // Shorter than the search for tokens in shown settings, so the origin check is the one that quotes it; the
        // cut at 128 bytes falls inside the token.
        let token = "k9Zq-t0";
        s.cors.allowed_origins = vec![format!("https://{}{token}/x", "a".repeat(118))];
        let error = check(&s, &[token]).expect_err("not an origin");
        assert_eq!(error.key(), Some("cors.allowed_origins[0]"));
        assert!(!error.to_string().contains("k9"), "{error}");
    }

    #[test]
    fn more_origins_than_a_request_should_scan_are_refused() {
        let mut s = Settings::default();
        s.cors.allowed_origins = (0..=MAX_ORIGINS).map(|i| format!("https://a{i}.example")).collect();
        assert_eq!(key_of(check(&s, &[])), "cors.allowed_origins");
        s.cors.allowed_origins.pop();
        check(&s, &[]).expect("the most origins allowed");
    }

    #[test]
    fn an_error_quotes_a_huge_value_in_a_bounded_number_of_bytes() {
        let mut s = Settings::default();
        s.cors.allowed_origins = vec![format!("https://{}.example/", "a".repeat(900 * 1024))];
        let error = check(&s, &[]).expect_err("not a serialized origin");
        assert_eq!(error.key(), Some("cors.allowed_origins[0]"));
        assert!(error.to_string().len() < 1024, "{} bytes", error.to_string().len());
    }

    #[test]
    fn out_of_range_durations_are_rejected() {
        let mut s = Settings::default();
        s.config_reload.resync_interval = Duration::from_secs(1);
        assert_eq!(key_of(check(&s, &[])), "config_reload.resync_interval");
    }

    #[test]
    fn an_invalid_configmap_name_is_rejected() {
        let mut s = Settings::default();
        s.config_reload.configmap = "Brokkr_Config".into();
        assert_eq!(key_of(check(&s, &[])), "config_reload.configmap");
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
            if let Err(error) = check(&with_origin(origin), &[]) {
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
            assert_eq!(key_of(check(&with_origin(origin), &[])), "cors.allowed_origins[1]", "{origin}");
        }
    }

    #[test]
    fn a_near_miss_origin_suggests_its_serialization() {
        let error = check(&with_origin("https://A.example/"), &[]).expect_err("must be rejected");
        assert_eq!(error.key(), Some("cors.allowed_origins[1]"));
        let expected = r#""https://A.example/" is not a serialized origin; did you mean "https://a.example"?"#;
        assert!(error.to_string().ends_with(expected), "{error}");
        let error = check(&with_origin("https://\u{e4}.example"), &[]).expect_err("must be rejected");
        assert!(error.to_string().contains("did you mean \"https://xn--4ca.example\"?"), "{error}");
        let error = check(&with_origin("ftp://a.example"), &[]).expect_err("must be rejected");
        assert!(!error.to_string().contains("did you mean"), "no http(s) origin to suggest: {error}");
    }

    #[test]
    fn a_token_that_cannot_be_sent_in_a_header_is_rejected_without_showing_it() {
        for token in ["k9\u{e9}Zq-tok", "k9Zq tok3n", "k9Zq\ttok3n", "k9Zq\u{7f}"] {
            let mut s = Settings::default();
            s.admin.token = token.into();
            let error = check(&s, &[]).expect_err("must be rejected");
            assert_eq!(error.key(), Some("admin.token"));
            let shown = format!("{error} {error:?}");
            for part in token.split(|c: char| !c.is_ascii_graphic()).filter(|p| !p.is_empty()) {
                assert!(!shown.contains(part), "{part:?} is shown in {shown:?}");
            }
        }
        let mut s = Settings::default();
        s.admin.token = "Visible-ASCII_0.9~+/=!".into();
        check(&s, &[]).expect("visible ASCII is a valid token");
    }
}
