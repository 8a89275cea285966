//! The names the subsystem uses where an application's dashboards, alerts and log filters see them.

use std::sync::Arc;

use crate::{
    history::ReloadHistory,
    reload_log::{AuditLog, TracingAudit},
};

/// Names and sinks an application embedding the subsystem chooses; [`Options::default`] gives the broker's.
#[derive(Clone)]
pub struct Options {
    /// Prefix of every metric name: `brokkr_config` gives `brokkr_config_reloads_total`.
    pub metric_prefix: String,
    /// The `reportingController` of the Events about reloads, such as `brokkr-broker`.
    pub event_controller: String,
    /// Where the audit records of reloads go (changed keys, applied, rejected, restart required).
    pub audit: Arc<dyn AuditLog>,
    /// The last reloads, for the application's admin API; clones share it.
    pub history: ReloadHistory,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            metric_prefix: "brokkr_config".into(),
            event_controller: "brokkr-broker".into(),
            audit: Arc::new(TracingAudit),
            history: ReloadHistory::default(),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("metric_prefix", &self.metric_prefix)
            .field("event_controller", &self.event_controller)
            .finish_non_exhaustive()
    }
}
