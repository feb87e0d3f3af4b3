//! The client's command line: each command's `--help` lists its own flags and the client's, never
//! the server's; the client's flags go before or after the command; shell completions and a man
//! page; errors a person can act on (one line for a server that is not there). The server's flags
//! and settings file take sizes and durations as people write them.

use crate::cli_user;
use crate::process;

use std::process::Command;

use cli_user::{finish, server_and_user, User};
use process::cabinet_binary;

fn cabinet(args: &[&str]) -> cli_user::Run {
    let mut command = Command::new(cabinet_binary());
    command.args(args).env_remove("CABINET_URL").env_remove("CABINET_KEY").env("NO_PROXY", "*");
    finish(command.output().unwrap())
}

#[test]
fn client_help_lists_no_server_flags_and_server_help_lists_them_all() {
    let server_flags = ["--data-dir", "--database-url", "--storage", "--config", "--listen"];
    for command in
        ["ls", "upload", "get", "mv", "rm", "restore", "fav", "tag", "quota", "url", "find", "mkdir"]
    {
        let help = cabinet(&[command, "--help"]);
        assert_eq!(help.code, 0, "{command}: {}", help.stderr);
        for flag in server_flags {
            assert!(!help.stdout.contains(flag), "`cabinet {command} --help` lists {flag}:\n{}", help.stdout);
        }
        assert!(help.stdout.contains("--profile") && help.stdout.contains("--json"), "{}", help.stdout);
    }
    let help = cabinet(&["trash", "ls", "--help"]);
    assert!(!help.stdout.contains("--data-dir") && help.stdout.contains("--profile"), "{}", help.stdout);
    let help = cabinet(&["serve", "--help"]);
    for flag in server_flags {
        assert!(help.stdout.contains(flag), "serve --help misses {flag}");
    }
    assert!(!help.stdout.contains("--profile"), "{}", help.stdout);
    assert!(cabinet(&["admin", "--help"]).stdout.contains("--data-dir"));
    // A server flag on a client command is refused, not silently ignored.
    assert_eq!(cabinet(&["--data-dir", "/tmp/x", "ls"]).code, 2);
}

#[test]
fn the_clients_flags_go_before_or_after_the_command() {
    let (_dir, server, user) = server_and_user(None);
    let config = user.home.path().join("config/cabinet/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, format!("[profiles.work]\nurl = \"{}\"\nkey = \"{}\"\n", server.url, user.key))
        .unwrap();
    let plain = |args: &[&str]| finish(user.command(args).output().unwrap());
    for args in [
        &["--profile", "work", "quota", "--json"][..],
        &["quota", "--profile", "work", "--json"][..],
        &["--json", "--profile=work", "quota"][..],
        &["--profile", "work", "--json", "trash", "ls"][..],
        &["trash", "--profile", "work", "--json", "ls"][..],
        &["--server", &server.url, "--key", &user.key, "--json", "mkdir", "-p", "/A"][..],
    ] {
        let run = plain(args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        serde_json::from_str::<serde_json::Value>(run.stdout.trim())
            .unwrap_or_else(|_| panic!("{args:?}: JSON"));
    }
}

#[test]
fn completions_and_a_man_page_come_from_the_binary() {
    for shell in ["bash", "zsh", "fish"] {
        let run = cabinet(&["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(run.stdout.contains("mkdir") && run.stdout.contains("upload"), "{shell}:\n{}", run.stdout);
    }
    let man = cabinet(&["man"]);
    assert_eq!(man.code, 0, "{}", man.stderr);
    assert!(man.stdout.starts_with(".ie") || man.stdout.contains(".TH cabinet 1"), "{}", man.stdout);
    let dir = tempfile::tempdir().unwrap();
    let run = cabinet(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(dir.path().join("cabinet.1").exists() && dir.path().join("cabinet-upload.1").exists());
}

#[test]
fn errors_speak_of_the_clients_flags_and_an_absent_server_in_one_line() {
    let (_dir, _server, user) = server_and_user(None);
    let run = user.run(&["url", "/nothing", "--expires", "30d"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--expires") && !run.stderr.contains("expires_in"), "{}", run.stderr);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let run = User::new(&url, &user.key).run(&["ls"]);
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert_eq!(run.stderr.trim(), format!("cabinet: cannot reach {url}: connection refused"));
}

#[test]
fn server_flags_and_settings_take_sizes_and_durations_as_people_write_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cabinet.toml");
    std::fs::write(&config, "max_file_bytes = \"1KiB\"\nsweep_interval = \"2s\"\n").unwrap();
    let config = config.to_str().unwrap().to_owned();
    let tenant = process::Tenant::create(dir.path(), "acme", None, "write");
    let sized = process::admin_json(
        dir.path(),
        &[
            "create-workspace",
            "--name",
            "sized",
            "--quota-bytes",
            "10KiB",
            "--max-file-bytes",
            "2000",
            "--json",
        ],
    );
    assert_eq!(
        (sized["limit_bytes"].as_u64(), sized["max_file_bytes"].as_u64()),
        (Some(10240), Some(2000)),
        "{sized}"
    );
    let server = process::ServerProcess::start_with(
        dir.path(),
        &["--config", &config, "--upload-url-ttl", "1h", "--download-url-ttl", "90s"],
    );
    let user = User::new(&server.url, &tenant.key);
    let small = user.write("small.txt", &[b'x'; 1000]);
    let big = user.write("big.txt", &[b'x'; 2000]);
    assert_eq!(user.run(&["upload", small.to_str().unwrap()]).code, 0, "under 1KiB");
    let run = user.run(&["upload", big.to_str().unwrap()]);
    assert_eq!(run.code, 6, "over max_file_bytes = \"1KiB\": {}", run.stderr);
}
