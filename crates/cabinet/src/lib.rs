//! The `cabinet` binary's parts: configuration, assembling the service from its backends,
//! the server's lifecycle, the admin commands, and the client commands.

pub mod admin;
pub mod client;
pub mod config;
pub mod logging;
pub mod server;
