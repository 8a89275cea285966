//! The health gate's deadline under paused time: a gate that never answers has failed, and the answer says why.

use std::time::Duration;

use brokkr_reload::health_gate::{GateAnswer, GateWindow, HealthGate, READINESS_ALONE, ReadinessOnly, ask};
use futures::future::BoxFuture;

/// A window whose check never completes, as a gate stuck on a lock or a remote call would.
struct Hanging;

impl GateWindow for Hanging {
    fn check(&mut self) -> BoxFuture<'_, GateAnswer> {
        Box::pin(futures::future::pending())
    }
}

#[tokio::test(start_paused = true)]
async fn a_gate_that_does_not_answer_in_time_has_failed() {
    let started = tokio::time::Instant::now();
    let answer = ask(&mut Hanging, Duration::from_secs(3)).await;
    assert_eq!(started.elapsed(), Duration::from_secs(3), "decided at the deadline, not before or after");
    assert_eq!(answer, GateAnswer::Unhealthy { reason: "the gate gave no answer within 3s".into() });
}

#[tokio::test(start_paused = true)]
async fn without_a_gate_of_its_own_a_program_is_judged_on_readiness_alone() {
    let mut window = ReadinessOnly.open();
    let answer = ask(window.as_mut(), Duration::from_secs(3)).await;
    assert_eq!(answer, GateAnswer::Healthy { basis: READINESS_ALONE.into() });
    assert_eq!(ReadinessOnly.name(), "readiness");
}
