//! The broker's traffic metrics: requests by status class and CORS refusals, the signals a staged rollout's health
//! gate reads and operators can alert on.

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::StatusCode,
    middleware::Next,
    web,
};
use std::sync::{Arc, RwLock};

use brokkr_config::ReloadableConfig;
use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// Paths the platform calls, not clients: the kubelet's readiness probe and Prometheus' scrape. They are not
/// traffic, so they count in neither metric: a scrape every 15 s would otherwise pass any gate's minimum alone.
const PLATFORM_PATHS: [&str; 2] = ["/readyz", "/metrics"];

/// Whether `path` is one of the platform's own calls, which count as no client's traffic.
#[must_use]
pub fn is_platform(path: &str) -> bool {
    PLATFORM_PATHS.contains(&path)
}

/// The status classes, in the form of the `class` label.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why a cross-origin request was refused: the `kind` label of `brokkr_cors_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumIter)]
pub enum Refusal {
    /// A request whose `Origin` the settings in force do not allow (CORS off included): the browser hides the answer.
    Origin,
    /// A preflight (`OPTIONS` with `Access-Control-Request-Method`) whose origin is not allowed: the browser never
    /// sends the request.
    Preflight,
}

impl Refusal {
    /// The one string form, as the `kind` label shows it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Origin => "origin",
            Self::Preflight => "preflight",
        }
    }
}

type Labels = [(&'static str, &'static str); 1];

/// `brokkr_http_requests_total{class}` and `brokkr_cors_refusals_total{kind}`. Cheap to clone; clones share values.
#[derive(Debug, Clone, Default)]
pub struct TrafficMetrics {
    requests: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    /// Refusals of an origin the settings before the last change allowed: what a change broke, the one kind of
    /// refusal a rollout's gate counts. A client cannot add to it by sending an origin no settings ever allowed.
    regressions: Counter,
    /// The allowed origins of the settings in force before the last change ([`TrafficMetrics::follow`]).
    before: Arc<RwLock<Arc<Vec<String>>>>,
}

/// Counts read at one moment, for the difference over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    /// Requests answered, of every class.
    pub requests: u64,
    /// Requests answered with a 5xx status.
    pub server_errors: u64,
    /// CORS refusals of origins the settings before the last change allowed (both kinds).
    pub cors_refusals: u64,
}

impl TrafficCounts {
    /// What happened between `earlier` and `self`.
    #[must_use]
    pub fn since(self, earlier: Self) -> Self {
        Self {
            requests: self.requests.saturating_sub(earlier.requests),
            server_errors: self.server_errors.saturating_sub(earlier.server_errors),
            cors_refusals: self.cors_refusals.saturating_sub(earlier.cors_refusals),
        }
    }
}

impl TrafficMetrics {
    /// Registers both metrics, with every class and kind at 0, so that `rate()` and alerts see them from the start.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        for class in CLASSES {
            drop(metrics.requests.get_or_create(&[("class", class)]));
        }
        for kind in <Refusal as strum::IntoEnumIterator>::iter() {
            drop(metrics.refusals.get_or_create(&[("kind", kind.as_str())]));
        }
        registry.register(
            "brokkr_http_requests",
            "Requests answered on the HTTP port by status class, readiness probes and scrapes left out",
            metrics.requests.clone(),
        );
        registry.register(
            "brokkr_cors_refusals",
            "Requests whose Origin the CORS settings in force do not allow (origin), and refused preflights (preflight)",
            metrics.refusals.clone(),
        );
        metrics
    }

    /// Counts one answered request.
    pub fn answered(&self, status: StatusCode) {
        let class = CLASSES[usize::from(status.as_u16() / 100).clamp(1, 5) - 1];
        self.requests.get_or_create(&[("class", class)]).inc();
    }

    /// Counts one refused cross-origin request from `origin`.
    pub fn refused(&self, kind: Refusal, origin: &str) {
        self.refusals.get_or_create(&[("kind", kind.as_str())]).inc();
        let before = self.before.read().map(|b| b.clone()).unwrap_or_default();
        if before.iter().any(|allowed| allowed == origin || allowed == "*") {
            self.regressions.inc();
        }
    }

    /// Sets the origins the settings before the last change allowed, as [`TrafficMetrics::follow`] does.
    pub fn allowed_before(&self, origins: Vec<String>) {
        if let Ok(mut slot) = self.before.write() {
            *slot = Arc::new(origins);
        }
    }

    /// Keeps the allowed origins of the settings in force before each change of `config`, for the count of
    /// refusals a change caused.
    pub fn follow(&self, config: &ReloadableConfig) {
        let mut snapshots = config.subscribe();
        let mut current = Arc::new(config.current().settings.cors.allowed_origins.clone());
        let before = self.before.clone();
        actix::spawn(async move {
            // Every change moves the window, CORS changed or not: a later change that leaves CORS alone must not
            // count the refusals of a CORS change made long before it.
            while snapshots.changed().await.is_ok() {
                let next = Arc::new(snapshots.borrow_and_update().settings.cors.allowed_origins.clone());
                let previous = std::mem::replace(&mut current, next);
                if let Ok(mut slot) = before.write() {
                    *slot = previous;
                }
            }
        });
    }

    /// The counts now.
    #[must_use]
    pub fn counts(&self) -> TrafficCounts {
        let get = |family: &Family<Labels, Counter>, labels: &Labels| family.get_or_create(labels).get();
        TrafficCounts {
            requests: CLASSES.iter().map(|class| get(&self.requests, &[("class", class)])).sum(),
            server_errors: get(&self.requests, &[("class", "5xx")]),
            cors_refusals: self.regressions.get(),
        }
    }
}

/// Middleware (use with `actix_web::middleware::from_fn`, outside [`crate::cors::middleware`] so that preflights
/// count): counts each answered request by its status class, when the app has [`TrafficMetrics`].
pub async fn count<B: MessageBody>(req: ServiceRequest, next: Next<B>) -> Result<ServiceResponse<B>, Error> {
    let metrics =
        req.app_data::<web::Data<TrafficMetrics>>().filter(|_| !PLATFORM_PATHS.contains(&req.path())).cloned();
    let answered = next.call(req).await;
    if let Some(metrics) = metrics {
        metrics.answered(match &answered {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        });
    }
    answered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_falls_in_its_class_and_nonstandard_ones_in_the_nearest() {
        let metrics = TrafficMetrics::default();
        for code in [100, 200, 204, 302, 404, 429, 500, 503, 599] {
            metrics.answered(StatusCode::from_u16(code).expect("a status"));
        }
        let class = |c: &'static str| metrics.requests.get_or_create(&[("class", c)]).get();
        assert_eq!([class("1xx"), class("2xx"), class("3xx"), class("4xx"), class("5xx")], [1, 2, 1, 2, 3]);
        assert_eq!(metrics.counts(), TrafficCounts { requests: 9, server_errors: 3, cors_refusals: 0 });
    }

    #[test]
    fn a_window_counts_only_what_happened_in_it() {
        let metrics = TrafficMetrics::default();
        metrics.answered(StatusCode::INTERNAL_SERVER_ERROR);
        let start = metrics.counts();
        metrics.answered(StatusCode::OK);
        metrics.allowed_before(vec!["https://app.example".into()]);
        metrics.refused(Refusal::Preflight, "https://app.example");
        metrics.refused(Refusal::Origin, "https://app.example");
        metrics.refused(Refusal::Origin, "https://never.example");
        assert_eq!(metrics.counts().since(start), TrafficCounts { requests: 1, server_errors: 0, cors_refusals: 2 });
    }
}
