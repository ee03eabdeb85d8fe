//! Keyset pagination: `?cursor=&limit=` in, `{"items": [...], "next_cursor": ...}` out. Cursors are
//! opaque (url-safe base64 of the last key seen), never offsets.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{AppError, FieldError};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 100;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 100)]
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

/// One page of a newest-first keyset list, from the rows a query read in its own order (newest
/// first, or oldest first when `paging_newer`) with one row more than `limit`: the page newest
/// first, and the cursors of the older and newer pages around it.
pub fn keyset_page<T>(
    mut rows: Vec<T>,
    limit: i64,
    paging_newer: bool,
    before: Option<Uuid>,
    id: impl Fn(&T) -> Uuid,
) -> (Vec<T>, Option<Uuid>, Option<Uuid>) {
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if paging_newer {
        rows.reverse();
    }
    let first = rows.first().map(&id);
    let last = rows.last().map(&id);
    let (older, newer) = if paging_newer {
        (last, first.filter(|_| more))
    } else {
        (last.filter(|_| more), first.filter(|_| before.is_some()))
    };
    (rows, older, newer)
}

#[derive(Debug, Serialize)]
pub struct Page<T: Serialize> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn keyset_pages_know_their_neighbours_in_both_directions() {
        // First page, read newest first with one extra row: older exists, newer does not.
        let (page, older, newer) = keyset_page(vec![9, 8, 7], 2, false, None, |n| ids(*n));
        assert_eq!(page, vec![9, 8]);
        assert_eq!((older, newer), (Some(ids(8)), None));
        // An older page that is the last one: newer exists, older does not.
        let (page, older, newer) = keyset_page(vec![6, 5], 2, false, Some(ids(7)), |n| ids(*n));
        assert_eq!(page, vec![6, 5]);
        assert_eq!((older, newer), (None, Some(ids(6))));
        // A newer page, read oldest first with one extra row: shown newest first.
        let (page, older, newer) = keyset_page(vec![7, 8, 9], 2, true, None, |n| ids(*n));
        assert_eq!(page, vec![8, 7]);
        assert_eq!((older, newer), (Some(ids(7)), Some(ids(8))));
        // A newer page that reaches the newest row.
        let (page, older, newer) = keyset_page(vec![8, 9], 2, true, None, |n| ids(*n));
        assert_eq!(page, vec![9, 8]);
        assert_eq!((older, newer), (Some(ids(8)), None));
    }
}
