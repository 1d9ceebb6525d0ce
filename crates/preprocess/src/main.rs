//! `preprocess`: the FLTS preprocess stage binary (see the library for what it does).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = preprocess::Cli::parse();
    service_kit::logging::init("preprocess", "info");
    preprocess::run(cli, service_kit::shutdown::shutdown_token()).await
}
