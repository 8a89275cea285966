//! Seeded chaos: a schedule of ConfigMap writes interleaved with network and API-server faults, generated from a
//! seed so that a failing run can be replayed, then the promise checked once the faults stop.

use std::{
    collections::BTreeMap,
    fmt,
    time::{Duration, Instant},
};

use brokkr_testenv::FaultProxy;
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::{Broker, Cluster, broker::ADMIN_TOKEN, cluster::BROKER_USER};

/// Planted as `admin.token` in half of the invalid writes (a ConfigMap may not set a secret); it must never come out
/// anywhere.
pub const PLANTED: &str = "chaos-planted-secret-5d2b";

/// How long after the faults stop the final valid version must be in force: debounce (1 s) + twice (a re-list can
/// land on a second connection frozen before the first was noticed) a dead connection's detection (HTTP/2 PING:
/// 20 s of silence + 10 s) and the watcher's backoff cap with jitter (60 s), + slack for a loaded machine.
/// Half-open connections are not cleared when the faults stop.
pub const CONVERGENCE_BOUND: Duration = Duration::from_secs(210);

/// One step of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Write a valid document (live change of `cors.max_age` to this many seconds).
    Valid(u32),
    /// Write a document that must be rejected: odd values by validation, even ones because it sets a secret (which
    /// is planted in it).
    Invalid(u32),
    /// Write a valid document that also changes restart-only keys.
    RestartOnly(u32),
    /// Delete the ConfigMap (the next write re-creates it).
    Delete,
    /// Change only a label: new resourceVersion, same data.
    MetadataOnly,
    /// Reset every connection through the proxy.
    Reset,
    /// Keep every open connection open but swallow its bytes (half-open, as behind a NAT that lost its state).
    Freeze,
    /// New connections stall for this many milliseconds.
    Pause(u64),
    /// Every connection swallows bytes for this many milliseconds.
    Blackhole(u64),
    /// Stop and start kube-apiserver.
    RestartApiServer,
    /// Compact etcd at its current revision.
    Compact,
    /// Take the broker's RoleBinding away for this many milliseconds.
    RevokeRbac(u64),
    /// Let time pass (milliseconds).
    Wait(u64),
}

/// A replayable schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The seed it was generated from.
    pub seed: u64,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed {} ({} steps):", self.seed, self.steps.len())?;
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "  {i:>2}: {step:?}")?;
        }
        Ok(())
    }
}

impl Schedule {
    /// The schedule of `steps` steps for `seed`; the same seed always gives the same schedule.
    #[must_use]
    pub fn generate(seed: u64, steps: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut next_value = 1;
        let mut value = || {
            next_value += 1;
            next_value
        };
        let steps = (0..steps)
            .map(|_| match rng.random_range(0..100) {
                0..25 => Step::Valid(value()),
                25..35 => Step::Invalid(value()),
                35..40 => Step::RestartOnly(value()),
                40..44 => Step::Delete,
                44..50 => Step::MetadataOnly,
                50..57 => Step::Reset,
                57..62 => Step::Freeze,
                62..67 => Step::Pause(rng.random_range(200..3_000)),
                67..72 => Step::Blackhole(rng.random_range(200..3_000)),
                72..75 => Step::RestartApiServer,
                75..79 => Step::Compact,
                79..83 => Step::RevokeRbac(rng.random_range(500..4_000)),
                _ => Step::Wait(rng.random_range(50..2_000)),
            })
            .collect();
        Self { seed, steps }
    }
}

/// What one passing run measured.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// From the end of the faults until the final version was in force.
    pub converged_after: Duration,
    /// `brokkr_config_watcher_restarts_total` at the end.
    pub watcher_restarts: u64,
    /// Requests the broker made to the API server (audit log).
    pub api_requests: usize,
}

fn document(max_age: u32) -> String {
    format!("[config_reload]\ndebounce = \"1s\"\n[cors]\nmax_age = \"{max_age}s\"")
}

