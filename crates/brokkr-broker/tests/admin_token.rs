//! The admin token from `admin.token_file`, under paused time: a Secret volume updated as the kubelet does it is
//! picked up within a poll, the previous token is accepted until `admin.token_overlap` ends (the file's, never the
//! ConfigMap's), and a file that cannot be used keeps the token in force, reported without its content.

use std::time::Duration;

use brokkr_broker::admin_token::{AdminToken, REREAD_EVERY, TOKEN_FILE_POLL, TokenMetrics};
use brokkr_config::{ConfigLayers, ReloadableConfig, SecretsElsewhere, Settings, layers::LayerText};
use brokkr_testenv::SecretVolume;
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::time::Instant;

const OLD: &str = "old-t0ken-AAAA-1111";
const NEW: &str = "new-t0ken-BBBB-2222";
const THIRD: &str = "third-t0ken-CCCC-3333";
const OVERLAP: Duration = Duration::from_secs(60);

/// A token following `volume`, with its config (overlap [`OVERLAP`]), the secrets it hands the layers and metrics.
struct Harness {
    token: AdminToken,
    config: ReloadableConfig,
    layers: ConfigLayers,
    elsewhere: SecretsElsewhere,
    registry: Registry,
    _dir: tempfile::TempDir,
    volume: SecretVolume,
}

fn harness(first: &[u8]) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let volume = SecretVolume::create(dir.path(), "token", first).expect("volume");
    let file = format!("[admin]\ntoken_file = {:?}\ntoken_overlap = \"1m\"", volume.file());
    let layers = ConfigLayers::new().with_file_text(&LayerText { origin: "file".into(), text: file }).expect("valid");
    let elsewhere = SecretsElsewhere::default();
    let layers = layers.with_secrets_elsewhere(elsewhere.clone());
    let settings: Settings = layers.build(None).expect("valid").settings;
    let mut registry = Registry::default();
    let token = AdminToken::new(&settings.admin, elsewhere.clone(), TokenMetrics::register(&mut registry));
    let config = ReloadableConfig::new(settings);
    tokio::spawn(token.clone().follow(config.clone()));
    Harness { token, config, layers, elsewhere, registry, _dir: dir, volume }
}

impl Harness {
    fn metric(&self, name: &str) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("encodes");
        text.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned()
    }

    fn status(&self) -> serde_json::Value {
        self.token.status(self.config.current().settings.admin.token_overlap)
    }
}

/// Waits, in paused time, until `condition` holds; panics after `within`. Returns the time it took.
async fn until(what: &str, within: Duration, condition: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::test(start_paused = true)]
async fn a_kubelet_update_is_in_force_within_a_poll_and_the_old_token_is_accepted_until_the_overlap_ends() {
    let mut h = harness(OLD.as_bytes());
    assert!(h.token.accepts(OLD, OVERLAP) && !h.token.accepts(NEW, OVERLAP));
    h.volume.publish(NEW.as_bytes()).expect("publish");
    let took = until("the new token is accepted", TOKEN_FILE_POLL * 2, || h.token.accepts(NEW, OVERLAP)).await;
    assert!(took <= TOKEN_FILE_POLL + Duration::from_millis(10), "took {took:?}");
    let rotated = Instant::now();
    assert!(h.token.accepts(OLD, OVERLAP), "inside the overlap the old token still works");
    assert!(h.metric("brokkr_admin_token_rotations_total").ends_with(" 1"), "{}", h.metric("brokkr_admin"));
    let mut held = h.elsewhere.values();
    held.sort();
    assert_eq!(held, [NEW, OLD], "no document may show either token");
    assert!(h.status()["previous_accepted_until"].is_string(), "{}", h.status());

    tokio::time::sleep_until(rotated + OVERLAP - Duration::from_millis(50)).await;
    assert!(h.token.accepts(OLD, OVERLAP), "just before the overlap ends");
    tokio::time::sleep_until(rotated + OVERLAP + Duration::from_millis(1)).await;
    assert!(!h.token.accepts(OLD, OVERLAP), "after the overlap, the old token is refused");
    assert!(h.token.accepts(NEW, OVERLAP));
    until("the old token is forgotten", TOKEN_FILE_POLL * 2, || h.elsewhere.values() == [NEW]).await;
    assert!(h.status()["previous_accepted_until"].is_null(), "{}", h.status());
}

