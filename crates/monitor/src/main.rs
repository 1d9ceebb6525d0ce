//! `monitor`: the FLTS monitor stage binary (see the library for what it does).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = monitor::Cli::parse();
    service_kit::logging::init("monitor", "info");
    monitor::run(cli, service_kit::shutdown::shutdown_token()).await
}
