//! The client commands (`cabinet upload|ls|find|get|mv|rm|restore|fav|tag|quota|url|mkdir|trash|
//! sync`): a plain client of the public `/v1` API, configured by `--url`/`--key`,
//! `CABINET_URL`/`CABINET_KEY` or a profile. `--json` prints one JSON document on stdout for
//! scripts; errors go to stderr and end with an exit code from [`error::Exit`].

pub mod error;
pub mod folders;
pub mod http;
pub mod items;
pub mod profile;
pub mod progress;
pub mod resume;
pub mod table;

pub use crate::units;

mod commands;

use std::io::IsTerminal;

use clap::Args;
use serde_json::Value;

pub use commands::ClientCommand;
use error::{CliError, CliResult};
use http::Api;

/// The client commands' exit codes, as `cabinet --help` lists them.
pub const EXIT_CODES: &str = "\
Client exit codes: 0 ok, 1 other error, 2 usage or invalid request, 3 not found,
4 key missing/invalid/not allowed, 5 conflict, 6 quota or size limit exceeded,
7 server unreachable or unavailable.
Client settings: --url/--key, else CABINET_URL/CABINET_KEY, else a profile
(--profile, CABINET_PROFILE) in $XDG_CONFIG_HOME/cabinet/config.toml.";

/// Options every client command takes.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The server's base URL (e.g. http://127.0.0.1:8080).
    #[arg(long, visible_alias = "server", env = "CABINET_URL")]
    pub url: Option<String>,
    /// The API key.
    #[arg(long, env = "CABINET_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// A profile from the client config file ($XDG_CONFIG_HOME/cabinet/config.toml).
    #[arg(long, env = "CABINET_PROFILE")]
    pub profile: Option<String>,
    /// Print one JSON document on stdout (and errors as JSON on stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress bars and no chatter; results and errors only.
    #[arg(long, short)]
    pub quiet: bool,
}

/// What a command needs: the API, and how to speak.
pub struct Ctx {
    pub api: Api,
    pub json: bool,
    pub quiet: bool,
}

impl Ctx {
    /// Whether progress bars are drawn: only for a person at a terminal.
    pub fn progress(&self) -> bool {
        !self.json && !self.quiet && std::io::stderr().is_terminal()
    }

    /// Prints a JSON result.
    pub fn print_json(&self, value: &Value) {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
    }

    /// A line for people on stderr (not with --json or --quiet).
    pub fn note(&self, message: impl std::fmt::Display) {
        if !self.json && !self.quiet {
            eprintln!("{message}");
        }
    }
}

/// Runs a client command and returns the process exit code.
pub async fn run(mut command: ClientCommand) -> i32 {
    command.normalize();
    let connection = command.connection().clone();
    let json = connection.json;
    match run_inner(connection, command).await {
        Ok(()) => 0,
        Err(err) => {
            if json {
                eprintln!("{}", err.to_json());
            } else {
                eprintln!("cabinet: {}", err.message);
            }
            err.exit as i32
        }
    }
}

async fn run_inner(connection: Connection, command: ClientCommand) -> CliResult<()> {
    let endpoint = profile::resolve(
        connection.url.as_deref(),
        connection.key.as_deref(),
        connection.profile.as_deref(),
    )?;
    let ctx = Ctx { api: Api::new(endpoint)?, json: connection.json, quiet: connection.quiet };
    commands::run(&ctx, command).await
}

/// A JSON field as text ("" when absent).
pub(crate) fn text(value: &Value, field: &str) -> String {
    match &value[field] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `2026-11-27T15:47:53.123Z` → `2026-11-27 15:47`.
pub(crate) fn short_time(value: &Value) -> String {
    value
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Reports a missing argument the way clap would, with exit code 2.
pub(crate) fn usage(message: impl Into<String>) -> CliError {
    CliError::usage(message)
}
