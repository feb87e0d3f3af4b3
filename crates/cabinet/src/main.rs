//! `cabinet`: the server (`serve`), the admin tool (`admin …`) and the client (`upload`, `ls`, …).

use anyhow::Context;
use cabinet::admin::{self, AdminCommand};
use cabinet::client::{self, ClientCommand};
use cabinet::config::{self, LogFormat, ServeSettings, StoreSettings};
use cabinet::logging::{self, Output};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cabinet", version, about = "A self-hostable, multi-tenant Files API", after_help = client::EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    store: StoreSettings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (embedded default: SQLite and blobs under ./cabinet-data, on 127.0.0.1:8080).
    Serve(Box<ServeSettings>),
    /// Manage workspaces and API keys.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The client commands, over the /v1 API.
    #[command(flatten)]
    Client(ClientCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The matches, not only the parsed values: a setting in the file yields to a flag or variable
    // only where one was given (see `config`).
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.format(&mut Cli::command()).exit());
    match cli.command {
        Command::Serve(args) => {
            let store = config::store_settings(&cli.store, &matches)?;
            let serve_matches =
                matches.subcommand_matches("serve").context("the serve command's settings")?;
            let settings = config::serve_settings(&cli.store, &args, serve_matches)?;
            logging::init(settings.log_format == LogFormat::Json, Output::Batched);
            let served = cabinet::server::serve(store.stores()?, settings).await;
            logging::flush();
            served
        }
        Command::Admin(command) => {
            logging::init(false, Output::Immediate);
            let store = config::store_settings(&cli.store, &matches)?.stores()?;
            admin::run(&store, command).await.context("admin command failed")
        }
        Command::Client(command) => std::process::exit(client::run(command).await),
    }
}
