//! `kubectl brokkr` (the `kubectl-brokkr` binary on `PATH`, kubectl's plugin convention): each replica's
//! configuration state as its Pod's `config.brokkr.io/` annotations say it, and a wait for a ConfigMap edit to
//! roll out that a pipeline can use. Lists Pods and reads a ConfigMap: the `view` role is enough.

use std::{
    collections::BTreeMap,
    io::{IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant, SystemTime},
};

use brokkr_config::{Outcome, text::escape};
use brokkr_reload::pod_status::{ANNOTATION_PREFIX, AT, HASH, IN_FORCE, OUTCOME, REASON, RESTART_REQUIRED, SEEN};
use clap::{Parser, Subcommand};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{
    Api, Client,
    api::ListParams,
    config::{KubeConfigOptions, Kubeconfig},
};

/// Exit code of `rollout-status` when a replica rejected the version.
pub const EXIT_REJECTED: u8 = 1;
/// Exit code of `rollout-status` on timeout.
pub const EXIT_TIMEOUT: u8 = 2;
/// Exit code when the plugin could not answer (kubeconfig, permissions, usage).
pub const EXIT_ERROR: u8 = 3;

/// The longest one request to the API server may take: `--timeout` bounds the whole wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest `--timeout`: 100 of humantime's years, far inside what the clock can add.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(100 * 31_557_600);

/// `--timeout`: a humantime duration of at most [`MAX_TIMEOUT`] (a longer one would overflow the clock).
///
/// # Errors
/// Not a duration, or longer than [`MAX_TIMEOUT`].
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if timeout > MAX_TIMEOUT {
        return Err(format!("at most {}", humantime::format_duration(MAX_TIMEOUT)));
    }
    Ok(timeout)
}

/// Each broker replica's configuration, from the annotations it writes on its own Pod.
#[derive(Debug, Parser)]
#[command(name = "kubectl-brokkr", version, about)]
pub struct PluginCli {
    /// Namespace of the brokers; the kubeconfig context's by default.
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,
    /// The brokers' ConfigMap (and, with a staged rollout, the ConfigRollout of the same name).
    #[arg(long, global = true, default_value = "brokkr-broker")]
    pub configmap: String,
    /// The ConfigMap's data key that holds the document.
    #[arg(long, global = true, default_value = "broker.toml")]
    pub key: String,
    /// Label selector of the brokers' Pods.
    #[arg(short = 'l', long, global = true, default_value = "app.kubernetes.io/name=brokkr-broker")]
    pub selector: String,
    /// The chart release: selects its Pods (`app.kubernetes.io/instance`) instead of `--selector`.
    #[arg(long, global = true)]
    pub release: Option<String>,
    /// Kubeconfig file; else `KUBECONFIG` or `~/.kube/config`, as kubectl.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context; else the current one.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// What to show.
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// `kubectl brokkr` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// A table of the replicas: pod, ready, resourceVersion in force, hash, outcome, age, reason.
    Status,
    /// Waits until every ready replica runs the ConfigMap's current resourceVersion, restart-only keys included
    /// (exit 0); exits 1 at once when a replica rejected it, with the reason, 2 on timeout, naming the replicas
    /// that lag, and 3 when it cannot ask.
    ///
    /// With a staged rollout (the chart's `rollout.enabled`) it follows the rollout instead: wave N of M, the bake
    /// left, each replica's text and verdict; it exits 1 at once when the text is rolled back (naming the replica
    /// and the gate), halted, or invalid.
    RolloutStatus {
        /// How long to wait.
        #[arg(long, default_value = "60s", value_parser = parse_timeout)]
        timeout: Duration,
    },
    /// Steers a staged rollout in progress, with your own credentials (you need `get` and `patch` on
    /// `configrollouts.brokkr.io`; the chart's admission policy holds the command to your user name).
    Rollout {
        /// What to do.
        #[command(subcommand)]
        action: RolloutAction,
    },
}

/// `kubectl brokkr rollout` actions.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum RolloutAction {
    /// Skips the rest of the current wave's bake: the next wave is admitted once every replica so far is healthy.
    Promote,
    /// Rolls every replica back to the last good text and marks the text being rolled out failed.
    Abort,
}

/// Why the plugin could not answer.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The kubeconfig could not be read or used.
    #[error("cannot use the kubeconfig")]
    Kubeconfig(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The API server refused or did not answer.
    #[error("{what}")]
    Api {
        /// What was asked.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// `--timeout` reaches past what the clock can hold.
    #[error("--timeout {} is too long to wait for", humantime::format_duration(*.0))]
    TimeoutTooLong(Duration),
    /// Nothing to act on, or an answer that is not what was asked for.
    #[error("{0}")]
    Refused(String),
    /// The API server did not answer within [`REQUEST_TIMEOUT`].
    #[error("{what}: no answer within {}", humantime::format_duration(REQUEST_TIMEOUT))]
    Timeout {
        /// What was asked.
        what: String,
    },
}

impl PluginError {
    /// Whether asking again may help (not a refusal, a missing object or a kubeconfig problem).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Self::Kubeconfig(_) | Self::TimeoutTooLong(_) | Self::Refused(_) => false,
            Self::Api { source: kube::Error::Api(status), .. } => !matches!(status.code, 400 | 401 | 403 | 404),
            Self::Api { .. } | Self::Timeout { .. } => true,
        }
    }
}

