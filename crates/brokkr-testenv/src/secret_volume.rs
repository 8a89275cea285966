//! A Secret volume laid out and updated exactly as the kubelet's `AtomicWriter` does, for tests of file rotation.

use std::{
    io,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

/// A folder holding `..<timestamp>/<key>`, `..data -> ..<timestamp>` and `<key> -> ..data/<key>`. Every
/// [`SecretVolume::publish`] writes a new timestamped folder, renames a new `..data` symlink over the old one and
/// removes the old folder, so the user-visible file changes in one rename and is never written in place.
#[derive(Debug)]
pub struct SecretVolume {
    dir: PathBuf,
    key: String,
    generation: u32,
    current: Option<PathBuf>,
}

impl SecretVolume {
    /// A volume in `dir` (which must exist) whose one key `key` holds `content`.
    pub fn create(dir: &Path, key: &str, content: &[u8]) -> io::Result<Self> {
        let mut volume = Self { dir: dir.to_owned(), key: key.to_owned(), generation: 0, current: None };
        volume.publish(content)?;
        symlink(Path::new("..data").join(key), dir.join(key))?;
        Ok(volume)
    }

    /// The user-visible file, `<dir>/<key>`, the path an application is given.
    #[must_use]
    pub fn file(&self) -> PathBuf {
        self.dir.join(&self.key)
    }

    /// Publishes `content` as the kubelet does after the Secret changed.
    pub fn publish(&mut self, content: &[u8]) -> io::Result<()> {
        self.generation += 1;
        let name = format!("..2026_12_01_00_00_00.{:09}", self.generation);
        let folder = self.dir.join(&name);
        std::fs::create_dir(&folder)?;
        std::fs::write(folder.join(&self.key), content)?;
        let staged = self.dir.join("..data_tmp");
        symlink(&name, &staged)?;
        std::fs::rename(&staged, self.dir.join("..data"))?;
        if let Some(old) = self.current.replace(folder) {
            std::fs::remove_dir_all(old)?;
        }
        Ok(())
    }

    /// Removes the payload and `..data`, leaving `<key>` dangling, as a volume torn down under a running process.
    pub fn remove(&mut self) -> io::Result<()> {
        std::fs::remove_file(self.dir.join("..data"))?;
        if let Some(old) = self.current.take() {
            std::fs::remove_dir_all(old)?;
        }
        Ok(())
    }
}
