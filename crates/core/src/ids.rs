//! Typed identifiers: parsed once at the edge, printed with their prefix (`file_…`, `ws_…`).
//!
//! An id is a prefix and a lowercase ULID, so ids sort by creation time and a file id can never be
//! mistaken for a workspace id.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Every id of this kind, as a JSON Schema pattern.
            pub const PATTERN: &'static str = concat!("^", $prefix, "[0-9a-z]{26}$");

            /// A new, unique, time-ordered id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, ulid::Ulid::new().to_string().to_ascii_lowercase()))
            }

            /// Parses an id, refusing anything not of this kind with a 404-class error, so a
            /// malformed id answers exactly like an unknown one.
            pub fn parse(raw: &str) -> Result<Self, Error> {
                raw.parse()
            }

            /// The id as printed.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(raw: &str) -> Result<Self, Error> {
                let body = raw.strip_prefix($prefix).ok_or(Error::NotFound($what))?;
                let well_formed = body.len() == 26
                    && body.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
                if !well_formed {
                    return Err(Error::NotFound($what));
                }
                Ok(Self(raw.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse().map_err(|_| serde::de::Error::custom(concat!("not a valid ", $what, " id")))
            }
        }
    };
}

typed_id!(
    /// A tenant.
    WorkspaceId, "ws_", "workspace"
);
typed_id!(
    /// An API key (its id, never its secret).
    ApiKeyId, "key_", "api key"
);
typed_id!(
    /// A finished file.
    FileId, "file_", "file"
);
typed_id!(
    /// An upload session.
    UploadId, "upl_", "upload"
);
typed_id!(
    /// A folder.
    FolderId, "fld_", "folder"
);
typed_id!(
    /// A webhook endpoint.
    WebhookId, "wh_", "webhook"
);
typed_id!(
    /// One attempt to deliver an event to a webhook endpoint.
    DeliveryId, "whd_", "delivery"
);

impl DeliveryId {
    /// A new id that sorts after every other this process made: a delivery log is read in the
    /// order of its ids, and one endpoint's attempts come faster than one a millisecond, where
    /// `generate` would order them at random.
    pub fn generate_in_order() -> Self {
        static IN_ORDER: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
        let next = IN_ORDER.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).generate();
        // Past 2^80 ids in one millisecond: a plain new id.
        let ulid = next.unwrap_or_else(|_| ulid::Ulid::new());
        Self(format!("whd_{}", ulid.to_string().to_ascii_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_made_in_order_sort_in_order() {
        let ids: Vec<DeliveryId> = (0..1000).map(|_| DeliveryId::generate_in_order()).collect();
        assert!(ids.windows(2).all(|pair| pair[0].as_str() < pair[1].as_str()));
        assert_eq!(DeliveryId::parse(ids[0].as_str()).unwrap(), ids[0]);
    }

    #[test]
    fn generated_ids_round_trip_through_parse() {
        let id = FileId::generate();
        assert_eq!(FileId::parse(id.as_str()).unwrap(), id);
        assert!(id.as_str().starts_with("file_"));
    }

    #[test]
    fn an_id_of_another_kind_is_refused() {
        let ws = WorkspaceId::generate();
        assert!(FileId::parse(ws.as_str()).is_err());
        assert!(FileId::parse("file_../../etc/passwd").is_err());
        assert!(FileId::parse("file_01JDQ4X7M2C8V5N3K9W6R1T0YA").is_err());
        assert!(FileId::parse("").is_err());
    }
}
