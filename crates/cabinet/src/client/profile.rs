//! Where the client finds its server and key: `--url`/`--key`, then `CABINET_URL`/`CABINET_KEY`
//! (clap reads both), then a named profile in the client's TOML file. Also where the client keeps
//! its own state (resumable uploads).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::error::{CliError, CliResult};

/// The client's TOML file:
///
/// ```toml
/// default_profile = "work"          # optional; else the profile named "default"
/// [profiles.work]
/// url = "https://files.example.com"
/// key = "cab_..."
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    default_profile: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    url: Option<String>,
    key: Option<String>,
}

/// The server and key a command talks to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL without a trailing `/` or `/v1`.
    pub url: String,
    pub key: String,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|home| home.join(fallback)))
}

/// `$CABINET_CLIENT_CONFIG`, else `$XDG_CONFIG_HOME/cabinet/config.toml` (`~/.config/...`).
pub fn config_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CABINET_CLIENT_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    xdg_dir("XDG_CONFIG_HOME", ".config").map(|dir| dir.join("cabinet").join("config.toml"))
}

/// `$XDG_STATE_HOME/cabinet` (`~/.local/state/cabinet`): the resumable uploads' records.
pub fn state_dir() -> Option<PathBuf> {
    xdg_dir("XDG_STATE_HOME", ".local/state").map(|dir| dir.join("cabinet"))
}

/// Resolves the endpoint from flags/environment (already merged by clap) and the profile file.
pub fn resolve(url: Option<&str>, key: Option<&str>, profile: Option<&str>) -> CliResult<Endpoint> {
    let file = match config_path() {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(&path).map_err(|err| CliError::io(path.display(), err))?;
            toml::from_str::<ProfileFile>(&text)
                .map_err(|err| CliError::usage(format!("{}: {err}", path.display())))?
        }
        _ => ProfileFile::default(),
    };
    let chosen = match profile {
        Some(name) => Some(file.profiles.get(name).cloned().ok_or_else(|| {
            CliError::usage(format!(
                "no profile named {name:?} in {}",
                config_path().map(|p| p.display().to_string()).unwrap_or_else(|| "the config file".into())
            ))
        })?),
        None => {
            let name = file.default_profile.as_deref().unwrap_or("default");
            file.profiles.get(name).cloned()
        }
    }
    .unwrap_or_default();

    let url = url.map(str::to_owned).or(chosen.url).ok_or_else(|| {
        CliError::usage("no server: pass --url, set CABINET_URL, or add a profile to the config file")
    })?;
    let key = key.map(str::to_owned).or(chosen.key).ok_or_else(|| {
        CliError::new(
            super::error::Exit::Auth,
            "no_key",
            "no API key: pass --key, set CABINET_KEY, or add a profile to the config file",
        )
    })?;
    Ok(Endpoint { url: normalize_url(&url)?, key })
}

/// `http://host:8080/v1/` → `http://host:8080`.
fn normalize_url(url: &str) -> CliResult<String> {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix("/v1").unwrap_or(url);
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(CliError::usage(format!("the server URL must start with http:// or https://: {url}")));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_loses_its_trailing_slash_and_v1() {
        assert_eq!(normalize_url("http://h:1/v1/").unwrap(), "http://h:1");
        assert_eq!(normalize_url("https://h/").unwrap(), "https://h");
        assert!(normalize_url("h:1").is_err());
    }

    #[test]
    fn a_profile_file_parses() {
        let file: ProfileFile =
            toml::from_str("default_profile = \"w\"\n[profiles.w]\nurl = \"http://x\"\nkey = \"cab_1\"\n")
                .unwrap();
        assert_eq!(file.default_profile.as_deref(), Some("w"));
        assert_eq!(file.profiles["w"].key.as_deref(), Some("cab_1"));
    }
}
