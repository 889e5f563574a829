//! `boat bench`: measurements on a fresh local cluster.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {}

pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("benchmarks are not built yet")
}
