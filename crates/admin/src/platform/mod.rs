//! The admin service: every platform operation, once, for all faces.
//!
//! The REST handlers (`crate::api`), the gRPC admin service
//! (`crate::admin_grpc`) and through them the CLI and the Python client call
//! these methods of [`AppState`](crate::server::AppState). Each takes the
//! already authorized caller (a [`Principal`](crate::auth::Principal)) and
//! typed arguments and returns a view type that both faces render, so the
//! rules (who may do what, what is valid) live here and nowhere else.
//!
//! - [`users`]: login, tokens, users and the bootstrap superadmin;
//! - [`datasets`]: CSV uploads ([`csv_check`] validates them);
//! - [`apps`]: ensembles of model versions;
//! - [`cluster`]: adding and removing nodes.

pub mod apps;
pub mod cluster;
pub mod csv_check;
pub mod datasets;
pub mod users;
