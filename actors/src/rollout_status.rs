//! The staged rollout's state as the `ConfigRollout` object's status holds it (docs/ARCHITECTURE.md, "Status"):
//! written by the coordinator only, read by every replica, `kubectl brokkr`, `kubectl wait` and Argo CD.

use serde::{Deserialize, Serialize};

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// No rollout has run yet, or the last good text is not adopted yet.
    #[default]
    Idle,
    /// Waves are being admitted.
    Progressing,
    /// Stopped for a reason that is not a failed gate (a deadline, a replica's refusal): nothing is admitted further
    /// and nothing rolled back; an edit or `rollout abort` moves on.
    Halted,
    /// A gate failed, or an operator aborted: the target is failed and every replica runs the last good text.
    RolledBack,
    /// Every replica runs the target, which is now the last good text.
    Complete,
}

impl Phase {
    /// The one string form, as the status and `kubectl` show it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Progressing => "Progressing",
            Self::Halted => "Halted",
            Self::RolledBack => "RolledBack",
            Self::Complete => "Complete",
        }
    }
}

/// One version of the document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionRef {
    /// SHA-256 of the text, in hex: the version's identity.
    pub hash: String,
    /// The ConfigMap's resourceVersion when the coordinator read it: for people, never compared.
    #[serde(default)]
    pub resource_version: String,
}

/// A text that failed, kept so that no replica applies it again, byte for byte.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The text's hash.
    pub hash: String,
    /// Why, as the gate or the operator said it.
    pub reason: String,
    /// The replica whose gate failed; empty for an abort.
    #[serde(default)]
    pub replica: String,
    /// The gate that failed (`traffic`, `readiness`, `restarts`), or `abort`.
    pub gate: String,
}

/// A replica in a wave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The Pod's uid: a recreated Pod of the same name is another replica.
    pub uid: String,
    /// The Pod's name, for people.
    pub name: String,
    /// Restarts of the broker container when its wave was admitted; more later is a failed gate.
    #[serde(default)]
    pub restarts: u32,
}

/// The coordinator's judgement of the newest text it saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// The text's hash.
    pub hash: String,
    /// `valid`, `invalid` or `failed` (among the failed texts).
    pub verdict: String,
    /// Why, when not valid.
    #[serde(default)]
    pub reason: String,
}

/// An operator's command, as `spec.promote` and `spec.abort` carry it and the status acknowledges it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Command {
    /// The rollout it is for: a command naming another is ignored.
    pub rollout_id: String,
    /// For `promote`: the wave it skips the bake of (from 1). A promote for another wave is ignored.
    #[serde(default)]
    pub wave: usize,
    /// Who asked (the admission policy holds it to the requester's user name).
    #[serde(default)]
    pub by: String,
}

/// Who wrote a status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Coordinator {
    /// The holder's Pod name.
    pub holder: String,
    /// The Lease's `leaseTransitions` when it took the Lease.
    pub term: i32,
    /// The Lease's uid: a Lease created again starts its terms anew.
    #[serde(default)]
    pub lease: String,
}

/// A condition in the form `kubectl wait --for=condition=…` reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Complete`, `Progressing` or `Degraded`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True` or `False`.
    pub status: String,
    /// The phase that set it.
    pub reason: String,
    /// The status' reason.
    #[serde(default)]
    pub message: String,
}

/// The status of a `ConfigRollout`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RolloutStatus {
    /// Drawn when a rollout starts; every verdict and command names it, and it salts the wave order.
    pub rollout_id: String,
    /// The replica that wrote this status, and its Lease term: a fence against an older holder's writes.
    pub coordinator: Option<Coordinator>,
    /// Where the rollout stands.
    pub phase: Phase,
    /// The text being rolled out.
    pub target: Option<VersionRef>,
    /// The text every replica falls back to; its text is in the `ConfigRolloutDocument`.
    pub last_good: Option<VersionRef>,
    /// The last failed texts, newest last, at most [`MAX_FAILED`].
    pub failed: Vec<Failure>,
    /// The waves, in order.
    pub waves: Vec<Vec<Member>>,
    /// How many waves are admitted (from 1).
    pub admitted: usize,
    /// When the last wave was admitted (RFC 3339).
    pub admitted_at: String,
    /// The policy's bake, as the coordinator follows it (`2m`): with `admittedAt`, when the wave may pass.
    pub bake: String,
    /// The coordinator's judgement of the newest text.
    pub observed: Option<Observation>,
    /// Restart-only keys the target changes: they are not gated, and reach a Pod at its next start.
    pub restart_pending: Vec<String>,
    /// Why the phase is what it is.
    pub reason: String,
    /// The last `spec.promote` acknowledged: acted on, or ignored for naming another rollout or wave.
    pub promoted: Option<Command>,
    /// The last `spec.abort` acknowledged, acted on or ignored.
    pub aborted: Option<Command>,
    /// `Complete`, `Progressing`, `Degraded`.
    pub conditions: Vec<Condition>,
}

/// How many failed texts the status keeps.
pub const MAX_FAILED: usize = 10;

impl RolloutStatus {
    /// Whether `hash` is among the failed texts.
    #[must_use]
    pub fn is_failed(&self, hash: &str) -> bool {
        self.failed.iter().any(|f| f.hash == hash)
    }

    /// Whether the Pod `uid` is in an admitted wave.
    #[must_use]
    pub fn admits(&self, uid: &str) -> bool {
        self.waves.iter().take(self.admitted).flatten().any(|m| m.uid == uid)
    }

    /// The conditions the phase implies, with the reason as their message; `adopted` says whether a last good
    /// text exists (an `Idle` rollout that never adopted one is not complete: nothing is staged yet).
    #[must_use]
    pub fn conditions_for(phase: Phase, reason: &str, adopted: bool) -> Vec<Condition> {
        let condition = |kind: &str, on: bool| Condition {
            kind: kind.into(),
            status: if on { "True" } else { "False" }.into(),
            reason: phase.as_str().into(),
            message: reason.into(),
        };
        vec![
            condition("Complete", phase == Phase::Complete || (phase == Phase::Idle && adopted)),
            condition("Progressing", phase == Phase::Progressing),
            condition("Degraded", matches!(phase, Phase::Halted | Phase::RolledBack)),
        ]
    }
}