#[tokio::test(start_paused = true)]
async fn a_file_that_cannot_be_used_keeps_the_token_in_force_and_is_reported_without_its_content() {
    let mut h = harness(format!("{OLD}\n").as_bytes());
    assert!(h.token.accepts(OLD, OVERLAP), "one trailing newline is not part of the token");
    let over_limit = "k".repeat(5000);
    let cases: [(&str, &[u8], &str); 8] = [
        ("too short", b"sh0rt-s3cr3t", "shorter than 16 bytes"),
        ("empty", b"", "is empty"),
        ("only a newline", b"\n", "is empty"),
        ("a space inside", b"two w0rds-s3cr3t", "visible ASCII"),
        ("non-ASCII", "s\u{20ac}cr3t-w0rd".as_bytes(), "visible ASCII"),
        ("not UTF-8", b"\xff\xfe-s3cr3t", "visible ASCII"),
        ("two lines", b"first-s3cr3t\nsecond-s3cr3t\n", "visible ASCII"),
        ("over 4 KiB", over_limit.as_bytes(), "4096 bytes"),
    ];
    for (case, content, reason) in cases {
        h.volume.publish(content).expect("publish");
        until(case, TOKEN_FILE_POLL * 2, || h.metric("brokkr_admin_token_file_valid").ends_with(" 0")).await;
        assert!(h.token.accepts(OLD, OVERLAP), "{case}: the token in force stays");
        let status = h.status().to_string();
        assert!(status.contains(reason), "{case}: {status}");
        for secret in ["s3cr3t", "cr3t", "w0rd", "kkkk", OLD] {
            assert!(!status.contains(secret), "{case}: {status}");
        }
        // Back to the token in force between cases, so that each case starts from a file that loads.
        h.volume.publish(OLD.as_bytes()).expect("publish");
        until(case, TOKEN_FILE_POLL * 2, || h.metric("brokkr_admin_token_file_valid").ends_with(" 1")).await;
    }
    h.volume.remove().expect("remove");
    until("vanished", TOKEN_FILE_POLL * 2, || h.metric("brokkr_admin_token_file_valid").ends_with(" 0")).await;
    assert!(h.token.accepts(OLD, OVERLAP), "a vanished file keeps the token in force");
    assert!(h.status()["file_error"].as_str().is_some_and(|e| e.contains("cannot be read")), "{}", h.status());
    h.volume.publish(NEW.as_bytes()).expect("publish");
    until("back", TOKEN_FILE_POLL * 2, || h.token.accepts(NEW, OVERLAP)).await;
    assert!(h.status()["file_error"].is_null(), "{}", h.status());
    assert!(h.metric("brokkr_admin_token_rotations_total").ends_with(" 1"), "only one rotation: {}", h.metric("b"));
}

#[tokio::test(start_paused = true)]
async fn a_missing_file_at_start_locks_the_admin_api_until_it_appears() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("token");
    let settings: Settings = {
        let text = format!("[admin]\ntoken_file = {file:?}");
        let layers = ConfigLayers::new().with_file_text(&LayerText { origin: "file".into(), text }).expect("valid");
        layers.build(None).expect("valid").settings
    };
    let token = AdminToken::new(&settings.admin, SecretsElsewhere::default(), TokenMetrics::default());
    assert!(!token.is_set() && !token.accepts("", OVERLAP) && !token.accepts(NEW, OVERLAP));
    assert!(token.status(OVERLAP)["file_error"].is_string());
    tokio::spawn(token.clone().follow(ReloadableConfig::new(settings)));
    // Written in place, not through a symlink: an operator's own file, or a mount that is not a Secret volume.
    std::fs::write(&file, NEW).expect("write");
    until("the token appears", TOKEN_FILE_POLL * 2, || token.accepts(NEW, OVERLAP)).await;
    std::fs::write(&file, format!("{OLD}-longer")).expect("write in place");
    until("rewritten in place", TOKEN_FILE_POLL * 2, || token.accepts(&format!("{OLD}-longer"), OVERLAP)).await;
    assert!(token.accepts(NEW, OVERLAP), "the replaced one is in its overlap");
    for shown in [format!("{token:?}"), token.status(OVERLAP).to_string()] {
        assert!(!shown.contains("t0ken"), "{shown}");
    }
}

#[test]
fn the_token_of_the_settings_is_used_when_there_is_no_file() {
    let mut settings = Settings::default();
    let token = AdminToken::new(&settings.admin, SecretsElsewhere::default(), TokenMetrics::default());
    assert!(!token.is_set() && !token.accepts("", OVERLAP), "no token: locked");
    assert_eq!(token.status(OVERLAP)["source"], "none");
    settings.admin.token = OLD.into();
    let token = AdminToken::new(&settings.admin, SecretsElsewhere::default(), TokenMetrics::default());
    assert!(token.accepts(OLD, OVERLAP) && !token.accepts(NEW, OVERLAP) && !token.accepts("old-t0ken", OVERLAP));
    assert_eq!(token.status(OVERLAP)["source"], "admin.token");
}

#[test]
fn a_fifo_or_a_folder_as_the_token_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    for file in [fifo, dir.path().to_owned()] {
        let mut settings = Settings::default();
        settings.admin.token_file.clone_from(&file);
        // On a thread of its own: opening a FIFO for reading blocks until a writer comes, forever.
        let (sent, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let token = AdminToken::new(&settings.admin, SecretsElsewhere::default(), TokenMetrics::default());
            let _ = sent.send(token.status(OVERLAP));
        });
        let status = received.recv_timeout(Duration::from_secs(10)).expect("reading the token file blocked");
        let error = status["file_error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains("not a regular file"), "{}: {status}", file.display());
    }
}

