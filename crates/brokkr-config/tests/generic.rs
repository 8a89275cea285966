//! The machinery with a settings type other than the broker's: what every application gets without writing it.

use brokkr_config::{
    AppSettings, ConfigLayers, ReloadSettings, Result, Secret, check_declarations, declaration::Declaration,
    declaration::show, declarations, declare, layers::LayerText,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Shop {
    greeting: Greeting,
    payment: Payment,
    config_reload: ReloadSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Greeting {
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Payment {
    key: Secret,
}

impl Default for Shop {
    fn default() -> Self {
        let config_reload =
            ReloadSettings { configmap: "shop".into(), key: "shop.toml".into(), ..ReloadSettings::default() };
        Self { greeting: Greeting::default(), payment: Payment::default(), config_reload }
    }
}

impl AppSettings for Shop {
    const DECLARATIONS: &'static [Declaration<Self>] = declarations![config_reload;
        declare!(greeting.text, Live, show::text, r#""hej""#, "what the shop says"),
        declare!(secret payment.key, AtRestart, r#""pk-example""#, "key of the payment API"),
    ];
    const ENV_PREFIX: &'static str = "SHOP__";

    /// Checks nothing of its own: what is still checked is what every application gets.
    fn own_checks(&self, _: &[&str]) -> Result<()> {
        Ok(())
    }

    fn reload(&self) -> &ReloadSettings {
        &self.config_reload
    }
}

fn build(layers: &ConfigLayers<Shop>, toml: &str) -> Result<Shop> {
    layers.build(Some(&LayerText { origin: "ConfigMap shop".into(), text: toml.into() })).map(|c| c.settings)
}

#[test]
fn the_reload_section_is_range_checked_for_every_settings_type() {
    // Found by review: `resync_interval = "0s"` made the resync timer fire without pause, each firing a new read.
    let layers = ConfigLayers::<Shop>::default();
    for (document, key) in [
        ("[config_reload]\nresync_interval = \"0s\"", "config_reload.resync_interval"),
        ("[config_reload]\ndebounce = \"36500d\"", "config_reload.debounce"),
        ("[config_reload]\nmax_wait = \"36500d\"", "config_reload.max_wait"),
    ] {
        let error = build(&layers, document).expect_err(document);
        assert_eq!(error.key(), Some(key), "{error}");
    }
    build(&layers, "[greeting]\ntext = \"hej\"").expect("a valid document");
}

#[test]
fn a_secret_may_not_be_copied_into_a_shown_setting_whatever_the_settings_type() {
    let layers = ConfigLayers::<Shop>::default()
        .with_env([("SHOP__PAYMENT__KEY".to_owned(), "pk-live-12345678".to_owned())])
        .expect("valid");
    let error =
        build(&layers, "[greeting]\ntext = \"pk-live-12345678\"").expect_err("the key would be logged as the greeting");
    assert_eq!(error.key(), Some("greeting.text"), "{error}");
    assert!(!error.to_string().contains("pk-live"), "{error}");
}

#[test]
fn the_configmap_may_not_set_a_secret_whatever_the_settings_type() {
    let error = build(&ConfigLayers::<Shop>::default(), "[payment]\nkey = \"pk-live-12345678\"")
        .expect_err("anyone who can view the ConfigMap would read the key");
    assert_eq!(error.key(), Some("payment.key"), "{error}");
    let text = error.to_string();
    assert!(text.contains("SHOP__PAYMENT__KEY") && !text.contains("pk-live"), "{text}");
}

#[test]
fn the_environment_layer_uses_the_applications_prefix() {
    let layers = ConfigLayers::<Shop>::default()
        .with_env([("SHOP__GREETING__TEXT".to_owned(), "god dag".to_owned())])
        .expect("a declared key");
    assert_eq!(layers.build(None).expect("valid").settings.greeting.text, "god dag");
    let error = ConfigLayers::<Shop>::default()
        .with_env([("SHOP__GREETING__COLOUR".to_owned(), "red".to_owned())])
        .expect_err("not a setting");
    assert!(error.to_string().contains("SHOP__GREETING__COLOUR"), "{error}");
}

#[test]
fn a_reload_section_set_in_part_keeps_the_applications_own_defaults() {
    // Found by review: a section set in part was deserialized on `ReloadSettings::default()`, so setting the
    // debounce made the shop watch the broker's ConfigMap.
    let layers = ConfigLayers::<Shop>::default()
        .with_env([("SHOP__CONFIG_RELOAD__DEBOUNCE".to_owned(), "1s".to_owned())])
        .expect("valid");
    let settings = layers.build(None).expect("valid").settings;
    assert_eq!((settings.config_reload.configmap.as_str(), settings.config_reload.key.as_str()), ("shop", "shop.toml"));
    let settings = build(&layers, "[config_reload]\nmax_wait = \"30s\"").expect("valid");
    assert_eq!(settings.config_reload.configmap, "shop");
}

#[test]
fn an_undeclared_field_is_named() {
    let mut sample = Shop::default();
    sample.config_reload.namespace = Some("shop".into());
    check_declarations(&sample).expect("every field of the shop is declared");
    let form = toml::Value::try_from(&sample).expect("serializes");
    assert!(form.get("greeting").is_some());

    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Forgetful {
        greeting: Greeting,
        extra: Extra,
        config_reload: ReloadSettings,
    }
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Extra {
        colour: String,
    }
    impl AppSettings for Forgetful {
        const DECLARATIONS: &'static [Declaration<Self>] = declarations![config_reload;
            declare!(greeting.text, Live, show::text, r#""hej""#, "what the shop says"),
        ];
        const ENV_PREFIX: &'static str = "FORGETFUL__";
        fn own_checks(&self, _: &[&str]) -> Result<()> {
            Ok(())
        }
        fn reload(&self) -> &ReloadSettings {
            &self.config_reload
        }
    }
    let mut sample = Forgetful::default();
    sample.config_reload.namespace = Some("n".into());
    let problems = check_declarations(&sample).expect_err("extra.colour is not declared");
    assert!(problems.contains("extra.colour is not declared"), "{problems}");
}

#[test]
fn the_reload_section_is_found_even_when_an_application_setting_has_the_same_field_name() {
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Cached {
        cache: Cache,
        config_reload: ReloadSettings,
    }
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Cache {
        resync_interval: String,
    }
    impl AppSettings for Cached {
        const DECLARATIONS: &'static [Declaration<Self>] = declarations![config_reload;
            declare!(cache.resync_interval, Live, show::text, r#""1h""#, "how often the cache refreshes"),
        ];
        const ENV_PREFIX: &'static str = "CACHED__";
        fn own_checks(&self, _: &[&str]) -> Result<()> {
            Ok(())
        }
        fn reload(&self) -> &ReloadSettings {
            &self.config_reload
        }
    }
    assert_eq!(Cached::reload_section(), "config_reload");
}
