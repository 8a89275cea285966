//! The staged rollout coordinator's decisions under paused time (docs/ARCHITECTURE.md, "What the coordinator
//! does"): waves after their bake, a failed gate rolls back, a deadline halts, a newer edit supersedes, members
//! come and go, a new coordinator never shortens a bake, and operators' commands act only on their own rollout.

use std::time::{Duration, SystemTime};

use brokkr_reload::{
    rollout_plan::parse_steps,
    rollout_status::{Command, Phase, RolloutStatus, VersionRef},
    rollout_step::{Memory, Notice, Observed, PodView, Policy, Text, step},
    rollout_verdict::{GateState, Verdict},
};
use tokio::time::Instant;

const BAKE: Duration = Duration::from_secs(120);

fn hash(text: &str) -> String {
    brokkr_reload::admission::DocumentHash::of(text).as_str().to_owned()
}

fn text(content: &str) -> Text {
    Text { version: VersionRef { hash: hash(content), resource_version: "1".into() }, judged: Ok(Vec::new()) }
}

/// A fleet of brokers, the ConfigMap's text, a coordinator's memory and both clocks, stepped together.
struct Fleet {
    status: RolloutStatus,
    memory: Memory,
    observed: Observed,
    policy: Policy,
    notices: Vec<Notice>,
    /// Admitted members apply the target when they write a verdict, as a replica does.
    applies: bool,
}

impl Fleet {
    /// `n` ready brokers that all run `GOOD`, adopted as the last good text.
    fn new(n: usize) -> Self {
        let pods = (0..n)
            .map(|i| PodView {
                uid: format!("uid-{i}"),
                name: format!("brokkr-{i}"),
                ready: true,
                deleting: false,
                restarts: 0,
                runs: Some(hash("good")),
                verdict: None,
            })
            .collect();
        let started = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let observed = Observed {
            text: Some(text("good")),
            pods,
            deployment_rolling: false,
            promote: None,
            abort: None,
            wall: started,
            fresh_id: "r-1".into(),
        };
        let policy = Policy {
            steps: parse_steps(&["1", "25%", "100%"]).expect("steps"),
            bake: BAKE,
            progress_deadline: Duration::from_secs(600),
        };
        let mut fleet = Self {
            status: RolloutStatus::default(),
            memory: Memory::default(),
            observed,
            policy,
            notices: vec![],
            applies: true,
        };
        fleet.step();
        assert_eq!(fleet.status.phase, Phase::Complete, "adopted: {}", fleet.status.reason);
        fleet
    }

    fn step(&mut self) {
        let (next, notices) = step(&self.status, &mut self.memory, &self.observed, &self.policy, Instant::now());
        self.status = next;
        self.notices.extend(notices);
    }

    /// Lets `d` pass on both clocks, then steps.
    async fn after(&mut self, d: Duration) {
        tokio::time::advance(d).await;
        self.observed.wall += d;
        self.step();
    }

    /// Lets `d` pass with every admitted member healthy all along: they write their verdict, then the coordinator
    /// steps.
    async fn healthy_after(&mut self, d: Duration) {
        tokio::time::advance(d).await;
        self.observed.wall += d;
        self.verdicts(GateState::Healthy);
        self.step();
    }

    fn edit(&mut self, content: &str, id: &str) {
        self.observed.text = Some(text(content));
        self.observed.fresh_id = id.into();
        self.step();
    }

    fn pod(&mut self, uid: &str) -> &mut PodView {
        self.observed.pods.iter_mut().find(|p| p.uid == uid).expect("a pod of the fleet")
    }

    /// Every admitted member writes `state` for the current rollout, healthy through now.
    fn verdicts(&mut self, state: GateState) {
        let (id, target) = (self.status.rollout_id.clone(), self.status.target.clone().expect("a target").hash);
        let through = humantime::format_rfc3339_millis(self.observed.wall).to_string();
        let admitted: Vec<String> = self.admitted();
        for uid in admitted {
            let verdict = Verdict {
                rollout: id.clone(),
                hash: target.clone(),
                state,
                through: through.clone(),
                reason: String::new(),
                gate: "traffic".into(),
            };
            let applies = self.applies;
            let pod = self.pod(&uid);
            pod.verdict = Some(verdict);
            if applies {
                pod.runs = Some(target.clone());
            }
        }
    }

