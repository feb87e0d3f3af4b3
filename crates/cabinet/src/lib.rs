//! The `cabinet` binary's parts: configuration, assembling the service from its backends,
//! the server's lifecycle, and the admin commands.

pub mod admin;
pub mod config;
pub mod server;
