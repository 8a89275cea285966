//! A file as the source of the configuration document: the `--config` file itself, or the ConfigMap as the kubelet
//! mounts it. Polled, as Prometheus and Vector do for mounted volumes: an edit in place, a rename over the file and
//! the kubelet's `..data` symlink swap all change what a read returns, and a read sees only whole files after a
//! rename.

use std::{
    collections::BTreeMap,
    fmt, io,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use brokkr_config::{
    ConfigError, Document, Place, ReloadSettings,
    layers::{LayerText, MAX_DOCUMENT_BYTES},
};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    messages::{ConfigMapState, ConfigMapVersion},
    mounted_file::read_capped,
    source::{ConfigMapSource, WatchStream},
};

/// The largest file read. Past [`MAX_DOCUMENT_BYTES`] the judgement refuses a document by its size, naming it;
/// past this the read itself fails (a wrong path, a log file, must not cost memory).
pub const MAX_FILE_BYTES: u64 = 4 * MAX_DOCUMENT_BYTES as u64;

/// The shortest poll interval accepted.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The longest poll interval accepted.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// The data key a file's text is kept under in the [`ConfigMapVersion`] that carries it through the actors.
const FILE_KEY: &str = "file";

/// How long a read waits before it reads the file again to compare: a file written in place is truncated first,
/// and a read between the truncation and the write would see an empty or partial document.
pub const SETTLE: Duration = Duration::from_millis(50);

/// How many times a read compares before it gives up on a file that keeps changing.
const SETTLE_ATTEMPTS: usize = 5;

/// The longest a single read of the file may take (a stalled network or FUSE mount), and the longest a read waits
/// for the one before it to return.
pub const FILE_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A file read at start and then polled every `interval`, or (without one) read again only on demand (SIGHUP,
/// `POST …/reload`).
///
/// Each read is taken only when two reads [`SETTLE`] apart agree, so a file caught half written is read again. A
/// text that differs from the last one read (by any path: the poll, the resync, an on-demand read) gets the next
/// number as its resourceVersion, so the `ConfigActor` orders file versions as it orders a ConfigMap's: a debounce
/// window that closes after an on-demand read applied a newer text is dropped, not applied over it. A file that is
/// gone is the document's deletion; an unreadable one (no permission, not UTF-8, over [`MAX_FILE_BYTES`], a read
/// stalled past [`FILE_READ_TIMEOUT`]) ends the watch with the error, so the supervisor retries it with backoff
/// while the last good configuration stays. One read runs at a time.
#[derive(Clone)]
pub struct FileSource {
    path: Arc<PathBuf>,
    place: Place,
    interval: Option<Duration>,
    versions: Arc<Mutex<Versions>>,
    one_read: Arc<Semaphore>,
}

/// The last text read and its number.
#[derive(Default)]
struct Versions {
    text: Option<String>,
    number: u64,
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileSource({})", self.path.display())
    }
}

impl FileSource {
    /// The file at `path`, at `place` among the layers, read every `interval` (kept within
    /// [`MIN_POLL_INTERVAL`]..=[`MAX_POLL_INTERVAL`]); with `None`, only at start and on demand, and never by the
    /// periodic resync.
    #[must_use]
    pub fn new(path: PathBuf, place: Place, interval: Option<Duration>) -> Self {
        let interval = interval.map(|i| i.clamp(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL));
        let (versions, one_read) = (Arc::default(), Arc::new(Semaphore::new(1)));
        Self { path: Arc::new(path), place, interval, versions, one_read }
    }

    /// The file as two reads [`SETTLE`] apart agree on it, numbered. The one read permit is held from the first
    /// read to the number, so texts are numbered in the order they were read, whichever path read them.
    async fn read_settled(&self) -> io::Result<ConfigMapState> {
        let permit = tokio::time::timeout(FILE_READ_TIMEOUT, self.one_read.clone().acquire_owned())
            .await
            .map_err(|_| stalled())?
            .map_err(io::Error::other)?;
        let (mut state, mut permit) = self.read_once(permit).await?;
        for _ in 0..SETTLE_ATTEMPTS {
            tokio::time::sleep(SETTLE).await;
            let (again, held) = self.read_once(permit).await?;
            if again == state {
                let numbered = self.numbered(state);
                drop(held);
                return Ok(numbered);
            }
            (state, permit) = (again, held);
        }
        Err(io::Error::other("the file kept changing while it was read"))
    }

    /// `state` with the number of its text: the same as the last read's if the text is the same, else the next.
    fn numbered(&self, state: ConfigMapState) -> ConfigMapState {
        let mut versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        match state {
            ConfigMapState::Present(mut version) => {
                let text = version.data.get(FILE_KEY);
                if versions.text.as_ref() != text {
                    versions.number += 1;
                    versions.text = text.cloned();
                }
                version.resource_version = Some(versions.number.to_string());
                ConfigMapState::Present(version)
            }
            ConfigMapState::Absent => {
                // A file that comes back, even with the same text, is a new version.
                versions.text = None;
                ConfigMapState::Absent
            }
        }
    }

