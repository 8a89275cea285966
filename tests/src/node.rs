//! The real-node tests' harness: each runs inside a network namespace of its own, so that the kubelet, containerd
//! and the pods (on the host network, which is the namespace's) never touch this machine's interfaces.

use std::net::Ipv4Addr;

use brokkr_testenv::{NetNs, netns};

/// The node's IP: an address on the namespace's `lo` (a kubelet refuses a loopback node IP).
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 123, 0, 2);

/// Runs `body` inside a network namespace of the test's own. Outside one, creates it, re-runs this test binary
/// there for `test` alone, deletes it and fails if the run failed; inside, runs `body`.
pub fn in_netns(test: &str, body: impl FnOnce()) {
    if netns::current().is_some() {
        body();
        return;
    }
    let namespace = NetNs::create(&format!("brokkr-e2e-{}", std::process::id()), NODE_IP)
        .expect("a network namespace (needs root)");
    let exe = std::env::current_exe().expect("the test binary");
    let status = namespace
        .command(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .status()
        .expect("run the test inside the namespace");
    assert!(status.success(), "{test} failed inside network namespace {}: {status}", namespace.name());
}
