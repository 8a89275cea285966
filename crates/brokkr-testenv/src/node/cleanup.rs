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

/// The ids of every container of this node's containerd, running or not.
pub(super) fn containers(socket: &Path) -> Vec<String> {
    let listed = ctr(socket).args(["--namespace=k8s.io", "containers", "list", "-q"]).output();
    listed.map(|out| String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()).unwrap_or_default()
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

/// Removes the cgroups runc made for `containers` in every hierarchy (a container killed with its containerd keeps
/// its empty cgroup otherwise), then the `k8s.io` parent once empty (a cgroup in use, such as another containerd's,
/// cannot be removed).
pub(super) fn remove_cgroups(containers: &[String]) {
    let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else { return };
    for hierarchy in hierarchies.filter_map(Result::ok) {
        let parent = hierarchy.path().join("k8s.io");
        for id in containers.iter().filter(|id| !id.is_empty() && !id.contains('/') && !id.starts_with('.')) {
            let _ = fs::remove_dir(parent.join(id));
        }
        let _ = fs::remove_dir(parent);
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
