//! The subsystem's Prometheus metrics; names are a contract with dashboards and alerts.

use std::{
    sync::atomic::AtomicU64,
    time::{SystemTime, UNIX_EPOCH},
};

use brokkr_config::Outcome;
use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// Counters and gauges of reloads, watch events and restarts. Cheap to clone; clones share values.
#[derive(Debug, Clone, Default)]
pub struct ReloadMetrics {
    reloads: Family<Vec<(String, String)>, Counter>,
    last_successful: Gauge,
    last_success_timestamp: Gauge<f64, AtomicU64>,
    generation: Gauge,
    info: Family<Vec<(String, String)>, Gauge>,
    restart_required: Gauge,
    /// ConfigMap changes seen by the watcher.
    pub watch_events: Counter,
    /// Changes folded into a pending reload by the debounce window.
    pub debounce_coalesced: Counter,
    /// Watcher restarts by the supervisor.
    pub watcher_restarts: Counter,
}

impl ReloadMetrics {
    /// Creates the metrics and registers them in `registry` under their `brokkr_config_*` names.
    #[must_use]
    pub fn register(registry: &mut Registry) -> Self {
        Self::register_with_prefix(registry, "brokkr_config")
    }

    /// Creates the metrics and registers them in `registry` under `<prefix>_*` names (see
    /// [`crate::Options::metric_prefix`]).
    #[must_use]
    pub fn register_with_prefix(registry: &mut Registry, prefix: &str) -> Self {
        let m = Self::default();
        let registry = registry.sub_registry_with_prefix(prefix);
        registry.register("reloads", "Reloads by outcome", m.reloads.clone());
        registry.register("last_reload_successful", "1 if the last reload was not rejected", m.last_successful.clone());
        registry.register(
            "last_reload_success_timestamp_seconds",
            "Unix time of the last reload that was not rejected",
            m.last_success_timestamp.clone(),
        );
        registry.register("generation", "Generation of the configuration in force", m.generation.clone());
        registry.register("info", "Hash of the configuration in force", m.info.clone());
        registry.register(
            "restart_required",
            "Number of restart-only settings whose new value waits for a restart",
            m.restart_required.clone(),
        );
        registry.register("watch_events", "ConfigMap changes seen by the watch", m.watch_events.clone());
        registry.register(
            "debounce_coalesced",
            "Changes coalesced into a pending reload",
            m.debounce_coalesced.clone(),
        );
        registry.register("watcher_restarts", "Watcher restarts after API errors", m.watcher_restarts.clone());
        m.last_successful.set(1);
        for outcome in Outcome::all() {
            drop(m.reloads.get_or_create(&vec![("outcome".into(), outcome.as_str().into())]));
        }
        m
    }

    /// Records a reload's outcome and the configuration now in force.
    pub fn record_reload(&self, outcome: Outcome, generation: u64, hash: &str, restart_required: usize) {
        self.reloads.get_or_create(&vec![("outcome".into(), outcome.as_str().into())]).inc();
        match outcome {
            Outcome::Rejected => {
                self.last_successful.set(0);
            }
            // Valid, and nothing applied: no failure, and no newer success either.
            Outcome::Held => {
                self.last_successful.set(1);
            }
            Outcome::Applied | Outcome::Unchanged | Outcome::Unread => {
                self.last_successful.set(1);
                self.last_success_timestamp.set(unix_now());
                self.restart_required.set(i64::try_from(restart_required).unwrap_or(i64::MAX));
            }
        }
        self.set_in_force(generation, hash);
    }

    /// Publishes the start-up configuration as a successful load, so that "time since the last successful
    /// reload" alerts measure from process start rather than from 1970.
    pub fn record_startup(&self, hash: &str) {
        self.last_successful.set(1);
        self.last_success_timestamp.set(unix_now());
        self.set_in_force(0, hash);
    }

    /// Publishes the generation and hash in force.
    pub fn set_in_force(&self, generation: u64, hash: &str) {
        self.generation.set(i64::try_from(generation).unwrap_or(i64::MAX));
        self.info.clear();
        self.info.get_or_create(&vec![("hash".into(), hash.into())]).set(1);
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn every_contract_name_is_exposed_and_start_up_counts_as_a_success() {
        let mut registry = Registry::default();
        ReloadMetrics::register(&mut registry).record_startup("abc123");
        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        for name in [
            "brokkr_config_reloads_total{outcome=\"applied\"} 0",
            "brokkr_config_reloads_total{outcome=\"unchanged\"} 0",
            "brokkr_config_reloads_total{outcome=\"rejected\"} 0",
            "brokkr_config_last_reload_successful 1",
            "brokkr_config_generation 0",
            "brokkr_config_info{hash=\"abc123\"} 1",
            "brokkr_config_restart_required 0",
            "brokkr_config_watch_events_total 0",
            "brokkr_config_debounce_coalesced_total 0",
            "brokkr_config_watcher_restarts_total 0",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
        let timestamp = text
            .lines()
            .find_map(|l| l.strip_prefix("brokkr_config_last_reload_success_timestamp_seconds "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("timestamp exposed");
        assert!(timestamp > 1.7e9, "{timestamp}");
    }
}
