//! The file source through the whole subsystem (watcher, debounce, judgement, apply) under paused time: edits in a
//! burst apply once after the quiet window, a rename and a kubelet `..data` swap are followed, and a half-written,
//! oversized, vanished or unreadable file keeps the last good configuration.

mod support;

use std::{
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use brokkr_config::{ConfigLayers, Outcome, Place, ReloadableConfig, layers::LayerText};
use brokkr_reload::{ReloadMetrics, ReloadNow, Subsystem, file_source::FileSource};
use support::run_for;

const POLL: Duration = Duration::from_secs(1);
/// A quiet window of 2 s and a max-wait of 10 s, set in the file itself.
const TIMING: &str = "[config_reload]\ndebounce = \"2s\"\nmax_wait = \"10s\"\n";

fn document(level: &str) -> String {
    format!("{TIMING}[log]\nlevel = \"{level}\"\n")
}

/// Writes `text` to `path` as an editor that saves in place does.
fn write_in_place(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

/// Writes `text` beside `path` and renames it over `path`, as `kubectl cp`, Ansible and atomic savers do.
fn replace(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).expect("write");
    std::fs::rename(&next, path).expect("rename");
}

/// The subsystem following `path` as the `--config` file, started on its current text.
fn follow(path: &Path, place: Place) -> (ReloadableConfig, Subsystem) {
    follow_every(path, place, Some(POLL))
}

/// As [`follow`], polled every `poll`, or read only on demand.
fn follow_every(path: &Path, place: Place, poll: Option<Duration>) -> (ReloadableConfig, Subsystem) {
    let (config, subsystem, _) = follow_counted(path, place, poll);
    (config, subsystem)
}

/// As [`follow_every`], with the metrics whose `watch_events` count what the source forwarded.
fn follow_counted(path: &Path, place: Place, poll: Option<Duration>) -> (ReloadableConfig, Subsystem, ReloadMetrics) {
    let text = std::fs::read_to_string(path).expect("read");
    let layers = match place {
        Place::ConfigFile => ConfigLayers::new().with_file_text(&LayerText { origin: "file".into(), text }),
        Place::ConfigMap { .. } => Ok(ConfigLayers::new()),
    }
    .expect("valid");
    let config = ReloadableConfig::new(layers.build(None).expect("valid").settings);
    let source = Arc::new(FileSource::new(path.to_owned(), place, poll));
    let metrics = ReloadMetrics::default();
    let subsystem = Subsystem::register(source, config.clone(), layers, metrics.clone(), None, &Default::default());
    (config, subsystem, metrics)
}

fn level(config: &ReloadableConfig) -> (u64, String) {
    let now = config.current();
    (now.generation, now.settings.log.level.clone())
}

fn last_error(config: &ReloadableConfig) -> String {
    config.last_reload().and_then(|l| l.error).unwrap_or_default()
}

fn temp_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broker.toml");
    write_in_place(&path, text);
    (dir, path)
}

#[actix_rt::test]
async fn edits_in_a_burst_apply_once_after_the_quiet_window() {
    tokio::time::pause();
    let (_dir, path) = temp_file(&document("info"));
    let (config, _subsystem) = follow(&path, Place::ConfigFile);
    run_for(Duration::from_millis(100)).await;
    for (i, next) in ["debug", "warn", "error"].into_iter().enumerate() {
        write_in_place(&path, &document(next));
        run_for(Duration::from_millis(1100)).await;
        assert_eq!(level(&config), (0, "info".to_owned()), "edit {i}: still inside the quiet window");
    }
    // The last edit was seen at its poll; 2 s of quiet later it applies, once.
    run_for(Duration::from_millis(2500)).await;
    assert_eq!(level(&config), (1, "error".to_owned()));
    run_for(Duration::from_secs(10)).await;
    assert_eq!(level(&config).0, 1, "nothing more to apply");
}

