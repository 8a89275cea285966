//! Measurements of broker processes for the benchmark harness: `/proc` figures, readiness and summaries (Linux).

use std::{
    collections::BTreeMap,
    fs, io,
    num::NonZeroUsize,
    process::Command,
    time::{Duration, Instant},
};

use crate::Broker;

/// How often [`observe`] samples memory and per-thread context switches.
const SAMPLE_PERIOD: Duration = Duration::from_secs(1);
/// How often [`wait_ready`] asks `/readyz`.
const READY_POLL: Duration = Duration::from_millis(10);
/// `ESRCH`: reading the `/proc` file of a thread that exited while it was being listed.
const NO_SUCH_PROCESS: i32 = 3;

/// What one process did over an observation window.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// The largest resident set size sampled (once a second), in bytes.
    pub rss_max: u64,
    /// The resident set size at the end of the window, in bytes.
    pub rss_final: u64,
    /// Voluntary plus involuntary context switches of all its threads: how often it woke up.
    pub wakeups: u64,
    /// The window's actual length.
    pub elapsed: Duration,
}

impl Usage {
    /// Wake-ups per second over the window.
    #[must_use]
    pub fn wakeups_per_sec(&self) -> f64 {
        per_sec(self.wakeups, self.elapsed)
    }
}

/// Watches the processes `pids` for `window`: RSS and per-thread context switches every second, bytes read at both
/// ends. Returns one [`Usage`] per pid, in order. Fails if a process is gone or its `/proc` files lack a field.
pub async fn observe(pids: &[u32], window: Duration) -> io::Result<Vec<Usage>> {
    let mut trackers = pids.iter().map(|&pid| Tracker::start(pid)).collect::<io::Result<Vec<_>>>()?;
    let started = Instant::now();
    let mut ticks = tokio::time::interval(SAMPLE_PERIOD);
    ticks.tick().await; // The first tick completes at once: the start was just read.
    while started.elapsed() < window {
        ticks.tick().await;
        for tracker in &mut trackers {
            tracker.sample()?;
        }
    }
    let elapsed = started.elapsed();
    trackers.into_iter().map(|tracker| tracker.finish(elapsed)).collect()
}

/// The counters of one observed process.
struct Tracker {
    pid: u32,
    switches_at_start: BTreeMap<u32, u64>,
    switches_last_seen: BTreeMap<u32, u64>,
    rss_max: u64,
    rss_last: u64,
}

impl Tracker {
    fn start(pid: u32) -> io::Result<Self> {
        let switches = thread_switches(pid)?;
        let rss = rss_bytes(pid)?;
        Ok(Self { pid, switches_last_seen: switches.clone(), switches_at_start: switches, rss_max: rss, rss_last: rss })
    }

    fn sample(&mut self) -> io::Result<()> {
        self.rss_last = rss_bytes(self.pid)?;
        self.rss_max = self.rss_max.max(self.rss_last);
        // Per thread, so that a thread that exits loses at most one period of its switches instead of all of them.
        self.switches_last_seen.extend(thread_switches(self.pid)?);
        Ok(())
    }

    fn finish(self, elapsed: Duration) -> io::Result<Usage> {
        // A thread born during the window counts from zero: all its switches happened in the window.
        let wakeups: u64 = self
            .switches_last_seen
            .iter()
            .map(|(tid, count)| count.saturating_sub(self.switches_at_start.get(tid).copied().unwrap_or(0)))
            .sum();
        Ok(Usage { rss_max: self.rss_max, rss_final: self.rss_last, wakeups, elapsed })
    }
}

/// `VmRSS` of `/proc/PID/status`, in bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let path = format!("/proc/{pid}/status");
    Ok(field(&path, &read(&path)?, "VmRSS")? * 1024)
}

/// Voluntary plus involuntary context switches of each thread of `pid`, by thread id.
fn thread_switches(pid: u32) -> io::Result<BTreeMap<u32, u64>> {
    let dir = format!("/proc/{pid}/task");
    let mut switches = BTreeMap::new();
    for entry in fs::read_dir(&dir).map_err(context(&dir))? {
        let entry = entry.map_err(context(&dir))?;
        let Some(tid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        let path = format!("{dir}/{tid}/status");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(NO_SUCH_PROCESS) => continue,
            Err(e) => return Err(context(&path)(e)),
        };
        let voluntary = field(&path, &text, "voluntary_ctxt_switches")?;
        switches.insert(tid, voluntary + field(&path, &text, "nonvoluntary_ctxt_switches")?);
    }
    Ok(switches)
}

