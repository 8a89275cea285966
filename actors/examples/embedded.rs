//! Embeds the hot-reload subsystem in a program with its own settings type, and consumes a live key.
//!
//! `shop` has one live setting (`greeting.text`), one secret (`payment.key`) and the reload section; it follows
//! the ConfigMap `shop` (key `shop.toml`) and prints its greeting every time it changes. Run it against a cluster
//! (or the test environment) with `cargo run -p brokkr-reload --example embedded -- KUBECONFIG_FILE`; the test
//! `actors/tests/embedded.rs` runs it against a scripted ConfigMap.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use brokkr_config::{
    AppSettings, ConfigLayers, ReloadSettings, ReloadableConfig, Result, Secret, declaration::Declaration,
    declaration::show, declarations, declare,
};
use brokkr_reload::{
    AuditLog, AuditRecord, ConfigMapSource, Environment, Options, ReloadMetrics, Subsystem,
    events::ReloadEvents,
    health_gate::{GateAnswer, GateWindow, HealthGate, READINESS_ALONE},
    plan,
    registration::connect,
    startup::{STARTUP_READ_TIMEOUT, Startup, read_startup},
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Every setting of `shop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShopSettings {
    /// `[greeting]`.
    pub greeting: Greeting,
    /// `[payment]`.
    pub payment: Payment,
    /// `[config_reload]`: where the ConfigMap is, and the reload timing.
    pub config_reload: ReloadSettings,
}

/// `[greeting]`: live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Greeting {
    /// What the shop says.
    pub text: String,
}

impl Default for Greeting {
    fn default() -> Self {
        Self { text: "hello".into() }
    }
}

/// `[payment]`: restart-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Payment {
    /// Key of the payment API: a secret, never shown.
    pub key: Secret,
}

impl Default for ShopSettings {
    fn default() -> Self {
        let config_reload = ReloadSettings {
            configmap: "shop".into(),
            key: "shop.toml".into(),
            debounce: Duration::from_millis(200),
            ..ReloadSettings::default()
        };
        Self { greeting: Greeting::default(), payment: Payment::default(), config_reload }
    }
}

impl AppSettings for ShopSettings {
    const DECLARATIONS: &'static [Declaration<Self>] = declarations![config_reload;
        declare!(greeting.text, Live, show::text, r#""hej""#, "what the shop says"),
        declare!(secret payment.key, AtRestart, r#""pk-example""#, "key of the payment API"),
    ];
    const ENV_PREFIX: &'static str = "SHOP__";

    fn own_checks(&self, _in_force: &[&str]) -> Result<()> {
        if self.greeting.text.trim().is_empty() {
            return Err(brokkr_config::ConfigError::Invalid {
                key: "greeting.text".into(),
                reason: "must not be empty".into(),
            });
        }
        Ok(())
    }

    fn reload(&self) -> &ReloadSettings {
        &self.config_reload
    }
}

/// An [`AuditLog`] of the shop's own: one line per record on stdout, as the shop logs everything.
#[derive(Debug, Clone, Copy)]
pub struct ShopAudit;

impl AuditLog for ShopAudit {
    fn record(&self, record: &AuditRecord<'_>) {
        match record {
            AuditRecord::Changed(change) => println!("shop audit: {} {} -> {}", change.key, change.old, change.new),
            other => println!("shop audit: {other:?}"),
        }
    }
}

/// The shop's health gate for a staged rollout: a configuration under test is healthy while no checkout has failed
/// since it was applied. The shop's handlers count checkouts; with a rollout on, the shop hands this gate to
/// `RolloutReplica` (crates/brokkr-broker/src/staging.rs shows the wiring with the broker's own gate).
#[derive(Debug, Clone, Default)]
pub struct CheckoutGate {
    /// Checkouts served, as the handlers count them.
    pub checkouts: Arc<AtomicU64>,
    /// Checkouts that failed.
    pub failures: Arc<AtomicU64>,
}

impl HealthGate for CheckoutGate {
    fn name(&self) -> &'static str {
        "checkout"
    }

    fn open(&self) -> Box<dyn GateWindow> {
        let start = (self.checkouts.load(Ordering::Relaxed), self.failures.load(Ordering::Relaxed));
        Box::new(CheckoutWindow { gate: self.clone(), start })
    }
}

/// The counts when the window opened.
struct CheckoutWindow {
    gate: CheckoutGate,
    start: (u64, u64),
}

impl GateWindow for CheckoutWindow {
    fn check(&mut self) -> BoxFuture<'_, GateAnswer> {
        let checkouts = self.gate.checkouts.load(Ordering::Relaxed).saturating_sub(self.start.0);
        let failed = self.gate.failures.load(Ordering::Relaxed).saturating_sub(self.start.1);
        let answer = match (checkouts, failed) {
            (0, _) => GateAnswer::Healthy { basis: READINESS_ALONE.into() },
            (_, 0) => GateAnswer::Healthy { basis: format!("{checkouts} checkouts, none failed") },
            _ => GateAnswer::Unhealthy { reason: format!("{failed} of {checkouts} checkouts failed") },
        };
        Box::pin(std::future::ready(answer))
    }
}

/// The shop's names for what the subsystem shows.
#[must_use]
pub fn options(audit: Arc<dyn AuditLog>) -> Options {
    Options { metric_prefix: "shop_config".into(), event_controller: "shop".into(), audit, ..Options::default() }
}

/// The greeting in force, as the shop's handlers read it: a `watch` of just the slice they need, updated by every
/// reload that changes it.
#[must_use]
pub fn greeting(config: &ReloadableConfig<ShopSettings>) -> watch::Receiver<String> {
    let (send, receive) = watch::channel(config.current().settings.greeting.text.clone());
    let mut snapshots = config.subscribe();
    actix::spawn(async move {
        while snapshots.changed().await.is_ok() {
            let text = snapshots.borrow_and_update().settings.greeting.text.clone();
            send.send_if_modified(|current| std::mem::replace(current, text) != *current);
        }
    });
    receive
}

/// Starts the subsystem for `shop` on `source`, following `config` (what `main` put in force at start).
#[must_use]
pub fn start(
    layers: ConfigLayers<ShopSettings>,
    config: &ReloadableConfig<ShopSettings>,
    source: Arc<dyn ConfigMapSource>,
    events: Option<Arc<dyn ReloadEvents>>,
    registry: &mut prometheus_client::registry::Registry,
    options: &Options,
) -> Subsystem<ShopSettings> {
    let metrics = ReloadMetrics::register_with_prefix(registry, &options.metric_prefix);
    Subsystem::register(source, config.clone(), layers, metrics, events, options)
}

#[actix::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let kubeconfig = std::env::args().nth(1).ok_or("usage: embedded KUBECONFIG_FILE")?;
    // `SHOP__SECTION__KEY` variables above the defaults.
    let layers = ConfigLayers::<ShopSettings>::default().with_env(std::env::vars())?;
    let boot = layers.build(None)?.settings;
    let env = Environment::from_process(Some(kubeconfig.into()));
    let options = options(Arc::new(ShopAudit));
    let access = connect(&plan(&boot, &env), &env, &boot, &options).await?.ok_or("hot reload is off")?;
    // One bounded read before starting, as the broker does, so that the ConfigMap's settings, restart-only ones too,
    // are in force from the start; a ConfigMap that is absent, invalid or unreadable leaves the boot settings.
    let config = match read_startup(access.source.clone(), &layers, &boot, STARTUP_READ_TIMEOUT).await {
        Startup::FromConfigMap { candidate, source } => ReloadableConfig::starting(candidate.settings, Some(source)),
        Startup::Invalid { error, .. } => {
            println!("shop: the ConfigMap is not valid, starting without it: {error}");
            ReloadableConfig::new(boot)
        }
        Startup::Absent | Startup::Unreadable(_) => ReloadableConfig::new(boot),
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let _subsystem = start(layers, &config, access.source, Some(access.events), &mut registry, &options);
    let mut greeting = greeting(&config);
    println!("greeting: {}", *greeting.borrow_and_update());
    while greeting.changed().await.is_ok() {
        println!("greeting: {}", *greeting.borrow_and_update());
    }
    Ok(())
}
