//! `prophet`: the Prophet trainer stage (see the library for what it does).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = prophet::Cli::parse();
    service_kit::logging::init("prophet", "info");
    let trainer = prophet::ProphetTrainer::new(cli.model)?;
    training::run_service(trainer, "prophet", cli.trainer, service_kit::shutdown::shutdown_token()).await
}
