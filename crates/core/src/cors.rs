//! Which web origins may call Cabinet from a browser (CORS): the server's list, and a workspace's
//! own list for the routes that name their workspace without a credential (signed storage URLs and
//! public URLs). Parsed and checked here; the HTTP layer applies it.

use crate::error::{Error, Result};
use crate::ids::WorkspaceId;
use crate::Cabinet;

/// The origins a list allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Every origin (`*`).
    #[default]
    Any,
    /// No origin: no CORS headers at all (`none`, or an empty list).
    None,
    /// These origins, each `scheme://host[:port]`, lowercase, without the scheme's default port.
    List(Vec<String>),
}

impl CorsOrigins {
    /// Parses `*`, `none` (or nothing), or a comma-separated list of origins
    /// (`https://app.example.com,http://localhost:3000`); an error names the entry and says why.
    pub fn parse(raw: &str) -> std::result::Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() || raw.eq_ignore_ascii_case("none") {
            return Ok(Self::None);
        }
        if raw == "*" {
            return Ok(Self::Any);
        }
        let mut origins: Vec<String> = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            if entry == "*" || entry.eq_ignore_ascii_case("none") {
                return Err(format!("{entry:?} stands alone: not in a list of origins"));
            }
            let origin = origin(entry)?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(if origins.is_empty() { Self::None } else { Self::List(origins) })
    }

    /// Whether a request's `Origin` header (as the browser sent it) is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::None => false,
            Self::List(origins) => origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)),
        }
    }

    /// As the setting is written: `*`, `none`, or the origins comma-separated.
    pub fn to_setting(&self) -> String {
        match self {
            Self::Any => "*".to_owned(),
            Self::None => "none".to_owned(),
            Self::List(origins) => origins.join(","),
        }
    }
}

/// One origin, checked and written as a browser sends it: `scheme://host[:port]`, lowercase,
/// without the scheme's default port.
fn origin(entry: &str) -> std::result::Result<String, String> {
    let why = |reason: &str| {
        format!("{entry:?} is not an origin ({reason}); write it like https://app.example.com or http://localhost:3000")
    };
    let (scheme, rest) = entry.split_once("://").ok_or_else(|| why("no scheme://"))?;
    let scheme = scheme.to_ascii_lowercase();
    let mut chars = scheme.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(why("the scheme is not one"));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(why("an origin has no path, query or trailing slash"));
    }
    if rest.contains('@') {
        return Err(why("an origin has no user name"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !rest.ends_with(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let host = host.to_ascii_lowercase();
    let valid_host = match host.strip_prefix('[').and_then(|inner| inner.strip_suffix(']')) {
        Some(address) => address.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')),
    };
    if !valid_host {
        return Err(why("the host is not a name or an address"));
    }
    let port = match port {
        None => None,
        Some(port) => Some(
            port.parse::<u16>()
                .ok()
                .filter(|_| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()))
                .ok_or_else(|| why("the port is not a number up to 65535"))?,
        ),
    };
    let default_port = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    Ok(match port {
        Some(port) if Some(port) != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

impl Cabinet {
    /// The workspace's own CORS list, or `None` when it goes by the server's.
    pub async fn workspace_cors_origins(&self, ws: &WorkspaceId) -> Result<Option<CorsOrigins>> {
        let Some(stored) = self.store.workspace_cors_origins(ws).await? else { return Ok(None) };
        CorsOrigins::parse(&stored)
            .map(Some)
            .map_err(|err| Error::internal(format!("a workspace's stored CORS list does not parse: {err}")))
    }

    /// Sets the workspace's own CORS list (`cabinet admin set-cors`), or with `None` goes back to
    /// the server's.
    pub async fn set_workspace_cors_origins(
        &self,
        ws: &WorkspaceId,
        origins: Option<&CorsOrigins>,
    ) -> Result<()> {
        let stored = origins.map(CorsOrigins::to_setting);
        self.store.set_workspace_cors_origins(ws, stored.as_deref()).await?;
        tracing::info!(workspace = %ws, cors_origins = stored.as_deref().unwrap_or("(the server's)"), "CORS list set");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_none_and_lists_parse_and_origins_are_written_as_browsers_send_them() {
        assert_eq!(CorsOrigins::parse("*"), Ok(CorsOrigins::Any));
        assert_eq!(CorsOrigins::parse(""), Ok(CorsOrigins::None));
        assert_eq!(CorsOrigins::parse(" None "), Ok(CorsOrigins::None));
        assert_eq!(
            CorsOrigins::parse(
                "HTTPS://App.Example.com:443, http://localhost:3000,,http://[::1]:8080, http://x:80"
            ),
            Ok(CorsOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into(),
                "http://[::1]:8080".into(),
                "http://x".into(),
            ]))
        );
        let list = CorsOrigins::parse("https://a.example").unwrap();
        assert!(
            list.allows("https://a.example") && !list.allows("https://b.example") && !list.allows("null")
        );
        assert_eq!(CorsOrigins::parse(&list.to_setting()), Ok(list));
    }

    #[test]
    fn what_is_not_an_origin_is_refused_with_the_reason() {
        for (raw, reason) in [
            ("app.example.com", "no scheme"),
            ("https://app.example.com/", "no path"),
            ("https://app.example.com/app", "no path"),
            ("https://a.example,*", "stands alone"),
            ("https://user@a.example", "user name"),
            ("https://a.example:99999", "port"),
            ("https://a.example:", "port"),
            ("https://a.example:+80", "port"),
            ("http://[zz]:80", "host"),
            ("https://", "host"),
            ("https://a_b example", "host"),
            ("null", "no scheme"),
        ] {
            let err = CorsOrigins::parse(raw).unwrap_err();
            assert!(err.contains(reason), "{raw}: {err}");
        }
    }
}
