//! What a reload writes to the log: the audit records (through an [`AuditLog`], by default lines that no
//! `log.level` can hide), and routine lines at DEBUG.

use brokkr_config::{Change, ReloadOutcome, text::clip};
use tracing::{debug, error, info, warn};

use crate::messages::Trigger;

/// Target of the reload's audit lines (each changed key, applied, rejected, restart required) written by
/// [`TracingAudit`]. The broker's log filter always enables it at INFO, whatever `log.level` says, so a reload that
/// sets `log.level = "off"` is still recorded, and so is the reload that turns logging back on.
pub const AUDIT_TARGET: &str = "brokkr_reload::audit";

/// The most bytes of a changed value an audit line shows, old and new each.
pub const AUDIT_VALUE_LIMIT: usize = 1024;

/// One audit record of a reload; values are redacted already (a secret shows as `<redacted>`).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum AuditRecord<'a> {
    /// One setting changed and is in force.
    Changed(&'a Change),
    /// A new generation is in force.
    Applied {
        /// The generation.
        generation: u64,
        /// Hash of its live settings.
        hash: &'a str,
        /// The ConfigMap's resourceVersion.
        resource_version: &'a str,
        /// What started the reload.
        trigger: Trigger,
    },
    /// A document was rejected; the configuration in force stays.
    Rejected {
        /// Why, naming every key at fault.
        reason: &'a str,
        /// The ConfigMap's resourceVersion.
        resource_version: &'a str,
        /// What started the reload.
        trigger: Trigger,
    },
    /// Restart-only settings differ and wait for the next start.
    RestartRequired {
        /// Their keys.
        keys: &'a [&'static str],
    },
}

/// Where audit records go: an option, so that an application embedding the subsystem keeps its own log target.
///
/// A trait rather than a target string: `tracing` fixes a line's target where the line is written, at compile time.
pub trait AuditLog: Send + Sync {
    /// Writes `record`. Called inside the `ConfigActor`, between reloads: it must not block.
    fn record(&self, record: &AuditRecord<'_>);
}

/// The default [`AuditLog`]: `tracing` lines with target [`AUDIT_TARGET`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAudit;

impl AuditLog for TracingAudit {
    fn record(&self, record: &AuditRecord<'_>) {
        match *record {
            AuditRecord::Changed(c) => {
                let (old, new) = (clip(&c.old, AUDIT_VALUE_LIMIT), clip(&c.new, AUDIT_VALUE_LIMIT));
                info!(target: AUDIT_TARGET, key = c.key, %old, %new, "configuration changed");
            }
            AuditRecord::Applied { generation, hash, resource_version, trigger } => {
                info!(target: AUDIT_TARGET, generation, hash, resource_version, trigger = trigger.as_str(), "configuration applied");
            }
            AuditRecord::Rejected { reason, resource_version, trigger } => error!(
                target: AUDIT_TARGET,
                %reason,
                resource_version,
                trigger = trigger.as_str(),
                "configuration rejected; keeping the last good configuration"
            ),
            AuditRecord::RestartRequired { keys } => warn!(
                target: AUDIT_TARGET,
                ?keys,
                "restart to apply these settings; the running values stay in force"
            ),
        }
    }
}

/// One audit record per changed key, then a summary; a new rejection as an audit record. A re-read that finds
/// nothing new, or the same broken document again, is routine (DEBUG) unless an operator asked for it.
pub(crate) fn log_outcome(
    audit: &dyn AuditLog,
    outcome: &ReloadOutcome,
    (hash, generation, resource_version): (&str, u64, &str),
    trigger: Trigger,
    new_rejection: bool,
) {
    let rv = resource_version;
    match outcome {
        ReloadOutcome::Applied { changes, .. } => {
            for c in changes {
                audit.record(&AuditRecord::Changed(c));
            }
            audit.record(&AuditRecord::Applied { generation, hash, resource_version, trigger });
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
            audit.record(&AuditRecord::Rejected { reason, resource_version, trigger });
        }
    }
}

/// The audit record that restart-only settings wait for a restart; called only when the set of pending keys
/// changed.
pub(crate) fn warn_restart_required(audit: &dyn AuditLog, changes: &[Change]) {
    let keys: Vec<&'static str> = changes.iter().map(|c| c.key).collect();
    audit.record(&AuditRecord::RestartRequired { keys: &keys });
}

/// The WARN that environment variables override ConfigMap keys; called only when that set changed.
pub(crate) fn warn_shadowed(keys: &[String], env_prefix: &str) {
    warn!(?keys, "ConfigMap keys are overridden by {env_prefix}* environment variables");
}

#[cfg(test)]
mod tests {
    use brokkr_config::Change;
    use brokkr_testenv::CapturedLog;

    use super::*;

    #[test]
    fn a_changed_value_is_cut_in_the_audit_line() {
        // Found by review: 256 valid origins make `cors.allowed_origins` up to the 256 KiB document, and the audit
        // line carried old and new whole, on every replica.
        let long = format!("[{}]", vec!["\"https://a-very-long-host-name.example.com\""; 2000].join(", "));
        let change = Change { key: "cors.allowed_origins", old: long.clone(), new: long, live: true };
        let captured = CapturedLog::default();
        tracing::subscriber::with_default(captured.subscriber("info"), || {
            TracingAudit.record(&AuditRecord::Changed(&change));
        });
        let line = captured.text();
        assert!(line.contains("configuration changed"), "{line}");
        assert!(line.len() < 2 * AUDIT_VALUE_LIMIT + 500, "{} bytes", line.len());
    }
}
