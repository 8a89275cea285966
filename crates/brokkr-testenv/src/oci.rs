//! Container images without a registry or a base image: a binary and the shared libraries it links, packed as an
//! OCI image layout archive that `ctr images import` loads.
//!
//! Written here because no maintained crate builds an image from local files without a daemon (buildah and umoci
//! need a base image or storage of their own); an OCI layout is a tar of JSON and content-addressed blobs.

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{Error, Result, error::io};

/// What goes into an image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The fully qualified name containerd stores it under, such as `localhost/brokkr/broker:e2e`: the kubelet
    /// asks for exactly this name, and one without a registry would be looked up on Docker Hub.
    pub name: String,
    /// The program, copied to `/usr/local/bin/<file name>`.
    pub binary: PathBuf,
    /// Arguments after the program (the image's `Cmd`).
    pub cmd: Vec<String>,
    /// `uid:gid` the container runs as, numeric so that `runAsNonRoot` can check it.
    pub user: String,
}

/// One file of the layer: where it goes in the image, where its bytes come from.
struct Entry {
    at: PathBuf,
    from: PathBuf,
}

/// The shared libraries `binary` loads (and the dynamic loader), as `ldd` resolves them on this machine; empty for a
/// static binary.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd").arg(binary).output().map_err(io("run ldd"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // A static binary: ldd says "not a dynamic executable" and fails; anything else is an error.
        let says = format!("{text}{}", String::from_utf8_lossy(&output.stderr));
        return if says.contains("not a dynamic executable") {
            Ok(Vec::new())
        } else {
            Err(Error::Assets(format!("ldd {} failed: {says}", binary.display())))
        };
    }
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`, and
    // `linux-vdso.so.1 (0x…)`, which the kernel provides.
    let mut libraries = Vec::new();
    for line in text.lines() {
        if line.contains("not found") {
            return Err(Error::Assets(format!("{}: a shared library is missing: {}", binary.display(), line.trim())));
        }
        if let Some(path) = line.split("=>").last().and_then(|p| p.split_whitespace().next())
            && path.starts_with('/')
        {
            libraries.push(PathBuf::from(path));
        }
    }
    Ok(libraries)
}

/// The OCI name of this machine's architecture.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The layer: every entry with its parent folders, owned by root, timestamps zeroed so that equal inputs give equal
/// digests.
fn layer(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut folders = BTreeSet::new();
    for entry in entries {
        for parent in entry.at.ancestors().skip(1).filter(|p| !p.as_os_str().is_empty() && *p != Path::new("/")) {
            folders.insert(parent.to_owned());
        }
    }
    let relative = |p: &Path| p.strip_prefix("/").unwrap_or(p).to_owned();
    for folder in &folders {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        header.set_mtime(0);
        builder.append_data(&mut header, relative(folder), std::io::empty()).map_err(io("write a layer folder"))?;
    }
    for entry in entries {
        let bytes = std::fs::read(&entry.from).map_err(io(format!("read {}", entry.from.display())))?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        header.set_size(bytes.len() as u64);
        header.set_mtime(0);
        builder.append_data(&mut header, relative(&entry.at), bytes.as_slice()).map_err(io("write a layer file"))?;
    }
    builder.into_inner().map_err(io("finish the layer"))
}

/// Packs `spec` into the OCI image layout archive `out`.
pub fn pack(spec: &ImageSpec, out: &Path) -> Result<()> {
    let file_name = spec.binary.file_name().ok_or_else(|| Error::Assets("the image's binary has no name".into()))?;
    let program = Path::new("/usr/local/bin").join(file_name);
    let mut entries = vec![Entry { at: program.clone(), from: spec.binary.clone() }];
    for library in shared_libraries(&spec.binary)? {
        let from = std::fs::canonicalize(&library).map_err(io(format!("resolve {}", library.display())))?;
        entries.push(Entry { at: library, from });
    }
    let layer = layer(&entries)?;
    let layer_digest = digest(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": architecture(),
        "os": "linux",
        "config": {
            "User": spec.user,
            "Entrypoint": [program],
            "Cmd": spec.cmd,
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .map_err(|e| Error::Assets(format!("image config: {e}")))?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    }))
    .map_err(|e| Error::Assets(format!("image manifest: {e}")))?;
    let tag = spec.name.rsplit_once(':').map_or("latest", |(_, tag)| tag);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest),
            "size": manifest.len(),
            "annotations": {"io.containerd.image.name": spec.name, "org.opencontainers.image.ref.name": tag},
        }],
    }))
    .map_err(|e| Error::Assets(format!("image index: {e}")))?;

    let file = std::fs::File::create(out).map_err(io(format!("create {}", out.display())))?;
    let mut archive = tar::Builder::new(std::io::BufWriter::new(file));
    let mut add = |name: String, bytes: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        header.set_mtime(0);
        archive.append_data(&mut header, name, bytes).map_err(io("write the image archive"))
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json".into(), &index)?;
    for blob in [&layer, &config, &manifest] {
        add(format!("blobs/sha256/{}", &digest(blob)["sha256:".len()..]), blob)?;
    }
    let mut writer = archive.into_inner().map_err(io("finish the image archive"))?;
    writer.flush().map_err(io("write the image archive"))
}
