//! A raw watch with the broker's parameters that counts what the API server sends on it, bookmarks included.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{ListParams, WatchEvent, WatchParams},
    runtime::{utils::Backoff, watcher::DefaultBackoff},
};

/// What the probe received between two [`WatchProbe::counts`] calls, or since it started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Watch requests made.
    pub watches: u64,
    /// BOOKMARK events: the server telling the watch how far the resourceVersion has moved.
    pub bookmarks: u64,
    /// ADDED, MODIFIED and DELETED events for the watched object.
    pub events: u64,
    /// ERROR events (such as 410 Gone: the resume version was too old) and failed requests.
    pub errors: u64,
}

impl Received {
    /// What was received after `earlier`.
    #[must_use]
    pub fn since(self, earlier: Self) -> Self {
        Self {
            watches: self.watches - earlier.watches,
            bookmarks: self.bookmarks - earlier.bookmarks,
            events: self.events - earlier.events,
            errors: self.errors - earlier.errors,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    watches: AtomicU64,
    bookmarks: AtomicU64,
    events: AtomicU64,
    errors: AtomicU64,
}

/// The same watch the broker makes (field selector on one name, a server-side timeout, bookmarks allowed),
/// resumed from the last resourceVersion as kube-runtime's watcher does, counting what arrives. kube-runtime
/// does not surface bookmarks, so this is how a harness sees them. Stops when dropped.
pub struct WatchProbe {
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl WatchProbe {
    /// Starts watching `name` with `timeout_secs` per watch request.
    ///
    /// # Panics
    /// If the ConfigMap cannot be read to start from.
    pub async fn start(api: Api<ConfigMap>, name: &str, timeout_secs: u32) -> Self {
        let current = api.get(name).await.expect("read the ConfigMap to watch");
        let version = current.metadata.resource_version.unwrap_or_default();
        let params = WatchParams::default().fields(&format!("metadata.name={name}")).timeout(timeout_secs);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(watch_loop(api, name.to_owned(), params, version, Arc::clone(&counters)));
        Self { counters, task }
    }

    /// Everything received since the probe started.
    #[must_use]
    pub fn counts(&self) -> Received {
        let c = &self.counters;
        Received {
            watches: c.watches.load(Ordering::Relaxed),
            bookmarks: c.bookmarks.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }
}

impl Drop for WatchProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches from `version`; resumes after each server timeout from the last version seen. Like kube-runtime's
/// watcher, a 410 Gone re-lists (with the same field selector) and resumes from the list's version, and any other
/// error keeps the version; every error, or a watch that ends with nothing at all, waits out kube-runtime's
/// [`DefaultBackoff`] (the broker's own) so a failing server is not hammered.
async fn watch_loop(api: Api<ConfigMap>, name: String, params: WatchParams, mut version: String, c: Arc<Counters>) {
    let mut backoff = DefaultBackoff::default();
    let list = ListParams::default().fields(&format!("metadata.name={name}"));
    loop {
        c.watches.fetch_add(1, Ordering::Relaxed);
        let (mut received_any, mut failed) = (false, false);
        match api.watch(&params, &version).await {
            Ok(stream) => {
                let mut stream = stream.boxed();
                while let Some(event) = stream.next().await {
                    received_any = true;
                    match event {
                        Ok(WatchEvent::Bookmark(bookmark)) => {
                            c.bookmarks.fetch_add(1, Ordering::Relaxed);
                            version = bookmark.metadata.resource_version;
                        }
                        Ok(WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o)) => {
                            c.events.fetch_add(1, Ordering::Relaxed);
                            version = o.metadata.resource_version.unwrap_or(version);
                        }
                        Ok(WatchEvent::Error(status)) => {
                            failed = true;
                            if status.code == 410
                                && let Ok(listed) = api.list(&list).await
                            {
                                version = listed.metadata.resource_version.unwrap_or(version);
                            }
                            break;
                        }
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    }
                }
            }
            Err(_) => failed = true,
        }
        if failed || !received_any {
            c.errors.fetch_add(u64::from(failed), Ordering::Relaxed);
            tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(30))).await;
        } else {
            backoff.reset();
        }
    }
}
