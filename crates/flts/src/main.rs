//! `flts`: the FLTS operator CLI (see the library for the commands).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = flts::Cli::parse();
    service_kit::logging::init("flts", "warn");
    flts::run(cli).await
}
