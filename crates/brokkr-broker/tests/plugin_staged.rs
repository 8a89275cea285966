//! `kubectl brokkr rollout-status` under a staged rollout: done only when the text is the last good one and every
//! ready replica runs it, a rollback or a halt answered at once with the replica and the gate, and the line shows
//! the wave, the bake left and each replica's text and verdict.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use brokkr_broker::{
    plugin::Replica,
    plugin_staged::{Staged, judge_staged},
};
use brokkr_reload::{
    rollout_pods::DOCUMENT_HASH,
    rollout_status::{Failure, Member, Observation, Phase, RolloutStatus, VersionRef},
    rollout_verdict::{GateState, VERDICT, Verdict},
};

const GOOD: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const TARGET: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000 + seconds)
}

fn replica(pod: &str, runs: &str, verdict: Option<GateState>) -> Replica {
    let mut annotations = BTreeMap::from([(DOCUMENT_HASH.to_owned(), runs.to_owned())]);
    if let Some(state) = verdict {
        let verdict = Verdict {
            rollout: "r-1".into(),
            hash: TARGET.into(),
            state,
            through: humantime::format_rfc3339_millis(at(5)).to_string(),
            reason: String::new(),
            gate: "traffic".into(),
        };
        annotations.insert(VERDICT.to_owned(), verdict.to_annotation());
    }
    Replica::new(pod.into(), true, annotations, None)
}

fn progressing() -> RolloutStatus {
    let member = |name: &str| Member { uid: name.into(), name: name.into(), restarts: 0 };
    RolloutStatus {
        rollout_id: "r-1".into(),
        phase: Phase::Progressing,
        target: Some(VersionRef { hash: TARGET.into(), resource_version: "9".into() }),
        last_good: Some(VersionRef { hash: GOOD.into(), resource_version: "7".into() }),
        waves: vec![vec![member("a")], vec![member("b")], vec![member("c")]],
        admitted: 2,
        admitted_at: humantime::format_rfc3339_millis(at(0)).to_string(),
        bake: "2m".into(),
        ..RolloutStatus::default()
    }
}

#[test]
fn a_rollout_in_progress_shows_the_wave_the_bake_left_and_each_replica() {
    let replicas =
        [replica("a", TARGET, Some(GateState::Healthy)), replica("b", TARGET, None), replica("c", GOOD, None)];
    let Staged::Waiting { line } = judge_staged(TARGET, &progressing(), &replicas, at(30)) else { panic!("waiting") };
    assert_eq!(line, "wave 2 of 3, bake 1m 30s left: a healthy, b applied, c waiting");
}

#[test]
fn done_needs_the_text_adopted_as_last_good_and_run_by_every_ready_replica() {
    let mut complete = progressing();
    (complete.phase, complete.last_good) = (Phase::Complete, complete.target.clone());
    let all = [replica("a", TARGET, None), replica("b", TARGET, None)];
    assert_eq!(judge_staged(TARGET, &complete, &all, at(0)), Staged::Done { ready: 2 });
    let lagging = [replica("a", TARGET, None), replica("b", GOOD, None)];
    assert!(matches!(judge_staged(TARGET, &complete, &lagging, at(0)), Staged::Waiting { .. }));
    assert!(matches!(judge_staged(TARGET, &progressing(), &all, at(0)), Staged::Waiting { .. }), "not adopted yet");
}

#[test]
fn a_rollback_a_halt_and_an_invalid_text_are_answered_at_once_with_the_reason() {
    let mut rolled_back = progressing();
    rolled_back.phase = Phase::RolledBack;
    rolled_back.failed.push(Failure {
        hash: TARGET.into(),
        reason: "error ratio 62.0% of 80 requests".into(),
        replica: "a".into(),
        gate: "traffic".into(),
    });
    let Staged::RolledBack { reason } = judge_staged(TARGET, &rolled_back, &[], at(0)) else { panic!("rolled back") };
    assert_eq!(reason, "the traffic gate failed on a: error ratio 62.0% of 80 requests");
    let mut halted = progressing();
    (halted.phase, halted.reason) = (Phase::Halted, "wave 2 not healthy within 10m: b".into());
    assert_eq!(judge_staged(TARGET, &halted, &[], at(0)), Staged::Halted { reason: halted.reason.clone() });
    let mut invalid = progressing();
    invalid.observed = Some(Observation { hash: "3".repeat(64), verdict: "invalid".into(), reason: "bad".into() });
    assert_eq!(judge_staged(&"3".repeat(64), &invalid, &[], at(0)), Staged::Invalid { reason: "bad".into() });
}