/// One replica as its Pod says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Pod name.
    pub pod: String,
    /// Whether the Pod is Ready.
    pub ready: bool,
    /// Its `config.brokkr.io/` annotations, made printable; none when they were written before its container
    /// last started (a previous container's state).
    pub annotations: BTreeMap<String, String>,
}

impl Replica {
    fn get(&self, key: &str) -> &str {
        self.annotations.get(key).map_or("", String::as_str)
    }

    /// The replica `pod` says; its annotations are dropped when written before `started` (its container's start).
    #[must_use]
    pub fn new(
        pod: String,
        ready: bool,
        mut annotations: BTreeMap<String, String>,
        started: Option<SystemTime>,
    ) -> Self {
        annotations.retain(|k, _| k.starts_with(ANNOTATION_PREFIX));
        let written = annotations.get(AT).and_then(|at| humantime::parse_rfc3339(at).ok());
        // RFC 3339 seconds: a container's first write may carry the second it started in.
        if let (Some(started), Some(written)) = (started, written)
            && written + Duration::from_secs(1) < started
        {
            annotations.clear();
        }
        for value in annotations.values_mut() {
            *value = printable(value);
        }
        Self { pod: escape(&pod).into_owned(), ready, annotations }
    }

    fn from_pod(pod: Pod) -> Self {
        let status = pod.status.unwrap_or_default();
        let ready = status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True");
        let started = status
            .container_statuses
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref())
            .map(|t| SystemTime::from(t.0))
            .max();
        let annotations = pod.metadata.annotations.unwrap_or_default();
        Self::new(pod.metadata.name.unwrap_or_default(), ready, annotations, started)
    }
}

/// The longest annotation value printed, in characters.
pub const PRINTED_LIMIT: usize = 512;

/// An annotation's value as the plugin prints it. Anyone who may patch Pods may write one, so a control or format
/// character (a terminal escape sequence, a newline that would forge a line, a bidi override) is shown escaped,
/// and the value is cut at [`PRINTED_LIMIT`] characters.
#[must_use]
pub fn printable(value: &str) -> String {
    escape(value).chars().take(PRINTED_LIMIT).collect()
}

/// The client, namespace and what to read.
pub(crate) struct Target {
    pub(crate) client: Client,
    pub(crate) configmaps: Api<ConfigMap>,
    pods: Api<Pod>,
    pub(crate) namespace: String,
    pub(crate) configmap: String,
    pub(crate) key: String,
    selector: String,
}

impl Target {
    async fn connect(cli: &PluginCli) -> Result<Self, PluginError> {
        let boxed = |e: kube::config::KubeconfigError| PluginError::Kubeconfig(Box::new(e));
        let options = KubeConfigOptions { context: cli.context.clone(), ..KubeConfigOptions::default() };
        let config = match (&cli.kubeconfig, &cli.context) {
            (Some(path), _) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(boxed)?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(boxed)?
            }
            (None, Some(_)) => kube::Config::from_kubeconfig(&options).await.map_err(boxed)?,
            (None, None) => kube::Config::infer().await.map_err(|e| PluginError::Kubeconfig(Box::new(e)))?,
        };
        let namespace = cli.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|e| PluginError::Kubeconfig(Box::new(e)))?;
        let selector = match &cli.release {
            Some(release) => format!("app.kubernetes.io/instance={release}"),
            None => cli.selector.clone(),
        };
        Ok(Self {
            configmaps: Api::namespaced(client.clone(), &namespace),
            pods: Api::namespaced(client.clone(), &namespace),
            client,
            namespace,
            configmap: cli.configmap.clone(),
            key: cli.key.clone(),
            selector,
        })
    }

    /// The replicas by name, then the ConfigMap's resourceVersion: read in that order, a replica never looks newer
    /// than the version it is judged against.
    pub(crate) async fn read(&self) -> Result<(String, Vec<Replica>), PluginError> {
        let what = format!("cannot list Pods {} in {}", self.selector, self.namespace);
        let params = ListParams::default().labels(&self.selector);
        let pods = within(&what, self.pods.list(&params)).await?;
        let mut replicas: Vec<Replica> = pods.items.into_iter().map(Replica::from_pod).collect();
        replicas.sort_by(|a, b| a.pod.cmp(&b.pod));
        Ok((self.current().await?, replicas))
    }

    /// The ConfigMap's resourceVersion now.
    async fn current(&self) -> Result<String, PluginError> {
        let what = format!("cannot read ConfigMap {}/{}", self.namespace, self.configmap);
        let configmap = within(&what, self.configmaps.get(&self.configmap)).await?;
        // Escaped as the annotations it is compared with are (`printable`), and printed.
        Ok(escape(&configmap.metadata.resource_version.unwrap_or_default()).into_owned())
    }
}

