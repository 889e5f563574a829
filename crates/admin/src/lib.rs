//! The outward face of a Boat node: its HTTP API.
//!
//! Modules:
//! - [`server`]: router, shared state, bind and graceful shutdown.
//! - [`predict`]: `POST /predict`, through the Raft log.
//! - [`status`]: `GET /` and `GET /status`.
//! - [`control`]: `POST /control`, failure injection.
//! - [`extract`]: JSON body extraction with JSON errors.
//! - [`error`]: the single error-to-HTTP mapping.

pub mod control;
pub mod error;
pub mod extract;
pub mod predict;
pub mod server;
pub mod status;

pub use error::ApiError;
pub use server::{AppState, HttpConfig, HttpServer};
