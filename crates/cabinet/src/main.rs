//! `cabinet`: the server (`serve`), the admin tool (`admin …`) and the client (`upload`, `ls`, …).

use std::path::PathBuf;

use anyhow::Context;
use cabinet::admin::{self, AdminCommand};
use cabinet::client::{self, ClientCommand};
use cabinet::config::{self, LogFormat, ServeSettings, StoreSettings};
use cabinet::logging::{self, Output};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cabinet", version, about = "A self-hostable, multi-tenant Files API", after_help = client::EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (embedded default: SQLite and blobs under ./cabinet-data, on 127.0.0.1:8080).
    Serve(Box<ServeArgs>),
    /// Manage workspaces and API keys.
    Admin(AdminArgs),
    /// The client commands, over the /v1 API.
    #[command(flatten)]
    Client(ClientCommand),
    /// Print a shell completion script: `cabinet completions bash > /etc/bash_completion.d/cabinet`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff); with --dir, write one page per command there.
    Man {
        /// A folder to write cabinet.1, cabinet-upload.1, … into.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreSettings,
    #[command(flatten)]
    settings: ServeSettings,
}

#[derive(Debug, Args)]
struct AdminArgs {
    #[command(flatten)]
    store: StoreSettings,
    #[command(subcommand)]
    command: AdminCommand,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The matches, not only the parsed values: a setting in the file yields to a flag or variable
    // only where one was given (see `config`).
    let matches = Cli::command().get_matches_from(cabinet::args::placed(std::env::args_os().collect()));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.format(&mut Cli::command()).exit());
    match cli.command {
        Command::Serve(args) => {
            let serve_matches =
                matches.subcommand_matches("serve").context("the serve command's settings")?;
            let store = config::store_settings(&args.store, serve_matches)?;
            let settings = config::serve_settings(&args.store, &args.settings, serve_matches)?;
            logging::init(settings.log_format == LogFormat::Json, Output::Batched);
            let served = cabinet::server::serve(store.stores()?, settings).await;
            logging::flush();
            served
        }
        Command::Admin(args) => {
            logging::init(false, Output::Immediate);
            let admin_matches =
                matches.subcommand_matches("admin").context("the admin command's settings")?;
            let store = config::store_settings(&args.store, admin_matches)?.stores()?;
            admin::run(&store, args.command).await.context("admin command failed")
        }
        Command::Client(command) => std::process::exit(client::run(command).await),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "cabinet", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir: None } => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()).context("writing the page")
        }
        Command::Man { dir: Some(dir) } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing into {}", dir.display()))
        }
    }
}
