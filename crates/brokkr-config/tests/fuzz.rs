//! Property-based fuzzing on the stable toolchain: arbitrary bytes and structure-aware TOML through the one
//! build-and-validate path never panic and never echo a planted secret. `PROPTEST_CASES=N` sets the case count
//! (CI uses proptest's default of 256 per property; see docs/RELIABILITY.md for the long run).

use brokkr_config::{ConfigLayers, diff, layers::LayerText};
use proptest::prelude::*;
use toml::{Table, Value};

/// Planted as the admin token in the document under test and in the environment layer. The quote and the backslash
/// make errors that quote a value show it escaped: that form must not come out either.
const SECRET: &str = "PLANTED-s3\"cr\\et-9c1e";

fn layers() -> ConfigLayers {
    ConfigLayers::new().with_env([("BROKKR__ADMIN__TOKEN".to_owned(), SECRET.to_owned())]).expect("valid token")
}

fn build(layers: &ConfigLayers, text: String) {
    let layer = LayerText { origin: "ConfigMap fuzz/brokkr-broker key broker.toml".into(), text };
    match layers.build(Some(&layer)) {
        Ok(candidate) => {
            assert_eq!(candidate.settings.admin.token.expose(), SECRET, "the environment wins over the document");
            assert!(diff(&candidate.settings, &candidate.settings).is_empty());
            assert!(!format!("{:?}", candidate.settings).contains("PLANTED-s3"), "Debug redacts the token");
        }
        Err(error) => {
            let shown = error.to_string();
            // The prefix catches the secret as it is and in the escaped form an error uses to quote a value.
            assert!(!shown.contains("PLANTED-s3"), "the error echoes the secret: {shown}");
            assert!(!shown.contains('\n'), "one line: {shown:?}");
        }
    }
}

/// Values of every TOML type, biased towards what the settings expect (durations, origins, filters).
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Float),
        "[0-9]{1,6}(ms|s|m|h|d| parsecs)?".prop_map(Value::String),
        "(https?|ftp)://[a-zA-Zä0-9.-]{0,12}(:[0-9]{1,5})?/?".prop_map(Value::String),
        "(info|debug|warn|off|x)(,[a-z_:]{1,8}=(info|trace|loud))?(\\[\\{[a-z]=[^}]{0,6}\\}\\])?"
            .prop_map(Value::String),
        "\\PC{0,24}".prop_map(Value::String),
        Just(Value::String(SECRET.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Table(m.into_iter().collect::<Table>())),
        ]
    })
}

/// Documents shaped like `broker.toml`: known and unknown sections and keys, any values.
fn document() -> impl Strategy<Value = Table> {
    let section = prop_oneof![
        Just("server".to_owned()),
        Just("admin".to_owned()),
        Just("log".to_owned()),
        Just("cors".to_owned()),
        Just("config_reload".to_owned()),
        Just("webhook".to_owned()),
        "[a-z_]{1,10}",
    ];
    let key = prop_oneof![
        Just("listen".to_owned()),
        Just("token".to_owned()),
        Just("level".to_owned()),
        Just("format".to_owned()),
        Just("allowed_origins".to_owned()),
        Just("max_age".to_owned()),
        Just("enabled".to_owned()),
        Just("debounce".to_owned()),
        Just("max_wait".to_owned()),
        Just("resync_interval".to_owned()),
        Just("configmap".to_owned()),
        Just("namespace".to_owned()),
        Just("key".to_owned()),
        Just("cert_file".to_owned()),
        Just("key_file".to_owned()),
        "[a-z_]{1,10}",
    ];
    let body = prop::collection::btree_map(key, value(), 0..5).prop_map(|m| Value::Table(m.into_iter().collect()));
    prop::collection::btree_map(section, prop_oneof![4 => body, 1 => value()], 0..6)
        .prop_map(|m| m.into_iter().collect::<Table>())
}

proptest! {
    // Cases come from PROPTEST_CASES (default 256); failures are printed with their minimal input, not stored.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_never_echo_the_secret(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = format!("[admin]\ntoken = '{SECRET}'\n{}", String::from_utf8_lossy(&bytes));
        build(&layers(), text);
    }

    #[test]
    fn arbitrary_text_around_the_secret_never_echoes_it(before in "\\PC{0,64}", after in "\\PC{0,64}") {
        build(&layers(), format!("{before}\n[admin]\ntoken = '{SECRET}'{after}"));
        build(&layers(), format!("{before}{SECRET}{after}"));
    }

    #[test]
    fn structured_documents_never_panic_and_never_echo_the_secret(doc in document()) {
        if let Ok(text) = toml::to_string(&doc) {
            build(&layers(), text);
        }
    }
}
