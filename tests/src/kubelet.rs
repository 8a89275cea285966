//! What the real-node tests read of pods a kubelet runs: readiness, restarts, addresses, and the kernel's view of a
//! broker container (its process, its memory cgroup).

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::ListParams};

use crate::chart::RELEASE;

/// Polls `check` until it gives a value, for at most `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the kubelet reports `pod` Ready.
#[must_use]
pub fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The broker pods of the release.
pub async fn broker_pods(pods: &Api<Pod>) -> Vec<Pod> {
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    pods.list(&ListParams::default().labels(&selector)).await.expect("list pods").items
}

/// The broker pods that are Ready and not being deleted, once there are exactly `count`.
pub async fn ready_pods(pods: &Api<Pod>, count: usize) -> Option<Vec<Pod>> {
    let all = broker_pods(pods).await;
    let ready: Vec<Pod> =
        all.iter().filter(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none()).cloned().collect();
    (ready.len() == count && all.len() == count).then_some(ready)
}

/// The broker container's restart count.
#[must_use]
pub fn restarts(pod: &Pod) -> i32 {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    statuses.into_iter().flatten().filter(|c| c.name == "broker").map(|c| c.restart_count).sum()
}

/// The exit code of the broker container when `pod`'s status says it terminated.
#[must_use]
pub fn exit_code(pod: &Pod) -> Option<i32> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find(|s| s.name == "broker")?.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code)
}

/// The broker container's log as the kubelet keeps it (`<podLogsDir>/<namespace>_<pod>_<uid>/broker/0.log`).
#[must_use]
pub fn container_log(node: &brokkr_testenv::Node, pod: &str) -> Option<String> {
    let folder = std::fs::read_dir(node.dir().join("pod-logs"))
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().contains(&format!("_{pod}_")))?;
    std::fs::read_to_string(folder.path().join("broker/0.log")).ok()
}

/// The pod's name.
#[must_use]
pub fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// The pod's own IP (not the node's).
#[must_use]
pub fn pod_ip(pod: &Pod) -> Option<std::net::Ipv4Addr> {
    pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok()
}

/// The pid of the broker process of pod `pod` (its `POD_NAME`, which the chart sets), as this PID namespace sees it.
#[must_use]
pub fn broker_pid(pod: &str) -> Option<u32> {
    let wanted = format!("POD_NAME={pod}");
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let serves = cmdline.split(|b| *b == 0).take(2).eq([&b"/usr/local/bin/brokkr-broker"[..], b"serve"]);
        let environ = std::fs::read(entry.path().join("environ")).ok()?;
        (serves && environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes())).then_some(pid)
    })
}

/// How many sockets process `pid` holds open (its `/proc/<pid>/fd` links to `socket:`): listeners, accepted
/// connections and its own clients. Connections still in a listen backlog are not the process's yet.
#[must_use]
pub fn open_sockets(pid: u32) -> usize {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the process's open files (/proc/<pid>/fd)");
    let fds = fds.filter_map(Result::ok);
    fds.filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))).count()
}

/// The memory cgroup (v1) or cgroup (v2) folder of process `pid`.
#[must_use]
pub fn memory_cgroup(pid: u32) -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            Some(Path::new("/sys/fs/cgroup/memory").join(path))
        } else if controllers.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            Some(Path::new("/sys/fs/cgroup").join(path))
        } else {
            None
        }
    })
}

/// What the kernel enforces and has seen of a memory cgroup, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupMemory {
    /// The limit (`memory.limit_in_bytes`, or `memory.max`).
    pub limit: u64,
    /// The highest usage so far (`memory.max_usage_in_bytes`, or `memory.peak`, Linux 5.19 and later).
    pub peak: u64,
    /// How often usage reached the limit (`memory.failcnt`, or `memory.events`' `max`).
    pub hit_limit: u64,
}

/// Reads [`CgroupMemory`] from the cgroup folder `dir` (v1 or v2).
#[must_use]
pub fn cgroup_memory(dir: &Path) -> Option<CgroupMemory> {
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok().and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(limit) = read("memory.limit_in_bytes") {
        return Some(CgroupMemory {
            limit,
            peak: read("memory.max_usage_in_bytes")?,
            hit_limit: read("memory.failcnt")?,
        });
    }
    let events = std::fs::read_to_string(dir.join("memory.events")).ok()?;
    let hit_limit = events.lines().find_map(|l| l.strip_prefix("max ")?.trim().parse().ok())?;
    Some(CgroupMemory { limit: read("memory.max")?, peak: read("memory.peak")?, hit_limit })
}

/// Bytes of a memory quantity as a chart writes them (`128Mi`, `1Gi`, `500M`, or a plain number).
#[must_use]
pub fn quantity_bytes(quantity: &str) -> Option<u64> {
    let units =
        [("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("k", 1_000), ("M", 1_000_000), ("G", 1_000_000_000)];
    for (suffix, factor) in units {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return number.parse::<u64>().ok()?.checked_mul(factor);
        }
    }
    quantity.parse().ok()
}
