//! `inference`: the FLTS inference service binary (see the library for what it does).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = inference::Cli::parse();
    service_kit::logging::init("inference", "info");
    inference::run(cli, service_kit::shutdown::shutdown_token()).await
}
