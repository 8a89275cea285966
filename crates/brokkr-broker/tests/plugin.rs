//! The `kubectl brokkr` plugin's judgement and table, without a cluster (tests/e2e/rollout.rs runs it on one).

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use brokkr_broker::plugin::{PRINTED_LIMIT, PluginCli, Replica, Rollout, judge, printable, table};
use brokkr_reload::pod_status::{AT, HASH, IN_FORCE, OUTCOME, REASON, SEEN};

fn replica(pod: &str, ready: bool, pairs: &[(&str, &str)]) -> Replica {
    let annotations = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Replica::new(pod.into(), ready, annotations, None)
}

#[test]
fn a_rollout_waits_for_ready_replicas_fails_on_a_rejection_and_names_the_laggards() {
    let on = |pod, rv| replica(pod, true, &[(IN_FORCE, rv), (SEEN, rv), (OUTCOME, "applied")]);
    assert_eq!(judge("7", &[]), Rollout::Waiting { lagging: vec![], ready: 0 }, "no replica yet");
    let not_ready = replica("c", false, &[]);
    assert_eq!(
        judge("7", &[on("a", "7"), on("b", "7"), not_ready.clone()]),
        Rollout::Done { ready: 2 },
        "a replica that is not ready does not hold a rollout up"
    );
    assert_eq!(
        judge("7", &[on("a", "7"), on("b", "6"), replica("d", true, &[])]),
        Rollout::Waiting {
            lagging: vec!["b (runs 6)".into(), "d (no state written since it started)".into()],
            ready: 3
        }
    );
    let refused =
        replica("b", false, &[(IN_FORCE, "6"), (SEEN, "7"), (OUTCOME, "rejected"), (REASON, "cors.max_age: …")]);
    assert_eq!(
        judge("7", &[on("a", "7"), refused.clone()]),
        Rollout::Rejected { pod: "b".into(), reason: "cors.max_age: …".into() }
    );
    assert!(matches!(judge("8", &[on("a", "8"), refused]), Rollout::Done { .. }), "an older rejection is history");
    // Found by review: a replica waiting for a restart runs only the live part of the version.
    let waiting = replica(
        "a",
        true,
        &[(IN_FORCE, "7"), (OUTCOME, "restart-required"), (REASON, "waiting for a restart: log.format")],
    );
    assert_eq!(
        judge("7", &[waiting]),
        Rollout::Waiting { lagging: vec!["a (waiting for a restart: log.format)".into()], ready: 1 }
    );
    // Found by review: annotations a previous container wrote say nothing of the one running now.
    let at = humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(60)).to_string();
    let pairs = [(IN_FORCE, "7"), (SEEN, "7"), (OUTCOME, "applied"), (AT, at.as_str())];
    let annotations: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let restarted = Replica::new("a".into(), true, annotations.clone(), Some(SystemTime::now()));
    assert_eq!(
        judge("7", &[restarted]),
        Rollout::Waiting { lagging: vec!["a (no state written since it started)".into()], ready: 1 }
    );
    let same = Replica::new("a".into(), true, annotations, Some(SystemTime::now() - Duration::from_secs(61)));
    assert_eq!(judge("7", &[same]), Rollout::Done { ready: 1 });
}

#[test]
fn an_annotation_cannot_send_a_terminal_escape_or_forge_a_line() {
    let forged = "\u{1b}]0;owned\u{7}\u{1b}[2Jok\nbroker-z   true   999   applied";
    let shown = printable(forged);
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
    assert!(shown.contains("\\n") && shown.contains("\\u{1b}"), "{shown}");
    // Issue 23: separators, the soft hyphen, invisible operators and tag characters were printed as they are.
    let invisible = printable("a\u{2028}b\u{ad}\u{e0041}\u{2064}");
    assert!(!invisible.chars().any(brokkr_config::text::hidden), "{invisible:?}");
    let pod = replica("\u{1b}[2Jbroker-a", true, &[]);
    let text = table(&[pod], SystemTime::now());
    assert!(!text.chars().any(|c| c != '\n' && brokkr_config::text::hidden(c)), "a pod's name is escaped: {text:?}");
    assert!(printable("\u{202e}x").starts_with("\\u{202e}"), "a bidi override is shown, not obeyed");
    assert_eq!(printable(&"x".repeat(10_000)).len(), PRINTED_LIMIT);
    assert_eq!(printable("cors.max_age: invalid duration \"soon\""), "cors.max_age: invalid duration \"soon\"");
}

#[test]
fn the_table_has_a_line_per_replica_with_dashes_for_what_is_unknown() {
    let now = SystemTime::now();
    let at = humantime::format_rfc3339_seconds(now - Duration::from_secs(90)).to_string();
    let a = replica("broker-a", true, &[(IN_FORCE, "7"), (HASH, "0123456789abcdef"), (OUTCOME, "applied"), (AT, &at)]);
    let text = table(&[a, replica("broker-b", false, &[])], now);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].starts_with("broker-a") && lines[1].contains("0123456789ab ") && lines[1].contains("1m 30s"));
    assert!(lines[2].starts_with("broker-b") && lines[2].contains("false") && lines[2].contains('-'), "{text}");
}

#[test]
fn a_timeout_past_the_clock_is_a_usage_error_not_a_panic() {
    // Issue 23: `--timeout 300000000000y` panicked adding it to the clock.
    use clap::Parser;
    let parse = |t: &str| PluginCli::try_parse_from(["kubectl-brokkr", "rollout-status", "--timeout", t]);
    let error = parse("300000000000y").expect_err("refused");
    assert!(error.to_string().contains("at most 100years"), "{error}");
    assert!(parse("101y").is_err() && parse("100y").is_ok() && parse("60s").is_ok());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-brokkr"))
        .args(["rollout-status", "--timeout", "300000000000y"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}