    /// One read of the file, off the async threads, bounded by [`FILE_READ_TIMEOUT`]. The permit goes with the
    /// read and comes back with it: a read that is still stuck keeps it, so a stalled mount holds one thread, and
    /// the next read waits for it, not one thread per attempt.
    async fn read_once(&self, permit: OwnedSemaphorePermit) -> io::Result<(ConfigMapState, OwnedSemaphorePermit)> {
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || {
            let state = match read_capped(&path, MAX_FILE_BYTES) {
                Ok(bytes) => String::from_utf8(bytes)
                    .map(|text| {
                        ConfigMapState::Present(ConfigMapVersion {
                            data: BTreeMap::from([(FILE_KEY.to_owned(), text)]),
                            resource_version: None,
                            uid: None,
                        })
                    })
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the file is not UTF-8")),
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(ConfigMapState::Absent),
                Err(error) => Err(error),
            };
            (state, permit)
        });
        match tokio::time::timeout(FILE_READ_TIMEOUT, read).await {
            Ok(Ok((state, permit))) => state.map(|state| (state, permit)),
            Ok(Err(join)) => Err(io::Error::other(join)),
            Err(_) => Err(stalled()),
        }
    }
}

/// A read that did not return within [`FILE_READ_TIMEOUT`], or waited that long for the one before it.
fn stalled() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the file could not be read within 5s")
}

/// A [`ConfigMap`] that carries `state`, as the watch events the `WatcherActor` follows hold one.
fn as_configmap(version: ConfigMapVersion) -> ConfigMap {
    let mut configmap = ConfigMap { data: Some(version.data), ..ConfigMap::default() };
    configmap.metadata.resource_version = version.resource_version;
    configmap
}

fn failed(error: io::Error) -> watcher::Error {
    watcher::Error::WatchFailed(kube::Error::ReadEvents(error))
}

impl ConfigMapSource for FileSource {
    fn watch(&self) -> WatchStream {
        let (source, interval) = (self.clone(), self.interval);
        // A list first, as the API's watch begins: the file as it is now.
        let list = {
            let source = source.clone();
            async move {
                match source.read_settled().await {
                    Ok(ConfigMapState::Present(version)) => {
                        let number = version.resource_version.clone();
                        let applied = watcher::Event::InitApply(as_configmap(version));
                        (vec![Ok(watcher::Event::Init), Ok(applied), Ok(watcher::Event::InitDone)], number)
                    }
                    Ok(ConfigMapState::Absent) => (vec![Ok(watcher::Event::Init), Ok(watcher::Event::InitDone)], None),
                    Err(error) => (vec![Err(failed(error))], None),
                }
            }
        };
        let stream = list.into_stream().flat_map(move |(events, seen)| {
            let failed_at_start = events.iter().any(Result::is_err);
            let source = source.clone();
            // What the poll last forwarded: the number of a text, or `None` for no file.
            let changes = stream::unfold(Some(seen), move |seen| {
                let source = source.clone();
                async move {
                    let mut seen = seen?;
                    loop {
                        tokio::time::sleep(interval.unwrap_or(MAX_POLL_INTERVAL)).await;
                        match source.read_settled().await {
                            Ok(ConfigMapState::Present(version)) if seen != version.resource_version => {
                                seen.clone_from(&version.resource_version);
                                return Some((Ok(watcher::Event::Apply(as_configmap(version))), Some(seen)));
                            }
                            Ok(ConfigMapState::Absent) if seen.is_some() => {
                                let gone = watcher::Event::Delete(ConfigMap::default());
                                return Some((Ok(gone), Some(None)));
                            }
                            Ok(_) => {}
                            // Ends the watch: the supervisor restarts it (a fresh read) with backoff.
                            Err(error) => return Some((Err(failed(error)), None)),
                        }
                    }
                }
            });
            let changes = match interval {
                _ if failed_at_start => stream::empty().boxed(),
                // Read on demand only: the watch stays open and silent, so the watcher is not restarted.
                None => stream::pending().boxed(),
                Some(_) => changes.boxed(),
            };
            stream::iter(events).chain(changes)
        });
        stream.boxed()
    }

    fn read(&self) -> BoxFuture<'static, Result<ConfigMapState, kube::Error>> {
        // `ReadEvents` carries the I/O error; `read_within` reports it as the file's, not as the API's.
        let source = self.clone();
        async move { source.read_settled().await.map_err(kube::Error::ReadEvents) }.boxed()
    }

    fn namespace(&self) -> String {
        match &self.place {
            Place::ConfigMap { namespace } => namespace.clone().unwrap_or_default(),
            Place::ConfigFile => String::new(),
        }
    }

    fn describe(&self) -> String {
        match self.interval {
            Some(every) => format!("file {} (read every {})", self.path.display(), humantime::format_duration(every)),
            None => format!("file {} (read on SIGHUP and POST /api/v1/admin/config/reload)", self.path.display()),
        }
    }

    fn what(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn resyncs(&self) -> bool {
        self.interval.is_some()
    }

    fn document(&self, version: &ConfigMapVersion, _: &ReloadSettings) -> Result<Document, ConfigError> {
        let text = version.data.get(FILE_KEY).cloned().unwrap_or_default();
        let origin = match self.place {
            Place::ConfigMap { .. } => format!("ConfigMap file {}", self.path.display()),
            Place::ConfigFile => format!("config file {}", self.path.display()),
        };
        Ok(Document { layer: LayerText { origin, text }, place: self.place.clone() })
    }
}