#[actix_rt::test]
async fn a_rename_over_the_file_and_a_kubelet_data_swap_are_followed() {
    tokio::time::pause();
    let (dir, path) = temp_file(&document("info"));
    let (config, _subsystem) = follow(&path, Place::ConfigFile);
    replace(&path, &document("debug"));
    run_for(Duration::from_secs(4)).await;
    assert_eq!(level(&config), (1, "debug".to_owned()), "a rename over the file");

    // As the kubelet mounts a ConfigMap: broker.toml -> ..data/broker.toml, ..data -> ..<timestamp>, and an update
    // writes a new timestamped folder and renames a new `..data` link over the old one.
    let mount = dir.path().join("mount");
    let version = |name: &str, level: &str| {
        let folder = mount.join(name);
        std::fs::create_dir_all(&folder).expect("mkdir");
        std::fs::write(folder.join("broker.toml"), document(level)).expect("write");
    };
    version("..2026_12_06_1", "warn");
    symlink("..2026_12_06_1", mount.join("..data")).expect("link");
    symlink("..data/broker.toml", mount.join("broker.toml")).expect("link");
    let mounted = mount.join("broker.toml");
    let (config, _subsystem) = follow(&mounted, Place::ConfigMap { namespace: Some("brokkr".into()) });
    run_for(Duration::from_millis(500)).await;
    assert_eq!(level(&config), (1, "warn".to_owned()), "the mounted document applies at once, as a list does");
    version("..2026_12_06_2", "error");
    symlink("..2026_12_06_2", mount.join("..data_tmp")).expect("link");
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).expect("swap");
    std::fs::remove_dir_all(mount.join("..2026_12_06_1")).expect("old version removed");
    run_for(Duration::from_secs(4)).await;
    assert_eq!(level(&config), (2, "error".to_owned()), "the ..data swap");
}

#[actix_rt::test]
async fn broken_oversized_and_vanished_files_keep_the_last_good_configuration() {
    tokio::time::pause();
    let (_dir, path) = temp_file(&document("info"));
    let (config, subsystem) = follow(&path, Place::ConfigFile);
    let good = document("debug");
    write_in_place(&path, &good);
    run_for(Duration::from_secs(4)).await;
    assert_eq!(level(&config), (1, "debug".to_owned()));

    // Half-written: the writer stopped mid-way (a full disk, a crash).
    write_in_place(&path, &good[..good.len() - 10]);
    run_for(Duration::from_secs(4)).await;
    assert_eq!(level(&config), (1, "debug".to_owned()), "{}", last_error(&config));
    assert!(last_error(&config).contains("is not valid TOML"), "{}", last_error(&config));

    // Larger than a ConfigMap document may be: refused by its size, naming it.
    write_in_place(&path, &format!("{good}# {}\n", "x".repeat(300 * 1024)));
    run_for(Duration::from_secs(4)).await;
    assert_eq!(level(&config), (1, "debug".to_owned()));
    assert!(last_error(&config).contains("at most 262144 bytes are parsed"), "{}", last_error(&config));

    // Gone, then back.
    std::fs::remove_file(&path).expect("remove");
    run_for(Duration::from_secs(4)).await;
    assert_eq!(level(&config), (1, "debug".to_owned()), "a vanished file changes nothing");
    write_in_place(&path, &document("warn"));
    run_for(Duration::from_secs(4)).await;
    assert_eq!(level(&config), (2, "warn".to_owned()), "and its return applies");

    // Unreadable (root reads any file, so a directory stands in): the watch fails and is retried with backoff.
    std::fs::remove_file(&path).expect("remove");
    std::fs::create_dir(&path).expect("a directory where the file was");
    run_for(Duration::from_secs(4)).await;
    assert_eq!(level(&config), (2, "warn".to_owned()));
    let (state, _) = subsystem.watcher.get();
    assert!(matches!(state, brokkr_reload::WatcherState::Backoff(_)), "{state:?}");
    std::fs::remove_dir(&path).expect("rmdir");
    write_in_place(&path, &document("error"));
    run_for(Duration::from_secs(70)).await;
    assert_eq!(level(&config), (3, "error".to_owned()), "followed again after the backoff");
}

