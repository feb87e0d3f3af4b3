//! One file per group of client commands; this file lists them for clap and dispatches.

mod browse;
mod edit;
mod get;
mod sync;
mod tree;
mod upload;

use clap::Subcommand;

use super::error::CliResult;
use super::{Connection, Ctx};

/// The client commands, at the top level next to `serve` and `admin`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Upload files and whole folders (in parallel, resumable for large files).
    Upload(upload::UploadArgs),
    /// List a folder: its folders, then its files.
    Ls(browse::LsArgs),
    /// Search file and folder names.
    Find(browse::FindArgs),
    /// Download a file (with progress; resumes a partial download).
    Get(get::GetArgs),
    /// Move a file or folder to another folder, and/or rename it.
    Mv(edit::MvArgs),
    /// Move files or folders to the trash (or delete them with --permanent).
    Rm(edit::RmArgs),
    /// Take files or folders out of the trash.
    Restore(edit::RestoreArgs),
    /// Toggle a file's or folder's favorite mark (or set it with --on/--off).
    Fav(edit::FavArgs),
    /// Change a file's tags: `+tag` adds, `-tag` removes, --set replaces.
    Tag(edit::TagArgs),
    /// Show the workspace's quota: used, reserved, limit.
    Quota(browse::QuotaArgs),
    /// Print a signed, expiring download URL for a file.
    Url(get::UrlArgs),
    /// Create folders (`-p`: with their parents, and no complaint if they exist).
    Mkdir(tree::MkdirArgs),
    /// The trash: `ls` what is in it, `restore` items, `empty` it for good.
    #[command(subcommand)]
    Trash(tree::TrashCommand),
    /// Mirror a local folder to a workspace folder or back, by SHA-256 (--dry-run, --delete).
    Sync(sync::SyncArgs),
}

impl ClientCommand {
    /// Fixes up what clap cannot parse alone (flags after `tag ID -b`).
    pub fn normalize(&mut self) {
        if let ClientCommand::Tag(args) = self {
            args.lift_flags();
        }
    }

    /// The connection options the command was given.
    pub fn connection(&self) -> &Connection {
        match self {
            ClientCommand::Upload(args) => &args.conn,
            ClientCommand::Ls(args) => &args.conn,
            ClientCommand::Find(args) => &args.conn,
            ClientCommand::Get(args) => &args.conn,
            ClientCommand::Mv(args) => &args.conn,
            ClientCommand::Rm(args) => &args.conn,
            ClientCommand::Restore(args) => &args.conn,
            ClientCommand::Fav(args) => &args.conn,
            ClientCommand::Tag(args) => &args.conn,
            ClientCommand::Quota(args) => &args.conn,
            ClientCommand::Url(args) => &args.conn,
            ClientCommand::Mkdir(args) => &args.conn,
            ClientCommand::Trash(command) => command.connection(),
            ClientCommand::Sync(args) => &args.conn,
        }
    }
}

pub async fn run(ctx: &Ctx, command: ClientCommand) -> CliResult<()> {
    match command {
        ClientCommand::Upload(args) => upload::run(ctx, args).await,
        ClientCommand::Ls(args) => browse::ls(ctx, args).await,
        ClientCommand::Find(args) => browse::find(ctx, args).await,
        ClientCommand::Get(args) => get::get(ctx, args).await,
        ClientCommand::Mv(args) => edit::mv(ctx, args).await,
        ClientCommand::Rm(args) => edit::rm(ctx, args).await,
        ClientCommand::Restore(args) => edit::restore(ctx, args).await,
        ClientCommand::Fav(args) => edit::fav(ctx, args).await,
        ClientCommand::Tag(args) => edit::tag(ctx, args).await,
        ClientCommand::Quota(args) => browse::quota(ctx, args).await,
        ClientCommand::Url(args) => get::url(ctx, args).await,
        ClientCommand::Mkdir(args) => tree::mkdir(ctx, args).await,
        ClientCommand::Trash(command) => tree::trash(ctx, command).await,
        ClientCommand::Sync(args) => sync::sync(ctx, args).await,
    }
}
