//! The coordinator's decisions as one pure function (docs/ARCHITECTURE.md, "What the coordinator does"): from the
//! status it read, what it observes of the ConfigMap and the Pods, and its own monotonic clock, the next status and
//! what to tell people. No API call is made here; the coordinator actor reads, calls [`step`] and writes.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::{
    rollout_plan::{Step, plan},
    rollout_status::{Command, Failure, MAX_FAILED, Member, Observation, Phase, RolloutStatus, VersionRef},
    rollout_verdict::{GateState, Standing, Verdict},
};

/// The policy, from the file or the environment only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The waves' steps.
    pub steps: Vec<Step>,
    /// How long every member of a wave must stay healthy before the next wave.
    pub bake: Duration,
    /// How long a wave may take to become healthy before the rollout halts.
    pub progress_deadline: Duration,
}

/// The ConfigMap's text as the coordinator judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// Its version.
    pub version: VersionRef,
    /// `Ok` with the restart-only keys it changes, or why it is invalid.
    pub judged: Result<Vec<String>, String>,
}

/// A broker Pod as the coordinator's fresh LIST shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.name`.
    pub name: String,
    /// Its Ready condition.
    pub ready: bool,
    /// `metadata.deletionTimestamp` is set: leaving, which is no failure.
    pub deleting: bool,
    /// Restarts of the broker container.
    pub restarts: u32,
    /// The hash of the document it runs (`config.brokkr.io/document-hash`), if it wrote one.
    pub runs: Option<String>,
    /// Its verdict, if it wrote a readable one.
    pub verdict: Option<Verdict>,
}

/// Everything the coordinator observed for one step.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The ConfigMap's text, if it exists and has the key.
    pub text: Option<Text>,
    /// Every broker Pod of the release.
    pub pods: Vec<PodView>,
    /// The Deployment itself is rolling out (`updatedReplicas < replicas`, or its generation not observed yet).
    pub deployment_rolling: bool,
    /// `spec.promote` and `spec.abort`.
    pub promote: Option<Command>,
    /// See `promote`.
    pub abort: Option<Command>,
    /// The wall clock now, for `admittedAt` and the verdicts' `through`.
    pub wall: SystemTime,
    /// A fresh random id, used if this step starts a rollout.
    pub fresh_id: String,
}

/// What the coordinator remembers between steps and never writes: when it saw the current wave admitted, on its own
/// monotonic clock. A new coordinator starts with none, so it restarts the wave's bake: never shorter than set.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    wave: Option<(String, usize, Instant)>,
}

impl Memory {
    /// How long the current wave has run on this coordinator's clock, starting it now if it is new to it.
    fn wave_age(&mut self, status: &RolloutStatus, now: Instant) -> Duration {
        match &self.wave {
            Some((id, wave, since)) if *id == status.rollout_id && *wave == status.admitted => now - *since,
            _ => {
                self.restart(status, now);
                Duration::ZERO
            }
        }
    }

    pub(crate) fn restart(&mut self, status: &RolloutStatus, now: Instant) {
        self.wave = Some((status.rollout_id.clone(), status.admitted, now));
    }
}

/// Something to tell people, as a Kubernetes Event on the `ConfigRollout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `ConfigRolloutStarted`, `ConfigWaveAdmitted`, `ConfigRolledBack`, `ConfigRolloutHalted`,
    /// `ConfigRolloutComplete`, or `ConfigRolloutRefused` (a text too large to keep).
    pub reason: &'static str,
    /// What happened, naming the replica and the gate where one failed.
    pub message: String,
    /// A warning rather than normal news.
    pub warning: bool,
}

/// The next status and the notices of one step. The caller writes the status if it changed, and gives the Lease up
/// once the phase is no longer `Progressing`.
pub fn step(
    status: &RolloutStatus,
    memory: &mut Memory,
    observed: &Observed,
    policy: &Policy,
    now: Instant,
) -> (RolloutStatus, Vec<Notice>) {
    let mut next = status.clone();
    let mut notices = Vec::new();
    let live: Vec<&PodView> = observed.pods.iter().filter(|p| p.ready && !p.deleting).collect();
    match (&status.last_good, &observed.text) {
        (None, Some(text)) => adopt(&mut next, text, &live),
        (Some(_), Some(text)) => consider(&mut next, memory, text, &live, observed, policy, now, &mut notices),
        (_, None) => {}
    }
    next.bake = humantime::format_duration(policy.bake).to_string();
    if let Some(abort) =
        observed.abort.as_ref().filter(|c| c.rollout_id == next.rollout_id && next.aborted.as_ref() != Some(*c))
    {
        // A halted rollout may be aborted too: its admitted waves still run the target.
        if matches!(next.phase, Phase::Progressing | Phase::Halted) {
            next.aborted = Some(abort.clone());
            let reason = format!("aborted by {}", abort.by);
            let failure = Failure { reason, replica: String::new(), gate: "abort".into(), ..Failure::default() };
            roll_back(&mut next, failure, &mut notices);
        }
    }
    if next.phase == Phase::Progressing {
        progress(&mut next, memory, observed, policy, now, &mut notices);
    }
    // Every command seen is acknowledged, acted on or not: one naming another rollout or wave acts on nothing, and
    // an unacknowledged one would have replicas ask for a coordinator for ever.
    if observed.promote.is_some() && next.promoted != observed.promote {
        next.promoted.clone_from(&observed.promote);
    }
    if observed.abort.is_some() && next.aborted != observed.abort {
        next.aborted.clone_from(&observed.abort);
    }
    next.conditions = RolloutStatus::conditions_for(next.phase, &next.reason, next.last_good.is_some());
    (next, notices)
}

