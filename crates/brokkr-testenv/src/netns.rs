//! A network namespace of the test's own, so that a node's kubelet, containerd and pods never use this machine's
//! interfaces: `lo` up, with one non-loopback address (the node's IP) on it.

use std::{net::Ipv4Addr, path::Path, process::Command};

use crate::{Error, Result, error::io};

/// Set, inside the namespace, to the namespace's name: tells a re-run test binary that it runs inside.
pub const NETNS_ENV: &str = "BROKKR_TEST_NETNS";

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

fn ip(args: &[&str]) -> Result<()> {
    let status = Command::new("ip").args(args).status().map_err(io("run ip (iproute2)"))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Assets(format!("`ip {}` failed with {status} (it needs root)", args.join(" "))))
    }
}

impl NetNs {
    /// Creates namespace `name` with `lo` up and `address/32` on it. A kubelet refuses a loopback node IP and the
    /// kernel here has no `dummy` links, so the node's address lives on `lo`.
    pub fn create(name: &str, address: Ipv4Addr) -> Result<Self> {
        // A namespace left by a killed run of the same name is removed first.
        let _ = Command::new("ip").args(["netns", "del", name]).stderr(std::process::Stdio::null()).status();
        ip(&["netns", "add", name])?;
        let netns = Self { name: name.to_owned() };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        ip(&["-n", name, "addr", "add", &format!("{address}/32"), "dev", "lo"])?;
        Ok(netns)
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl NetNs {
    /// `program` run inside the namespace (entered with util-linux `nsenter --net`: `ip netns exec` would also give it
    /// a fresh `/sys`, hiding the cgroup mounts a kubelet needs), with [`NETNS_ENV`] set, and in new PID and mount
    /// namespaces: `unshare --pid --fork --kill-child --mount
    /// --propagation private --mount-proc`. When the program ends or is killed, the kernel kills every process left
    /// in its PID namespace (containerd's shims detach from their parent, so nothing else would), and the mounts
    /// made inside (the kubelet's, the containers' root filesystems) are never seen by this machine.
    #[must_use]
    pub fn command_isolated(&self, program: &Path) -> Command {
        let mut command = crate::child_command(Path::new("unshare"));
        command
            .args(["--pid", "--fork", "--kill-child", "--mount", "--propagation", "private", "--mount-proc", "--"])
            .arg("nsenter")
            .arg(format!("--net=/run/netns/{}", self.name))
            .arg("--")
            .arg(program)
            .env(NETNS_ENV, &self.name);
        command
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// The namespace this process runs in, when a test re-ran itself inside one: [`NETNS_ENV`] names it, and this
/// process's network namespace is that one (an inherited variable alone never counts, so a test never starts a
/// node on this machine's own network).
#[must_use]
pub fn current() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let name = std::env::var(NETNS_ENV).ok().filter(|n| !n.is_empty())?;
    let ours = std::fs::metadata("/proc/self/ns/net").ok()?;
    let named = std::fs::metadata(Path::new("/run/netns").join(&name)).ok()?;
    (ours.dev() == named.dev() && ours.ino() == named.ino()).then_some(name)
}