#[actix_rt::test]
async fn an_on_demand_reload_reads_the_file_at_once() {
    tokio::time::pause();
    let (_dir, path) = temp_file(&document("info"));
    let (config, subsystem) = follow(&path, Place::ConfigFile);
    run_for(Duration::from_millis(100)).await;
    write_in_place(&path, &document("debug"));
    let actor = subsystem.config_actor.expect("running");
    let report = actor.send(ReloadNow).await.expect("actor alive").expect("the file is read");
    assert_eq!(report.outcome, Outcome::Applied, "{report:?}");
    assert_eq!(level(&config), (1, "debug".to_owned()), "without waiting for a poll or the quiet window");
}

#[actix_rt::test]
async fn without_a_poll_only_an_on_demand_reload_reads_the_file_not_the_resync() {
    tokio::time::pause();
    let (_dir, path) = temp_file(&document("info"));
    let (config, subsystem) = follow_every(&path, Place::ConfigFile, None);
    run_for(Duration::from_millis(100)).await;
    write_in_place(&path, &document("debug"));
    // Two resync intervals (5 min by default) later, the edit still waits for the operator's signal.
    run_for(Duration::from_secs(601)).await;
    assert_eq!(level(&config), (0, "info".to_owned()), "read without being asked");
    let actor = subsystem.config_actor.expect("running");
    let report = actor.send(ReloadNow).await.expect("actor alive").expect("the file is read");
    assert_eq!((report.outcome, level(&config)), (Outcome::Applied, (1, "debug".to_owned())));
}

#[actix_rt::test]
async fn a_debounce_window_that_closes_after_an_on_demand_read_never_puts_the_older_text_back() {
    // Found by review: file versions had no order, so the poll's older text, held by the debounce, was applied
    // over the newer one an on-demand read had just put in force.
    tokio::time::pause();
    let (_dir, path) = temp_file(&document("info"));
    // Polled every 5 s: the 2 s quiet window closes before the next poll sees the newer text.
    let (config, subsystem, metrics) = follow_counted(&path, Place::ConfigFile, Some(Duration::from_secs(5)));
    run_for(Duration::from_millis(100)).await;
    write_in_place(&path, &document("debug"));
    // The poll at about 5.1 s (5 s after the first read settled) forwarded it; the quiet window holds it.
    run_for(Duration::from_millis(5300)).await;
    assert_eq!(metrics.watch_events.get(), 2, "the start-up read and the poll that saw the older text");
    assert_eq!(level(&config), (0, "info".to_owned()));
    write_in_place(&path, &document("warn"));
    let actor = subsystem.config_actor.expect("running");
    actor.send(ReloadNow).await.expect("actor alive").expect("the file is read");
    assert_eq!(level(&config), (1, "warn".to_owned()));
    run_for(Duration::from_millis(2000)).await; // the window closed at about 7.2 s
    assert_eq!(level(&config), (1, "warn".to_owned()), "the older text came back: {:?}", config.last_reload());
    run_for(Duration::from_secs(10)).await; // the next polls find the text in force
    assert_eq!(level(&config), (1, "warn".to_owned()));
}

#[actix_rt::test]
async fn a_file_caught_half_written_is_read_again_before_it_is_judged() {
    // Found by review: an edit in place truncates first, and the `--config` file replaces the file layer, so an
    // empty read was a valid document (the defaults) and was applied.
    tokio::time::pause();
    let (_dir, path) = temp_file(&document("debug"));
    let (config, subsystem) = follow_every(&path, Place::ConfigFile, None);
    run_for(Duration::from_millis(100)).await;
    write_in_place(&path, ""); // truncated, not yet written
    let actor = subsystem.config_actor.expect("running");
    let reload = tokio::spawn(async move { actor.send(ReloadNow).await });
    run_for(Duration::from_millis(10)).await; // the first read saw the empty file
    write_in_place(&path, &document("warn")); // the write completes
    let report = reload.await.expect("joined").expect("actor alive").expect("the file is read");
    assert_eq!(report.outcome, Outcome::Applied, "{report:?}");
    assert_eq!(level(&config), (1, "warn".to_owned()), "the half-written file was applied");
}
