//! A child started through `child_command` is killed by the kernel when the thread that spawned it ends, even if
//! nobody kills it.

use std::{
    path::Path,
    process::Command,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use brokkr_testenv::child_command;

fn setpriv_knows_pdeathsig() -> bool {
    Command::new("setpriv")
        .arg("--help")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("--pdeathsig"))
}

/// The state letter in `/proc/<pid>/stat` (`R`, `S`, `Z`…), or `None` once the process is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn command_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned()
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out after 5 s waiting until {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_child_dies_with_the_thread_that_spawned_it() {
    if !setpriv_knows_pdeathsig() {
        eprintln!("skipped: this setpriv lacks --pdeathsig, so children are not tied to the thread that spawns them");
        return;
    }
    let (pid_sender, pid_receiver) = mpsc::channel();
    thread::spawn(move || {
        let child = child_command(Path::new("sleep")).arg("60").spawn().expect("spawn sleep");
        let pid = child.id();
        // The death signal is armed once setpriv has exec'd `sleep`; a thread that ended before would not fire it.
        wait_until("setpriv has started sleep", || command_name(pid) == "sleep");
        pid_sender.send(pid).expect("send the pid");
        std::mem::forget(child);
    })
    .join()
    .expect("the spawning thread ends");

    let pid = pid_receiver.recv().expect("the pid");
    wait_until(&format!("process {pid} is killed (gone or a zombie)"), || matches!(state(pid), None | Some('Z')));
}
