//! A replica's staged-rollout metrics: the phase of the rollout it last read, and what it did itself. Each replica
//! exports the phase it sees, so an alert takes the maximum over the Deployment's pods.

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::rollout_status::{Phase, RolloutStatus};

type PhaseLabel = [(&'static str, &'static str); 1];

const PHASES: [Phase; 5] = [Phase::Idle, Phase::Progressing, Phase::Halted, Phase::RolledBack, Phase::Complete];

/// `brokkr_rollout_*`. Cheap to clone; clones share values.
#[derive(Debug, Clone, Default)]
pub struct RolloutMetrics {
    phase: Family<PhaseLabel, Gauge>,
    wave: Gauge,
    waves: Gauge,
    /// Rollbacks this replica performed (a failed or superseded text put back to the last good one).
    pub rollbacks: Counter,
    /// Times this replica's health gate failed a text it was baking.
    pub gate_failures: Counter,
}

impl RolloutMetrics {
    /// Registers the metrics, every phase at 0.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        for phase in PHASES {
            drop(metrics.phase.get_or_create(&[("phase", phase.as_str())]));
        }
        registry.register(
            "brokkr_rollout_phase",
            "1 for the phase of the staged rollout as this replica last read it (Idle, Progressing, Halted, \
             RolledBack, Complete), 0 for the others",
            metrics.phase.clone(),
        );
        registry.register("brokkr_rollout_wave", "Waves of the staged rollout admitted so far", metrics.wave.clone());
        registry.register("brokkr_rollout_waves", "Waves of the staged rollout in all", metrics.waves.clone());
        registry.register(
            "brokkr_rollout_rollbacks",
            "Times this replica put the last good configuration back",
            metrics.rollbacks.clone(),
        );
        registry.register(
            "brokkr_rollout_gate_failures",
            "Times this replica's health gate failed a configuration it was baking",
            metrics.gate_failures.clone(),
        );
        metrics
    }

    /// Shows `status`.
    pub fn saw(&self, status: &RolloutStatus) {
        for phase in PHASES {
            self.phase.get_or_create(&[("phase", phase.as_str())]).set(i64::from(phase == status.phase));
        }
        self.wave.set(i64::try_from(status.admitted).unwrap_or(i64::MAX));
        self.waves.set(i64::try_from(status.waves.len()).unwrap_or(i64::MAX));
    }
}
