//! The declarations are the one list of settings: the TOML form, the README's settings table and each secret agree
//! with them, so a setting added in one place only fails here with what to do.

use std::collections::BTreeMap;

use brokkr_config::{
    AppSettings,
    Settings,
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
fn the_readme_settings_table_lists_every_declared_setting_with_when_it_applies() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md");
    let mut documented: Vec<(String, String)> = readme
        .lines()
        .filter_map(|line| {
            let (key, rest) = line.strip_prefix("| `")?.split_once("` | ")?;
            let (applies, _) = rest.split_once(" |")?;
            Some((key.to_owned(), applies.to_owned()))
        })
        .filter(|(_, applies)| applies == "live" || applies == "restart")
        .collect();
    let mut declared: Vec<(String, String)> = DECLARATIONS
        .iter()
        .map(|d| (d.key.to_owned(), if d.is_live() { "live" } else { "restart" }.to_owned()))
        .collect();
    documented.sort();
    declared.sort();
    assert_eq!(
        documented, declared,
        "README.md's settings table and brokkr_config::declaration::DECLARATIONS disagree: add or fix the row"
    );
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

/// `# -- `<key>` · <live|restart> · default `<value>`. …` lines of values.yaml, by key.
fn documented_settings(values: &str) -> BTreeMap<String, (bool, String)> {
    let mut found = BTreeMap::new();
    for line in values.lines() {
        let Some(rest) = line.trim_start().strip_prefix("# -- `") else { continue };
        let Some((key, rest)) = rest.split_once("` · ") else { continue };
        let (live, rest) = rest.split_once(" · default `").expect("`· default` after the key");
        let (default, _) = rest.split_once("`.").expect("the default ends with `.");
        let live = match live {
            "live" => true,
            "restart" => false,
            other => panic!("{key}: `{other}` is neither live nor restart"),
        };
        assert!(found.insert(key.to_owned(), (live, default.to_owned())).is_none(), "{key} documented twice");
    }
    found
}

#[test]
fn values_yaml_documents_every_setting_as_the_code_defines_it() {
    let values =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/brokkr-broker/values.yaml"))
            .expect("values.yaml");
    let documented = documented_settings(&values);
    let defaults = Settings::default();
    let expected: BTreeMap<String, (bool, String)> =
        defaults.fields().into_iter().map(|f| (f.key.to_owned(), (f.live, f.value))).collect();
    assert_eq!(
        documented, expected,
        "charts/brokkr-broker/values.yaml's setting comments and the declarations disagree"
    );
}
