//! The `boat` command: run a node, deploy a local cluster, talk to a cluster,
//! benchmark it.
//!
//! Modules:
//! - [`node_cmd`]: `boat node`, wiring serving, Raft and HTTP into one process.
//! - [`deploy`]: `boat deploy`, a supervisor for a local cluster;
//!   [`deploy_docker`]: `--docker`, one container per node on this
//!   machine's engine; [`deploy_swarm`]: `--swarm`, the committed stack file.
//! - [`cluster`]: starting and stopping real node processes (deploy, bench, tests).
//! - [`admin_cmd`]: `boat login|logout|users|datasets|models|apps|cluster|predict|status|control`
//!   over the gRPC admin service ([`rpc`]: connection, leader following and
//!   tokens; [`table`]: plain-text tables).
//! - [`train_cmd`]: `boat templates|jobs|logs` over the gRPC training service.
//! - [`images_cmd`]: `boat images build` and `boat swarm init|leave` for the
//!   container worker runtimes.
//! - [`client`]: HTTP client for the cluster's API.
//! - [`bench`]: `boat bench`, throughput, latency and failover measurements.
//! - [`bench_serving`]: `boat bench serving`, raw runtime vs one node vs three nodes.
//! - [`bench_memory`]: `boat bench memory`, node memory with large models loaded.
//! - [`bench_dedup`]: `boat bench dedup`, the dedup window at full load.
//! - [`bench_containers`]: `boat bench containers`, containers against
//!   loopback processes, and failover after docker kill and disconnect.
//! - [`bench_admin`]: `boat bench admin`, admin calls over gRPC and REST.
//! - [`bench_advisor`]: `boat bench advisor`, advisors on real training and
//!   train-job wall time with one and two workers.
//! - [`onnx_builder`]: ONNX files of a chosen size, for benchmarks and tests.
//! - [`logging`]: tracing set-up.

pub mod admin_cmd;
pub mod bench;
pub mod bench_admin;
pub mod bench_advisor;
pub mod bench_containers;
pub mod bench_dedup;
pub mod bench_memory;
pub mod bench_serving;
pub mod client;
pub mod cluster;
pub mod deploy;
pub mod deploy_docker;
pub mod deploy_swarm;
pub mod images_cmd;
pub mod logging;
pub mod node_cmd;
pub mod onnx_builder;
pub mod rpc;
pub mod table;
pub mod train_cmd;