/// Runs `schedule` against a fresh control plane and broker; `Err` says which promise broke.
pub async fn run(schedule: &Schedule) -> Result<Outcome, String> {
    let mut cluster = Cluster::start(&format!("chaos-{}", schedule.seed)).await;
    cluster.grant_broker_role().await;
    let mut valid_versions: BTreeMap<String, bool> = BTreeMap::new();
    valid_versions.insert(cluster.apply_config(&document(1)).await, true);
    let proxy = FaultProxy::start(cluster.plane.apiserver_addr()).await.map_err(|e| format!("proxy: {e}"))?;
    // Odd seeds log text, even seeds JSON: the secret must stay out of both.
    let text_log = schedule.seed % 2 == 1;
    let env: &[(&str, &str)] = if text_log { &[("BROKKR__LOG__FORMAT", "")] } else { &[] };
    let mut broker = cluster.start_broker_via(&proxy, env).await;

    for step in &schedule.steps {
        match *step {
            Step::Valid(v) => {
                valid_versions.insert(cluster.apply_config(&document(v)).await, true);
            }
            Step::Invalid(v) => {
                let text = if v % 2 == 1 {
                    "[config_reload]\ndebounce = \"1s\"\n[cors]\nmax_age = \"forever\"".to_owned()
                } else {
                    format!("[config_reload]\ndebounce = \"1s\"\n[admin]\ntoken = \"{PLANTED}\"")
                };
                valid_versions.insert(cluster.apply_config(&text).await, false);
            }
            Step::RestartOnly(v) => {
                let text = format!(
                    "[config_reload]\ndebounce = \"1s\"\nenabled = false\n[cors]\nmax_age = \"{v}s\"\n\
                     [log]\nformat = \"json\""
                );
                valid_versions.insert(cluster.apply_config(&text).await, true);
            }
            Step::Delete => cluster.delete_config_if_present().await,
            Step::MetadataOnly => {
                if let Some((rv, valid)) =
                    cluster.touch_label().await.and_then(|(old, rv)| valid_versions.get(&old).map(|valid| (rv, *valid)))
                {
                    valid_versions.insert(rv, valid);
                }
            }
            Step::Reset => proxy.reset_all(),
            Step::Freeze => proxy.freeze(),
            Step::Pause(ms) => {
                proxy.pause(true);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                proxy.pause(false);
            }
            Step::Blackhole(ms) => {
                proxy.blackhole(true);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                proxy.blackhole(false);
            }
            Step::RestartApiServer => {
                cluster.plane.stop_apiserver();
                cluster.plane.start_apiserver().await.map_err(|e| format!("API server restart: {e}"))?;
                cluster.admin = cluster.plane.admin_client().await.map_err(|e| format!("admin client: {e}"))?;
            }
            Step::Compact => {
                cluster.plane.compact_etcd().await.map_err(|e| format!("compaction: {e}"))?;
            }
            Step::RevokeRbac(ms) => {
                cluster.revoke_broker_binding().await;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                cluster.restore_broker_binding().await;
            }
            Step::Wait(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
    }

    // The faults stop; the last write is a valid one, and it must be in force within the bound.
    let final_value = 86_399;
    let final_rv = cluster.apply_config(&document(final_value)).await;
    valid_versions.insert(final_rv.clone(), true);
    let faults_over = Instant::now();
    loop {
        let status = broker.status_if_up().await;
        let in_force = status.as_ref().is_some_and(|s| {
            s["source"]["resource_version"] == final_rv.as_str() && s["settings"]["cors"]["max_age"] == "23h 59m 59s"
        });
        if in_force {
            break;
        }
        if !broker.is_running() {
            return Err("the broker process exited".into());
        }
        if faults_over.elapsed() > CONVERGENCE_BOUND {
            return Err(format!("final version {final_rv} not in force after {CONVERGENCE_BOUND:?}: {status:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let converged_after = faults_over.elapsed();
    check_invariants(&cluster, &mut broker, &valid_versions, &final_rv).await?;
    let watcher_restarts = broker.metric("brokkr_config_watcher_restarts_total").await.unwrap_or_default();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a counter")]
    let watcher_restarts = watcher_restarts as u64;
    let api_requests = cluster.plane.requests_by(BROKER_USER).len();
    Ok(Outcome { converged_after, watcher_restarts, api_requests })
}

/// The resourceVersion of every "configuration applied" line, from a JSON or a text log.
fn applied_versions(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains("configuration applied"))
        .filter_map(|line| match serde_json::from_str::<serde_json::Value>(line) {
            Ok(json) => json["resource_version"].as_str().map(str::to_owned),
            Err(_) => {
                let rest = &line[line.find("resource_version=")? + "resource_version=".len()..];
                Some(rest.split_whitespace().next()?.trim_matches('"').to_owned())
            }
        })
        .collect()
}

/// No invalid version was ever put in force, and no secret came out through logs, Events, metrics or the admin API.
async fn check_invariants(
    cluster: &Cluster,
    broker: &mut Broker,
    valid_versions: &BTreeMap<String, bool>,
    final_rv: &str,
) -> Result<(), String> {
    let log = std::fs::read_to_string(broker.log_path()).unwrap_or_default();
    let applied = applied_versions(&log);
    if applied.last().map(String::as_str) != Some(final_rv) {
        return Err(format!("the log does not show the final version {final_rv} applied last: {applied:?}"));
    }
    for rv in &applied {
        if valid_versions.get(rv) != Some(&true) {
            return Err(format!("version {rv} was put in force but was not a valid write"));
        }
    }
    // Never back to an older version (resourceVersions of one resource compare as integers, KEP-5504).
    let older = applied.windows(2).find(|w| (w[1].len(), w[1].as_str()) <= (w[0].len(), w[0].as_str()));
    if let Some(pair) = older {
        return Err(format!("version {} was applied after the newer {}: {applied:?}", pair[1], pair[0]));
    }
    let events: Vec<String> = cluster.configmap_events().await.into_iter().map(|(_, _, note)| note).collect();
    let status = broker.status().await.to_string();
    let metrics = broker.metrics().await;
    for (place, text) in [("log", log), ("Events", events.join("\n")), ("status", status), ("metrics", metrics)] {
        for secret in [PLANTED, ADMIN_TOKEN] {
            if text.contains(secret) {
                return Err(format!("the secret {secret:?} appears in the {place}"));
            }
        }
    }
    Ok(())
}
