//! How the OpenAPI document describes the core's types: ids (a string of their pattern) and the
//! audiences of access rules. The core knows nothing of OpenAPI; a shape names these with
//! `#[schema(value_type = schemas::FileId)]`, and the document names them as the core does.

use std::borrow::Cow;

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// A string of an id's pattern, with an example.
fn id_schema(pattern: &str, prefix: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .examples([serde_json::json!(format!("{prefix}01jdq4x7m2c8v5n3k9w6r1t0ya"))])
        .into()
}

/// An id type of the core, as the document shows it.
macro_rules! id_schema {
    ($name:ident, $core:ty) => {
        #[doc = concat!("The document's `", stringify!($name), "`.")]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                id_schema(<$core>::PATTERN, <$core>::PREFIX)
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

id_schema!(WorkspaceId, cabinet_core::WorkspaceId);
id_schema!(FileId, cabinet_core::FileId);
id_schema!(FolderId, cabinet_core::FolderId);
id_schema!(UploadId, cabinet_core::UploadId);
id_schema!(WebhookId, cabinet_core::WebhookId);
id_schema!(DeliveryId, cabinet_core::DeliveryId);

/// Who may do something (`cabinet_core::rules::Audience`).
pub struct Audience;

impl PartialSchema for Audience {
    fn schema() -> RefOr<Schema> {
        use cabinet_core::rules::Audience as Core;
        let names = [Core::Public, Core::Authenticated, Core::Creator, Core::Admin]
            .map(|audience| serde_json::to_value(audience).expect("an audience serializes to its name"));
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names))
            .description(Some("Who may do something."))
            .into()
    }
}

impl ToSchema for Audience {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Audience")
    }
}
