//! Child processes whose output goes to a log file, killed when dropped or when the test that started them dies.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
};

use crate::{Result, error::io};

/// A [`Command`] for `program` that the kernel kills (`SIGKILL`) when the thread that spawns it dies, so a
/// test run that panics, is killed or aborts leaves no etcd, kube-apiserver or broker behind.
///
/// On Linux it runs `setpriv --pdeathsig KILL -- <program>`: setpriv (util-linux, present on every Debian) sets
/// `PR_SET_PDEATHSIG` and then execs the program, which keeps the setting. The signal fires when the *spawning
/// thread* exits, not only the process, so spawn from a thread that outlives the child: a test's own thread or a
/// runtime worker, never `spawn_blocking` (its threads exit when idle). Without a setpriv that knows
/// `--pdeathsig`, it is plain `Command::new(program)`.
///
/// In both cases the child leads its own process group, so `kill -- -<pid>` reaps it and whatever it started,
/// and a Ctrl-C in the terminal reaches only the test process, which then stops its children in order.
pub fn child_command(program: &Path) -> Command {
    let mut command = match setpriv() {
        Some(setpriv) => {
            let mut command = Command::new(setpriv);
            command.args(["--pdeathsig", "KILL", "--"]).arg(program);
            command
        }
        None => Command::new(program),
    };
    command.process_group(0);
    command
}

/// A setpriv that supports `--pdeathsig`, looked for once.
fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            if !cfg!(target_os = "linux") {
                return None;
            }
            ["/usr/bin/setpriv", "/bin/setpriv", "setpriv"].into_iter().map(PathBuf::from).find(|setpriv| {
                Command::new(setpriv)
                    .arg("--help")
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
                    .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("--pdeathsig"))
            })
        })
        .as_deref()
}

/// A temporary folder `/tmp/<prefix>…` that only its owner can read (it holds keys and an admin kubeconfig), removed
/// on drop.
pub(crate) fn private_temp_dir(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(io("create temp dir"))
}

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
        let child = child_command(binary)
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
