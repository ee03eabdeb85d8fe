//! The `user_identities` row and the providers it names.

use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::schema::user_identities;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Clerk,
    Supabase,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Clerk => "clerk",
            Provider::Supabase => "supabase",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = user_identities)]
pub struct Identity {
    pub id: Uuid,
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub user_id: Uuid,
    pub email: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = user_identities)]
pub struct NewIdentity<'a> {
    pub id: Uuid,
    pub provider: &'a str,
    pub issuer: &'a str,
    pub subject: &'a str,
    pub user_id: Uuid,
    pub email: Option<&'a str>,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
}
