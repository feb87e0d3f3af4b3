//! The server's, the CLI's and the dialects' integration suites, each a module of this one test
//! binary: one build and one link for all of them, not one per suite. Run one suite with its name
//! as the filter, `cargo test -p cabinet --test integration tus::`; `dev/test` shows how the
//! suites are split between runs.

// What the suites share: the in-process server (`support`), the real binary in a process of its
// own (`process`), the CLI's user (`cli_user`) and the test images (`images`).
mod cli_user;
mod images;
mod process;
mod support;

mod access;
mod admin_cli;
mod audit;
mod backup;
mod behind_proxy;
mod cli;
mod cli_downloads;
mod cli_paths;
mod cli_shape;
mod cli_sync;
mod cli_uploads;
mod compat_cms;
mod compat_mavera;
mod compat_mavi;
mod compat_serenities;
mod connections;
mod consistency;
mod cors;
mod crash_recovery;
mod events;
mod faults;
mod files;
mod fuzz_findings;
mod isolation_matrix;
mod kept_on_postgres;
mod kept_on_sqlite;
mod lasting_urls;
mod limits;
mod logs;
mod memory;
mod metrics;
mod migrate_store;
mod multipart;
mod names;
mod openapi;
mod organising;
mod resumable;
mod s3;
mod shutdown;
mod signed_urls;
mod tenancy;
mod thumbnail_memory;
mod thumbnails;
mod tls;
mod transfers;
mod tus;
mod tus_crash;
mod two_nodes;
mod unauthenticated;
mod uploads;
mod webhooks;
mod webhooks_crash;
mod webhooks_two_nodes;
