//! The liveness and readiness probes on a Unix socket inside the pod, where no other pod can reach it: `serve`
//! answers on it, and `brokkr-broker probe` (the chart's exec probes) asks it.
//!
//! Why not the HTTP port: any pod can reach that one and fill its connection slots with slow clients; the kubelet's
//! probes then wait behind them, time out, and the container is restarted again and again (issue 23; before this,
//! 7 of 11 probes failed under 3,000 slow connections per port). A probe port of its own would still be reachable
//! by every pod, and a NetworkPolicy cannot tell the kubelet from a pod on the same node. A Unix socket in an
//! `emptyDir` is reachable only by the pod's own containers, so no traffic from outside can fail the probe.
//!
//! Readiness too: a flood of the HTTP port used to make the kubelet's `httpGet /readyz` wait behind the listen
//! backlog and fail, so any pod could take every replica out of the webhook's Service and fail a staged rollout's
//! gate (which reads readiness) at will. `/readyz` here answers what the HTTP port's `/readyz` would.

use std::{
    io::{Read, Write},
    os::unix::{fs::FileTypeExt, net::UnixStream},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, OnceLock},
    time::Duration,
};

use actix_web::{App, HttpResponse, HttpServer, Responder, dev::Server, get, http::KeepAlive, web};
use brokkr_reload::Subsystem;

use crate::shutdown::Draining;

/// The liveness path on the probe socket.
pub const PATH: &str = "/healthz";
/// The readiness path on the probe socket.
pub const READY_PATH: &str = "/readyz";

/// What `/readyz` on the probe socket answers: not ready until [`Readiness::set`] (the socket is served before the
/// reload subsystem exists), then what the HTTP port's `/readyz` answers.
#[derive(Clone, Default)]
pub struct Readiness(Arc<OnceLock<(Subsystem, web::Data<Draining>)>>);

impl Readiness {
    /// From now on, ready as `subsystem` and `draining` say. A second call changes nothing.
    pub fn set(&self, subsystem: Subsystem, draining: web::Data<Draining>) {
        drop(self.0.set((subsystem, draining)));
    }

    fn answer(&self) -> Result<(), &'static str> {
        match self.0.get() {
            Some((subsystem, draining)) => crate::http::readiness(subsystem, Some(draining.get_ref())),
            None => Err("starting"),
        }
    }
}

/// How long the main thread (where the reload actors run) may take to answer before the probe fails: well under the
/// chart's 5 s probe timeout, with room for the runtime to start the probe process.
pub const MAIN_THREAD_DEADLINE: Duration = Duration::from_secs(1);

/// How long `brokkr-broker probe` waits for each read and write of its request (the kubelet's own timeout, the
/// chart's `timeoutSeconds: 5`, bounds the whole probe, process start included).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);

/// The probe server's connection limit: the kubelet runs one probe at a time per container.
const MAX_CONNECTIONS: usize = 8;

