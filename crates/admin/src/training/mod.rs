//! (temporary on this branch: only the runtimes)
pub mod runtime;
