//! `boat images build` and `boat swarm init|leave`: the local Docker engine
//! set up for the docker and swarm worker runtimes. Nothing can be pulled,
//! so Boat's worker image is built from this very binary, the libraries it
//! links and the ONNX Runtime library.

use std::path::PathBuf;

use anyhow::Context;
use boat_admin::training::runtime;
use bollard::models::SwarmInitRequest;
use clap::Subcommand;

#[derive(Debug, Clone, Subcommand)]
pub enum ImagesCmd {
    /// Build Boat's worker image (FROM scratch) from this binary.
    Build {
        #[arg(long, default_value = "boat-worker:latest")]
        tag: String,
        /// Path of libonnxruntime.so (otherwise ORT_DYLIB_PATH).
        #[arg(long, env = "ORT_DYLIB_PATH")]
        ort_lib: PathBuf,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum SwarmCmd {
    /// Make this engine a one-node Swarm manager (other hosts then join it
    /// with `docker swarm join`).
    Init {
        /// The address other Swarm hosts reach this one at.
        #[arg(long, default_value = "127.0.0.1")]
        advertise_addr: String,
    },
    /// Leave the Swarm (forcing, as its last manager).
    Leave,
}

pub async fn images(cmd: ImagesCmd) -> anyhow::Result<()> {
    let docker = runtime::connect().await.map_err(anyhow::Error::msg)?;
    match cmd {
        ImagesCmd::Build { tag, ort_lib } => {
            let boat = std::env::current_exe().context("finding this boat binary")?;
            let started = std::time::Instant::now();
            runtime::build_boat_image(&docker, &tag, &boat, &ort_lib).await?;
            println!("built {tag} in {:.1}s", started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

pub async fn swarm(cmd: SwarmCmd) -> anyhow::Result<()> {
    let docker = runtime::connect().await.map_err(anyhow::Error::msg)?;
    match cmd {
        SwarmCmd::Init { advertise_addr } => {
            if runtime::is_manager(&docker).await {
                println!("this engine is already a Swarm manager");
                return Ok(());
            }
            let request = SwarmInitRequest {
                listen_addr: Some("0.0.0.0:2377".into()),
                advertise_addr: Some(advertise_addr),
                ..Default::default()
            };
            let id = docker.init_swarm(request).await.context("initialising the Swarm")?;
            println!("this engine now manages Swarm node {id}");
        }
        SwarmCmd::Leave => {
            let options = bollard::query_parameters::LeaveSwarmOptions { force: true };
            docker.leave_swarm(Some(options)).await.context("leaving the Swarm")?;
            println!("left the Swarm");
        }
    }
    Ok(())
}
