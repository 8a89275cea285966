//! `brokkr-broker check-config FILE` validates offline: exit 0 with the settings, or exit 1 naming the key.

use std::process::Command;

fn check(toml: &str) -> (i32, String, String) {
    check_with(toml, &[])
}

fn check_with(toml: &str, flags: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("broker.toml");
    std::fs::write(&file, toml).expect("write");
    let mut command = Command::new(env!("CARGO_BIN_EXE_brokkr-broker"));
    let out = command.arg("check-config").args(flags).arg(&file).output().expect("runs");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

#[test]
fn a_valid_file_passes_and_lists_each_setting_with_when_it_applies() {
    let (code, stdout, _) = check("[log]\nlevel = \"debug\"\n[admin]\ntoken = \"t0ps3cret-t0ps3cret\"");
    assert_eq!(code, 0);
    assert!(stdout.contains("OK"), "{stdout}");
    assert!(stdout.lines().any(|l| l.contains("log.level") && l.contains("live") && l.contains("debug")), "{stdout}");
    assert!(!stdout.contains("t0ps3cret"), "the token is redacted: {stdout}");
}

#[test]
fn an_invalid_file_exits_1_naming_the_key() {
    let (code, _, stderr) = check("[config_reload]\ndebounce = \"30s\"\nmax_wait = \"10s\"");
    assert_eq!(code, 1);
    assert!(stderr.contains("config_reload.max_wait"), "{stderr}");
}

#[test]
fn every_mistake_of_a_file_is_reported_at_once() {
    let (code, _, stderr) = check("[cors]\nmax_age = \"2d\"\n[config_reload]\nresync_interval = \"1s\"");
    assert_eq!(code, 1);
    assert!(stderr.contains("cors.max_age") && stderr.contains("config_reload.resync_interval"), "{stderr}");
}

#[test]
fn as_a_configmap_document_a_secret_or_a_moved_fixed_key_is_refused() {
    // Found by review: the runbook checks a fixed ConfigMap document with check-config, which judged it as the
    // --config file, where the token is allowed; every broker would then refuse the document.
    let token = "[log]\nlevel = \"debug\"\n[admin]\ntoken = \"t0ps3cret-t0ps3cret\"";
    assert_eq!(check(token).0, 0, "a --config file may hold the token");
    let (code, _, stderr) = check_with(token, &["--configmap"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("admin.token is a secret") && !stderr.contains("t0ps3cret"), "{stderr}");
    let (code, _, stderr) = check_with("[server]\nlisten = \"127.0.0.1:1\"", &["--configmap"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("server.listen"), "{stderr}");
    let (code, stdout, _) = check_with("[log]\nlevel = \"debug\"", &["--configmap"]);
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn as_a_configmap_document_a_changed_token_overlap_is_refused_naming_the_key() {
    // Issue 23: `[admin] token_overlap = "1h"` answered OK, and kept a replaced token valid for an hour.
    let (code, _, stderr) = check_with("[admin]\ntoken_overlap = \"1h\"", &["--configmap"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("admin.token_overlap") && stderr.contains("BROKKR__ADMIN__TOKEN_OVERLAP"), "{stderr}");
    assert_eq!(check("[admin]\ntoken_overlap = \"1h\"").0, 0, "a --config file sets it");
}

#[test]
fn a_token_shorter_than_16_bytes_is_refused_without_showing_it() {
    let (code, _, stderr) = check("[admin]\ntoken = \"t0ps3cret\"");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("admin.token") && stderr.contains("16 bytes"), "{stderr}");
    assert!(!stderr.contains("t0ps3cret"), "{stderr}");
}

#[test]
fn a_value_with_control_characters_is_printed_escaped() {
    // Issue 23: a span field of a log filter may hold any character but `]`; it reached the terminal raw.
    let (code, stdout, stderr) = check("[log]\nlevel = \"info,[{f=\\u001b[2J\\u202e}]=debug\"");
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.chars().any(|c| c != '\n' && brokkr_config::text::hidden(c)), "{stdout:?}");
    assert!(stdout.contains("\\u{1b}[2J\\u{202e}"), "{stdout}");
}

#[test]
fn an_env_file_is_read_as_a_pod_sets_it_whatever_the_shell_form() {
    // Found by review: `export` lines, a byte order mark and a space before `=` made a variable vanish silently.
    let dir = tempfile::tempdir().expect("temp dir");
    let (document, env) = (dir.path().join("broker.toml"), dir.path().join("pod.env"));
    std::fs::write(&document, "[admin]\ntoken_overlap = \"10m\"").expect("write");
    for vars in [
        "BROKKR__ADMIN__TOKEN_OVERLAP=10m\n",
        "\u{feff}export BROKKR__ADMIN__TOKEN_OVERLAP=10m\n",
        "# the pod's\nPATH=/bin\n  BROKKR__ADMIN__TOKEN_OVERLAP =10m\r\n",
    ] {
        std::fs::write(&env, vars).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_brokkr-broker"))
            .args(["check-config", "--configmap", "--env-file"])
            .args([&env, &document])
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{vars:?}: the chart-set overlap, repeated, is refused: {stderr}");
    }
}
