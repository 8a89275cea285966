//! Finds kube-apiserver and etcd: `KUBEBUILDER_ASSETS`, else the project's cached Go build.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use crate::{Error, Result};

fn has_binaries(dir: &Path) -> bool {
    dir.join("kube-apiserver").is_file() && dir.join("etcd").is_file()
}

/// The folder holding `kube-apiserver`, `etcd` (and `kubectl` when built here).
///
/// `KUBEBUILDER_ASSETS` wins when it holds both binaries (setup-envtest users); otherwise
/// `scripts/control-plane-assets.sh` builds them once into `~/.cache/brokkr/control-plane` and prints the folder.
pub fn assets_dir() -> Result<PathBuf> {
    static DIR: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").map(PathBuf::from).filter(|d| has_binaries(d)) {
            return Ok(dir);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/control-plane-assets.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("could not run {}: {e}", script.display()))?;
        if !output.status.success() {
            return Err(format!("{} failed with {}", script.display(), output.status));
        }
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has_binaries(&dir) {
            Ok(dir)
        } else {
            Err(format!("{} printed {}, which lacks the binaries", script.display(), dir.display()))
        }
    })
    .clone()
    .map_err(Error::Assets)
}
