//! The `cabinet` binary's parts: configuration, assembling the service from its backends,
//! the server's lifecycle, its ready file and the connections it accepts, the admin commands, and the client commands.

pub mod admin;
pub mod args;
pub mod backup;
pub mod client;
pub mod config;
pub mod connections;
pub mod logging;
pub mod migrate_store;
pub mod ready_file;
pub mod server;
pub mod tls;
pub mod units;
pub mod webhook_sender;
