//! Process-wide ONNX Runtime initialisation.
//!
//! `ort` (with `load-dynamic`) needs the shared library loaded and exactly one environment
//! built per process; building a second one fails. [`init_runtime`] does both once, keeps the
//! environment alive for the life of the process, and is safe to call again (later calls are
//! no-ops). Other crates must go through it rather than calling `ort::init*` themselves.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use crate::error::ServingError;

/// Environment variable naming the ONNX Runtime shared library (full file name, e.g.
/// `.../libonnxruntime.so.1.31.1`; the wheel ships no unversioned symlink).
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

struct Runtime {
    env: Environment,
    dylib: PathBuf,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// Serialises first-time initialisation (`OnceLock::get_or_try_init` is not stable).
static INIT: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime from `dylib`, or else from `$ORT_DYLIB_PATH`, and builds the process's
/// environment. Idempotent: once it has succeeded, later calls return `Ok(())` whatever path
/// they pass (a different path is logged and ignored, since a process can hold only one).
pub fn init_runtime(dylib: Option<&Path>) -> Result<(), ServingError> {
    if let Some(rt) = RUNTIME.get() {
        warn_if_different(rt, dylib);
        return Ok(());
    }
    // A poisoned lock only means another thread panicked mid-init; RUNTIME is still unset
    // or fully set, so carrying on is sound.
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = RUNTIME.get() {
        warn_if_different(rt, dylib);
        return Ok(());
    }

    let requested = match dylib {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os(DYLIB_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                return Err(ServingError::Runtime(format!(
                    "no ONNX Runtime library given: pass its path or set {DYLIB_ENV} to the full \
                     file name (e.g. .ort/libonnxruntime.so.1.31.1 from scripts/fetch-ort.sh)"
                )))
            }
        },
    };
    // Absolute path: ort resolves relative paths against the executable's directory.
    let path = std::fs::canonicalize(&requested)
        .map_err(|e| ServingError::Runtime(format!("ONNX Runtime library {} not found: {e}", requested.display())))?;
    if !path.is_file() {
        return Err(ServingError::Runtime(format!("ONNX Runtime library {} is not a file", path.display())));
    }

    let env = ort::init_from(&path)
        .map_err(|e| ServingError::Runtime(e.to_string()))?
        .with_name("boat")
        .with_telemetry(false)
        .build()
        .map_err(|e| ServingError::Runtime(e.to_string()))?;
    tracing::info!(dylib = %path.display(), "ONNX Runtime initialised");
    // We hold INIT and saw RUNTIME empty, so this set cannot race; ignore the impossible Err.
    let _ = RUNTIME.set(Runtime { env, dylib: path });
    Ok(())
}

/// Whether [`init_runtime`] has succeeded in this process.
pub fn is_initialized() -> bool {
    RUNTIME.get().is_some()
}

/// Path of the loaded ONNX Runtime library, once initialised.
pub fn dylib_path() -> Option<&'static Path> {
    RUNTIME.get().map(|rt| rt.dylib.as_path())
}

/// The process's environment, initialising from `$ORT_DYLIB_PATH` on first use.
pub(crate) fn environment() -> Result<&'static Environment, ServingError> {
    if RUNTIME.get().is_none() {
        init_runtime(None)?;
    }
    RUNTIME.get().map(|rt| &rt.env).ok_or_else(|| ServingError::Runtime("ONNX Runtime is not initialised".into()))
}

fn warn_if_different(rt: &Runtime, dylib: Option<&Path>) {
    if let Some(p) = dylib {
        let same = std::fs::canonicalize(p).map(|c| c == rt.dylib).unwrap_or(false);
        if !same {
            tracing::warn!(
                requested = %p.display(),
                loaded = %rt.dylib.display(),
                "ONNX Runtime already initialised from another library; keeping it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_library_is_a_clear_error() {
        if is_initialized() {
            return; // another test in this process already loaded it; nothing to check
        }
        let err = init_runtime(Some(Path::new("/definitely/not/here/libonnxruntime.so")))
            .expect_err("a missing file cannot initialise");
        assert!(matches!(err, ServingError::Runtime(ref m) if m.contains("not found")), "{err}");
    }
}
