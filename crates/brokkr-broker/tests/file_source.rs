//! `serve --config FILE --watch-config` outside Kubernetes, on the broker binary: an edit in place, a rename over
//! the file and a kubelet-style `..data` swap change the CORS answer of the next request; a half-written, oversized
//! or deleted file keeps the last good one; without `--watch-config` SIGHUP alone reads the file again; and no
//! request reaches an API server, even with a kubeconfig at hand. Prints the edit → applied latency of each edit.

use std::{
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

mod support;

const TOKEN: &str = "file-source-t0ken-0123456789";

/// A broker process, killed when dropped.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        drop(self.0.kill());
        drop(self.0.wait());
    }
}

/// A document allowing `origin`, with a short quiet window so an edit applies within a second.
fn document(listen: &str, origin: &str) -> String {
    format!(
        "[server]\nlisten = \"{listen}\"\n[admin]\ntoken = \"{TOKEN}\"\n[cors]\nallowed_origins = [\"{origin}\"]\n\
         [config_reload]\ndebounce = \"200ms\"\nmax_wait = \"1s\"\n"
    )
}

/// A listener that stands in for an API server and counts every connection made to it.
async fn counting_api_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{address}\ncontexts:\n\
         - name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: x\n"
    );
    (kubeconfig, connections)
}

/// The broker on `config`, with `KUBECONFIG` set to `kubeconfig` if given.
fn serve(config: &Path, kubeconfig: Option<&Path>, watch: &[&str]) -> Serving {
    let mut command = brokkr_testenv::child_command(&support::broker::binary());
    command.args(["serve", "--config"]).arg(config).args(watch).env_clear();
    if let Some(kubeconfig) = kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    let child = command
        .env("BROKKR__LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the broker");
    Serving(child)
}

/// The `Access-Control-Allow-Origin` the broker answers `origin` with (empty when none), or `None` when the broker
/// does not answer.
async fn allowed(listen: &str, origin: &str) -> Option<String> {
    let mut stream = TcpStream::connect(listen).await.ok()?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: b\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    let header = answer
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("access-control-allow-origin: ").map(str::to_owned));
    answer.starts_with("HTTP/1.1 200").then(|| header.unwrap_or_default())
}

