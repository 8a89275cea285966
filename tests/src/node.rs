//! The real-node tests' harness: each runs inside namespaces of its own, so that the kubelet, containerd and the
//! pods never touch this machine's interfaces and leave nothing behind, even when the test is killed.

use std::{net::Ipv4Addr, path::Path, process::Command};

use brokkr_testenv::{NetNs, netns};

/// The node's IP: an address on the namespace's `lo` (a kubelet refuses a loopback node IP).
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 123, 0, 2);

/// Prefix of the network namespaces the tests create, followed by the creating process's pid.
const NETNS_PREFIX: &str = "brokkr-e2e-";

/// Folders the kubelet, containerd and the CNI plugins use whatever their configuration says: inside the test's mount
/// namespace each gets an empty tmpfs, so that nothing is written to this machine's (container log links, shim
/// sockets, the CNI result cache).
const HARD_CODED_FOLDERS: [&str; 3] = ["/var/log/containers", "/run/containerd", "/var/lib/cni"];

/// The subnet of the pods on a pod network ([`brokkr_testenv::node::PodNetwork::Bridge`]).
pub const POD_SUBNET: Ipv4Addr = Ipv4Addr::new(10, 124, 0, 0);

/// Runs `body` inside namespaces of the test's own.
///
/// Outside them: resolves the binaries the test needs (their builds need the network), deletes namespaces left by
/// killed runs, creates a network namespace, and re-runs this test binary for `test` alone inside it and inside new
/// PID and mount namespaces (`unshare --pid --fork --kill-child --mount`): when the run ends or is killed, the kernel
/// kills every process it started, containerd's detached shims and the pods included, and drops every mount.
/// Inside: mounts a tmpfs over [`HARD_CODED_FOLDERS`] and runs `body`.
pub fn in_netns(test: &str, body: impl FnOnce()) {
    // Inside means: in the namespace, and pid 1 of the PID namespace `unshare` made (so the mount namespace is the
    // private one, and the tmpfs below never covers this machine's folders).
    if netns::current().is_some() && std::process::id() == 1 {
        for folder in HARD_CODED_FOLDERS {
            std::fs::create_dir_all(folder).expect("create a mount point");
            let mounted = Command::new("mount").args(["-t", "tmpfs", "tmpfs", folder]).status();
            assert!(mounted.is_ok_and(|s| s.success()), "mount a tmpfs over {folder}");
        }
        body();
        return;
    }
    assert!(
        Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0"),
        "{test} needs root: it creates network, PID and mount namespaces and runs containerd"
    );
    let env = [
        ("BROKKR_NODE_ASSETS", brokkr_testenv::node::node_assets_dir().expect("node binaries")),
        ("KUBEBUILDER_ASSETS", brokkr_testenv::assets_dir().expect("control-plane binaries")),
        ("BROKKR_BROKER_BIN", crate::broker::broker_binary()),
    ];
    // Built (or found) now, so that the run inside finds them in the cache.
    let _ = crate::chart::tools_dir();
    remove_stale_namespaces();
    let namespace = NetNs::create(&format!("{NETNS_PREFIX}{}", std::process::id()), NODE_IP)
        .expect("a network namespace (needs root)");
    let exe = std::env::current_exe().expect("the test binary");
    // Put back here too: a run killed inside never reaches the node's own cleanup. Saved in a file as well, for a
    // run killed outright: the next run puts them back (`remove_stale_namespaces`).
    let tunables = brokkr_testenv::node::kernel_tunables();
    let saved = Path::new("/run").join(format!("{NETNS_PREFIX}{}.tunables", std::process::id()));
    let text: String = tunables.iter().map(|(path, value)| format!("{}\t{}\n", path.display(), value.trim())).collect();
    std::fs::write(&saved, text).expect("save the kernel settings");
    let status = namespace
        .command_isolated(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .envs(env)
        .status()
        .expect("run the test inside the namespaces");
    brokkr_testenv::node::restore_kernel_tunables(&tunables);
    let _ = std::fs::remove_file(&saved);
    assert!(status.success(), "{test} failed inside network namespace {}: {status}", namespace.name());
}

/// Cleans up after runs that were killed before they could: puts back the kernel settings a `brokkr-e2e-<pid>.tunables`
/// file saved, and deletes `brokkr-e2e-<pid>` namespaces, whose process is gone.
fn remove_stale_namespaces() {
    for file in std::fs::read_dir("/run").into_iter().flatten().filter_map(Result::ok) {
        let name = file.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(NETNS_PREFIX).and_then(|n| n.strip_suffix(".tunables")) else { continue };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        let text = std::fs::read_to_string(file.path()).unwrap_or_default();
        let saved: Vec<_> = text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(path, _)| path.starts_with("/proc/sys/"))
            .map(|(path, value)| (std::path::PathBuf::from(path), format!("{value}\n")))
            .collect();
        brokkr_testenv::node::restore_kernel_tunables(&saved);
        let _ = std::fs::remove_file(file.path());
    }
    let Ok(names) = std::fs::read_dir("/run/netns") else { return };
    for name in names.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()) {
        let Some(pid) = name.strip_prefix(NETNS_PREFIX) else { continue };
        if !Path::new("/proc").join(pid).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}
