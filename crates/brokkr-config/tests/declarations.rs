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
    // Every declared secret set to a value of its own, through the TOML form, as a document would set it.
    let secrets: Vec<_> = DECLARATIONS.iter().filter(|d| d.secret).collect();
    let mut document = toml::Table::new();
    for (i, d) in secrets.iter().enumerate() {
        let (section, field) = d.key.split_once('.').expect("section.field");
        let section = document.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let table = section.as_table_mut().expect("a section");
        table.insert(field.to_owned(), toml::Value::String(format!("s3cret-value-{i}")));
    }
    let settings: Settings = toml::Value::Table(document).try_into().expect("every secret is a string");
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
    let changed: Vec<_> = brokkr_config::diff(&Settings::default(), &settings).into_iter().map(|c| c.key).collect();
    let declared: Vec<_> = secrets.iter().map(|d| d.key).collect();
    assert_eq!(changed, declared, "each changed secret is reported");
    for d in &secrets {
        assert_eq!(d.shown(&settings), brokkr_config::secret::REDACTED, "{}", d.key);
    }
}
