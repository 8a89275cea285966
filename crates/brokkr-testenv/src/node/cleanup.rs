//! Puts the machine back as it was when a node stops: its containers' processes, mounts, log links and cgroups
//! gone, and the kernel settings the kubelet changed written back.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use super::KERNEL_TUNABLES;

/// The values of [`KERNEL_TUNABLES`] now, to put back with [`restore_kernel_tunables`].
#[must_use]
pub fn kernel_tunables() -> Vec<(PathBuf, String)> {
    KERNEL_TUNABLES
        .iter()
        .map(|name| Path::new("/proc/sys").join(name))
        .filter_map(|path| Some((path.clone(), fs::read_to_string(&path).ok()?)))
        .collect()
}

/// Writes back what [`kernel_tunables`] read.
pub fn restore_kernel_tunables(saved: &[(PathBuf, String)]) {
    for (path, value) in saved {
        let _ = fs::write(path, value);
    }
}

/// Kills every task (container process) this node's containerd runs.
pub(super) fn kill_tasks(socket: &Path) {
    let Ok(listed) = ctr(socket).args(["--namespace=k8s.io", "tasks", "list", "-q"]).output() else { return };
    for task in String::from_utf8_lossy(&listed.stdout).lines() {
        let _ = ctr(socket).args(["--namespace=k8s.io", "tasks", "kill", "--signal", "KILL", task]).status();
    }
}

fn ctr(socket: &Path) -> Command {
    let mut command = Command::new("ctr");
    command.arg(format!("--address={}", socket.display()));
    command
}

/// The ids of every container of this node's containerd, running or not.
pub(super) fn containers(socket: &Path) -> Vec<String> {
    let listed = ctr(socket).args(["--namespace=k8s.io", "containers", "list", "-q"]).output();
    listed.map(|out| String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()).unwrap_or_default()
}

/// Removes the cgroups runc made for `containers` below `k8s.io` (containerd's namespace; the kubelet gives pods no
/// parent of their own with `cgroupsPerQOS` off), in every hierarchy (cgroup v1) or the unified one (v2): a container
/// killed with its containerd keeps its empty cgroup otherwise. Then `k8s.io` itself, once empty. Only empty cgroups
/// can be removed at all, so one still in use, such as another containerd's, is left alone.
pub(super) fn remove_container_cgroups(containers: &[String]) {
    let root = Path::new("/sys/fs/cgroup");
    let mut parents = vec![root.join("k8s.io")];
    if let Ok(hierarchies) = fs::read_dir(root) {
        parents.extend(hierarchies.filter_map(Result::ok).map(|h| h.path().join("k8s.io")));
    }
    // One deadline for them all: a cgroup a stuck process holds must not hold the test's end for minutes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    for parent in parents.into_iter().filter(|p| p.is_dir()) {
        for id in containers.iter().filter(|id| !id.is_empty() && !id.contains('/') && !id.starts_with('.')) {
            let cgroup = parent.join(id);
            if cgroup.is_dir() {
                remove_depth_first(&cgroup, deadline);
            }
        }
        let _ = fs::remove_dir(parent);
    }
}

/// Removes the cgroup `dir` and those below it, deepest first; one whose processes were just killed may be busy
/// for a moment, so each removal is tried again until `deadline`.
fn remove_depth_first(dir: &Path, deadline: std::time::Instant) {
    if let Ok(children) = fs::read_dir(dir) {
        for child in children.filter_map(Result::ok).filter(|c| c.file_type().is_ok_and(|t| t.is_dir())) {
            remove_depth_first(&child.path(), deadline);
        }
    }
    while fs::remove_dir(dir).is_err() && dir.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Removes the links in `folder` that point below `dir`: the kubelet's links to container logs of this node.
pub(super) fn remove_links_into(folder: &Path, dir: &Path) {
    let Ok(entries) = fs::read_dir(folder) else { return };
    for entry in entries.filter_map(Result::ok) {
        if fs::read_link(entry.path()).is_ok_and(|target| target.starts_with(dir)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Kills the containerd shims of this node's containerd (they detach from it, and would outlive it holding the
/// containers' mounts): every process whose command line names `socket`.
pub(super) fn kill_shims(socket: &Path) {
    let Ok(processes) = fs::read_dir("/proc") else { return };
    let socket = socket.to_string_lossy();
    for process in processes.filter_map(Result::ok) {
        let pid = process.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = fs::read(process.path().join("cmdline")) else { continue };
        if cmdline.split(|b| *b == 0).any(|arg| arg == socket.as_bytes()) {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}

/// Unmounts everything the kubelet and containerd mounted below `dir` (the kubelet's bind mount of its root folder,
/// volumes, container root filesystems), deepest first, so that the folder can be removed and no mount outlives the
/// test: the namespace the node runs in is a network namespace only, so its mounts are this machine's.
pub(super) fn unmount_below(dir: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") else { return };
    // Field 5 of a mountinfo line is the mount point, with spaces and the like escaped as octal.
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| Path::new(point).starts_with(dir))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.len()));
    for point in points {
        let _ = Command::new("umount").args(["--lazy", point]).status();
    }
}
