//! What a replica does with the rollout state it reads (docs/ARCHITECTURE.md, "What a replica does"): the
//! [`Admission`] that answers from the `ConfigRollout` status, and whether the text it runs must be rolled back.

use tokio::sync::watch;

use crate::{
    admission::{Admission, Admit, DocumentHash},
    rollout_status::{Phase, RolloutStatus},
};

/// Answers from the newest `ConfigRollout` status this replica read, for the Pod `uid`. Until one is read it admits
/// nothing: a replica never applies an unstaged text because the coordinator is slow to answer.
#[derive(Debug, Clone)]
pub struct RolloutAdmission {
    status: watch::Receiver<Option<RolloutStatus>>,
    uid: String,
}

impl RolloutAdmission {
    /// Admission for the Pod `uid`, from the statuses sent on `status`.
    #[must_use]
    pub const fn new(status: watch::Receiver<Option<RolloutStatus>>, uid: String) -> Self {
        Self { status, uid }
    }
}

impl Admission for RolloutAdmission {
    fn admit(&self, hash: &DocumentHash) -> Admit {
        match self.status.borrow().as_ref() {
            Some(status) => decide(status, &self.uid, hash.as_str()),
            None => Admit::Hold { reason: "the rollout state has not been read yet".into() },
        }
    }
}

/// Whether the Pod `uid` may apply the text `hash` under `status`. Before the coordinator has adopted a last good
/// text (the policy just turned on, or the object recreated) every valid text applies, as without the policy: the
/// coordinator adopts the text once every ready replica runs it, and stages every edit from then on.
#[must_use]
pub fn decide(status: &RolloutStatus, uid: &str, hash: &str) -> Admit {
    if status.last_good.as_ref().is_none_or(|g| g.hash == hash) {
        return Admit::Yes;
    }
    if let Some(failure) = status.failed.iter().find(|f| f.hash == hash) {
        return Admit::Hold { reason: format!("this text failed its rollout: {}", failure.reason) };
    }
    if status.target.as_ref().is_some_and(|t| t.hash == hash) && in_flight(status.phase) {
        if status.admits(uid) {
            return Admit::Yes;
        }
        let wave = status.waves.iter().position(|w| w.iter().any(|m| m.uid == uid));
        let reason = match wave {
            Some(wave) => format!("waiting for wave {} of {}", wave + 1, status.waves.len()),
            None => "not in the rollout's waves yet".into(),
        };
        return Admit::Hold { reason };
    }
    Admit::Hold { reason: "waiting for the rollout coordinator to stage this text".into() }
}

/// Why the Pod `uid`, running the text `running`, must put the last good text back, if it must: it runs a text
/// that is neither the last good one nor a target it is admitted to (failed, superseded, aborted).
#[must_use]
pub fn stray(status: &RolloutStatus, uid: &str, running: &str) -> Option<String> {
    let last_good = status.last_good.as_ref()?;
    if last_good.hash == running {
        return None;
    }
    let admitted = status.target.as_ref().is_some_and(|t| t.hash == running) && in_flight(status.phase);
    if admitted && status.admits(uid) {
        return None;
    }
    Some(match status.failed.iter().find(|f| f.hash == running) {
        Some(failure) => format!("the text it runs failed: {}", failure.reason),
        None => format!("the text it runs is not staged (rollout {} is {})", status.rollout_id, status.phase.as_str()),
    })
}

/// A target still admitted where it was: rolling out, or halted with its waves kept.
const fn in_flight(phase: Phase) -> bool {
    matches!(phase, Phase::Progressing | Phase::Halted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout_status::{Failure, Member, VersionRef};

    fn version(hash: &str) -> Option<VersionRef> {
        Some(VersionRef { hash: hash.into(), resource_version: String::new() })
    }

    fn status(phase: Phase) -> RolloutStatus {
        let member = |uid: &str| Member { uid: uid.into(), ..Member::default() };
        RolloutStatus {
            rollout_id: "r-1".into(),
            phase,
            target: version("target"),
            last_good: version("good"),
            waves: vec![vec![member("a")], vec![member("b")]],
            admitted: 1,
            failed: vec![Failure {
                hash: "bad".into(),
                reason: "the traffic gate failed".into(),
                ..Failure::default()
            }],
            ..RolloutStatus::default()
        }
    }

    #[test]
    fn a_replica_applies_the_last_good_text_and_a_target_only_in_an_admitted_wave() {
        let progressing = status(Phase::Progressing);
        assert_eq!(decide(&progressing, "b", "good"), Admit::Yes);
        assert_eq!(decide(&progressing, "a", "target"), Admit::Yes);
        assert_eq!(decide(&progressing, "b", "target"), Admit::Hold { reason: "waiting for wave 2 of 2".into() });
        assert_eq!(
            decide(&progressing, "new", "target"),
            Admit::Hold { reason: "not in the rollout's waves yet".into() }
        );
        assert!(matches!(decide(&progressing, "a", "bad"), Admit::Hold { reason } if reason.contains("failed")));
        assert!(matches!(decide(&progressing, "a", "unknown"), Admit::Hold { .. }), "unstaged");
        let rolled_back = RolloutStatus { target: version("bad"), ..status(Phase::RolledBack) };
        assert!(matches!(decide(&rolled_back, "a", "bad"), Admit::Hold { .. }), "failed, on every replica");
        let complete = status(Phase::Complete);
        assert!(matches!(decide(&complete, "a", "target"), Admit::Hold { .. }), "an old target is not a license");
        let unadopted = RolloutStatus { last_good: None, ..status(Phase::Idle) };
        assert_eq!(decide(&unadopted, "b", "anything"), Admit::Yes, "before adoption, as without the policy");
    }

    #[test]
    fn a_replica_running_anything_but_the_last_good_text_or_its_admitted_target_rolls_back() {
        let progressing = status(Phase::Progressing);
        assert_eq!(stray(&progressing, "a", "good"), None);
        assert_eq!(stray(&progressing, "a", "target"), None);
        assert_eq!(stray(&status(Phase::Halted), "a", "target"), None, "a halt keeps the waves as they are");
        assert!(stray(&progressing, "b", "target").is_some(), "not admitted");
        assert!(stray(&progressing, "a", "bad").is_some_and(|r| r.contains("failed")));
        assert!(stray(&status(Phase::RolledBack), "a", "target").is_some(), "aborted or rolled back");
        assert!(stray(&progressing, "a", "superseded").is_some());
        let unadopted = RolloutStatus { last_good: None, ..progressing };
        assert_eq!(stray(&unadopted, "a", "anything"), None, "nothing to roll back to");
    }
}