/// `request`, given up after [`REQUEST_TIMEOUT`].
pub(crate) async fn within<T>(
    what: &str,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, PluginError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(answer) => answer.map_err(|source| PluginError::Api { what: what.to_owned(), source }),
        Err(_) => Err(PluginError::Timeout { what: what.to_owned() }),
    }
}

/// Runs the plugin; the exit code is the command's answer.
pub async fn run(cli: PluginCli) -> ExitCode {
    let answer = async {
        let target = Target::connect(&cli).await?;
        match cli.command {
            PluginCommand::Status => status(&target).await,
            PluginCommand::RolloutStatus { timeout } => match crate::plugin_staged::staged(&target).await? {
                true => crate::plugin_staged::staged_rollout_status(&target, timeout).await,
                false => rollout_status(&target, timeout).await,
            },
            PluginCommand::Rollout { action } => {
                let abort = matches!(action, RolloutAction::Abort);
                let said = crate::plugin_staged::command(&target.client, &target.namespace, &target.configmap, abort);
                println!("{}", said.await?);
                Ok(ExitCode::SUCCESS)
            }
        }
    };
    match answer.await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", crate::report::chain(&error));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn status(target: &Target) -> Result<ExitCode, PluginError> {
    let (current, replicas) = target.read().await?;
    println!("ConfigMap {}/{} is at resourceVersion {current}", target.namespace, target.configmap);
    print!("{}", table(&replicas, SystemTime::now()));
    Ok(ExitCode::SUCCESS)
}

