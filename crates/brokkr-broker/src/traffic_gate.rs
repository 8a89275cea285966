//! The broker's health gate for a staged rollout: the share of failed requests (5xx answers and CORS refusals) since
//! the configuration under test was applied, against a threshold, once there is enough traffic to judge.

use brokkr_reload::health_gate::{GateAnswer, GateWindow, HealthGate, READINESS_ALONE};
use futures::future::BoxFuture;

use crate::traffic::{TrafficCounts, TrafficMetrics};

/// When the traffic gate fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateThresholds {
    /// The highest share of failed requests that still passes, from 0 to 1.
    pub max_error_ratio: f64,
    /// Fewer requests than this in the window: too few to judge, readiness alone decides.
    pub min_requests: u64,
}

/// Judges the broker's own traffic ([`TrafficMetrics`]) over each window.
#[derive(Debug, Clone)]
pub struct TrafficGate {
    traffic: TrafficMetrics,
    thresholds: GateThresholds,
}

impl TrafficGate {
    /// A gate over `traffic` that fails above `thresholds`.
    #[must_use]
    pub const fn new(traffic: TrafficMetrics, thresholds: GateThresholds) -> Self {
        Self { traffic, thresholds }
    }
}

impl HealthGate for TrafficGate {
    fn name(&self) -> &'static str {
        "traffic"
    }

    fn open(&self) -> Box<dyn GateWindow> {
        Box::new(TrafficWindow { gate: self.clone(), start: self.traffic.counts() })
    }
}

/// The counts at the window's start; each check compares the counts now with them.
struct TrafficWindow {
    gate: TrafficGate,
    start: TrafficCounts,
}

impl GateWindow for TrafficWindow {
    fn check(&mut self) -> BoxFuture<'_, GateAnswer> {
        let answer = judge(self.gate.traffic.counts().since(self.start), self.gate.thresholds);
        Box::pin(futures::future::ready(answer))
    }
}

/// The answer for `window`. A request both answered 5xx and refused counts once: failed requests never outnumber
/// requests.
fn judge(window: TrafficCounts, thresholds: GateThresholds) -> GateAnswer {
    let TrafficCounts { requests, server_errors, cors_refusals } = window;
    if requests < thresholds.min_requests.max(1) {
        let basis = format!("{READINESS_ALONE}: {requests} requests, fewer than {}", thresholds.min_requests);
        return GateAnswer::Healthy { basis };
    }
    let failed = server_errors.saturating_add(cors_refusals).min(requests);
    // Counts of one bake stay far below 2^52, where u64 to f64 would round.
    #[allow(clippy::cast_precision_loss)]
    let ratio = failed as f64 / requests as f64;
    let shown = |r: f64| format!("{:.1}%", r * 100.0);
    let detail = format!(
        "error ratio {} of {requests} requests ({server_errors} answered 5xx, {cors_refusals} CORS refusals)",
        shown(ratio)
    );
    if ratio > thresholds.max_error_ratio {
        GateAnswer::Unhealthy { reason: format!("{detail}, over {}", shown(thresholds.max_error_ratio)) }
    } else {
        GateAnswer::Healthy { basis: detail }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use brokkr_reload::health_gate::ask;

    use super::*;
    use crate::traffic::Refusal;

    const LIMITS: GateThresholds = GateThresholds { max_error_ratio: 0.05, min_requests: 20 };

    fn answer(requests: u64, server_errors: u64, cors_refusals: u64) -> GateAnswer {
        judge(TrafficCounts { requests, server_errors, cors_refusals }, LIMITS)
    }

    #[test]
    fn too_little_traffic_is_decided_on_readiness_alone_and_says_so() {
        let GateAnswer::Healthy { basis } = answer(19, 19, 0) else { panic!("healthy below the minimum") };
        assert!(basis.starts_with(READINESS_ALONE), "{basis}");
        assert!(basis.contains("19 requests, fewer than 20"), "{basis}");
        let none = judge(TrafficCounts::default(), GateThresholds { min_requests: 0, ..LIMITS });
        assert!(none.is_healthy(), "no request at all is never a ratio: {none}");
    }

    #[test]
    fn the_ratio_is_compared_with_the_threshold_inclusively() {
        assert!(answer(100, 5, 0).is_healthy(), "5% is not over 5%");
        let GateAnswer::Unhealthy { reason } = answer(100, 3, 3) else { panic!("6% is over 5%") };
        assert!(reason.contains("6.0% of 100 requests (3 answered 5xx, 3 CORS refusals), over 5.0%"), "{reason}");
        assert!(!answer(20, 20, 20).is_healthy(), "everything failed, counted once: {}", answer(20, 20, 20));
    }

    #[tokio::test]
    async fn a_window_judges_only_what_happened_after_it_opened() {
        let traffic = TrafficMetrics::default();
        for _ in 0..50 {
            traffic.answered(StatusCode::SERVICE_UNAVAILABLE);
        }
        let gate = TrafficGate::new(traffic.clone(), LIMITS);
        let mut window = gate.open();
        for _ in 0..30 {
            traffic.answered(StatusCode::OK);
        }
        let healthy = ask(window.as_mut(), std::time::Duration::from_secs(1)).await;
        assert!(healthy.is_healthy(), "the 5xx before the window do not count: {healthy}");
        // Refused by the settings before the change too: not the change's fault, not counted.
        for _ in 0..10 {
            traffic.refused(Refusal::Origin, "https://never.example");
        }
        assert!(ask(window.as_mut(), std::time::Duration::from_secs(1)).await.is_healthy());
        traffic.allowed_before(vec!["https://app.example".into()]);
        for _ in 0..10 {
            traffic.refused(Refusal::Origin, "https://app.example");
        }
        let failed = ask(window.as_mut(), std::time::Duration::from_secs(1)).await;
        assert_eq!(gate.name(), "traffic");
        assert!(!failed.is_healthy(), "10 refusals of 30 requests: {failed}");
    }
}
