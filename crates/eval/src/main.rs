//! `eval`: the FLTS eval stage binary (see the library for what it does).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = eval::Cli::parse();
    service_kit::logging::init("eval", "info");
    eval::run(cli, service_kit::shutdown::shutdown_token()).await
}
