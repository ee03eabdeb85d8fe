//! Session rows (one per login) and their refresh-token family.

use diesel::prelude::*;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::schema::{refresh_tokens, sessions};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_reason: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// 1: one factor; 2: two (NIST AAL).
    pub aal: i16,
    /// How it was authenticated (RFC 8176: `pwd`, `otp`, `rec`, or a provider's).
    pub amr: Vec<String>,
    /// The last time the user proved who they are on this session (sign-in, step-up).
    pub authenticated_at: OffsetDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub aal: i16,
    pub amr: Vec<String>,
    pub authenticated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshToken {
    pub token_hash: Vec<u8>,
    pub session_id: Uuid,
    pub created_at: OffsetDateTime,
    pub spent_at: Option<OffsetDateTime>,
}

impl Session {
    /// How this session was authenticated, for the tokens it issues.
    pub fn assurance(&self) -> crate::crypto::jwt::Assurance {
        crate::crypto::jwt::Assurance {
            aal: u8::try_from(self.aal).unwrap_or(1),
            amr: self.amr.clone(),
        }
    }
}

/// What a user sees of their sessions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub current: bool,
    /// Only in exports and the console (the API lists live sessions only).
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
}

impl SessionView {
    pub fn new(s: &Session, current: Option<Uuid>) -> Self {
        SessionView {
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            ip: s.ip.clone(),
            user_agent: s.user_agent.clone(),
            current: Some(s.id) == current,
            revoked_at: s.revoked_at,
            revoked_reason: s.revoked_reason.clone(),
        }
    }
}

/// A console (admin) session row: the SHA-256 of the cookie's token, never the token.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = crate::db::schema::admin_sessions)]
pub struct AdminSessionRow {
    pub token_hash: Vec<u8>,
    pub user_id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub aal: i16,
    pub authenticated_at: OffsetDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = crate::db::schema::admin_sessions)]
pub struct NewAdminSession<'a> {
    pub token_hash: &'a [u8],
    pub user_id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub aal: i16,
    pub authenticated_at: OffsetDateTime,
}