/// With no last good text yet, the ConfigMap's valid text is adopted once every ready replica runs it. The text is
/// named in `observed` either way, so that no replica asks for a coordinator again for it.
fn adopt(next: &mut RolloutStatus, text: &Text, live: &[&PodView]) {
    let (verdict, reason) = match &text.judged {
        Ok(_) => ("valid", String::new()),
        Err(reason) => ("invalid", reason.clone()),
    };
    next.observed = Some(Observation { hash: text.version.hash.clone(), verdict: verdict.into(), reason });
    let lagging = live.iter().filter(|p| p.runs.as_deref() != Some(text.version.hash.as_str())).count();
    if text.judged.is_ok() && !live.is_empty() && lagging == 0 {
        next.last_good = Some(text.version.clone());
        next.target = Some(text.version.clone());
        next.phase = Phase::Complete;
        next.reason = format!("adopted the text every ready replica ({}) runs", live.len());
    } else {
        next.phase = Phase::Idle;
        next.reason = format!(
            "waiting to adopt a last good text: {lagging} of {} ready replicas run another{}",
            live.len(),
            if text.judged.is_ok() { "" } else { "; the ConfigMap's text is invalid" }
        );
    }
}

/// A text the status does not name yet starts a rollout, unless it is invalid, failed, or the last good one.
#[allow(clippy::too_many_arguments)]
fn consider(
    next: &mut RolloutStatus,
    memory: &mut Memory,
    text: &Text,
    live: &[&PodView],
    observed: &Observed,
    policy: &Policy,
    now: Instant,
    notices: &mut Vec<Notice>,
) {
    let hash = &text.version.hash;
    let named = next.target.as_ref().is_some_and(|t| t.hash == *hash)
        || next.observed.as_ref().is_some_and(|o| o.hash == *hash && o.verdict != "valid");
    if named {
        return;
    }
    let observe = |verdict: &str, reason: String| Observation { hash: hash.clone(), verdict: verdict.into(), reason };
    if next.is_failed(hash) {
        next.observed = Some(observe("failed", "among the failed texts: an edit must change it".into()));
        return;
    }
    let restart_pending = match &text.judged {
        Err(reason) => {
            next.observed = Some(observe("invalid", reason.clone()));
            return;
        }
        Ok(keys) => keys.clone(),
    };
    next.observed = Some(observe("valid", String::new()));
    if next.last_good.as_ref().is_some_and(|g| g.hash == *hash) {
        next.target = Some(text.version.clone());
        next.phase = Phase::Complete;
        next.reason = "the ConfigMap holds the last good text again".into();
        next.waves.clear();
        return;
    }
    if live.is_empty() {
        // Nobody to stage it on (the only Pod restarting, say): judged again at the next step.
        next.reason = "a new text waits for a ready replica to stage it on".into();
        return;
    }
    let uids: Vec<&str> = live.iter().map(|p| p.uid.as_str()).collect();
    let waves = plan(&policy.steps, &uids, &observed.fresh_id);
    let member = |uid: &&str| {
        let pod = live.iter().find(|p| p.uid == *uid);
        Member {
            uid: (*uid).into(),
            name: pod.map(|p| p.name.clone()).unwrap_or_default(),
            restarts: pod.map_or(0, |p| p.restarts),
        }
    };
    next.waves = waves.iter().map(|wave| wave.iter().map(member).collect()).collect();
    next.rollout_id.clone_from(&observed.fresh_id);
    next.target = Some(text.version.clone());
    next.restart_pending = restart_pending;
    next.admitted = 1;
    next.admitted_at = humantime::format_rfc3339_millis(observed.wall).to_string();
    next.phase = Phase::Progressing;
    next.reason = format!("wave 1 of {} admitted", next.waves.len());
    memory.restart(next, now);
    notices.push(Notice {
        reason: "ConfigRolloutStarted",
        message: format!("rollout {} of {} started: {}", next.rollout_id, short(hash), next.reason),
        warning: false,
    });
}

