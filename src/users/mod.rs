//! The `users` table: its validated types ([`model`]: `Username`, `Email`, `NewPassword`, `User`,
//! `UserView`) and its queries ([`store`], `QueryResult` only, no policy). Every feature that
//! needs a user row uses it through here; what may be done to an account (registration, login,
//! lockout, admin actions) is `accounts`' business, not this module's.

pub mod data_keys;
pub mod model;
pub mod store;

pub use model::{
    AdminGrant, Email, NewPassword, NewUser, User, UserView, Username, check_visible_name,
    is_invisible_format,
};

/// A free username for an account created from an identity provider: `preferred` (the provider's
/// username) when it is valid and free, else the email's local part made valid (other characters
/// become `_`, at most 40 of them), with `-1`, `-2`… until free.
pub fn free_username(
    conn: &mut diesel::PgConnection,
    preferred: Option<&str>,
    email: &Email,
) -> diesel::QueryResult<Username> {
    if let Some(username) = preferred.and_then(|u| Username::parse(u).ok())
        && !store::username_taken(conn, username.as_str())?
    {
        return Ok(username);
    }
    let local = email.as_str().split('@').next().unwrap_or_default();
    let mut base: String = local
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    while base.len() < 3 {
        base.push('_');
    }
    for n in 0..1000u32 {
        let candidate = if n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        if let Ok(username) = Username::parse(&candidate)
            && !store::username_taken(conn, username.as_str())?
        {
            return Ok(username);
        }
    }
    // 1000 taken variants: a random suffix (12 hex digits of a fresh v7 id's random part).
    let random = uuid::Uuid::now_v7().simple().to_string();
    let fallback = format!("user-{}", &random[random.len() - 12..]);
    Username::parse(&fallback).map_err(|_| diesel::result::Error::NotFound)
}
