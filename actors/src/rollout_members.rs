//! Who is in a rollout's waves as Pods come and go, and which admitted member failed (docs/ARCHITECTURE.md,
//! "Membership changes" and "A gate fails"): part of the coordinator's pure [`crate::rollout_step::step`].

use tokio::time::Instant;

use crate::{
    rollout_status::{Failure, Member, RolloutStatus},
    rollout_step::{Memory, Observed, PodView, failing},
};

/// Keeps the waves to the Pods that exist: an admitted member that left (deleted, evicted, scaled down) before its
/// wave passed is replaced by the next unadmitted replica and the wave's bake starts again, so no wave passes empty;
/// a member of a later wave that left is dropped; a Pod in no wave joins the last one, and if that wave is admitted,
/// its bake (and its deadline) starts again.
pub(crate) fn follow_membership(next: &mut RolloutStatus, memory: &mut Memory, observed: &Observed, now: Instant) {
    let here = |uid: &str| observed.pods.iter().any(|p| p.uid == uid && !p.deleting);
    let admitted = next.admitted.min(next.waves.len());
    let mut replaced = false;
    for index in 0..admitted {
        let before = next.waves[index].len();
        next.waves[index].retain(|m| here(&m.uid));
        for _ in next.waves[index].len()..before {
            let Some(stand_in) = take_unadmitted(next, observed) else { break };
            next.waves[index].push(stand_in);
            replaced = true;
        }
    }
    for wave in next.waves.iter_mut().skip(admitted) {
        wave.retain(|m| here(&m.uid));
    }
    let mut index = 0;
    next.waves.retain(|wave| {
        index += 1;
        index <= admitted || !wave.is_empty()
    });
    let newcomers: Vec<Member> = observed
        .pods
        .iter()
        .filter(|p| p.ready && !p.deleting && !next.waves.iter().flatten().any(|m| m.uid == p.uid))
        .map(member_of)
        .collect();
    // A newcomer in an admitted wave needs a whole bake of its own before the deadline: the wave's clock restarts.
    let joined_admitted = !newcomers.is_empty() && next.waves.len() <= admitted;
    if let Some(last) = next.waves.last_mut() {
        last.extend(newcomers);
    }
    if replaced || joined_admitted {
        next.admitted_at = humantime::format_rfc3339_millis(observed.wall).to_string();
        memory.restart(next, now);
    }
}

/// The first replica of a later wave, or a ready Pod in no wave, to stand in for a member that left.
fn take_unadmitted(next: &mut RolloutStatus, observed: &Observed) -> Option<Member> {
    let admitted = next.admitted;
    let ready = |m: &Member| observed.pods.iter().any(|p| p.uid == m.uid && p.ready && !p.deleting);
    for wave in next.waves.iter_mut().skip(admitted) {
        if let Some(at) = wave.iter().position(ready) {
            let mut member = wave.remove(at);
            member.restarts = observed.pods.iter().find(|p| p.uid == member.uid).map_or(0, |p| p.restarts);
            return Some(member);
        }
    }
    let planned = |uid: &str| next.waves.iter().flatten().any(|m| m.uid == uid);
    observed.pods.iter().find(|p| p.ready && !p.deleting && !planned(&p.uid)).map(member_of)
}

fn member_of(pod: &PodView) -> Member {
    Member { uid: pod.uid.clone(), name: pod.name.clone(), restarts: pod.restarts }
}

/// The first admitted member whose gate failed: its verdict says so (`failed`, or `rejected` by its own layers), it
/// stopped being Ready while not leaving, or its broker restarted since its wave was admitted.
pub(crate) fn first_failure(next: &RolloutStatus, observed: &Observed) -> Option<Failure> {
    let hash = next.target.as_ref().map_or("", |t| t.hash.as_str());
    next.waves.iter().take(next.admitted).flatten().find_map(|member| {
        let pod = observed.pods.iter().find(|p| p.uid == member.uid)?;
        let failure = |gate: &str, reason: String| Failure {
            hash: hash.into(),
            reason,
            replica: member.name.clone(),
            gate: gate.into(),
        };
        if let Some((gate, reason)) = pod.verdict.as_ref().and_then(|v| failing(v, &next.rollout_id, hash)) {
            return Some(failure(&gate, reason));
        }
        if !pod.ready && !pod.deleting {
            return Some(failure("readiness", "stopped being Ready".into()));
        }
        (pod.restarts > member.restarts).then(|| {
            let times = pod.restarts - member.restarts;
            failure("restarts", format!("restarted {times} times since its wave was admitted"))
        })
    })
}