/// The body of `GET path`, with the admin token.
async fn get(listen: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(listen).await.ok()?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// How many events the source has delivered (`brokkr_config_watch_events_total`).
async fn watch_events(listen: &str) -> Option<u64> {
    let body = get(listen, "/metrics").await?;
    body.lines().find_map(|l| l.strip_prefix("brokkr_config_watch_events_total ")?.parse().ok())
}

/// Waits until the file source has read the file once (its first read is forwarded at once): an edit before it
/// would be applied by that read, without the poll and the quiet window being measured.
async fn until_read_once(listen: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while watch_events(listen).await.is_none_or(|n| n == 0) {
        assert!(Instant::now() < deadline, "the file source never read the file");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the last reload was rejected with `error`, as the admin status says.
async fn until_rejected(listen: &str, error: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let status =
            get(listen, "/api/v1/admin/config").await.and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok());
        let last = status.as_ref().map(|s| s["last_reload"].clone()).unwrap_or_default();
        if last["outcome"] == "rejected" && last["error"].as_str().is_some_and(|e| e.contains(error)) {
            return;
        }
        assert!(Instant::now() < deadline, "not rejected with {error:?} within {within:?}: {last}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long until `origin` is allowed, polled every 10 ms; panics after `within`.
async fn until_allowed(listen: &str, origin: &str, within: Duration) -> Duration {
    let started = Instant::now();
    while allowed(listen, origin).await.as_deref() != Some(origin) {
        assert!(started.elapsed() < within, "{origin} not allowed within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// `path`'s bytes replaced by `text` through a rename, as atomic savers do.
fn rename_over(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).expect("write");
    std::fs::rename(&next, path).expect("rename");
}

/// A kubelet-style mount in `dir`: `broker.toml -> ..data/broker.toml`, `..data -> ..v1`; returns the real file.
fn mount(dir: &Path, version: &str, text: &str) -> PathBuf {
    let folder = dir.join(version);
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("broker.toml"), text).expect("write");
    let link = dir.join("..data_tmp");
    symlink(version, &link).expect("link");
    std::fs::rename(&link, dir.join("..data")).expect("swap ..data");
    folder.join("broker.toml")
}

#[tokio::test]
async fn edits_of_the_file_apply_live_and_broken_ones_keep_the_last_good_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kubeconfig, api_connections) = counting_api_server().await;
    std::fs::write(dir.path().join("kubeconfig"), kubeconfig).expect("write");
    let listen = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").to_string();
    let real = mount(dir.path(), "..v1", &document(&listen, "https://one.example"));
    symlink("..data/broker.toml", dir.path().join("broker.toml")).expect("link");
    let watch = ["--watch-config", "--watch-interval", "100ms"];
    let _broker = serve(&dir.path().join("broker.toml"), Some(&dir.path().join("kubeconfig")), &watch);
    let started = until_allowed(&listen, "https://one.example", Duration::from_secs(30)).await;
    println!("start-up → serving: {started:?}");
    until_read_once(&listen).await;

    let within = Duration::from_secs(10);
    std::fs::write(&real, document(&listen, "https://two.example")).expect("edit in place");
    println!("edit in place → applied: {:?}", until_allowed(&listen, "https://two.example", within).await);
    rename_over(&real, &document(&listen, "https://three.example"));
    println!("rename over the file → applied: {:?}", until_allowed(&listen, "https://three.example", within).await);
    mount(dir.path(), "..v2", &document(&listen, "https://four.example"));
    println!("..data swap → applied: {:?}", until_allowed(&listen, "https://four.example", within).await);

    // Broken, oversized and deleted files: each is seen (the rejection is recorded, the deletion counted as an event)
    // and four.example stays.
    let good = document(&listen, "https://five.example");
    let broken = [
        ("half-written", good[..good.len() - 12].to_owned(), "is not valid TOML"),
        ("300 KiB", format!("{good}# {}\n", "x".repeat(300 * 1024)), "at most 262144 bytes are parsed"),
    ];
    for (case, text, error) in broken {
        mount(dir.path(), &format!("..{case}"), &text);
        until_rejected(&listen, error, within).await;
        assert_eq!(allowed(&listen, "https://four.example").await.as_deref(), Some("https://four.example"), "{case}");
    }
    let events = watch_events(&listen).await.expect("metrics");
    std::fs::remove_file(dir.path().join("..data")).expect("the mount vanishes");
    let deadline = Instant::now() + within;
    while watch_events(&listen).await.is_none_or(|now| now == events) {
        assert!(Instant::now() < deadline, "the deletion was not seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(allowed(&listen, "https://four.example").await.as_deref(), Some("https://four.example"), "deleted");
    mount(dir.path(), "..v3", &good);
    println!("recreated → applied: {:?}", until_allowed(&listen, "https://five.example", within).await);
    assert_eq!(api_connections.load(Ordering::SeqCst), 0, "no request reached the API server");
}

#[tokio::test]
async fn without_watch_config_sighup_reads_the_file_and_nothing_else_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").to_string();
    let file = dir.path().join("broker.toml");
    std::fs::write(&file, document(&listen, "https://one.example")).expect("write");
    // Outside Kubernetes (no kubeconfig), as Prometheus and Vector do: the file is read again on SIGHUP, and only
    // `--watch-config` polls it. (With a kubeconfig and no `--watch-config`, the ConfigMap is the source.)
    let broker = serve(&file, None, &[]);
    until_allowed(&listen, "https://one.example", Duration::from_secs(30)).await;
    until_read_once(&listen).await;
    std::fs::write(&file, document(&listen, "https://two.example")).expect("edit");
    // Four quiet windows, the debounce of the document: a poll would have applied it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(allowed(&listen, "https://one.example").await.as_deref(), Some("https://one.example"), "not polled");
    let pid = i32::try_from(broker.0.id()).expect("pid");
    // As an operator sends it.
    let sent = Command::new("kill").args(["-HUP", &pid.to_string()]).status().expect("kill runs");
    assert!(sent.success());
    println!("SIGHUP → applied: {:?}", until_allowed(&listen, "https://two.example", Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_mounted_configmap_needs_its_namespace_and_is_not_read_with_hot_reload_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").to_string();
    let base = dir.path().join("base.toml");
    std::fs::write(&base, document(&listen, "https://one.example")).expect("write");
    let mounted = dir.path().join("broker.toml");
    std::fs::write(&mounted, "[cors]\nallowed_origins = [\"https://two.example\"]\n").expect("write");
    let broker = |env: &[(&str, &str)]| {
        let mut command = brokkr_testenv::child_command(&support::broker::binary());
        command.args(["serve", "--config"]).arg(&base).arg("--configmap-file").arg(&mounted).env_clear();
        command.envs(env.iter().copied()).stdout(Stdio::null()).stderr(Stdio::piped());
        Serving(command.spawn().expect("spawn the broker"))
    };

    // Found by review: without a namespace, a document could move `config_reload.namespace` unchecked. (Inside a
    // pod the ServiceAccount's namespace file gives one, which `env_clear` cannot hide: that part needs a host.)
    let in_a_pod = Path::new("/var/run/secrets/kubernetes.io/serviceaccount/namespace").exists();
    if in_a_pod {
        println!("skipped the missing-namespace case: this machine is a pod with a ServiceAccount namespace");
    }
    let mut refused = broker(&[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if in_a_pod {
            break None;
        }
        if let Some(status) = refused.0.try_wait().expect("wait") {
            break Some(status);
        }
        assert!(Instant::now() < deadline, "started without knowing the ConfigMap's namespace");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if let Some(status) = status {
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut refused.0.stderr.take().expect("stderr"), &mut stderr).expect("read");
        assert!(!status.success() && stderr.contains("--configmap-file needs the namespace"), "{status}: {stderr}");
    }
    drop(refused);

    // Found by review: with hot reload off, the mounted document was still applied at every start.
    let off = broker(&[("POD_NAMESPACE", "brokkr"), ("BROKKR__CONFIG_RELOAD__ENABLED", "false")]);
    until_allowed(&listen, "https://one.example", Duration::from_secs(30)).await;
    assert_eq!(allowed(&listen, "https://two.example").await.as_deref(), Some(""), "the document was read");
    drop(off);

    let _on = broker(&[("POD_NAMESPACE", "brokkr")]);
    until_allowed(&listen, "https://two.example", Duration::from_secs(30)).await;
}
