//! The packet filter behind `FaultProxy::vanish`: an nftables table that drops the packets of chosen connections.

// `nft` rather than a netlink crate: one short rule set, run as the test suite already runs as root; no maintained
// crate is smaller than the command.

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use crate::{Error, Result, error::io};

/// The prefix of every table this module makes; the rest is the owning process and the proxy's port.
const TABLE_PREFIX: &str = "brokkr_vanish_";

/// One proxy's table: a chain at the start of `prerouting` (loopback packets pass it on their way in) that drops
/// the packets of the connections added to it. Deleted on drop.
pub(crate) struct Vanish {
    table: String,
    proxy_port: u16,
}

impl Vanish {
    /// An empty table for the proxy on `proxy_port`; tables a killed earlier run left behind are removed first.
    pub(crate) fn new(proxy_port: u16) -> Result<Self> {
        remove_stale_tables();
        let table = format!("{TABLE_PREFIX}{}_{proxy_port}", std::process::id());
        nft(&format!(
            "add table inet {table}\n\
             add chain inet {table} vanished {{ type filter hook prerouting priority -300; policy accept; }}\n"
        ))?;
        Ok(Self { table, proxy_port })
    }

    /// Drops, from now on, every packet between 127.0.0.1:`port` and the proxy, both ways, for each port.
    pub(crate) fn drop_connections(&mut self, client_ports: &[u16]) -> Result<()> {
        let (table, proxy) = (&self.table, self.proxy_port);
        let script: String = client_ports
            .iter()
            .map(|client| {
                format!(
                    "add rule inet {table} vanished ip saddr 127.0.0.1 tcp sport {client} tcp dport {proxy} drop\n\
                     add rule inet {table} vanished ip saddr 127.0.0.1 tcp sport {proxy} tcp dport {client} drop\n"
                )
            })
            .collect();
        if script.is_empty() { Ok(()) } else { nft(&script) }
    }
}

impl Drop for Vanish {
    fn drop(&mut self) {
        if let Err(error) = nft(&format!("delete table inet {}\n", self.table)) {
            tracing::warn!(%error, table = %self.table, "could not remove the fault proxy's packet filter");
        }
    }
}

/// Runs `script` with `nft -f -`.
fn nft(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("run nft (FaultProxy::vanish needs nftables and root)"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(io("write nft's rule set"))?;
    }
    let output = child.wait_with_output().map_err(io("wait for nft"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Netfilter(format!("{}: {}", script.trim(), String::from_utf8_lossy(&output.stderr).trim())))
    }
}

/// Deletes the tables of processes that are gone (a run killed before its proxies were dropped).
fn remove_stale_tables() {
    let Ok(listed) = Command::new("nft").args(["list", "tables"]).output() else { return };
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let Some(table) = line.strip_prefix("table inet ").filter(|t| t.starts_with(TABLE_PREFIX)) else { continue };
        let owner = table[TABLE_PREFIX.len()..].split('_').next().unwrap_or_default();
        if !owner.is_empty() && !std::path::Path::new("/proc").join(owner).exists() {
            let _ = nft(&format!("delete table inet {table}\n"));
        }
    }
}
