//! The privacy feature's types: export formats, re-authentication, what an erasure did and what
//! the erasure report shows.

use secrecy::SecretString;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::FieldError;

/// How the export is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON document; attachments inline as base64.
    Json,
    /// A zip: `export.json` (attachments by file name) and `attachments/<id>/<name>`.
    Zip,
}

impl ExportFormat {
    /// `json` (also when absent) or `zip`; anything else is a 422 on `format`.
    pub fn parse(raw: Option<&str>) -> Result<ExportFormat, FieldError> {
        match raw.map(str::trim) {
            None | Some("") | Some("json") => Ok(ExportFormat::Json),
            Some("zip") => Ok(ExportFormat::Zip),
            Some(_) => Err(FieldError::new("format", "must be json or zip")),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Json => "application/json",
            ExportFormat::Zip => "application/zip",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            ExportFormat::Json => "rampart-export.json",
            ExportFormat::Zip => "rampart-export.zip",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Json => "json",
            ExportFormat::Zip => "zip",
        }
    }
}

/// How a user proves, again, that it is them (account erasure).
pub enum Reauth {
    /// Their current password.
    Password(SecretString),
    /// A token from their identity provider, issued within the last 5 minutes.
    ProviderToken(String),
}

/// What an erasure did. `already` when the account had been erased before (nothing changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    pub user_id: Uuid,
    pub already: bool,
    pub sessions_revoked: usize,
    pub api_keys_revoked: usize,
    pub identities_unlinked: usize,
    pub blocks_dropped: usize,
    pub data_key_destroyed: bool,
    pub audit_salt_destroyed: bool,
    pub subscription_scrubbed: bool,
    pub webhook_events_redacted: usize,
}

/// Rows that still refer to the user, in one table column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemainingRows {
    pub table: String,
    pub column: String,
    pub rows: i64,
    /// What those rows still show about the person.
    pub shows: &'static str,
}

/// `rampart users erasure-report`: what remains about a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    pub user_id: Uuid,
    /// The username as stored now (a `deleted-…` tombstone once erased).
    pub username: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub erased_at: Option<OffsetDateTime>,
    /// Whether the user's data key can still be unwrapped (false once destroyed).
    pub data_key_present: bool,
    /// Whether the salt of their audit pseudonyms still exists (false once erased).
    pub audit_salt_present: bool,
    /// Rows that still refer to the user, by table and column (ids, ciphertext and pseudonyms).
    pub tables: Vec<RemainingRows>,
}