fn read(path: &str) -> io::Result<String> {
    fs::read_to_string(path).map_err(context(path))
}

/// The number after `key:` in a `/proc` file of `key: value [unit]` lines.
fn field(path: &str, text: &str, key: &str) -> io::Result<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| {
            let message = format!("no numeric `{key}:` line in {path} (has the process exited?)");
            io::Error::new(io::ErrorKind::InvalidData, message)
        })
}

fn context(path: &str) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{path}: {e}"))
}

/// Polls `/readyz` every 10 ms until it answers 200; returns the time since `since` (when the broker was spawned).
/// Panics if that takes `timeout` or more since `since`.
pub async fn wait_ready(broker: &Broker, since: Instant, timeout: Duration) -> Duration {
    loop {
        if broker.get("/readyz", None).await.is_some_and(|response| response.status() == 200) {
            return since.elapsed();
        }
        assert!(since.elapsed() < timeout, "broker on port {} not ready {timeout:?} after the spawn", broker.port());
        tokio::time::sleep(READY_POLL).await;
    }
}

/// The `q` quantile (0.0–1.0) of `sorted`, the nearest rank; zero if empty.
#[must_use]
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss, reason = "an index")]
    let i = (sorted.len().saturating_sub(1) as f64 * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// `count` per second over `over`.
#[must_use]
pub fn per_sec(count: u64, over: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let count = count as f64;
    count / over.as_secs_f64()
}

/// `bytes` in MiB.
#[must_use]
pub fn mib(bytes: u64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "sizes far below 2^52")]
    let bytes = bytes as f64;
    bytes / (1024.0 * 1024.0)
}

/// The change from `before` to `after` in percent of `before`; `None` if `before` is zero.
#[must_use]
pub fn percent_change(before: u64, after: u64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss, reason = "figures far below 2^52")]
    let (before, after) = (before as f64, after as f64);
    (before > 0.0).then(|| (after - before) / before * 100.0)
}

/// How many API requests `user` has made so far, by audit verb (`list`, `watch`, `get`, …). A watch is counted
/// when it ends, as the audit log records it then.
#[must_use]
pub fn requests_by_verb(plane: &brokkr_testenv::ControlPlane, user: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for event in plane.requests_by(user) {
        *counts.entry(event["verb"].as_str().unwrap_or("?").to_owned()).or_insert(0) += 1;
    }
    counts
}

/// The requests made between two [`requests_by_verb`] counts, such as `list 3, watch 24`.
#[must_use]
pub fn verbs_between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let made = after.iter().map(|(verb, n)| (verb, n.saturating_sub(before.get(verb).copied().unwrap_or(0))));
    let text: Vec<String> = made.filter(|(_, n)| *n > 0).map(|(verb, n)| format!("{verb} {n}")).collect();
    if text.is_empty() { "none".to_owned() } else { text.join(", ") }
}

/// Prints the Markdown heading of a benchmark run: what ran, on what machine and when, so that tables from
/// different runs can be compared.
pub fn print_header(title: &str) {
    let nproc = shell("nproc", &[])
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(0, NonZeroUsize::get).to_string());
    let system = shell("uname", &["-srm"]).unwrap_or_else(|| "unknown".into());
    let date = shell("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]).unwrap_or_else(|| "unknown".into());
    let command: Vec<String> = std::env::args().collect();
    let broker = std::env::var("BROKKR_BROKER_BIN")
        .unwrap_or_else(|_| "built by the harness in this binary's profile (target/<profile>/brokkr-broker)".into());
    println!("## {title}\n");
    println!("- machine: `nproc` = {nproc}, {system}");
    println!("- date: {date}");
    println!("- command: `{}`", command.join(" "));
    println!("- broker binary: `{broker}`");
    if broker.contains("/debug/") || cfg!(debug_assertions) {
        println!("- **warning: a debug build is involved; the figures are for release builds**");
    }
    println!();
}

/// The trimmed standard output of `program args`, if it ran and succeeded.
fn shell(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok().filter(|output| output.status.success())?;
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