/// A rollout in progress: fail it, halt it, or admit the next wave.
fn progress(
    next: &mut RolloutStatus,
    memory: &mut Memory,
    observed: &Observed,
    policy: &Policy,
    now: Instant,
    notices: &mut Vec<Notice>,
) {
    // A status edited by someone else may name a wave past the last: clamped, never indexed.
    next.admitted = next.admitted.clamp(1, next.waves.len().max(1));
    crate::rollout_members::follow_membership(next, memory, observed, now);
    if let Some(failure) = crate::rollout_members::first_failure(next, observed) {
        return match failure.gate.as_str() {
            // The replica's own layers refuse the text: no gate failed, the text may be right elsewhere.
            "rejected" => halt(next, format!("{} refuses the text: {}", failure.replica, failure.reason), notices),
            _ => roll_back(next, failure, notices),
        };
    }
    let age = memory.wave_age(next, now);
    let wave = next.admitted;
    let promoted = observed.promote.as_ref().filter(|c| c.rollout_id == next.rollout_id && c.wave == wave);
    let bake_end = humantime::parse_rfc3339(&next.admitted_at).unwrap_or(observed.wall) + policy.bake;
    let pending: Vec<String> = next
        .waves
        .iter()
        .take(wave)
        .flatten()
        .filter(|m| standing(m, observed, next, bake_end) != Standing::Passes)
        .map(|m| m.name.clone())
        .collect();
    let baked = age >= policy.bake && pending.is_empty();
    if !(baked || promoted.is_some()) {
        if age >= policy.progress_deadline {
            let reason =
                format!("wave {wave} not healthy within {}: {}", show(policy.progress_deadline), pending.join(", "));
            halt(next, reason, notices);
        }
        return;
    }
    if let Some(promote) = promoted {
        next.promoted = Some(promote.clone());
    }
    if observed.deployment_rolling {
        if age >= policy.progress_deadline {
            let waited = show(policy.progress_deadline);
            return halt(
                next,
                format!("wave {wave} passed, but the Deployment's own rollout did not end within {waited}"),
                notices,
            );
        }
        next.reason = format!("wave {wave} passed; waiting for the Deployment's own rollout before the next wave");
        return;
    }
    if wave >= next.waves.len() {
        if next.waves.iter().all(Vec::is_empty) {
            return halt(next, "no replica is left in the rollout's waves".into(), notices);
        }
        next.last_good.clone_from(&next.target);
        next.phase = Phase::Complete;
        next.reason = format!("every replica runs the text after {} waves", next.waves.len());
        notices.push(Notice { reason: "ConfigRolloutComplete", message: next.reason.clone(), warning: false });
        return;
    }
    next.admitted += 1;
    next.admitted_at = humantime::format_rfc3339_millis(observed.wall).to_string();
    for member in &mut next.waves[wave] {
        member.restarts = observed.pods.iter().find(|p| p.uid == member.uid).map_or(0, |p| p.restarts);
    }
    next.reason = format!("wave {} of {} admitted", next.admitted, next.waves.len());
    memory.restart(next, now);
    notices.push(Notice { reason: "ConfigWaveAdmitted", message: next.reason.clone(), warning: false });
}

/// What `member`'s verdict means for the current rollout: it counts only while the member says it runs the target
/// (a replica that rolled back leaves its last verdict on the Pod).
fn standing(member: &Member, observed: &Observed, status: &RolloutStatus, bake_end: SystemTime) -> Standing {
    let hash = status.target.as_ref().map_or("", |t| t.hash.as_str());
    observed
        .pods
        .iter()
        .find(|p| p.uid == member.uid)
        .filter(|p| p.runs.as_deref() == Some(hash))
        .and_then(|p| p.verdict.as_ref())
        .map_or(Standing::Pending, |v| v.standing(&status.rollout_id, hash, bake_end))
}

/// Marks the target failed and every replica back on the last good text.
fn roll_back(next: &mut RolloutStatus, mut failure: Failure, notices: &mut Vec<Notice>) {
    failure.hash = next.target.as_ref().map(|t| t.hash.clone()).unwrap_or_default();
    next.phase = Phase::RolledBack;
    next.reason = match failure.replica.as_str() {
        "" => failure.reason.clone(),
        replica => format!("the {} gate failed on {replica}: {}", failure.gate, failure.reason),
    };
    notices.push(Notice { reason: "ConfigRolledBack", message: next.reason.clone(), warning: true });
    next.failed.push(failure);
    let excess = next.failed.len().saturating_sub(MAX_FAILED);
    next.failed.drain(..excess);
}

fn halt(next: &mut RolloutStatus, reason: String, notices: &mut Vec<Notice>) {
    next.phase = Phase::Halted;
    next.reason = reason;
    notices.push(Notice { reason: "ConfigRolloutHalted", message: next.reason.clone(), warning: true });
}

/// The gate a verdict about the current rollout and text says failed, and why: `rejected` for a replica whose own
/// layers refuse the text.
pub(crate) fn failing(verdict: &Verdict, rollout: &str, hash: &str) -> Option<(String, String)> {
    if verdict.rollout != rollout || !verdict.hash.eq_ignore_ascii_case(hash) {
        return None;
    }
    let gate = if verdict.gate.is_empty() { "application" } else { verdict.gate.as_str() };
    match verdict.state {
        GateState::Failed => Some((gate.into(), verdict.reason.clone())),
        GateState::Rejected => Some(("rejected".into(), verdict.reason.clone())),
        GateState::Applied | GateState::Healthy => None,
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn show(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}