/// Why the probe socket could not be served, or a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Something other than a socket is at the path; it is never removed.
    #[error("{path} exists and is not a socket")]
    NotASocket {
        /// The probe socket's path.
        path: PathBuf,
    },
    /// The socket could not be bound (or a stale one removed).
    #[error("probe socket {path} could not be bound")]
    Bind {
        /// The probe socket's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The probe could not talk to the broker.
    #[error("no answer on probe socket {path}")]
    Unanswered {
        /// The probe socket's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The broker answered something other than 200.
    #[error("probe socket answered {status_line:?}")]
    Unhealthy {
        /// The first line of the answer, at most 64 bytes.
        status_line: String,
    },
}

/// Binds the probe socket at `path`, replacing a socket a previous run of the container left in the `emptyDir`.
pub fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, ProbeError> {
    let bind_error = |source| ProbeError::Bind { path: path.to_owned(), source };
    match std::fs::symlink_metadata(path) {
        // A socket someone still answers on (a broker started by hand with the container's environment) is left
        // alone: removing it would fail the serving broker's probes and get it restarted.
        Ok(meta) if meta.file_type().is_socket() && UnixStream::connect(path).is_ok() => {
            return Err(bind_error(std::io::ErrorKind::AddrInUse.into()));
        }
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path).map_err(bind_error)?,
        Ok(_) => return Err(ProbeError::NotASocket { path: path.to_owned() }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(bind_error(error)),
    }
    std::os::unix::net::UnixListener::bind(path).map_err(bind_error)
}

/// Serves `/healthz` and `/readyz` on `listener`: one worker of its own, a few connections, short timers.
pub fn serve(
    listener: std::os::unix::net::UnixListener,
    path: &Path,
    readiness: Readiness,
) -> Result<Server, ProbeError> {
    let readiness = web::Data::new(readiness);
    let server = HttpServer::new(move || App::new().app_data(readiness.clone()).service(healthz).service(readyz))
        .workers(1)
        .max_connections(MAX_CONNECTIONS)
        .keep_alive(KeepAlive::Disabled)
        .client_request_timeout(Duration::from_millis(500))
        .disable_signals()
        .shutdown_timeout(1)
        .listen_uds(listener)
        .map_err(|source| ProbeError::Bind { path: path.to_owned(), source })?;
    Ok(server.run())
}

/// `200` when the main thread, where the reload actors and signal handling run, answers within
/// [`MAIN_THREAD_DEADLINE`]; `503` when it is stuck, so the kubelet restarts a wedged broker.
#[get("/healthz")]
async fn healthz() -> impl Responder {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let sent = actix_web::rt::System::try_current().is_some_and(|system| {
        system.arbiter().spawn(async move {
            // The probe may have given up already; nothing to tell it then.
            let _ = answer.send(());
        })
    });
    match tokio::time::timeout(MAIN_THREAD_DEADLINE, answered).await {
        Ok(Ok(())) if sent => HttpResponse::Ok().body("ok"),
        _ => HttpResponse::ServiceUnavailable().body("the main thread did not answer"),
    }
}

/// Whether the broker serves and has a configuration in force, as the HTTP port's `/readyz` says, without any
/// connection from outside the pod in the way.
#[get("/readyz")]
async fn readyz(readiness: web::Data<Readiness>) -> impl Responder {
    crate::http::readiness_answer(readiness.answer())
}

/// `brokkr-broker probe`: asks the probe socket at `path` for liveness, or readiness with `ready`; success exits 0,
/// anything else 1 with the reason.
pub fn run(path: &Path, ready: bool) -> ExitCode {
    let asked = if ready { READY_PATH } else { PATH };
    match ask(path, asked, CLIENT_TIMEOUT) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("brokkr-broker probe: {}", crate::report::chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// One `GET <asked>` over the socket at `path`, each step within `timeout`. A hand-written request: it is one line
/// to a server of our own, and an HTTP client with Unix-socket support would add a dependency for nothing else.
pub fn ask(path: &Path, asked: &str, timeout: Duration) -> Result<(), ProbeError> {
    let unanswered = |source| ProbeError::Unanswered { path: path.to_owned(), source };
    let mut stream = UnixStream::connect(path).map_err(unanswered)?;
    stream.set_read_timeout(Some(timeout)).map_err(unanswered)?;
    stream.set_write_timeout(Some(timeout)).map_err(unanswered)?;
    let request = format!("GET {asked} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(unanswered)?;
    let mut head = [0; 64];
    let mut read = 0;
    while read < head.len() && !head[..read].contains(&b'\n') {
        match stream.read(&mut head[read..]).map_err(unanswered)? {
            0 => break,
            n => read += n,
        }
    }
    let status_line = String::from_utf8_lossy(&head[..read]).lines().next().unwrap_or_default().to_owned();
    if status_line.starts_with("HTTP/1.1 200 ") {
        Ok(())
    } else {
        Err(ProbeError::Unhealthy { status_line: status_line.escape_debug().to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_socket_is_replaced_and_anything_else_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("probe.sock");
        let first = bind(&path).expect("first bind");
        drop(first);
        bind(&path).expect("a socket a previous run left is replaced");
        let file = dir.path().join("file");
        std::fs::write(&file, "keep").expect("write");
        assert!(matches!(bind(&file), Err(ProbeError::NotASocket { .. })));
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "keep");
    }

    #[test]
    fn a_probe_with_nobody_listening_fails_and_names_the_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("probe.sock");
        let error = ask(&path, PATH, Duration::from_millis(100)).expect_err("nobody listens");
        assert!(crate::report::chain(&error).contains("probe.sock"), "{error}");
    }

    /// Serves the probe socket at `path` on this System; the server's handle.
    fn serving(path: &Path) -> actix_web::dev::ServerHandle {
        let server = serve(bind(path).expect("bind"), path, Readiness::default()).expect("serve");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        handle
    }

    /// A probe asked from a thread of its own, while this (the main) thread keeps running.
    async fn ask_while_running(path: &Path) -> Result<(), ProbeError> {
        let path = path.to_owned();
        actix_web::rt::task::spawn_blocking(move || ask(&path, PATH, Duration::from_secs(5))).await.expect("the probe")
    }

    #[actix_web::test]
    async fn the_probe_fails_while_the_main_thread_is_stuck_and_passes_while_it_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("probe.sock");
        let handle = serving(&path);
        let answer = ask_while_running(&path).await;
        assert!(answer.is_ok(), "the main thread runs: {answer:?}");
        // This (the main) thread now blocks until the probe has its answer: it cannot run the probe's task.
        let (answered, answer) = std::sync::mpsc::channel();
        let asked = path.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            drop(answered.send((ask(&asked, PATH, Duration::from_secs(5)), started.elapsed())));
        });
        let (answer, took) = answer.recv().expect("the probe thread");
        assert!(
            matches!(&answer, Err(ProbeError::Unhealthy { status_line }) if status_line.contains("503")),
            "{answer:?}"
        );
        assert!(took >= MAIN_THREAD_DEADLINE, "failed after {took:?}, before the deadline");
        let answer = ask_while_running(&path).await;
        assert!(answer.is_ok(), "the main thread runs again: {answer:?}");
        handle.stop(false).await;
    }

    #[actix_web::test]
    async fn readiness_on_the_socket_waits_for_the_subsystem_and_ends_with_the_drain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("probe.sock");
        let readiness = Readiness::default();
        let server = serve(bind(&path).expect("bind"), &path, readiness.clone()).expect("serve");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let ask_ready =
            |path: PathBuf| actix_web::rt::task::spawn_blocking(move || ask(&path, READY_PATH, Duration::from_secs(5)));
        let answer = ask_ready(path.clone()).await.expect("the probe");
        assert!(
            matches!(&answer, Err(ProbeError::Unhealthy { status_line }) if status_line.contains("503")),
            "{answer:?}"
        );
        let draining = web::Data::new(Draining::default());
        readiness.set(Subsystem::disabled(), draining.clone());
        let answer = ask_ready(path.clone()).await.expect("the probe");
        assert!(answer.is_ok(), "a subsystem with nothing to read is ready: {answer:?}");
        draining.start();
        let answer = ask_ready(path.clone()).await.expect("the probe");
        assert!(
            matches!(&answer, Err(ProbeError::Unhealthy { status_line }) if status_line.contains("503")),
            "{answer:?}"
        );
        let alive = actix_web::rt::task::spawn_blocking(move || ask(&path, PATH, Duration::from_secs(5)));
        assert!(alive.await.expect("the probe").is_ok(), "still alive while draining");
        handle.stop(false).await;
    }

    #[test]
    fn a_socket_a_running_broker_answers_on_is_never_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("probe.sock");
        let _serving = bind(&path).expect("first bind");
        let error = bind(&path).expect_err("in use");
        assert!(matches!(&error, ProbeError::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse));
    }
}
