//! Where the admin token may come from: the environment, the file, or a mounted file; never the ConfigMap.

use std::time::Duration;

use brokkr_config::{ConfigError, ConfigLayers, SecretsElsewhere, layers::LayerText};

const TOKEN: &str = "k9Zq-t0ken-from-a-secret";

fn configmap(text: &str) -> LayerText {
    LayerText { origin: "ConfigMap brokkr/brokkr-broker key broker.toml".into(), text: text.into() }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn the_configmap_may_not_set_the_token_and_the_error_points_at_the_token_file() {
    for document in [
        format!("[admin]\ntoken = \"{TOKEN}\""),
        // Repeating the value in force is refused too: the ConfigMap is readable with `view`.
        format!("[log]\nlevel = \"debug\"\n[admin]\ntoken = \"{TOKEN}\"\ntoken_overlap = \"1m\""),
        // Even an empty or mistyped token: a ConfigMap is no place for the key at all.
        "[admin]\ntoken = \"\"".to_owned(),
        "[admin]\ntoken = 123456".to_owned(),
    ] {
        let layers = ConfigLayers::new().with_env(env(&[("BROKKR__ADMIN__TOKEN", TOKEN)])).expect("valid");
        let error = layers.build(Some(&configmap(&document))).expect_err(&document);
        assert!(matches!(error, ConfigError::SecretInConfigMap { .. }), "{document}: {error:?}");
        assert_eq!(error.key(), Some("admin.token"), "{document}");
        let text = error.to_string();
        assert!(text.contains("admin.token_file") && text.contains("BROKKR__ADMIN__TOKEN"), "{text}");
        assert!(!text.contains("k9Zq") && !text.contains("123456"), "{text}");
    }
}

#[test]
fn the_file_and_the_environment_still_set_the_token() {
    let from_file = ConfigLayers::new()
        .with_file_text(&LayerText { origin: "file".into(), text: format!("[admin]\ntoken = \"{TOKEN}\"") })
        .expect("valid");
    let from_env = ConfigLayers::new().with_env(env(&[("BROKKR__ADMIN__TOKEN", TOKEN)])).expect("valid");
    for layers in [from_file, from_env] {
        let built = layers.build(Some(&configmap("[log]\nlevel = \"debug\""))).expect("valid");
        assert_eq!(built.settings.admin.token.expose(), TOKEN);
    }
}

#[test]
fn the_token_and_the_token_file_together_are_refused_naming_the_file() {
    let error = ConfigLayers::new()
        .with_env(env(&[("BROKKR__ADMIN__TOKEN", TOKEN), ("BROKKR__ADMIN__TOKEN_FILE", "/run/secrets/admin/token")]))
        .expect_err("two sources of one token");
    assert_eq!(error.key(), Some("admin.token_file"), "{error}");
    assert!(!error.to_string().contains("k9Zq"), "{error}");
}

#[test]
fn the_configmap_may_repeat_the_token_file_but_not_move_it() {
    let file = LayerText { origin: "file".into(), text: "[admin]\ntoken_file = \"/run/secrets/admin/token\"".into() };
    let layers = ConfigLayers::new().with_file_text(&file).expect("valid");
    layers.build(Some(&configmap("[admin]\ntoken_file = \"/run/secrets/admin/token\""))).expect("the same path");
    let error = layers.build(Some(&configmap("[admin]\ntoken_file = \"/tmp/token\""))).expect_err("moved");
    assert_eq!(error.key(), Some("admin.token_file"), "{error}");
}

#[test]
fn the_overlap_comes_from_the_file_or_the_environment_and_the_configmap_cannot_change_it() {
    // Issue 23: a live overlap let an editor of the ConfigMap keep a replaced token valid for an hour.
    let file = LayerText { origin: "file".into(), text: "[admin]\ntoken_overlap = \"30s\"".into() };
    let layers = ConfigLayers::new().with_file_text(&file).expect("the file sets it");
    assert_eq!(layers.build(None).expect("valid").settings.admin.token_overlap, Duration::from_secs(30));
    for document in ["[admin]\ntoken_overlap = \"1h\"", "[admin]\ntoken_overlap = \"0s\""] {
        let error = layers.build(Some(&configmap(document))).expect_err(document);
        assert_eq!(error.key(), Some("admin.token_overlap"), "{document}: {error}");
        let text = error.to_string();
        assert!(text.contains("cannot change it") && text.contains("BROKKR__ADMIN__TOKEN_OVERLAP"), "{text}");
    }
    layers.build(Some(&configmap("[admin]\ntoken_overlap = \"30s\""))).expect("repeating the value in force");
    // Set in the environment, it wins over whatever the ConfigMap says, and the ConfigMap's value is reported.
    let from_env = ConfigLayers::new().with_env(env(&[("BROKKR__ADMIN__TOKEN_OVERLAP", "30s")])).expect("valid");
    let built = from_env.build(Some(&configmap("[admin]\ntoken_overlap = \"1h\""))).expect("shadowed");
    assert_eq!(built.settings.admin.token_overlap, Duration::from_secs(30));
    let error = ConfigLayers::new()
        .with_file_text(&LayerText { origin: "file".into(), text: "[admin]\ntoken_overlap = \"2h\"".into() })
        .expect_err("at most an hour");
    assert_eq!(error.key(), Some("admin.token_overlap"), "{error}");
    let fixed = brokkr_config::declaration::declaration("admin.token_overlap").expect("declared");
    assert!(!fixed.is_live());
}

#[test]
fn a_short_token_from_the_environment_or_the_file_is_refused_without_showing_it() {
    // Issue 23: only warned about at start, while a token file that short is refused.
    let from_env = ConfigLayers::new().with_env(env(&[("BROKKR__ADMIN__TOKEN", "sh0rt-t0ken")]));
    let from_file = ConfigLayers::new()
        .with_file_text(&LayerText { origin: "file".into(), text: "[admin]\ntoken = \"sh0rt-t0ken\"".into() });
    for error in [from_env.expect_err("too short"), from_file.expect_err("too short")] {
        assert_eq!(error.key(), Some("admin.token"), "{error}");
        let shown = error.to_string();
        assert!(shown.contains("shorter than 16 bytes") && !shown.contains("sh0rt"), "{shown}");
    }
    ConfigLayers::new().with_env(env(&[("BROKKR__ADMIN__TOKEN", "sixteen-bytes-ok")])).expect("16 bytes");
    ConfigLayers::new().with_env(env(&[("BROKKR__ADMIN__TOKEN", "")])).expect("empty: the admin API is locked");
}

#[test]
fn a_token_held_elsewhere_may_not_be_copied_into_a_shown_setting_nor_shown_in_an_error() {
    // The token read from admin.token_file is in no layer; the layers are told of it.
    let elsewhere = SecretsElsewhere::default();
    let layers = ConfigLayers::new().with_secrets_elsewhere(elsewhere.clone());
    let document = format!("[log]\nlevel = \"info,{TOKEN}=debug\"");
    layers.build(Some(&configmap(&document))).expect("not a secret the broker knows of, yet");
    elsewhere.set(vec![TOKEN.into()]);
    let error = layers.build(Some(&configmap(&document))).expect_err("the token would be logged");
    assert_eq!(error.key(), Some("log.level"), "{error}");
    let origins = format!("[cors]\nallowed_origins = [\"https://{TOKEN}.example/\"]");
    let error = layers.clone().build(Some(&configmap(&origins))).expect_err("invalid origin");
    assert!(!error.to_string().contains("k9Zq"), "{error}");
    assert!(!format!("{elsewhere:?}").contains("k9Zq"));
}

#[test]
fn a_cut_error_does_not_tell_whether_a_guess_of_the_token_was_right() {
    // Found by review: the error is redacted, then cut with "(N more bytes)" counted on the redacted text, so a
    // right guess far into a long key changed N; one dry-run could test thousands of guesses.
    let elsewhere = SecretsElsewhere::default();
    elsewhere.set(vec![TOKEN.into()]);
    let layers = ConfigLayers::new().with_secrets_elsewhere(elsewhere);
    let wrong = "k9Zq-t0ken-from-a-s3cret";
    assert_eq!(wrong.len(), TOKEN.len());
    let error_for = |guess: &str| {
        let padding = "x".repeat(600);
        let document = format!("[log]\n\"{padding}{guess}{padding}\" = 1");
        layers.build(Some(&configmap(&document))).expect_err("an unknown key").to_string()
    };
    assert_eq!(error_for(TOKEN), error_for(wrong), "the answer is the same whether the guess is right or not");
}
