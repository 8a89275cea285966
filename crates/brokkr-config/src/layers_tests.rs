//! Tests of the layers: precedence, the environment, size and syntax limits, fixed keys, secrets in errors.

use std::time::Duration;

use super::*;

fn text(origin: &str, text: &str) -> LayerText {
    LayerText { origin: origin.into(), text: text.into() }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn layers_apply_lowest_to_highest() {
    let layers = ConfigLayers::new()
        .with_file_text(&text("file", "[log]\nlevel = \"warn\"\n[cors]\nmax_age = \"1m\""))
        .and_then(|l| l.with_env(env(&[("BROKKR__CORS__MAX_AGE", "2m"), ("PATH", "/bin")])))
        .expect("layers build");
    let built = layers.build(Some(&text("cm", "[log]\nlevel = \"debug\"\n[cors]\nmax_age = \"30s\""))).expect("builds");
    assert_eq!(built.settings.log.level, "debug", "the ConfigMap overrides the file");
    assert_eq!(built.settings.cors.max_age, Duration::from_secs(120), "the environment overrides the ConfigMap");
    assert_eq!(built.shadowed_by_env, vec!["cors.max_age".to_owned()]);
    assert_eq!(layers.build(None).expect("builds").settings.log.level, "warn");
}

#[test]
fn an_unknown_key_is_named() {
    let err = ConfigLayers::new().build(Some(&text("cm", "[cors]\nmax_agee = \"1m\""))).expect_err("rejected");
    assert!(err.to_string().contains("max_agee"), "{err}");
}

#[test]
fn a_wrong_type_names_the_key() {
    let err = ConfigLayers::new().build(Some(&text("cm", "[config_reload]\ndebounce = 5"))).expect_err("rejected");
    assert_eq!(err.key(), Some("config_reload.debounce"), "{err}");
}

#[test]
fn a_bad_duration_names_the_key() {
    let err = ConfigLayers::new().build(Some(&text("cm", "[cors]\nmax_age = \"soon\""))).expect_err("rejected");
    assert_eq!(err.key(), Some("cors.max_age"), "{err}");
}

#[test]
fn malformed_toml_gives_position_but_never_the_text() {
    let err = ConfigLayers::new()
        .build(Some(&text("ConfigMap a/b key broker.toml", "[admin]\ntoken = \"hunter2")))
        .expect_err("rejected");
    let shown = err.to_string();
    assert!(shown.contains("ConfigMap a/b key broker.toml") && shown.contains("line 2"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn no_truncation_or_corruption_of_a_document_panics_or_shows_a_secret_in_it() {
    // Non-ASCII where it is valid (comments), so cuts land inside characters. The first document is valid, so
    // its corruptions meet a full build; the second sets the token, which a ConfigMap may not, and a corruption
    // that hides `token` from that refusal (a broken header moves it into another section) must not show it.
    let body = "# ünïcödé\n[log]\nlevel = \"info,brokkr=debug\" # ünïcödé\n[cors]\nallowed_origins = [\"https://xn--4ca.example\", \"*\"]\n\
               max_age = \"1m 30s\"\n[config_reload]\ndebounce = \"2s\"\nmax_wait = \"10s\"\n";
    let valid = format!("{body}[admin]\ntoken_overlap = \"5m\"\n");
    let with_secret = format!("{body}[admin]\ntoken = \"s3cret-t0ken\"\n");
    let layers = ConfigLayers::new();
    layers.build(Some(&text("cm", &valid))).expect("the intact document is valid");
    let refused = layers.build(Some(&text("cm", &with_secret))).expect_err("a ConfigMap may not set the token");
    assert!(matches!(refused, ConfigError::SecretInConfigMap { .. }), "{refused:?}");
    for doc in [valid, with_secret] {
        for (i, _) in doc.char_indices() {
            for junk in ["", "\"", "[", "]]", "=", "\u{0}", "ü", "\n[[x]]\n", "\\u{zz}", "'''", "\"\"\""] {
                let corrupted = format!("{}{junk}{}", &doc[..i], &doc[i..]);
                for text in [corrupted.as_str(), &doc[..i]] {
                    let layer = LayerText { origin: "cm".into(), text: text.into() };
                    if let Err(e) = layers.build(Some(&layer)) {
                        assert!(!e.to_string().contains("s3cret"), "{e}");
                    }
                }
            }
        }
    }
}

#[test]
fn positions_count_characters_not_bytes() {
    let err = ConfigLayers::new().build(Some(&text("cm", "# ünïcödé\n[log]\nlevel = \"é\" x"))).expect_err("rejected");
    assert!(err.to_string().contains("line 3, column 13"), "{err}");
}

#[test]
fn a_mistyped_secret_is_not_echoed() {
    let err = ConfigLayers::new().build(Some(&text("cm", "[admin]\ntoken = 123456"))).expect_err("rejected");
    assert_eq!(err.key(), Some("admin.token"));
    assert!(!err.to_string().contains("123456"), "{err}");
}

#[test]
fn a_secret_in_a_mistyped_admin_section_is_not_echoed() {
    let err = ConfigLayers::new().build(Some(&text("cm", "admin = \"s3cret-value\""))).expect_err("rejected");
    assert_eq!(err.key(), Some("admin"));
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[test]
fn environment_values_are_typed_by_the_setting() {
    let layers = ConfigLayers::new()
        .with_env(env(&[
            ("BROKKR__CONFIG_RELOAD__ENABLED", "false"),
            ("BROKKR__CORS__ALLOWED_ORIGINS", "[\"https://a.example\"]"),
            ("BROKKR__LOG__LEVEL", "true"),
        ]))
        .expect("env is valid");
    let s = layers.build(None).expect("builds").settings;
    assert!(!s.config_reload.enabled);
    assert_eq!(s.cors.allowed_origins, vec!["https://a.example".to_owned()]);
    assert_eq!(s.log.level, "true", "a string setting takes the text as it is");
}

#[test]
fn a_bad_duration_is_one_clean_line_that_names_the_key_once() {
    let err = ConfigLayers::new()
        .build(Some(&text("cm", "[config_reload]\ndebounce = \"2 parsecs\"")))
        .expect_err("rejected");
    let shown = err.to_string();
    assert!(!shown.contains('\n'), "one line: {shown:?}");
    assert_eq!(shown.matches("config_reload.debounce").count(), 1, "{shown:?}");
    assert!(shown.contains("2 parsecs"), "{shown:?}");
}

#[test]
fn the_configmap_cannot_relocate_itself() {
    // The namespace only when the file names it (the environment would win anyway); otherwise the actor that
    // resolved it checks.
    let file = text("file", "[config_reload]\nnamespace = \"brokkr\"");
    let layers = ConfigLayers::new().with_file_text(&file).expect("valid");
    for key in ["namespace = \"other\"", "configmap = \"other\"", "key = \"other.toml\""] {
        let doc = format!("[config_reload]\n{key}");
        let err = layers.build(Some(&text("cm", &doc))).expect_err("rejected");
        let name = key.split(' ').next().unwrap_or_default();
        assert_eq!(err.key(), Some(format!("config_reload.{name}").as_str()), "{err}");
    }
    let file = ConfigLayers::new().with_file_text(&text("file", "[config_reload]\nconfigmap = \"other\""));
    assert!(file.is_ok(), "the file may name the ConfigMap");
    let same = "[config_reload]\nconfigmap = \"brokkr-broker\"\nkey = \"broker.toml\"";
    assert!(ConfigLayers::new().build(Some(&text("cm", same))).is_ok(), "repeating the values in force is fine");
}

#[test]
fn the_configmap_cannot_change_listener_addresses_or_certificate_paths() {
    // Each would stop the next start of every replica (a taken or wrong port, a file not mounted).
    // (Set in the file: a value the environment sets wins over the ConfigMap's anyway, which is only warned.)
    let file = text("file", "[server]\nlisten = \"0.0.0.0:8080\"");
    let layers = ConfigLayers::new().with_file_text(&file).expect("valid");
    for (doc, key) in [
        ("[server]\nlisten = \"0.0.0.0:9090\"", "server.listen"),
        ("[webhook]\nlisten = \"0.0.0.0:9443\"", "webhook.listen"),
        ("[webhook]\ncert_file = \"/tmp/c.pem\"", "webhook.cert_file"),
        ("[webhook]\nkey_file = \"/tmp/k.pem\"", "webhook.key_file"),
    ] {
        let err = layers.build(Some(&text("cm", doc))).expect_err(doc);
        assert_eq!(err.key(), Some(key), "{doc}: {err}");
        let var = format!("BROKKR__{}", key.replace('.', "__").to_ascii_uppercase());
        assert!(err.to_string().contains(&var), "{err}");
    }
    let same = "[webhook]\nenabled = true\nlisten = \"0.0.0.0:8443\"\ncert_file = \"/etc/brokkr/webhook-tls/tls.crt\"";
    assert!(layers.build(Some(&text("cm", same))).is_ok(), "repeating the values in force is fine");
}

#[test]
fn a_document_over_the_parse_limit_is_refused_before_it_is_parsed() {
    // 1 MiB of `a = [0,0,…]` peaked at 88 MiB while parsed, against the chart's 128 MiB limit.
    let zeros = format!("a = [{}0]", "0,".repeat(MAX_DOCUMENT_BYTES / 2));
    let err = ConfigLayers::new().build(Some(&text("ConfigMap a/b key broker.toml", &zeros))).expect_err("too large");
    assert!(matches!(err, ConfigError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains(&format!("at most {MAX_DOCUMENT_BYTES} bytes")), "{err}");
    assert!(err.to_string().starts_with("ConfigMap a/b key broker.toml"), "{err}");
    // The origin names the request's namespace, which a direct webhook client chooses.
    let long_origin = "n".repeat(100_000);
    let err = ConfigLayers::new().build(Some(&text(&long_origin, &zeros))).expect_err("too large");
    assert!(err.to_string().len() < 1024, "{} bytes", err.to_string().len());
    let padded = format!("{}[log]\nlevel = \"debug\"", "# padding\n".repeat((MAX_DOCUMENT_BYTES - 100) / 10));
    assert!(ConfigLayers::new().build(Some(&text("cm", &padded))).is_ok(), "a document under the limit is read");
}

#[test]
fn every_error_text_is_bounded_whatever_the_document_quotes() {
    let huge = "q".repeat(200 * 1024);
    for doc in [
        format!("[config_reload]\nenabled = \"{huge}\""),
        format!("[cors]\nmax_age = \"{huge}\""),
        format!("[cors]\nallowed_origins = [\"{huge}\"]"),
        format!("[config_reload]\n{huge} = 1"),
    ] {
        let err = ConfigLayers::new().build(Some(&text("cm", &doc))).expect_err("rejected");
        assert!(err.to_string().len() <= 2 * 1024, "{} bytes: {}", err.to_string().len(), &doc[..30]);
    }
}

#[test]
fn log_filter_field_values_are_literals_never_compiled_regexes() {
    // `(` is not a valid regex: accepted only when field values are matched as plain text, which is what makes
    // a crafted `log.level` unable to build a huge automaton on the actor thread.
    let built = ConfigLayers::new().build(Some(&text("cm", "[log]\nlevel = \"[{user=(}]=debug,info\"")));
    assert_eq!(built.expect("accepted as a literal match").settings.log.level, "[{user=(}]=debug,info");
}

#[test]
fn a_section_that_is_not_a_table_is_rejected_and_never_blanks_the_environment() {
    // Found by the property tests: serde builds a struct from an array, and the environment value was not
    // inserted into a section that is not a table, so `admin = []` replaced BROKKR__ADMIN__TOKEN with "".
    let layers = ConfigLayers::new().with_env(env(&[("BROKKR__ADMIN__TOKEN", "t0ken-0123456789")])).expect("valid");
    for (doc, section) in [("admin = []", "admin"), ("log = [\"debug\"]", "log"), ("cors = 1", "cors")] {
        let err = layers.build(Some(&text("cm", doc))).expect_err(doc);
        assert_eq!(err.key(), Some(section), "{doc}: {err}");
    }
}

#[test]
fn a_token_with_quotes_and_backslashes_is_not_echoed_in_its_escaped_form() {
    let layers = ConfigLayers::new().with_env(env(&[("BROKKR__ADMIN__TOKEN", "k9\"Zq\\tok-0123456")])).expect("valid");
    let err =
        layers.build(Some(&text("cm", "[config_reload]\nenabled = 'k9\"Zq\\tok-0123456'"))).expect_err("a type error");
    assert!(!err.to_string().contains("Zq"), "{err}");
}

#[test]
fn a_token_pasted_into_a_setting_that_is_shown_is_rejected() {
    // Found by the long property run: `log.level` accepted the token as a filter target, and the level is
    // logged, shown in the admin status and printed by Debug.
    let layers = ConfigLayers::new().with_env(env(&[("BROKKR__ADMIN__TOKEN", "k9Zq-t0ken-7-abcd")])).expect("valid");
    let err = layers.build(Some(&text("cm", "[log]\nlevel = \"info,k9Zq-t0ken-7-abcd=debug\""))).expect_err("rejected");
    assert_eq!(err.key(), Some("log.level"), "{err}");
    assert!(!err.to_string().contains("k9Zq"), "{err}");
}

#[test]
fn the_token_in_force_may_not_be_pasted_into_a_shown_setting() {
    // The token in force came from the file; a document pastes it into log.level, which is live and shown:
    // refused, and never quoted in part.
    let layers =
        ConfigLayers::new().with_file_text(&text("file", "[admin]\ntoken = \"old-t0ken-123456\"")).expect("valid");
    let running = layers.build(None).expect("valid").settings;
    let doc = "[log]\nlevel = \"info,old-t0ken-123456=debug\"";
    let err = layers.build_over(Some(&text("cm", doc)), Some(&running)).expect_err("refused");
    assert_eq!(err.key(), Some("log.level"), "{err}");
    assert!(!err.to_string().contains("old-t0ken"), "{err}");
    let straddling = format!("[cors]\nallowed_origins = [\"https://{}old-t0ken-123456.example\"]", "a".repeat(500));
    let err = layers.build_over(Some(&text("cm", &straddling)), Some(&running)).expect_err("refused");
    assert!(!err.to_string().contains("old-t0"), "{err}");
}

#[test]
fn an_empty_fixed_path_below_the_configmap_does_not_let_the_configmap_set_it() {
    // Found by review: a fixed key whose value below the ConfigMap was empty was skipped, as only an unset
    // namespace must be; and an empty path is no path.
    let layers = ConfigLayers::new().with_env(env(&[("BROKKR__WEBHOOK__CERT_FILE", "")]));
    let error = match layers {
        Err(error) => error,
        Ok(layers) => layers.build(Some(&text("cm", "[webhook]\ncert_file = \"/elsewhere\""))).expect_err("fixed"),
    };
    assert_eq!(error.key(), Some("webhook.cert_file"), "{error}");
}

#[test]
fn a_fixed_path_cannot_be_changed_by_spelling_it_differently() {
    // Found by review: `PathBuf` equality ignores a trailing `/`, so this was "the same path" and applied at the
    // next start, where it names no file (ENOTDIR).
    for path in
        ["/etc/brokkr/webhook-tls/tls.crt/", "/etc/brokkr//webhook-tls/tls.crt", "/etc/brokkr/./webhook-tls/tls.crt"]
    {
        let document = format!("[webhook]\ncert_file = \"{path}\"");
        let error = ConfigLayers::new().build(Some(&text("cm", &document))).expect_err(path);
        assert_eq!(error.key(), Some("webhook.cert_file"), "{path}: {error}");
    }
}

#[test]
fn a_token_with_quotes_may_not_be_copied_into_a_list_setting() {
    // Found by review: lists are shown Debug-escaped, and the escaped token was not searched for.
    let layers = ConfigLayers::new().with_env(env(&[("BROKKR__ADMIN__TOKEN", "tok\"en-123456789")])).expect("valid");
    let document = "[cors]\nallowed_origins = [\"https://tok\\\"en-123456789.example\"]";
    let error = layers.build(Some(&text("cm", document))).expect_err("the token would be shown");
    assert_eq!(error.key(), Some("cors.allowed_origins"), "{error}");
}

#[test]
fn debug_output_of_layers_never_shows_their_text() {
    let secret = text("cm", "[admin]\ntoken = \"s3cret-token-0123\"");
    let layers = ConfigLayers::new()
        .with_file_text(&secret)
        .and_then(|l| l.with_env(env(&[("BROKKR__ADMIN__TOKEN", "s3cret-env-012345")])))
        .expect("valid");
    for shown in [format!("{secret:?}"), format!("{layers:?}")] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

#[test]
fn an_unknown_environment_setting_names_the_variable() {
    let err = ConfigLayers::new().with_env(env(&[("BROKKR__CORS__MAXAGE", "1m")])).expect_err("rejected");
    assert!(err.to_string().contains("BROKKR__CORS__MAXAGE"), "{err}");
}

#[test]
fn two_variables_that_set_the_same_key_are_refused() {
    // Found by review: the part after the prefix is lower-cased, so these set one key, and the kubelet builds a
    // container's environment from a map: which one won would change from one start to the next.
    let error = ConfigLayers::new()
        .with_env(env(&[("BROKKR__ADMIN__TOKEN", "from-the-secret-1"), ("BROKKR__admin__token", "plain-text-2")]))
        .expect_err("ambiguous");
    let text = error.to_string();
    assert!(text.contains("BROKKR__admin__token") && text.contains("BROKKR__ADMIN__TOKEN"), "{text}");
    assert!(!text.contains("from-the-secret") && !text.contains("plain-text"), "{text}");
}

#[test]
fn an_unknown_key_is_named_escaped() {
    // Issue 23: TOML decodes the escapes, so the key holds a real OSC title, BEL, clear-screen, CR, a bidi override
    // and U+2028, which reached Events, the admin status and text logs raw.
    let doc = "[cors]\n\"\\u001b]0;x\\u0007\\u001b[2J\\r\\u202E\\u2028\" = 1";
    let shown = ConfigLayers::new().build(Some(&text("cm", doc))).expect_err("rejected").to_string();
    assert!(!shown.chars().any(crate::text::hidden), "{shown:?}");
    assert!(shown.contains("\\u{1b}]0;x\\u{7}\\u{1b}[2J\\r\\u{202e}\\u{2028}"), "{shown}");
}

/// `levels` inline tables, each under a key of `parts` dotted parts: about `levels × parts` tables deep in a few
/// kilobytes, while toml's own guard counts only the braces.
fn deeply_nested(levels: usize, parts: usize) -> String {
    let key = vec!["k"; parts].join(".");
    format!("[log]\nzz = {}1{}", format!("{{ {key} = ").repeat(levels), " }".repeat(levels))
}

#[test]
fn a_document_nested_too_deep_is_refused_before_it_is_built_even_on_a_small_stack() {
    // Issue 23 (attacker review): 25 levels of 79 dotted parts, 4 KB, overflowed the main thread's stack and
    // aborted the broker, at every reload and every start; the webhook's worker has a 2 MiB stack.
    let document = deeply_nested(25, 79);
    assert!(document.len() < 5_000, "{} bytes", document.len());
    let judged = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let layers = ConfigLayers::new();
            let refused = layers.build(Some(&text("cm", &document))).expect_err("too deep").to_string();
            let file = ConfigLayers::new().with_file_text(&text("file", &document)).expect_err("too deep").to_string();
            (refused, file)
        })
        .expect("a thread")
        .join()
        .expect("judged without overflowing the stack");
    for shown in [judged.0, judged.1] {
        assert!(shown.contains("nested deeper than") && shown.contains("line 2"), "{shown}");
    }
    // A document as deep as a real one is still judged as usual.
    let ordinary = ConfigLayers::new().build(Some(&text("cm", &deeply_nested(1, 3)))).expect_err("unknown key");
    assert!(!ordinary.to_string().contains("nested deeper"), "{ordinary}");
}

#[test]
fn every_mistyped_value_is_named_in_one_answer() {
    // Serde stops at the first error; an operator must not need three rounds for three typos.
    let doc =
        "[cors]\nmax_age = \"soon\"\n[config_reload]\ndebounce = \"later\"\nmax_wait = \"never\"\n[log]\nlevle = 1";
    let err = ConfigLayers::new().build(Some(&text("cm", doc))).expect_err("rejected");
    let ConfigError::Several(errors) = &err else { panic!("one error only: {err}") };
    let mut keys: Vec<Option<&str>> = errors.iter().map(ConfigError::key).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [Some("config_reload.debounce"), Some("config_reload.max_wait"), Some("cors.max_age"), Some("log.levle")],
        "{err}"
    );
}

#[test]
fn type_and_range_errors_come_together() {
    let doc = "[cors]\nmax_age = \"soon\"\n[config_reload]\nresync_interval = \"1s\"\nhistory = 0";
    let err = ConfigLayers::new().build(Some(&text("cm", doc))).expect_err("rejected").to_string();
    for key in ["cors.max_age", "config_reload.resync_interval", "config_reload.history"] {
        assert!(err.contains(key), "{key} missing from {err}");
    }
}

#[test]
fn thousands_of_unknown_keys_cost_a_bounded_number_of_reads() {
    // Without a bound, 5,000 unknown keys cost 5,000 reads of a 60 KiB table at every reload and every admission
    // review.
    let doc = format!("[log]\n{}", (0..5_000).map(|i| format!("k{i} = 1\n")).collect::<String>());
    let err = ConfigLayers::new().build(Some(&text("cm", &doc))).expect_err("rejected");
    let ConfigError::Several(errors) = &err else { panic!("{err}") };
    assert_eq!(errors.len(), crate::checks::MAX_FIELD_ERRORS, "{err}");
    assert!(err.to_string().contains("log.k0") && err.to_string().contains("more"), "{err}");
}

#[test]
fn a_mistyped_value_is_judged_against_the_layers_below_not_the_defaults() {
    // Found by review: the mistyped debounce was put back to the built-in default (5 s), and the answer also said
    // that max_wait (1 s, from the file) was shorter than it: an error about a value nobody wrote.
    let file = text("file", "[config_reload]\ndebounce = \"500ms\"\nmax_wait = \"1s\"");
    let layers = ConfigLayers::new().with_file_text(&file).expect("valid");
    let err = layers.build(Some(&text("cm", "[config_reload]\ndebounce = \"later\""))).expect_err("rejected");
    assert_eq!(err.key(), Some("config_reload.debounce"), "{err}");
    assert!(!err.to_string().contains("max_wait"), "{err}");
}

#[test]
fn a_missing_data_key_error_is_bounded_whatever_the_namespace_sent() {
    // Found by review: an admission review names its own namespace, and the error quoted it whole into a log line.
    let namespace = "n".repeat(1024 * 1024);
    let reload = Settings::default().config_reload;
    let err = crate::Document::from_configmap(&std::collections::BTreeMap::new(), &namespace, &reload)
        .expect_err("no data key");
    assert!(err.to_string().len() < 2 * crate::text::ERROR_LIMIT, "{} bytes", err.to_string().len());
}

#[test]
fn a_document_over_the_limit_is_refused_by_judge_naming_its_size() {
    let layers = ConfigLayers::new();
    let document = crate::Document {
        layer: text("cm", &"#".repeat(MAX_DOCUMENT_BYTES + 1)),
        place: Place::ConfigMap { namespace: None },
    };
    let err = crate::judge(&layers, &document, &Settings::default()).expect_err("too large");
    assert!(matches!(err, ConfigError::TooLarge { .. }), "{err}");
}

#[test]
fn syntax_errors_on_several_lines_are_named_in_one_answer() {
    let doc = "[log\nlevel = \"info\"\n[cors]\nmax_age = = \"1m\"\n[config_reload]\ndebounce \"1s\"\n";
    let err = ConfigLayers::new().build(Some(&text("cm", doc))).expect_err("rejected").to_string();
    for line in ["line 1", "line 4", "line 6"] {
        assert!(err.contains(line), "{line} missing from {err}");
    }
}

#[test]
fn a_mistyped_value_of_the_followed_file_is_judged_against_the_file_it_replaces() {
    // Found by review: with `--watch-config` the value was put back to the built-in default, not the file's.
    let start = "[config_reload]\ndebounce = \"500ms\"\nmax_wait = \"1s\"";
    let layers = ConfigLayers::new().with_file_text(&text("file", start)).expect("valid");
    let running = layers.build(None).expect("valid").settings;
    let edited = crate::Document {
        layer: text("config file", "[config_reload]\ndebounce = \"later\"\nmax_wait = \"1s\""),
        place: Place::ConfigFile,
    };
    let err = crate::judge(&layers, &edited, &running).expect_err("rejected");
    assert_eq!(err.key(), Some("config_reload.debounce"), "{err}");
    assert!(!err.to_string().contains("max_wait"), "{err}");
}
