//! The README's settings table, the chart's `values.yaml` and `values.schema.json` are what the declarations
//! generate: a setting added or changed without regenerating them fails here, naming the command.

use std::path::Path;

use brokkr_broker::settings_docs::{COMMAND, render, undeclared_chart_keys};

#[test]
fn the_generated_settings_docs_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let stale: Vec<String> = render(&root)
        .expect("the files have their markers")
        .into_iter()
        .filter(|(_, _, differs)| *differs)
        .map(|(path, _, _)| path.display().to_string())
        .collect();
    assert!(stale.is_empty(), "out of date: {stale:?}; run `{COMMAND}`");
}

#[test]
fn every_setting_the_chart_sets_is_declared() {
    assert!(undeclared_chart_keys().is_empty(), "{:?}", undeclared_chart_keys());
}

#[test]
fn the_generated_schema_and_values_agree_with_the_defaults() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rendered = render(&root).expect("rendered");
    let schema = &rendered.iter().find(|(p, _, _)| p.ends_with("values.schema.json")).expect("schema").1;
    let schema: serde_json::Value = serde_json::from_str(schema).expect("the generated schema is JSON");
    let config = &schema["properties"]["config"]["properties"];
    assert_eq!(config["config_reload"]["properties"]["debounce"]["$ref"], "#/definitions/humantimeDuration");
    assert_eq!(config["config_reload"]["properties"]["enabled"]["type"], "boolean");
    assert_eq!(config["log"]["properties"]["format"]["enum"], serde_json::json!(["text", "json"]));
    assert!(config.get("server").is_none(), "the chart sets it: {config}");
    assert!(config.get("admin").is_none(), "the chart sets every admin setting: {config}");
}

#[test]
fn no_secret_is_ever_part_of_the_charts_config() {
    // Found by adding a second secret on a scratch branch: it was rendered into `config`, that is into the
    // ConfigMap, which anyone with the `view` role can read.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rendered = render(&root).expect("rendered");
    let text = |file: &str| rendered.iter().find(|(p, _, _)| p.ends_with(file)).expect("rendered").1.clone();
    let schema: serde_json::Value = serde_json::from_str(&text("values.schema.json")).expect("JSON");
    let values = text("values.yaml");
    let config_block = values.split("\nconfig:\n").nth(1).expect("a config block");
    for d in brokkr_config::declaration::DECLARATIONS.iter().filter(|d| d.secret) {
        let (section, field) = d.key.split_once('.').expect("section.field");
        let property = &schema["properties"]["config"]["properties"][section]["properties"][field];
        assert!(property.is_null(), "{} is in the schema's config", d.key);
        assert!(!config_block.contains(&format!("`{}`", d.key)), "{} is in values.yaml's config", d.key);
        assert!(values.contains(&format!("# -- `{}` · ", d.key)), "{} is documented in values.yaml", d.key);
    }
}