/// The replicas as a table, one line each, in kubectl's style (columns padded with spaces).
#[must_use]
pub fn table(replicas: &[Replica], now: SystemTime) -> String {
    let mut rows = vec![["POD", "READY", "RESOURCE-VERSION", "HASH", "OUTCOME", "AGE", "REASON"].map(str::to_owned)];
    for r in replicas {
        let age = humantime::parse_rfc3339(r.get(AT)).ok().and_then(|at| now.duration_since(at).ok()).map_or_else(
            || "-".to_owned(),
            |d| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string(),
        );
        let or_dash = |v: &str| if v.is_empty() { "-".to_owned() } else { v.to_owned() };
        rows.push([
            r.pod.clone(),
            if r.ready { "true" } else { "false" }.to_owned(),
            or_dash(r.get(IN_FORCE)),
            or_dash(&r.get(HASH).chars().take(12).collect::<String>()),
            or_dash(r.get(OUTCOME)),
            age,
            or_dash(r.get(REASON)),
        ]);
    }
    let widths: Vec<usize> = (0..7).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// Where a rollout stands: done, refused by a replica, or still waiting on some.
#[derive(Debug, PartialEq, Eq)]
pub enum Rollout {
    /// Every ready replica runs `current`, restart-only keys included (and there is at least one).
    Done {
        /// How many.
        ready: usize,
    },
    /// A replica rejected `current`: it keeps its last good configuration.
    Rejected {
        /// The replica.
        pod: String,
        /// Why.
        reason: String,
    },
    /// Ready replicas that do not run `current` yet.
    Waiting {
        /// Names of the ready replicas that lag, with what they run.
        lagging: Vec<String>,
        /// How many ready replicas there are.
        ready: usize,
    },
}

/// Judges `replicas` against the ConfigMap's `current` resourceVersion.
#[must_use]
pub fn judge(current: &str, replicas: &[Replica]) -> Rollout {
    if let Some(r) = replicas.iter().find(|r| r.get(SEEN) == current && r.get(OUTCOME) == Outcome::Rejected.as_str()) {
        return Rollout::Rejected { pod: r.pod.clone(), reason: r.get(REASON).to_owned() };
    }
    let ready: Vec<&Replica> = replicas.iter().filter(|r| r.ready).collect();
    // A replica waiting for a restart runs the version's live settings only: it lags until it has restarted.
    let lagging: Vec<String> = ready
        .iter()
        .filter(|r| r.get(IN_FORCE) != current || r.get(OUTCOME) == RESTART_REQUIRED)
        .map(|r| match (r.get(IN_FORCE), r.get(OUTCOME)) {
            ("", outcome) if outcome == Outcome::Unread.as_str() => format!("{} (has not read the ConfigMap)", r.pod),
            ("", _) => format!("{} (no state written since it started)", r.pod),
            (_, RESTART_REQUIRED) => format!("{} ({})", r.pod, r.get(REASON)),
            (runs, _) => format!("{} (runs {runs})", r.pod),
        })
        .collect();
    if ready.is_empty() || !lagging.is_empty() {
        return Rollout::Waiting { lagging, ready: ready.len() };
    }
    Rollout::Done { ready: ready.len() }
}

/// Progress: one line rewritten on a terminal, a plain line per change when piped.
pub(crate) struct Progress {
    pub(crate) terminal: bool,
    pub(crate) last: String,
}

impl Progress {
    pub(crate) fn show(&mut self, line: String) {
        if line == self.last {
            return;
        }
        if self.terminal {
            print!("\r\x1b[2K{line}");
            let _ = std::io::stdout().flush();
        } else {
            println!("{line}");
        }
        self.last = line;
    }

    /// A final line, on a line of its own.
    pub(crate) fn finish(&mut self, line: &str) {
        if self.terminal && !self.last.is_empty() {
            println!();
        }
        println!("{line}");
    }
}

async fn rollout_status(target: &Target, timeout: Duration) -> Result<ExitCode, PluginError> {
    let deadline = Instant::now().checked_add(timeout).ok_or(PluginError::TimeoutTooLong(timeout))?;
    let mut progress = Progress { terminal: std::io::stdout().is_terminal(), last: String::new() };
    let waited = humantime::format_duration(timeout);
    loop {
        let (current, replicas) = match attempted(target.read().await, &mut progress, deadline, &waited).await? {
            Attempt::Read(read) => read,
            Attempt::Again => continue,
            Attempt::TimedOut => return Ok(ExitCode::from(EXIT_TIMEOUT)),
        };
        let verdict = judge(&current, &replicas);
        // An answer holds for the version current now: an edit that landed meanwhile is waited for instead.
        if !matches!(verdict, Rollout::Waiting { .. }) && target.current().await.ok().as_ref() != Some(&current) {
            continue;
        }
        match verdict {
            Rollout::Done { ready } => {
                progress.finish(&format!("all {ready} ready replicas run resourceVersion {current}"));
                return Ok(ExitCode::SUCCESS);
            }
            Rollout::Rejected { pod, reason } => {
                let line = format!("{pod} rejected resourceVersion {current} (it keeps its last good configuration)");
                progress.finish(&format!("{line}: {reason}"));
                return Ok(ExitCode::from(EXIT_REJECTED));
            }
            Rollout::Waiting { lagging, .. } if Instant::now() >= deadline => {
                let lagging = if lagging.is_empty() { "no ready replica".to_owned() } else { lagging.join(", ") };
                progress.finish(&format!("timed out after {waited} waiting for resourceVersion {current}: {lagging}"));
                return Ok(ExitCode::from(EXIT_TIMEOUT));
            }
            Rollout::Waiting { lagging, ready } => {
                progress
                    .show(format!("{} of {ready} ready replicas run resourceVersion {current}", ready - lagging.len()));
            }
        }
        until_next_poll(deadline).await;
    }
}

/// What one read of a polling command came to.
pub(crate) enum Attempt<T> {
    /// The answer.
    Read(T),
    /// An error that may pass, before the deadline: read again (it was shown, and a poll's wait is over).
    Again,
    /// An error that may pass, at the deadline: said, and the command ends with [`EXIT_TIMEOUT`].
    TimedOut,
}

/// `read` as a polling command acts on it: an error that may pass is retried until `deadline` (shown on the
/// progress line), then ends the wait; any other error is returned.
pub(crate) async fn attempted<T>(
    read: Result<T, PluginError>,
    progress: &mut Progress,
    deadline: Instant,
    waited: &impl std::fmt::Display,
) -> Result<Attempt<T>, PluginError> {
    match read {
        Ok(read) => Ok(Attempt::Read(read)),
        Err(error) if error.is_transient() && Instant::now() < deadline => {
            progress.show(format!("retrying: {}", crate::report::chain(&error)));
            until_next_poll(deadline).await;
            Ok(Attempt::Again)
        }
        Err(error) if error.is_transient() => {
            progress.finish(&format!("timed out after {waited}: {}", crate::report::chain(&error)));
            Ok(Attempt::TimedOut)
        }
        Err(error) => Err(error),
    }
}

/// Waits a second between two reads of the Pods and the ConfigMap, never past `deadline`, so a timeout is said on
/// time. Polling (two cheap reads a second, for as long as an operator or a pipeline waits) keeps the plugin a
/// plain client; a watch of the Pods would cost the API server less for a very large fleet.
pub(crate) async fn until_next_poll(deadline: Instant) {
    tokio::time::sleep_until((Instant::now() + Duration::from_secs(1)).min(deadline).into()).await;
}