#[tokio::test(start_paused = true)]
async fn a_rewrite_that_keeps_size_and_mtime_is_still_picked_up() {
    // The stamp misses a rewrite in place of the same length within the filesystem's timestamp granularity (a
    // jiffy); here the mtime is put back by hand. A periodic read catches it.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("token");
    std::fs::write(&file, OLD).expect("write");
    let mut settings = Settings::default();
    settings.admin.token_file.clone_from(&file);
    let token = AdminToken::new(&settings.admin, SecretsElsewhere::default(), TokenMetrics::default());
    tokio::spawn(token.clone().follow(ReloadableConfig::new(settings)));
    let same_length = "0ld-t0ken-AAAA-1111";
    assert_eq!(same_length.len(), OLD.len());
    let modified = std::fs::metadata(&file).and_then(|m| m.modified()).expect("mtime");
    std::fs::write(&file, same_length).expect("rewrite in place");
    std::fs::File::options().write(true).open(&file).and_then(|f| f.set_modified(modified)).expect("mtime back");
    until("the rewrite is read", REREAD_EVERY + TOKEN_FILE_POLL * 2, || token.accepts(same_length, OVERLAP)).await;
}

#[tokio::test(start_paused = true)]
async fn a_second_rotation_inside_the_overlap_keeps_both_replaced_tokens_each_for_its_own_overlap() {
    let mut h = harness(OLD.as_bytes());
    h.volume.publish(NEW.as_bytes()).expect("publish");
    until("first rotation", TOKEN_FILE_POLL * 2, || h.token.accepts(NEW, OVERLAP)).await;
    let first = Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    h.volume.publish(THIRD.as_bytes()).expect("publish");
    until("second rotation", TOKEN_FILE_POLL * 2, || h.token.accepts(THIRD, OVERLAP)).await;
    let second = Instant::now();
    assert!(h.token.accepts(OLD, OVERLAP) && h.token.accepts(NEW, OVERLAP), "both replaced tokens still work");
    let mut held = h.elsewhere.values();
    held.sort();
    assert_eq!(held, [NEW, OLD, THIRD]);
    assert_eq!(h.status()["previous_accepted"], 2, "{}", h.status());
    tokio::time::sleep_until(first + OVERLAP + Duration::from_millis(1)).await;
    assert!(!h.token.accepts(OLD, OVERLAP), "the first one's overlap ended");
    assert!(h.token.accepts(NEW, OVERLAP), "the second one's has not");
    tokio::time::sleep_until(second + OVERLAP + Duration::from_millis(1)).await;
    assert!(!h.token.accepts(NEW, OVERLAP) && h.token.accepts(THIRD, OVERLAP));
    until("only the token in force is held", TOKEN_FILE_POLL * 2, || h.elsewhere.values() == [THIRD]).await;
}

#[tokio::test(start_paused = true)]
async fn the_configmap_cannot_change_the_overlap_so_a_replaced_token_lives_exactly_the_files_overlap() {
    // Issue 23: the overlap was live, so an editor of the ConfigMap could set 1 h just before a rotation and keep
    // the replaced token valid for an hour.
    let mut h = harness(OLD.as_bytes());
    for document in ["[admin]\ntoken_overlap = \"1h\"", "[admin]\ntoken_overlap = \"0s\""] {
        let built = h.layers.build(Some(&LayerText { origin: "cm".into(), text: document.into() }));
        let error = built.expect_err(document);
        assert_eq!(error.key(), Some("admin.token_overlap"), "{error}");
        assert!(error.to_string().contains("BROKKR__ADMIN__TOKEN_OVERLAP"), "{error}");
    }
    h.volume.publish(NEW.as_bytes()).expect("publish");
    until("rotated", TOKEN_FILE_POLL * 2, || h.token.accepts(NEW, OVERLAP)).await;
    let rotated = Instant::now();
    let overlap = || h.config.current().settings.admin.token_overlap;
    assert_eq!(overlap(), OVERLAP, "the file's overlap, whatever the ConfigMap asked for");
    tokio::time::sleep_until(rotated + OVERLAP - Duration::from_secs(2)).await;
    assert!(h.token.accepts(OLD, overlap()), "inside the file's overlap");
    tokio::time::sleep_until(rotated + OVERLAP + Duration::from_millis(1)).await;
    assert!(!h.token.accepts(OLD, overlap()), "not a moment longer");
}

#[tokio::test]
async fn a_short_token_from_the_environment_stops_the_start_with_an_error() {
    // Issue 23: it was only warned about, while a token file that short is refused.
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_brokkr-broker"))
        .arg("serve")
        .env_clear()
        .env("BROKKR__ADMIN__TOKEN", "sh0rt-t0ken")
        .env("BROKKR__SERVER__LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        // A broker that starts anyway is killed when the timeout drops it.
        .kill_on_drop(true)
        .spawn()
        .expect("run the broker");
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the broker must not start: it is still running")
        .expect("its output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "the broker must not start: {stderr}");
    assert!(stderr.contains("admin.token") && stderr.contains("16 bytes"), "{stderr}");
    assert!(!stderr.contains("sh0rt"), "the token is never shown: {stderr}");
}