    fn admitted(&self) -> Vec<String> {
        self.status.waves.iter().take(self.status.admitted).flatten().map(|m| m.uid.clone()).collect()
    }

    fn sizes(&self) -> Vec<usize> {
        self.status.waves.iter().map(Vec::len).collect()
    }

    fn reasons(&self) -> Vec<&'static str> {
        self.notices.iter().map(|n| n.reason).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_healthy_change_goes_through_every_wave_each_after_its_bake() {
    let mut fleet = Fleet::new(8);
    fleet.edit("target", "r-1");
    assert_eq!((fleet.status.phase, fleet.sizes(), fleet.status.admitted), (Phase::Progressing, vec![1, 1, 6], 1));
    for wave in 1..=3 {
        fleet.healthy_after(BAKE - Duration::from_secs(1)).await;
        assert_eq!(fleet.status.admitted, wave, "wave {wave} bakes for the whole bake time");
        fleet.healthy_after(Duration::from_secs(1)).await;
    }
    assert_eq!(fleet.status.phase, Phase::Complete, "{}", fleet.status.reason);
    assert_eq!(fleet.status.last_good.as_ref().map(|g| g.hash.clone()), Some(hash("target")));
    assert_eq!(
        fleet.reasons(),
        ["ConfigRolloutStarted", "ConfigWaveAdmitted", "ConfigWaveAdmitted", "ConfigRolloutComplete"]
    );
    let complete = fleet.status.conditions.iter().find(|c| c.kind == "Complete").expect("a condition");
    assert_eq!(complete.status, "True");
}

#[tokio::test(start_paused = true)]
async fn a_failed_gate_on_the_first_wave_rolls_back_and_no_other_replica_is_ever_admitted() {
    let mut fleet = Fleet::new(4);
    fleet.edit("harmful", "r-1");
    let canary = fleet.admitted();
    assert_eq!(canary.len(), 1);
    fleet.verdicts(GateState::Failed);
    fleet.pod(&canary[0]).verdict.as_mut().expect("written").reason = "error ratio 62.0% of 80 requests".into();
    fleet.after(Duration::from_secs(5)).await;
    assert_eq!(fleet.status.phase, Phase::RolledBack);
    assert!(fleet.status.is_failed(&hash("harmful")));
    let failure = fleet.status.failed.last().expect("recorded");
    assert_eq!((failure.gate.as_str(), failure.replica.starts_with("brokkr-")), ("traffic", true));
    let notice = fleet.notices.last().expect("an Event");
    assert_eq!((notice.reason, notice.warning), ("ConfigRolledBack", true));
    assert!(notice.message.contains("traffic gate failed on brokkr-"), "{}", notice.message);
    assert_eq!(fleet.admitted(), canary, "nobody else was admitted");
    let degraded = fleet.status.conditions.iter().find(|c| c.kind == "Degraded").expect("a condition");
    assert_eq!(degraded.status, "True");

    // The failed text stays failed: seen again, it starts nothing.
    fleet.after(Duration::from_secs(60)).await;
    fleet.edit("other", "r-2");
    fleet.edit("harmful", "r-3");
    let observed = fleet.status.observed.clone().expect("observed");
    assert_eq!((observed.verdict.as_str(), fleet.status.rollout_id.as_str()), ("failed", "r-2"));
}

#[tokio::test(start_paused = true)]
async fn readiness_lost_or_a_restart_fails_the_gate_but_leaving_does_not() {
    for (breaks, gate) in [("ready", "readiness"), ("restart", "restarts")] {
        let mut fleet = Fleet::new(4);
        fleet.edit("target", "r-1");
        let canary = fleet.admitted()[0].clone();
        match breaks {
            "ready" => fleet.pod(&canary).ready = false,
            _ => fleet.pod(&canary).restarts = 1,
        }
        fleet.after(Duration::from_secs(5)).await;
        assert_eq!(fleet.status.phase, Phase::RolledBack, "{breaks}");
        assert_eq!(fleet.status.failed.last().map(|f| f.gate.clone()).as_deref(), Some(gate));
    }
    // Deleted mid-bake: replaced by the next replica, whose bake starts from then.
    let mut fleet = Fleet::new(4);
    fleet.edit("target", "r-1");
    let canary = fleet.admitted()[0].clone();
    fleet.after(Duration::from_secs(60)).await;
    let pod = fleet.pod(&canary);
    (pod.ready, pod.deleting) = (false, true);
    fleet.after(Duration::from_secs(1)).await;
    assert_eq!(fleet.status.phase, Phase::Progressing, "{}", fleet.status.reason);
    let stand_in = fleet.admitted();
    assert_eq!(stand_in.len(), 1, "the wave never passes empty");
    assert_ne!(stand_in[0], canary);
    fleet.healthy_after(BAKE - Duration::from_secs(30)).await;
    assert_eq!(fleet.status.admitted, 1, "a full bake for the stand-in, not the rest of the canary's");
    fleet.healthy_after(Duration::from_secs(30)).await;
    assert_eq!(fleet.status.admitted, 2);
}

#[tokio::test(start_paused = true)]
async fn a_wave_that_never_becomes_healthy_halts_at_the_deadline_naming_who() {
    let mut fleet = Fleet::new(2);
    fleet.edit("target", "r-1");
    fleet.verdicts(GateState::Applied);
    fleet.after(Duration::from_secs(599)).await;
    assert_eq!(fleet.status.phase, Phase::Progressing);
    fleet.after(Duration::from_secs(1)).await;
    assert_eq!(fleet.status.phase, Phase::Halted);
    let canary = fleet.status.waves[0][0].name.clone();
    assert!(fleet.status.reason.contains(&canary), "{}", fleet.status.reason);
    assert!(!fleet.status.is_failed(&hash("target")), "halted is not failed: nothing rolls back");
}

#[tokio::test(start_paused = true)]
async fn a_new_coordinator_restarts_the_waves_bake_on_its_own_clock() {
    let mut fleet = Fleet::new(4);
    fleet.edit("target", "r-1");
    fleet.after(BAKE - Duration::from_secs(10)).await;
    fleet.memory = Memory::default(); // the Lease moved to another replica
    fleet.healthy_after(Duration::from_secs(11)).await;
    assert_eq!(fleet.status.admitted, 1, "the takeover restarted the bake");
    fleet.healthy_after(BAKE - Duration::from_secs(1)).await;
    assert_eq!(fleet.status.admitted, 1, "not a second short of the bake on the new coordinator's clock");
    fleet.healthy_after(Duration::from_secs(1)).await;
    assert_eq!(fleet.status.admitted, 2);
}

#[tokio::test(start_paused = true)]
async fn a_newer_edit_supersedes_and_a_revert_completes_at_once() {
    let mut fleet = Fleet::new(4);
    fleet.edit("first", "r-1");
    fleet.verdicts(GateState::Healthy);
    fleet.after(Duration::from_secs(30)).await;
    fleet.edit("second", "r-2");
    assert_eq!((fleet.status.rollout_id.as_str(), fleet.status.admitted), ("r-2", 1));
    assert_eq!(fleet.status.target.as_ref().map(|t| t.hash.clone()), Some(hash("second")));
    fleet.after(BAKE).await;
    assert_eq!(fleet.status.admitted, 1, "r-1's verdicts do not count for r-2");
    fleet.healthy_after(Duration::from_secs(1)).await;
    assert_eq!(fleet.status.admitted, 2, "r-2's own do");
    fleet.edit("good", "r-3");
    assert_eq!(fleet.status.phase, Phase::Complete, "{}", fleet.status.reason);
    assert_eq!(fleet.status.admitted, 2, "no wave admitted for a revert");
}

#[tokio::test(start_paused = true)]
async fn an_invalid_edit_starts_nothing_and_the_rollout_in_progress_goes_on() {
    let mut fleet = Fleet::new(4);
    fleet.edit("target", "r-1");
    fleet.observed.text =
        Some(Text { version: VersionRef { hash: hash("broken"), ..VersionRef::default() }, judged: Err("bad".into()) });
    fleet.step();
    let observed = fleet.status.observed.clone().expect("observed");
    assert_eq!((observed.verdict.as_str(), observed.reason.as_str()), ("invalid", "bad"));
    assert_eq!((fleet.status.rollout_id.as_str(), fleet.status.phase), ("r-1", Phase::Progressing));
}

#[tokio::test(start_paused = true)]
async fn promote_and_abort_act_only_on_the_rollout_and_wave_they_name() {
    let mut fleet = Fleet::new(8);
    fleet.edit("target", "r-1");
    let command = |id: &str, wave| Command { rollout_id: id.into(), wave, by: "alice".into() };
    fleet.observed.promote = Some(command("r-0", 1));
    fleet.step();
    fleet.observed.promote = Some(command("r-1", 2));
    fleet.step();
    assert_eq!(fleet.status.admitted, 1, "a stale rollout or wave is ignored");
    fleet.observed.promote = Some(command("r-1", 1));
    fleet.step();
    assert_eq!(fleet.status.admitted, 2, "the bake is skipped");
    assert_eq!(fleet.status.promoted, Some(command("r-1", 1)));
    fleet.observed.abort = Some(command("r-0", 0));
    fleet.step();
    assert_eq!(fleet.status.phase, Phase::Progressing);
    fleet.observed.abort = Some(command("r-1", 0));
    fleet.step();
    assert_eq!(fleet.status.phase, Phase::RolledBack);
    assert_eq!(
        fleet.status.failed.last().map(|f| (f.gate.clone(), f.reason.clone())),
        Some(("abort".into(), "aborted by alice".into()))
    );
}

#[tokio::test(start_paused = true)]
async fn no_wave_is_admitted_while_the_deployment_rolls_and_newcomers_join_the_last_wave() {
    let mut fleet = Fleet::new(4);
    fleet.edit("target", "r-1");
    fleet.observed.deployment_rolling = true;
    fleet.healthy_after(BAKE).await;
    assert_eq!(fleet.status.admitted, 1, "{}", fleet.status.reason);
    fleet.observed.deployment_rolling = false;
    let mut newcomer = fleet.observed.pods[0].clone();
    (newcomer.uid, newcomer.name) = ("uid-new".into(), "brokkr-new".into());
    fleet.observed.pods.push(newcomer);
    fleet.healthy_after(Duration::from_secs(1)).await;
    assert_eq!(fleet.status.admitted, 2);
    assert!(fleet.status.waves.last().expect("waves").iter().any(|m| m.uid == "uid-new"));
}

#[tokio::test(start_paused = true)]
async fn a_halted_rollout_can_be_aborted_and_its_text_is_then_failed() {
    let mut fleet = Fleet::new(2);
    fleet.edit("target", "r-1");
    fleet.after(Duration::from_secs(600)).await;
    assert_eq!(fleet.status.phase, Phase::Halted);
    fleet.observed.abort = Some(Command { rollout_id: "r-1".into(), wave: 0, by: "alice".into() });
    fleet.step();
    assert_eq!(fleet.status.phase, Phase::RolledBack);
    assert!(fleet.status.is_failed(&hash("target")));
    assert_eq!(fleet.status.bake, "2m", "the status says the bake it follows");
}

#[tokio::test(start_paused = true)]
async fn a_replica_whose_own_layers_refuse_the_text_halts_without_failing_it() {
    let mut fleet = Fleet::new(4);
    fleet.edit("target", "r-1");
    fleet.verdicts(GateState::Rejected);
    fleet.step();
    assert_eq!(fleet.status.phase, Phase::Halted);
    assert!(!fleet.status.is_failed(&hash("target")));
    assert!(fleet.status.reason.contains("refuses the text"), "{}", fleet.status.reason);
}

#[tokio::test(start_paused = true)]
async fn with_no_ready_replica_nothing_is_staged_and_nothing_panics() {
    // Found by review: an edit while the only Pod restarted started a rollout of no waves, and the next step
    // indexed wave 1 of none.
    let mut fleet = Fleet::new(1);
    fleet.pod("uid-0").ready = false;
    fleet.edit("target", "r-1");
    fleet.after(Duration::from_secs(5)).await;
    assert_ne!(fleet.status.phase, Phase::Progressing, "{}", fleet.status.reason);
    fleet.pod("uid-0").ready = true;
    fleet.after(Duration::from_secs(5)).await;
    assert_eq!((fleet.status.phase, fleet.status.admitted), (Phase::Progressing, 1), "staged once a replica is Ready");
    // A status someone edited past its waves is clamped, not indexed.
    fleet.status.admitted = 9;
    fleet.step();
}

#[tokio::test(start_paused = true)]
async fn a_healthy_verdict_counts_only_from_a_replica_that_runs_the_target() {
    // Found by review: a replica that had rolled back still passed its wave on its last "healthy" verdict.
    let mut fleet = Fleet::new(4);
    fleet.applies = false;
    fleet.edit("target", "r-1");
    let canary = fleet.admitted()[0].clone();
    fleet.healthy_after(BAKE).await;
    assert_eq!(fleet.status.admitted, 1, "the canary runs the last good text: no pass");
    fleet.pod(&canary).runs = Some(hash("target"));
    fleet.healthy_after(Duration::from_secs(1)).await;
    assert_eq!(fleet.status.admitted, 2);
}

#[tokio::test(start_paused = true)]
async fn a_command_for_another_rollout_or_wave_is_acknowledged_without_acting() {
    // Found by review: an unacknowledged stale command made every replica ask for the Lease every 5 s for ever.
    let mut fleet = Fleet::new(4);
    let stale = Command { rollout_id: "r-0".into(), wave: 1, by: "alice".into() };
    fleet.observed.promote = Some(stale.clone());
    fleet.observed.abort = Some(stale.clone());
    fleet.step();
    assert_eq!((fleet.status.promoted.as_ref(), fleet.status.aborted.as_ref()), (Some(&stale), Some(&stale)));
    assert_eq!(fleet.status.phase, Phase::Complete, "acknowledged, not acted on");
}

#[tokio::test(start_paused = true)]
async fn a_deployment_rollout_that_never_ends_halts_at_the_deadline_and_idle_before_adoption_is_not_complete() {
    // Found by review: a stuck Deployment update (or a decoy Pod of another template) held a rollout Progressing
    // for ever, and a rollout that never adopted a text reported Complete.
    let mut fleet = Fleet::new(4);
    fleet.edit("target", "r-1");
    fleet.observed.deployment_rolling = true;
    fleet.healthy_after(BAKE).await;
    assert_eq!(fleet.status.phase, Phase::Progressing);
    fleet.healthy_after(Duration::from_secs(600)).await;
    assert_eq!(fleet.status.phase, Phase::Halted, "{}", fleet.status.reason);
    let unadopted = RolloutStatus::conditions_for(Phase::Idle, "waiting", false);
    let complete = unadopted.iter().find(|c| c.kind == "Complete").expect("a condition");
    assert_eq!(complete.status, "False");
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_joins_the_last_wave_late_gets_a_whole_bake_before_the_deadline() {
    // Found by the second review: a Pod that joined an admitted wave near its deadline could not bake in time, and
    // a healthy rollout halted.
    let mut fleet = Fleet::new(4);
    fleet.edit("target", "r-1");
    fleet.healthy_after(BAKE).await;
    assert_eq!(fleet.status.admitted, 2);
    fleet.verdicts(GateState::Applied);
    fleet.after(Duration::from_secs(590)).await;
    let mut newcomer = fleet.observed.pods[0].clone();
    (newcomer.uid, newcomer.name, newcomer.verdict) = ("uid-new".into(), "brokkr-new".into(), None);
    fleet.observed.pods.push(newcomer);
    fleet.step();
    fleet.after(Duration::from_secs(30)).await; // past the deadline counted from the wave's admission
    assert_eq!(fleet.status.phase, Phase::Progressing, "{}", fleet.status.reason);
    fleet.healthy_after(BAKE).await;
    assert_eq!(fleet.status.phase, Phase::Complete, "{}", fleet.status.reason);
}
