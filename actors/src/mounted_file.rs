//! Files mounted from a Secret that the broker reads again when they change: their stamp, and a capped read.

use std::{
    fs,
    io::Read,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::Path,
    time::SystemTime,
};

/// What identifies one version of a file without reading it: the kubelet replaces a mounted Secret's files by
/// swapping the `..data` symlink (a new file, so a new inode), and cert-manager or an operator may rewrite them in
/// place (a new mtime or length); either changes one of these. `stat` follows the symlinks.
pub type Stamp = (Option<SystemTime>, u64, u64, u64);

/// The stamp of `path` now; `None` when it cannot be stat'ed (missing, a dangling symlink).
#[must_use]
pub fn stamp(path: &Path) -> Option<Stamp> {
    fs::metadata(path).ok().map(|m| (m.modified().ok(), m.len(), m.ino(), m.dev()))
}

/// The bytes of the regular file `path`, refused past `limit` bytes without reading further: a wrong path (a log,
/// a device) must not cost memory or time.
pub fn read_capped(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    // Non-blocking: opening a FIFO for reading otherwise waits for a writer, forever, on the thread that asked.
    let file = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    // Checked on the open file, not the path, so that a swap in between cannot slip a FIFO or a device in.
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}
