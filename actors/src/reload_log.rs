//! What a reload writes to the log: the audit lines that no `log.level` can hide, and routine lines at DEBUG.

use brokkr_config::{Change, ReloadOutcome};
use tracing::{debug, error, info, warn};

use crate::messages::Trigger;

/// Target of the reload's audit lines (each changed key, applied, rejected, restart required). The broker's log
/// filter always enables it at INFO, whatever `log.level` says, so a reload that sets `log.level = "off"` is
/// still recorded, and so is the reload that turns logging back on.
pub const AUDIT_TARGET: &str = "brokkr_reload::audit";

/// One INFO line per changed key, then a summary; a new rejection at ERROR. A re-read that finds nothing new, or
/// the same broken document again, is routine (DEBUG) unless an operator asked for it.
pub(crate) fn log_outcome(
    outcome: &ReloadOutcome,
    hash: &str,
    generation: u64,
    rv: &str,
    trigger: Trigger,
    new_rejection: bool,
) {
    match outcome {
        ReloadOutcome::Applied { changes, .. } => {
            for c in changes {
                info!(target: AUDIT_TARGET, key = c.key, old = %c.old, new = %c.new, "configuration changed");
            }
            info!(target: AUDIT_TARGET, generation, hash, resource_version = rv, trigger = trigger.as_str(), "configuration applied");
        }
        ReloadOutcome::Unchanged { .. } if trigger == Trigger::OnDemand => {
            info!(generation, resource_version = rv, trigger = trigger.as_str(), "configuration unchanged");
        }
        ReloadOutcome::Unchanged { .. } => {
            debug!(generation, resource_version = rv, trigger = trigger.as_str(), "configuration unchanged");
        }
        ReloadOutcome::Rejected { reason } if !new_rejection && trigger != Trigger::OnDemand => {
            debug!(%reason, resource_version = rv, trigger = trigger.as_str(), "configuration still rejected");
        }
        ReloadOutcome::Rejected { reason } => {
            error!(
                target: AUDIT_TARGET,
                %reason,
                resource_version = rv,
                trigger = trigger.as_str(),
                "configuration rejected; keeping the last good configuration"
            );
        }
    }
}

/// The WARN that restart-only settings wait for a restart; called only when the set of pending keys changed.
pub(crate) fn warn_restart_required(changes: &[Change]) {
    let keys: Vec<_> = changes.iter().map(|c| c.key).collect();
    warn!(target: AUDIT_TARGET, ?keys, "restart the broker to apply these settings; the running values stay in force");
}

/// The WARN that environment variables override ConfigMap keys; called only when that set changed.
pub(crate) fn warn_shadowed(keys: &[String]) {
    warn!(?keys, "ConfigMap keys are overridden by BROKKR__* environment variables");
}
