//! The declarations are the one list of settings: the TOML form and each secret agree with them, so a setting
//! added in one place only fails here with what to do. The docs generated from them: `brokkr-broker/tests/settings_docs.rs`.

use brokkr_config::{
    AppSettings, Settings,
    declaration::{DECLARATIONS, declaration},
};

#[test]
fn every_declaration_names_a_key_of_the_toml_form_has_help_and_is_unique() {
    let mut settings = Settings::default();
    settings.config_reload.namespace = Some("n".into());
    let toml = toml::Value::try_from(&settings).expect("settings serialize");
    for d in DECLARATIONS {
        let (section, key) = d.key.split_once('.').expect("section.key");
        assert!(toml.get(section).and_then(|s| s.get(key)).is_some(), "{} is declared but not a setting", d.key);
        assert!(!d.help.is_empty(), "{} has no help", d.key);
        assert_eq!(DECLARATIONS.iter().filter(|other| other.key == d.key).count(), 1, "{} is declared twice", d.key);
        assert_eq!(declaration(d.key).map(|found| found.key), Some(d.key));
    }
}

#[test]
fn a_secret_is_redacted_everywhere_a_setting_is_shown() {
    let mut settings = Settings::default();
    settings.admin.token = "s3cret-t0ken-value".into();
    let shown = [
        format!("{settings:?}"),
        serde_json::to_string(&settings).expect("JSON"),
        toml::to_string(&settings).expect("TOML"),
        format!("{:?}", settings.fields()),
        format!("{:?}", brokkr_config::diff(&Settings::default(), &settings)),
    ];
    for text in shown {
        assert!(!text.contains("s3cret"), "{text}");
    }
    let changed = brokkr_config::diff(&Settings::default(), &settings);
    assert_eq!(changed.iter().map(|c| c.key).collect::<Vec<_>>(), ["admin.token"], "a changed secret is reported");
    for d in DECLARATIONS.iter().filter(|d| d.secret) {
        assert_eq!(d.shown(&settings), brokkr_config::secret::REDACTED, "{}", d.key);
    }
}
