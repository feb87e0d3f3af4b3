//! The Mavera dialect (`/compat/mavera/api/v1`): Mavera's Files and Folders API, OpenAI-style
//! objects and errors, translated to the same core calls as the native API. `workspace_id` is the
//! Cabinet workspace id; ids are Cabinet's typed ids (folders are `fld_…`).

pub mod error;
pub mod files;
pub mod folders;
pub mod shapes;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};

use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use cabinet_core::listing::PageSize;
use cabinet_core::{Caller, Credential, Error, FolderId};
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::error::{MaveraError, MaveraResult};
use crate::credentials::Presented;
use crate::surface::Surface;
use crate::AppState;

/// Where the dialect is mounted.
pub const PREFIX: &str = "/compat/mavera/api/v1";
/// The OpenAPI tag of its routes.
pub const TAG: &str = "compat-mavera";
/// The security requirement its routes document (the same bearer scheme as `/v1`).
pub const BEARER: &str = crate::v1::BEARER;

/// The dialect's routes; anything else under its prefix is a Mavera 404.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(files::create_upload_url))
        .routes(routes!(files::create_file, files::list_files))
        .routes(routes!(files::get_file, files::update_file, files::delete_file))
        .routes(routes!(files::toggle_favorite))
        .routes(routes!(folders::list_folders, folders::create_folder))
        .routes(routes!(folders::get_folder, folders::update_folder, folders::delete_folder))
        .routes(routes!(folders::toggle_favorite))
        .route(&format!("{PREFIX}/{{*rest}}"), any(unknown_route))
}

async fn unknown_route() -> MaveraError {
    Error::NotFound("route").into()
}

/// The request's key (`Authorization: Bearer <key>`), checked before its body is read: the body
/// may name the workspace, never the key.
pub struct Key(Credential);

impl Key {
    /// Checks the key of a request.
    pub async fn of(state: &AppState, headers: &HeaderMap) -> MaveraResult<Key> {
        let secret = match Presented::of(headers, Surface::Mavera.schemes()) {
            Presented::Missing => {
                return Err(MaveraError {
                    status: StatusCode::UNAUTHORIZED,
                    kind: "authentication_error",
                    code: "missing_api_key".into(),
                    message: "Missing API key. Send Authorization: Bearer <key>.".into(),
                    param: None,
                })
            }
            Presented::Unusable => return Err(Error::Unauthenticated("invalid API key").into()),
            Presented::Secret(secret) => secret,
        };
        Ok(Key(state.cabinet.check_secret(secret).await?))
    }

    /// The caller, acting on the workspace the request names (or the key's only one).
    pub fn caller(self, workspace: Option<&str>) -> MaveraResult<Caller> {
        Ok(self.0.caller(workspace)?)
    }
}

impl FromRequestParts<AppState> for Key {
    type Rejection = MaveraError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Key::of(state, &parts.headers).await
    }
}

/// Authenticates a request without a body, for the workspace it names (or the key's only one).
pub async fn caller(state: &AppState, headers: &HeaderMap, workspace: Option<&str>) -> MaveraResult<Caller> {
    Key::of(state, headers).await?.caller(workspace)
}

/// A JSON object body; its fields are read by name so that a missing or mistyped field is named
/// in the error (`param`). Unknown fields are ignored.
#[derive(Debug, Default)]
pub struct Body(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = MaveraError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                MaveraError {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    kind: "invalid_request_error",
                    code: "request_too_large".into(),
                    message: rejection.body_text(),
                    param: Some("body".into()),
                }
            } else {
                MaveraError::invalid("body", "The request body could not be read.")
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body::default());
        }
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(Body(map)),
            _ => Err(MaveraError::invalid("body", "The request body must be a JSON object.")),
        }
    }
}

impl Body {
    fn present(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|value| !value.is_null())
    }

    /// A required string.
    pub fn string(&self, name: &str) -> MaveraResult<String> {
        self.opt_string(name)?.ok_or_else(|| MaveraError::missing(name))
    }

    /// An optional string.
    pub fn opt_string(&self, name: &str) -> MaveraResult<Option<String>> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(MaveraError::invalid(name, format!("{name} must be a string"))),
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&self, name: &str) -> MaveraResult<Option<bool>> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(_) => Err(MaveraError::invalid(name, format!("{name} must be a boolean"))),
        }
    }

    /// A required integer of at least 1.
    pub fn size(&self, name: &str) -> MaveraResult<u64> {
        match self.present(name) {
            None => Err(MaveraError::missing(name)),
            Some(value) => value
                .as_u64()
                .filter(|n| *n >= 1)
                .ok_or_else(|| MaveraError::invalid(name, format!("{name} must be an integer >= 1"))),
        }
    }

    /// An optional folder id; `Some(None)` when the field is an explicit null.
    pub fn folder(&self, name: &str) -> MaveraResult<Option<Option<FolderId>>> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(raw)) => Ok(Some(Some(FolderId::parse(raw)?))),
            Some(_) => Err(MaveraError::invalid(name, format!("{name} must be a string or null"))),
        }
    }

    /// An optional JSON object.
    pub fn object(&self, name: &str) -> MaveraResult<Option<Map<String, Value>>> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map.clone())),
            Some(_) => Err(MaveraError::invalid(name, format!("{name} must be an object"))),
        }
    }
}

/// Query parameters, read by name like the body.
#[derive(Debug, Default)]
pub struct Params(pub HashMap<String, String>);

impl Params {
    /// The parameters of a request, or a Mavera 400.
    pub fn from(query: Result<Query<HashMap<String, String>>, QueryRejection>) -> MaveraResult<Self> {
        query
            .map(|Query(map)| Params(map))
            .map_err(|_| MaveraError::invalid("query", "The query string is malformed."))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|value| !value.is_empty())
    }

    /// An optional boolean (`true`/`false`, as the examples send them).
    pub fn bool(&self, name: &str) -> MaveraResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(_) => Err(MaveraError::invalid(name, format!("{name} must be true or false"))),
        }
    }

    /// `limit`: 1 to 100, 50 by default.
    pub fn limit(&self) -> MaveraResult<u32> {
        // Not a number is as out of range as 0.
        let asked = self.get("limit").map(|raw| raw.parse().unwrap_or(0));
        PageSize::LISTS
            .checked(asked)
            .map_err(|_| MaveraError::invalid("limit", "limit must be an integer between 1 and 100"))
    }
}
