//! The compatibility dialects: each accepts the request shapes of one hosted Files API under its
//! own prefix and translates them to the same core calls as the native API.

pub(crate) mod base64_body;
pub mod cms;
pub mod mavera;
pub mod mavi;
pub mod serenities;
pub mod upload_ids;
