//! Keyset pagination: `?cursor=&limit=` in, `{"items": [...], "next_cursor": ...}` out. Cursors are
//! opaque (url-safe base64 of the last key seen), never offsets.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{AppError, FieldError};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 100;

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, AppError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(AppError::Validation(vec![FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            )])),
        }
    }

    /// The cursor as a UUID key (lists ordered by time-ordered v7 ids).
    pub fn uuid_cursor(&self) -> Result<Option<Uuid>, AppError> {
        self.cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| {
                parse_uuid_cursor(c).ok_or_else(|| {
                    AppError::Validation(vec![FieldError::new("cursor", "is not a valid cursor")])
                })
            })
            .transpose()
    }
}

pub fn uuid_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// The UUID in a cursor made by [`uuid_cursor`], if it is one.
pub fn parse_uuid_cursor(cursor: &str) -> Option<Uuid> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
}

/// An opaque cursor for a numeric key (audit row ids).
pub fn id_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(id.to_be_bytes())
}

/// The id in a cursor made by [`id_cursor`], if it is one.
pub fn parse_id_cursor(cursor: &str) -> Option<i64> {
    let bytes: [u8; 8] = URL_SAFE_NO_PAD.decode(cursor).ok()?.try_into().ok()?;
    Some(i64::from_be_bytes(bytes)).filter(|id| *id > 0)
}

#[derive(Debug, Serialize)]
pub struct Page<T: Serialize> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}
