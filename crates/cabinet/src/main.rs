//! `cabinet`: the server (`serve`), the admin tool (`admin …`) and the client (`upload`, `ls`, …).

use anyhow::Context;
use cabinet::admin::{self, AdminCommand};
use cabinet::client::{self, ClientCommand};
use cabinet::config::{self, ServeArgs, StoreArgs};
use cabinet::logging::{self, Output};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cabinet", version, about = "A self-hostable, multi-tenant Files API", after_help = client::EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (embedded default: SQLite and blobs under ./cabinet-data, on 127.0.0.1:8080).
    Serve(Box<ServeArgs>),
    /// Manage workspaces and API keys.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The client commands, over the /v1 API.
    #[command(flatten)]
    Client(ClientCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = config::serve_config(&cli.store, &args)?;
            logging::init(config.json_logs, Output::Batched);
            let served = cabinet::server::serve(config).await;
            logging::flush();
            served
        }
        Command::Admin(command) => {
            logging::init(false, Output::Immediate);
            let store = config::store_config(&cli.store)?;
            admin::run(&store, command).await.context("admin command failed")
        }
        Command::Client(command) => std::process::exit(client::run(command).await),
    }
}
