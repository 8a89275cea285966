//! Runs `examples/embedded.rs`: another program's settings type, its live key consumed, its own names for metrics
//! and audit records, its secret never shown.

#[path = "../examples/embedded.rs"]
#[allow(dead_code, reason = "the example's main is not run here")]
mod embedded;
mod support;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use brokkr_config::{ConfigLayers, ReloadableConfig, check_declarations};
use brokkr_reload::{AuditLog, AuditRecord};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher;
use prometheus_client::{encoding::text::encode, registry::Registry};
use support::{FakeSource, run_for, settle};

/// Every audit record, as text.
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<String>>>);

impl AuditLog for Recorded {
    fn record(&self, record: &AuditRecord<'_>) {
        self.0.lock().expect("lock").push(format!("{record:?}"));
    }
}

impl Recorded {
    fn take(&self) -> String {
        std::mem::take(&mut *self.0.lock().expect("lock")).join("\n")
    }
}

fn shop(toml: &str, resource_version: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("shop".into());
    cm.metadata.resource_version = Some(resource_version.into());
    cm.data = Some(BTreeMap::from([("shop.toml".to_owned(), toml.to_owned())]));
    cm
}

#[actix_rt::test]
async fn the_embedded_shop_follows_its_configmap_under_its_own_names() {
    tokio::time::pause();
    let source = FakeSource::default();
    let audit = Recorded::default();
    let mut registry = Registry::default();
    let options = embedded::options(Arc::new(audit.clone()));
    let config = ReloadableConfig::new(embedded::ShopSettings::default());
    let subsystem =
        embedded::start(ConfigLayers::default(), &config, Arc::new(source.clone()), None, &mut registry, &options);
    let mut greeting = embedded::greeting(&config);
    settle().await;

    source.emit_list(Some(shop("[greeting]\ntext = \"hej\"", "2")));
    settle().await;
    assert!(subsystem.is_ready());
    assert!(greeting.has_changed().expect("open"), "the consumer was told");
    assert_eq!(*greeting.borrow_and_update(), "hej", "the live key is consumed");
    let records = audit.take();
    assert!(records.contains("greeting.text") && records.contains("Applied"), "{records}");

    // The shop's secret may not come from its ConfigMap: refused, named with the shop's variable, never shown.
    source.emit(Ok(watcher::Event::Apply(shop("[greeting]\ntext = \"hi\"\n[payment]\nkey = \"pk-live-4242\"", "3"))));
    run_for(Duration::from_millis(300)).await;
    assert_eq!(config.current().settings.greeting.text, "hej");
    let records = audit.take();
    assert!(records.contains("payment.key is a secret") && records.contains("SHOP__PAYMENT__KEY"), "{records}");
    assert!(!records.contains("pk-live"), "never shown: {records}");

    // A document the shop's own validation refuses: nothing changes, and the record names the key.
    source.emit(Ok(watcher::Event::Apply(shop("[greeting]\ntext = \" \"", "4"))));
    run_for(Duration::from_millis(300)).await;
    assert!(!greeting.has_changed().expect("open"));
    assert_eq!(config.current().settings.greeting.text, "hej");
    let records = audit.take();
    assert!(records.contains("Rejected") && records.contains("greeting.text: must not be empty"), "{records}");

    let mut text = String::new();
    encode(&mut text, &registry).expect("encode");
    assert!(text.contains("shop_config_reloads_total{outcome=\"applied\"} 1"), "{text}");
    assert!(text.contains("shop_config_reloads_total{outcome=\"rejected\"} 2"), "{text}");
    assert!(!text.contains("brokkr_"), "no broker names: {text}");
}

#[test]
fn every_field_of_the_shop_is_declared() {
    let mut sample = embedded::ShopSettings::default();
    sample.config_reload.namespace = Some("shop".into());
    check_declarations(&sample).expect("the example declares every field");
}

#[tokio::test]
async fn the_shops_own_gate_judges_only_the_checkouts_since_the_configuration_was_applied() {
    use std::sync::atomic::Ordering;

    use brokkr_reload::health_gate::{HealthGate, ask};

    let gate = embedded::CheckoutGate::default();
    gate.failures.store(5, Ordering::Relaxed); // before the window: not counted
    let mut window = gate.open();
    let deadline = Duration::from_secs(1);
    assert!(ask(window.as_mut(), deadline).await.to_string().contains("readiness alone"), "no checkout yet");
    gate.checkouts.fetch_add(10, Ordering::Relaxed);
    assert!(ask(window.as_mut(), deadline).await.is_healthy());
    gate.checkouts.fetch_add(1, Ordering::Relaxed);
    gate.failures.fetch_add(1, Ordering::Relaxed);
    let failed = ask(window.as_mut(), deadline).await;
    assert_eq!(failed.to_string(), "unhealthy: 1 of 11 checkouts failed");
    assert_eq!(gate.name(), "checkout");
}
