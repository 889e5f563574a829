//! Boat's own worker image, built from the `boat` binary this node runs.
//!
//! The image is `FROM scratch`: it holds the binary at `/boat` (its
//! entrypoint), every shared library the binary links against (as `ldd`
//! lists them, the dynamic loader included, each at the path it has on
//! this host), the ONNX Runtime library under `/opt/onnxruntime/` with the
//! libraries it links against, and an empty `/tmp`. `ORT_DYLIB_PATH` points
//! at the ONNX Runtime library and `HOME` at `/tmp`. Nothing else is in it:
//! no shell, no package manager. The build context is made in memory and
//! sent to the engine's builder; the host needs no Dockerfile and no
//! directory of its own for it.
//!
//! An image built on one host exists on that host only. On a Swarm of more
//! than one host, load it on each of the others before workers are placed
//! there, for example:
//!
//! ```text
//! docker save boat-worker:latest | ssh other-host docker load
//! ```
//!
//! or push it to a registry every host can pull from and use that name.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::{body_full, Docker};
use futures::StreamExt;

use super::docker::{engine_error, is_not_found};
use super::RuntimeError;

/// Where the ONNX Runtime library goes in the image.
const ORT_DIR: &str = "opt/onnxruntime";

/// Whether the engine has an image of this name.
pub async fn image_exists(docker: &Docker, tag: &str) -> bool {
    match docker.inspect_image(tag).await {
        Ok(_) => true,
        Err(e) => {
            if !is_not_found(&e) {
                tracing::debug!("inspecting image {tag}: {e}");
            }
            false
        }
    }
}

/// Builds Boat's worker image under `tag` from the `boat` binary at
/// `boat_bin` and the ONNX Runtime library at `ort_lib` (see the module
/// documentation for what goes in it). The builder's steps are logged at
/// info level, the rest of its output at debug; a failure says what failed
/// and what the engine said.
pub async fn build_boat_image(docker: &Docker, tag: &str, boat_bin: &Path, ort_lib: &Path) -> Result<(), RuntimeError> {
    let (boat_bin, ort_lib) = (boat_bin.to_path_buf(), ort_lib.to_path_buf());
    let context = tokio::task::spawn_blocking(move || build_context(&boat_bin, &ort_lib))
        .await
        .map_err(|e| RuntimeError::Failed(format!("making the build context: {e}")))??;
    tracing::info!("building image {tag} from a {} MiB context", context.len() >> 20);
    let options = BuildImageOptionsBuilder::new().dockerfile("Dockerfile").t(tag).rm(true).forcerm(true).build();
    let mut progress = std::pin::pin!(docker.build_image(options, None, Some(body_full(context.into()))));
    let mut built = false;
    while let Some(step) = progress.next().await {
        let info = step.map_err(|e| engine_error(&format!("building image {tag}"), e))?;
        if let Some(line) = info.stream.as_deref().map(str::trim_end).filter(|l| !l.is_empty()) {
            if line.starts_with("Step ") {
                tracing::info!("building {tag}: {line}");
            } else {
                tracing::debug!("building {tag}: {line}");
            }
        }
        built |= info.aux.is_some();
    }
    if !built && !image_exists(docker, tag).await {
        return Err(RuntimeError::Failed(format!("building image {tag}: the engine reported no image")));
    }
    Ok(())
}

/// The build context: a Dockerfile and the image's root file system under
/// `rootfs/`, as one uncompressed tar archive.
fn build_context(boat_bin: &Path, ort_lib: &Path) -> Result<Vec<u8>, RuntimeError> {
    let ort_name = ort_lib
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| RuntimeError::Failed(format!("{ort_lib:?} does not name a library file")))?;
    // Path in the image → file on this host.
    let mut files = BTreeMap::<String, PathBuf>::new();
    files.insert("boat".into(), boat_bin.to_path_buf());
    files.insert(format!("{ORT_DIR}/{ort_name}"), ort_lib.to_path_buf());
    for binary in [boat_bin, ort_lib] {
        for lib in shared_libraries(binary)? {
            let inside = lib.to_string_lossy().trim_start_matches('/').to_string();
            files.entry(inside).or_insert(lib);
        }
    }
    let dockerfile = format!(
        "FROM scratch\nCOPY rootfs/ /\nENV ORT_DYLIB_PATH=/{ORT_DIR}/{ort_name} HOME=/tmp\nENTRYPOINT [\"/boat\"]\n"
    );

    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    append(&mut tar, "Dockerfile", 0o644, dockerfile.as_bytes())?;
    let mut dirs = BTreeSet::new();
    for inside in files.keys() {
        let mut dir = Path::new(inside).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_path_buf());
            dir = d.parent();
        }
    }
    append_dir(&mut tar, "rootfs/tmp", 0o1777)?;
    for dir in &dirs {
        append_dir(&mut tar, &format!("rootfs/{}", dir.display()), 0o755)?;
    }
    for (inside, host) in &files {
        // Reading follows symbolic links: the image gets the file itself.
        let mut data = Vec::new();
        std::fs::File::open(host)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|e| RuntimeError::Failed(format!("reading {host:?} for the image: {e}")))?;
        append(&mut tar, &format!("rootfs/{inside}"), 0o755, &data)?;
    }
    tar.into_inner().map_err(|e| RuntimeError::Failed(format!("making the build context: {e}")))
}

fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) -> Result<(), RuntimeError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    tar.append_data(&mut header, path, data)
        .map_err(|e| RuntimeError::Failed(format!("adding {path} to the context: {e}")))
}

fn append_dir(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> Result<(), RuntimeError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(mode);
    tar.append_data(&mut header, format!("{path}/"), std::io::empty())
        .map_err(|e| RuntimeError::Failed(format!("adding {path} to the context: {e}")))
}

/// The shared libraries (and the dynamic loader) `binary` needs, as `ldd`
/// finds them on this host. A statically linked binary needs none; a
/// library `ldd` cannot find is an error, since the image would not run.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, RuntimeError> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| RuntimeError::Failed(format!("running ldd on {binary:?}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stdout.contains("not a dynamic executable") || stderr.contains("not a dynamic executable") {
            return Ok(vec![]);
        }
        return Err(RuntimeError::Failed(format!("ldd {binary:?} failed ({}): {}", out.status, stderr.trim())));
    }
    parse_ldd(&stdout).map_err(|missing| {
        RuntimeError::Failed(format!("{binary:?} needs {} which this host does not have", missing.join(", ")))
    })
}

/// The absolute paths in `ldd` output, or the names of libraries it could
/// not find. Lines look like `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6
/// (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`, `linux-vdso.so.1 (0x…)` (in
/// the kernel, no file) or `libfoo.so.1 => not found`.
fn parse_ldd(out: &str) -> Result<Vec<PathBuf>, Vec<String>> {
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, target) = match line.split_once("=>") {
            Some((name, target)) => (name.trim(), target.trim()),
            None => (line, line),
        };
        if target.starts_with("not found") {
            missing.push(name.to_string());
            continue;
        }
        let path = target.split_whitespace().next().unwrap_or_default();
        if path.starts_with('/') {
            found.push(PathBuf::from(path));
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_is_parsed() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd5a5f2000)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0c1a7d0000)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0c1a400000)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f0c1b1f4000)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert_eq!(parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err(), ["libfoo.so.1"]);
    }
}
