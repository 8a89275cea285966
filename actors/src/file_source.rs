//! A file as the source of the configuration document: the `--config` file itself, or the ConfigMap as the kubelet
//! mounts it. Polled, as Prometheus and Vector do for mounted volumes: an edit in place, a rename over the file and
//! the kubelet's `..data` symlink swap all change what a read returns, and a read sees only whole files after a
//! rename.

use std::{collections::BTreeMap, fmt, io, path::PathBuf, sync::Arc, time::Duration};

use brokkr_config::{ConfigError, Document, Place, ReloadSettings, layers::MAX_DOCUMENT_BYTES};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher;

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

/// A file read at start and then polled every `interval`, or (without one) read again only on demand (SIGHUP,
/// `POST …/reload`). Each read whose text differs from the last one is a change, a file that is gone is the
/// document's deletion, and an unreadable file (no permission, not UTF-8, over [`MAX_FILE_BYTES`]) ends the watch
/// with the error, so the supervisor retries it with backoff while the last good configuration stays.
#[derive(Clone)]
pub struct FileSource {
    path: Arc<PathBuf>,
    place: Place,
    interval: Option<Duration>,
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
        Self { path: Arc::new(path), place, interval }
    }
}

/// The file's state now, read off the async threads (a read of a stalled network mount must not stop the actors).
async fn read(path: Arc<PathBuf>) -> io::Result<ConfigMapState> {
    let read = tokio::task::spawn_blocking(move || match read_capped(&path, MAX_FILE_BYTES) {
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
    });
    read.await.unwrap_or_else(|join| Err(io::Error::other(join)))
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
        let (path, interval) = (self.path.clone(), self.interval);
        // A list first, as the API's watch begins: the file as it is now.
        let list = {
            let path = path.clone();
            async move {
                match read(path).await {
                    Ok(ConfigMapState::Present(version)) => {
                        let applied = watcher::Event::InitApply(as_configmap(version.clone()));
                        (vec![Ok(watcher::Event::Init), Ok(applied), Ok(watcher::Event::InitDone)], Some(version))
                    }
                    Ok(ConfigMapState::Absent) => (vec![Ok(watcher::Event::Init), Ok(watcher::Event::InitDone)], None),
                    Err(error) => (vec![Err(failed(error))], None),
                }
            }
        };
        let stream = list.into_stream().flat_map(move |(events, seen)| {
            let failed_at_start = events.iter().any(Result::is_err);
            let path = path.clone();
            let changes = stream::unfold(Some(seen), move |seen| {
                let path = path.clone();
                async move {
                    let mut seen = seen?;
                    loop {
                        tokio::time::sleep(interval.unwrap_or(MAX_POLL_INTERVAL)).await;
                        match read(path.clone()).await {
                            Ok(ConfigMapState::Present(version)) if seen.as_ref() != Some(&version) => {
                                seen = Some(version.clone());
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
        read(self.path.clone()).map(|read| read.map_err(kube::Error::ReadEvents)).boxed()
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

    fn resyncs(&self) -> bool {
        self.interval.is_some()
    }

    fn document(&self, version: &ConfigMapVersion, _: &ReloadSettings) -> Result<Document, ConfigError> {
        let text = version.data.get(FILE_KEY).cloned().unwrap_or_default();
        let origin = match self.place {
            Place::ConfigMap { .. } => format!("ConfigMap file {}", self.path.display()),
            Place::ConfigFile => format!("config file {}", self.path.display()),
        };
        Ok(Document { origin, text, place: self.place.clone() })
    }
}
