//! Where flags may stand on the command line. The server's settings (`--config`, `--data-dir`,
//! `--database-url`, `--storage`) belong to `serve` and `admin`, and the client's (`--url`,
//! `--key`, `--profile`, `--json`, `--quiet`) to the client commands, so neither shows up in the
//! other's `--help`; yet both may be written before the command too (`cabinet --data-dir D serve`,
//! `cabinet --profile work ls`). Such leading flags are moved to where their command takes them,
//! before clap parses; flags that belong to no command given are left for clap to refuse.

use std::ffi::OsString;

use clap::{Args, Command, Subcommand};

use crate::client::{ClientCommand, Connection};
use crate::config::StoreSettings;

/// The spellings of a group's flags, and whether each takes a value.
struct Flags(Vec<(String, bool)>);

impl Flags {
    fn of(command: Command) -> Self {
        let mut flags = Vec::new();
        for arg in command.get_arguments() {
            let takes_value = arg.get_action().takes_values();
            for long in arg.get_long_and_visible_aliases().into_iter().flatten() {
                flags.push((format!("--{long}"), takes_value));
            }
            if let Some(short) = arg.get_short() {
                flags.push((format!("-{short}"), takes_value));
            }
        }
        Flags(flags)
    }

    /// How many words the flag at `words[0]` spans (1 or 2), if it is one of these.
    fn span(&self, words: &[OsString]) -> Option<usize> {
        let word = words[0].to_str()?;
        let (name, inline) = match word.split_once('=') {
            Some((name, _)) if name.starts_with("--") => (name, true),
            _ => (word, false),
        };
        let (_, takes_value) = self.0.iter().find(|(flag, _)| flag == name)?;
        Some(if *takes_value && !inline && words.len() > 1 { 2 } else { 1 })
    }
}

/// The command line with leading flags moved to their command: the store settings to right after
/// `serve` or `admin`, the client's settings to the end of a client command.
pub fn placed(args: Vec<OsString>) -> Vec<OsString> {
    let store = Flags::of(StoreSettings::augment_args(Command::new("store")));
    let client = Flags::of(Connection::augment_args(Command::new("client")));
    let client_commands: Vec<String> = ClientCommand::augment_subcommands(Command::new("client"))
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();

    let (program, rest) = match args.split_first() {
        Some((program, rest)) => (program.clone(), rest),
        None => return args,
    };
    let mut store_words = Vec::new();
    let mut client_words = Vec::new();
    let mut other = Vec::new();
    let mut i = 0;
    while i < rest.len() && rest[i].to_str().is_some_and(|w| w.starts_with('-') && w != "-" && w != "--") {
        if let Some(n) = store.span(&rest[i..]) {
            store_words.extend_from_slice(&rest[i..i + n]);
            i += n;
        } else if let Some(n) = client.span(&rest[i..]) {
            client_words.extend_from_slice(&rest[i..i + n]);
            i += n;
        } else {
            other.push(rest[i].clone());
            i += 1;
        }
    }
    let Some(command) = rest.get(i).and_then(|w| w.to_str()) else { return args };
    let after = &rest[i + 1..];
    let mut placed = vec![program];
    placed.extend(other);
    if command == "serve" || command == "admin" {
        placed.extend(client_words);
        placed.push(rest[i].clone());
        placed.extend(store_words);
        placed.extend_from_slice(after);
    } else if client_commands.iter().any(|name| name == command) {
        placed.extend(store_words);
        placed.push(rest[i].clone());
        // A command with commands of its own (`trash --json ls`): its flags before the inner
        // command move to the end as well.
        let mut after = after;
        if command == "trash" {
            let mut j = 0;
            while j < after.len() {
                match client.span(&after[j..]) {
                    Some(n) => {
                        client_words.extend_from_slice(&after[j..j + n]);
                        j += n;
                    }
                    None => break,
                }
            }
            after = &after[j..];
        }
        placed.extend_from_slice(after);
        placed.extend(client_words);
    } else {
        return args;
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    fn placed_line(line: &str) -> String {
        placed(words(line)).iter().map(|w| w.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn leading_flags_move_to_their_command() {
        assert_eq!(
            placed_line("cabinet --data-dir d serve --listen x"),
            "cabinet serve --data-dir d --listen x"
        );
        assert_eq!(
            placed_line("cabinet --config=c.toml admin create-key --json"),
            "cabinet admin --config=c.toml create-key --json"
        );
        assert_eq!(placed_line("cabinet --profile work --json ls /A"), "cabinet ls /A --profile work --json");
        assert_eq!(placed_line("cabinet -q trash ls"), "cabinet trash ls -q");
        assert_eq!(placed_line("cabinet trash --json ls"), "cabinet trash ls --json");
        assert_eq!(
            placed_line("cabinet --url=http://h tag file_1 +a"),
            "cabinet tag file_1 +a --url=http://h"
        );
    }

    #[test]
    fn flags_of_the_other_side_are_left_for_clap_to_refuse() {
        assert_eq!(placed_line("cabinet --data-dir d ls"), "cabinet --data-dir d ls");
        assert_eq!(placed_line("cabinet --key k serve"), "cabinet --key k serve");
        assert_eq!(placed_line("cabinet --help"), "cabinet --help");
        assert_eq!(placed_line("cabinet ls --profile p"), "cabinet ls --profile p");
    }
}
