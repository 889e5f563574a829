//! Tracing set-up: human-readable lines on stderr and, for nodes, the same
//! lines in a per-node file under the log directory, rotated by size so that
//! a node's log never grows without bound.

use std::path::Path;

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, EnvFilter};

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("BOAT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=error,sled=warn,h2=warn,tower=warn,hyper=warn"))
}

/// Logs for client commands: stderr only, warnings by default.
pub fn init_client() {
    let filter = EnvFilter::try_from_env("BOAT_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry().with(filter).with(fmt::layer().with_writer(std::io::stderr)).try_init();
}

/// How a node's log file is rotated.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// A file is rotated once it grows past this many bytes.
    pub max_bytes: usize,
    /// Rotated files kept (`node-N.log.1` is the newest), besides the current one.
    pub keep: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Self { max_bytes: 64 * 1024 * 1024, keep: 4 }
    }
}

/// Logs for a node: stderr and `<log_dir>/<file_name>`, rotated. Keep the
/// guard alive until exit so buffered lines reach the file. Lines are
/// written by a background thread, never on the async runtime.
pub fn init_node(log_dir: Option<&Path>, file_name: &str, rotation: Rotation) -> anyhow::Result<Option<WorkerGuard>> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stderr = fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(ansi);
    match log_dir {
        None => {
            let _ = tracing_subscriber::registry().with(filter()).with(stderr).try_init();
            Ok(None)
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let appender = FileRotate::new(
                dir.join(file_name),
                AppendCount::new(rotation.keep),
                ContentLimit::BytesSurpassed(rotation.max_bytes),
                Compression::None,
                None,
            );
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file = fmt::layer().with_writer(writer).with_ansi(false).with_target(false);
            let _ = tracing_subscriber::registry().with(filter()).with(stderr).with(file).try_init();
            Ok(Some(guard))
        }
    }
}

/// Sends panic messages (with their location) to the log file too, not just
/// to stderr, so that a node's log explains why it stopped.
pub fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "panic");
        default(info);
    }));
}
