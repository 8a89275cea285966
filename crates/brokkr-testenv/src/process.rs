//! Child processes whose output goes to a log file, killed when dropped.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use crate::{Result, error::io};

/// A free loopback port (the kernel picks one; a small window remains before the component binds it).
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("bind a free port"))?;
    Ok(listener.local_addr().map_err(io("read a free port"))?.port())
}

/// A running component.
pub(crate) struct Process {
    pub(crate) name: &'static str,
    pub(crate) log: PathBuf,
    child: Child,
}

impl Process {
    /// Starts `binary args` in `dir`, appending its output to `dir/<name>.log`.
    pub(crate) fn spawn(name: &'static str, binary: &Path, args: &[String], dir: &Path) -> Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out =
            File::options().create(true).append(true).open(&log).map_err(io(format!("open {}", log.display())))?;
        let err = out.try_clone().map_err(io("clone log handle"))?;
        let child = Command::new(binary)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io(format!("start {}", binary.display())))?;
        Ok(Self { name, log, child })
    }

    /// True while the process runs.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `bytes` of its log.
    pub(crate) fn tail(&self, bytes: u64) -> String {
        tail_of(&self.log, bytes)
    }

    /// Kills it and waits for it to exit.
    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `bytes` of the file at `path`.
pub(crate) fn tail_of(path: &Path, bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}
