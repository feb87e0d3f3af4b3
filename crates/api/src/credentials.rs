//! Reading a request's credentials, once for every surface: the key in `Authorization` (under the
//! schemes the surface takes) and the workspace the request names. No rule lives here: the key
//! is checked, and the workspace chosen, by the core.

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;

/// The header that names the workspace a request acts on.
pub const WORKSPACE_HEADER: &str = "x-cabinet-workspace";

/// The `Authorization` forms a surface takes.
#[derive(Debug, Clone, Copy)]
pub struct Schemes {
    /// Schemes (`<scheme> <secret>`), matched case-insensitively.
    pub names: &'static [&'static str],
    /// Whether the bare secret, with no scheme, is taken as well.
    pub raw: bool,
}

/// What a request's `Authorization` header presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// No `Authorization` header.
    Missing,
    /// A header with nothing usable in it (an unknown scheme, no secret, not text).
    Unusable,
    /// The secret it carries.
    Secret(&'a str),
}

impl<'a> Presented<'a> {
    /// Reads `Authorization` under `schemes`. White space around the scheme and the secret is not
    /// part of either, so `Bearer K` and `bearer   K` present the same secret.
    pub fn of(headers: &'a HeaderMap, schemes: Schemes) -> Presented<'a> {
        let Some(value) = headers.get(AUTHORIZATION) else { return Presented::Missing };
        let Ok(value) = value.to_str() else { return Presented::Unusable };
        let value = value.trim();
        let secret = match value.split_once([' ', '\t']) {
            Some((scheme, secret)) if schemes.names.iter().any(|name| scheme.eq_ignore_ascii_case(name)) => {
                secret.trim()
            }
            Some(_) => "",
            None if schemes.raw => value,
            None => "",
        };
        if secret.is_empty() {
            Presented::Unusable
        } else {
            Presented::Secret(secret)
        }
    }

    /// The secret, if there is one.
    pub fn secret(self) -> Option<&'a str> {
        match self {
            Presented::Secret(secret) => Some(secret),
            _ => None,
        }
    }
}

/// The workspace a request names in the `X-Cabinet-Workspace` header, if any (a value that is not
/// text names no workspace there is).
pub fn named_workspace(headers: &HeaderMap) -> Option<String> {
    headers.get(WORKSPACE_HEADER).map(|value| value.to_str().unwrap_or("").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// Headers holding `Authorization: value`.
    fn authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    const BEARER: Schemes = Schemes { names: &["bearer"], raw: false };
    const BEARER_OR_RAW: Schemes = Schemes { names: &["bearer"], raw: true };
    const BEARER_OR_TOKEN: Schemes = Schemes { names: &["bearer", "token"], raw: false };

    #[test]
    fn every_spelling_of_one_key_presents_the_same_secret() {
        for value in ["Bearer K1", "bearer   K1", " BEARER K1 ", "Bearer\tK1"] {
            assert_eq!(Presented::of(&authorization(value), BEARER), Presented::Secret("K1"), "{value:?}");
        }
        assert_eq!(Presented::of(&authorization("K1"), BEARER_OR_RAW), Presented::Secret("K1"));
        assert_eq!(Presented::of(&authorization("Token K1"), BEARER_OR_TOKEN), Presented::Secret("K1"));
    }

    #[test]
    fn what_a_surface_does_not_take_is_unusable_not_missing() {
        assert_eq!(Presented::of(&authorization("K1"), BEARER), Presented::Unusable);
        assert_eq!(Presented::of(&authorization("Token K1"), BEARER), Presented::Unusable);
        assert_eq!(Presented::of(&authorization("Token K1"), BEARER_OR_RAW), Presented::Unusable);
        assert_eq!(Presented::of(&authorization("Bearer "), BEARER), Presented::Unusable);
        assert_eq!(Presented::of(&authorization(""), BEARER_OR_RAW), Presented::Unusable);
        assert_eq!(Presented::of(&HeaderMap::new(), BEARER), Presented::Missing);
    }
}
