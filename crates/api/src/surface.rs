//! The five surfaces Cabinet speaks: the native `/v1` API and the four dialects. A request's path
//! says which one it is on; the surface says how that request presents its key and how it is
//! refused, so a refusal made outside any handler (an unknown route, a wrong method, the rate
//! limiter, an over-long URL or header section) is written in the envelope its client expects.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cabinet_core::Code;

use crate::compat::cms::error::CmsError;
use crate::compat::mavera::error::MaveraError;
use crate::compat::mavi::envelope::MaviError;
use crate::compat::serenities::error::SerenitiesError;
use crate::credentials::Schemes;

/// Where a request is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Native,
    Mavera,
    Mavi,
    Cms,
    Serenities,
}

impl Surface {
    /// Every surface, native first: the order of the documents in `/docs`' picker.
    pub const ALL: [Surface; 5] =
        [Surface::Native, Surface::Mavera, Surface::Mavi, Surface::Cms, Surface::Serenities];

    /// The dialects and the path each is mounted under.
    const MOUNTS: [(&'static str, Surface); 4] = [
        ("/compat/mavera", Surface::Mavera),
        ("/compat/mavi", Surface::Mavi),
        ("/compat/cms", Surface::Cms),
        ("/compat/serenities", Surface::Serenities),
    ];

    /// The surface a request path belongs to: a dialect's whole mount, anything else native.
    pub fn of(path: &str) -> Surface {
        Self::MOUNTS
            .iter()
            .find(|(mount, _)| {
                path.strip_prefix(mount).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .map_or(Surface::Native, |(_, surface)| *surface)
    }

    /// The path this surface is mounted under: its document's paths are relative to it, and its
    /// document is served at `<mount>/openapi.json`. Empty for the native API.
    pub fn mount(self) -> &'static str {
        Self::MOUNTS.iter().find(|(_, surface)| *surface == self).map_or("", |(mount, _)| mount)
    }

    /// Where this surface's OpenAPI document is served.
    pub fn document_path(self) -> &'static str {
        match self {
            Surface::Native => "/openapi.json",
            Surface::Mavera => "/compat/mavera/openapi.json",
            Surface::Mavi => "/compat/mavi/openapi.json",
            Surface::Cms => "/compat/cms/openapi.json",
            Surface::Serenities => "/compat/serenities/openapi.json",
        }
    }

    /// The short name of this surface: a prefix of its operation ids and its tag's suffix.
    pub fn name(self) -> &'static str {
        match self {
            Surface::Native => "native",
            Surface::Mavera => "mavera",
            Surface::Mavi => "mavi",
            Surface::Cms => "cms",
            Surface::Serenities => "serenities",
        }
    }

    /// The title of this surface's document (and its entry in `/docs`' picker).
    pub fn title(self) -> &'static str {
        match self {
            Surface::Native => "Cabinet",
            Surface::Mavera => "Cabinet: the Mavera dialect",
            Surface::Mavi => "Cabinet: the MAVI dialect",
            Surface::Cms => "Cabinet: the CMS dialect",
            Surface::Serenities => "Cabinet: the Serenities dialect",
        }
    }

    /// How this surface's clients send their key in `Authorization`.
    pub fn schemes(self) -> Schemes {
        match self {
            Surface::Native | Surface::Serenities => Schemes { names: &["bearer"], raw: false },
            // MAVI sends the bare key, Mavera's examples `Bearer <key>`; each dialect takes both.
            Surface::Mavera | Surface::Mavi => Schemes { names: &["bearer"], raw: true },
            // DRF's `Token <key>`, and `Bearer <key>`.
            Surface::Cms => Schemes { names: &["bearer", "token"], raw: false },
        }
    }

    /// A refusal made outside any handler, in this surface's envelope. `code` is the native code;
    /// each dialect words the refusal in its own vocabulary.
    pub fn refusal(self, status: StatusCode, code: Code, message: String) -> Response {
        match self {
            Surface::Native => crate::limits::refusal(status, code, message),
            Surface::Mavera => MaveraError::refusal(status, code, message).into_response(),
            Surface::Mavi => MaviError { status, msg: message }.into_response(),
            Surface::Cms => CmsError::refusal(status, message).into_response(),
            Surface::Serenities => SerenitiesError::refusal(status, message).into_response(),
        }
    }

    /// A handler's error, as this surface's handlers answer it.
    pub fn error_response(self, err: cabinet_core::Error) -> Response {
        match self {
            Surface::Native => crate::error::ApiError::from(err).into_response(),
            Surface::Mavera => MaveraError::from(err).into_response(),
            Surface::Mavi => MaviError::from(err).into_response(),
            Surface::Cms => CmsError::from(err).into_response(),
            Surface::Serenities => SerenitiesError::from(err).into_response(),
        }
    }

    /// The name of the schema of this surface's error bodies with `status` in the OpenAPI
    /// document.
    pub fn error_schema(self, status: &str) -> &'static str {
        match self {
            Surface::Native => "ErrorBody",
            Surface::Mavera => "MaveraErrorBody",
            Surface::Mavi => "MaviErrorBody",
            // DRF names the fields at fault in a 400, and says `detail` otherwise.
            Surface::Cms if status == "400" => "CmsFieldErrors",
            Surface::Cms => "CmsDetail",
            Surface::Serenities => "SerenitiesErrorBody",
        }
    }

    /// The value of `X-RateLimit-Reset`: seconds until the bucket is full, or (Mavera) the unix
    /// time at which it is.
    pub fn rate_limit_reset(self, reset_secs: u64, now_unix: i64) -> i64 {
        match self {
            Surface::Mavera => now_unix + reset_secs as i64,
            _ => reset_secs as i64,
        }
    }
}

/// A message as the dialects write theirs: a capital first letter.
pub(crate) fn capitalised(message: &str) -> String {
    let mut chars = message.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::Surface;

    #[test]
    fn a_path_belongs_to_the_dialect_whose_mount_it_is_under() {
        assert_eq!(Surface::of("/compat/mavera/api/v1/files"), Surface::Mavera);
        assert_eq!(Surface::of("/compat/mavera/nothing/here"), Surface::Mavera);
        assert_eq!(Surface::of("/compat/mavi/serve/api/v2/upload"), Surface::Mavi);
        assert_eq!(Surface::of("/compat/cms"), Surface::Cms);
        assert_eq!(Surface::of("/compat/serenities/api/v1/files/list"), Surface::Serenities);
        assert_eq!(Surface::of("/compat/cmsx/files"), Surface::Native);
        assert_eq!(Surface::of("/v1/files"), Surface::Native);
        assert_eq!(Surface::of("/"), Surface::Native);
    }

    #[test]
    fn each_surface_serves_its_document_under_its_mount() {
        for surface in Surface::ALL {
            assert_eq!(surface.document_path(), format!("{}/openapi.json", surface.mount()));
            assert_eq!(Surface::of(surface.document_path()), surface);
        }
    }
}
