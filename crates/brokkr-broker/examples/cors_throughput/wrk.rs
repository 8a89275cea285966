//! Runs wrk pinned to CPU 1 against one server and reads its requests/s and 99th percentile latency.

use std::{io, process::Command};

use super::ORIGIN;

/// What wrk reported for one run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// wrk's `Requests/sec:` figure.
    pub requests_per_sec: f64,
    /// The `99%` line of wrk's latency distribution, in milliseconds.
    pub p99_ms: f64,
}

/// The first line of `wrk --version`, such as `wrk 4.1.0 [epoll] Copyright (C) 2012 Will Glozer`.
pub fn wrk_version() -> io::Result<String> {
    let output = Command::new("wrk").arg("--version").output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(stdout.lines().find(|line| line.starts_with("wrk ")).unwrap_or("wrk").trim().to_owned())
}

/// The wrk command line for `port`, as run and as printed in the report.
pub fn wrk_command(port: &str, seconds: u64, connections: u64) -> String {
    format!(
        "taskset -c 1 wrk -t1 -c{connections} -d{seconds}s --latency -H \"Origin: {ORIGIN}\" http://127.0.0.1:{port}/bench"
    )
}

/// Loads the server on `port` for `seconds` with `connections` connections; a failed or erroring run is an error.
pub fn wrk(port: u16, seconds: u64, connections: u64) -> Result<Sample, String> {
    let command = wrk_command(&port.to_string(), seconds, connections);
    let output = Command::new("taskset")
        .args(["-c", "1", "wrk"])
        .arg("-t1")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .args(["--latency", "-H"])
        .arg(format!("Origin: {ORIGIN}"))
        .arg(format!("http://127.0.0.1:{port}/bench"))
        .output()
        .map_err(|e| format!("cannot run `{command}`: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("`{command}` failed ({}):\n{stdout}{stderr}", output.status));
    }
    parse_wrk(&stdout).map_err(|e| format!("`{command}`: {e}; wrk printed:\n{stdout}"))
}

/// Reads `Requests/sec:` and the `99%` line under `Latency Distribution`; error answers invalidate the run.
fn parse_wrk(output: &str) -> Result<Sample, String> {
    let (mut requests_per_sec, mut p99_ms, mut in_distribution) = (None, None, false);
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:").map(str::trim) {
            let parsed = rest.parse::<f64>().map_err(|e| format!("cannot read Requests/sec {rest:?}: {e}"))?;
            requests_per_sec = Some(parsed);
        } else if line.starts_with("Latency Distribution") {
            in_distribution = true;
        } else if let Some(rest) = line.strip_prefix("99%").filter(|_| in_distribution).map(str::trim) {
            p99_ms = Some(millis(rest).ok_or_else(|| format!("cannot read the 99% latency {rest:?}"))?);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            return Err(format!("{} answers were not 2xx or 3xx", rest.trim()));
        } else if line.starts_with("Socket errors:") {
            eprintln!("  wrk: {line}");
        }
    }
    match (requests_per_sec, p99_ms) {
        (Some(requests_per_sec), Some(p99_ms)) => Ok(Sample { requests_per_sec, p99_ms }),
        _ => Err("no \"Requests/sec:\" line, or no \"99%\" line under \"Latency Distribution\"".to_owned()),
    }
}

/// A wrk duration such as `812.00us`, `1.20ms` or `2.00s`, in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let units = [("us", 0.001), ("ms", 1.0), ("s", 1_000.0), ("m", 60_000.0), ("h", 3_600_000.0)];
    let (_, factor) = units.into_iter().find(|(name, _)| *name == unit)?;
    number.parse::<f64>().ok().map(|value| value * factor)
}
