//! `cabinet`: the server (`serve`), the admin tool (`admin …`) and the client (`upload`, `ls`, …).

use anyhow::Context;
use cabinet::admin::{self, AdminCommand};
use cabinet::client::{self, ClientCommand};
use cabinet::config::{self, ServeArgs, StoreArgs};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

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

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Colours only for a person at a terminal, not escape codes in a log file or a collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = config::serve_config(&cli.store, &args)?;
            init_logging(config.json_logs);
            cabinet::server::serve(config).await
        }
        Command::Admin(command) => {
            init_logging(false);
            let store = config::store_config(&cli.store)?;
            admin::run(&store, command).await.context("admin command failed")
        }
        Command::Client(command) => std::process::exit(client::run(command).await),
    }
}
