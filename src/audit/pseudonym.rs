//! Keyed pseudonyms for the names audit metadata must carry, so that erasing an account never
//! needs a chained row rewritten.
//!
//! Audit rows name people by id; a username or email appears in metadata only where there is no
//! id to use — the name a failed login attempted for an account that does not exist, or the row
//! of an import. Even there the row holds `pn1:` + 32 hex digits of HMAC-SHA256 over the name
//! (trimmed, lower-cased), never the name:
//! - names that belong to a known user are keyed with that user's random salt
//!   (`audit_salts`, created on first use). Erasure deletes the salt ([`forget_salt`]), after
//!   which nobody — not the operator, not someone holding SECRET_KEY — can link the pseudonym to
//!   a name again, while the row and its chain hash stay as they were;
//! - names that belong to nobody use one global key derived from the audit key (so an
//!   investigator holding SECRET_KEY can still test "was `alice` the name being guessed?", and
//!   the same unknown name gives the same pseudonym across rows).
//!
//! Hand-written because it is one HMAC call over the one keyed-HMAC helper (`crypto::hmac`).

use diesel::prelude::*;
use uuid::Uuid;

use super::Auditor;
use crate::crypto::hmac::HmacKey;
use crate::db::schema::audit_salts;

/// What every pseudonym starts with (the version of the scheme).
pub const PREFIX: &str = "pn1:";

fn normalise(name: &str) -> String {
    name.trim().to_lowercase()
}

fn encode(key: &HmacKey, name: &str) -> String {
    let tag = key.mac(&[normalise(name).as_bytes()]);
    let hex: String = tag[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}{hex}")
}

impl Auditor {
    /// The pseudonym of `name`: under `subject`'s salt when the name is theirs (created on first
    /// use, inside the caller's transaction), else under the global pseudonym key.
    pub fn pseudonym(
        &self,
        conn: &mut PgConnection,
        subject: Option<Uuid>,
        name: &str,
    ) -> QueryResult<String> {
        match subject {
            None => Ok(self.anonymous_pseudonym(name)),
            Some(user_id) => Ok(encode(&HmacKey::new(&salt_of(conn, user_id)?), name)),
        }
    }

    /// The pseudonym of a name that belongs to nobody known.
    pub fn anonymous_pseudonym(&self, name: &str) -> String {
        encode(&self.key().pseudonym_key(), name)
    }
}

/// The user's salt, created (32 random bytes) when they have none yet; race-free.
fn salt_of(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<Vec<u8>> {
    let fresh = crate::crypto::random::bytes(32)
        .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
    diesel::insert_into(audit_salts::table)
        .values((
            audit_salts::user_id.eq(user_id),
            audit_salts::salt.eq(fresh),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    audit_salts::table
        .find(user_id)
        .select(audit_salts::salt)
        .first(conn)
}

/// Destroys the user's salt (account erasure). Returns whether there was one.
pub fn forget_salt(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<bool> {
    Ok(diesel::delete(audit_salts::table.find(user_id)).execute(conn)? > 0)
}

/// Whether the user still has a salt (the erasure report).
pub fn has_salt(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(audit_salts::table.find(user_id))).get_result(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_normalised_and_reveal_nothing() {
        let a = HmacKey::new(b"one key of thirty-two bytes long");
        let b = HmacKey::new(b"another key, thirty-two bytes!!!");
        let p = encode(&a, "Alice@Example.com");
        assert!(p.starts_with(PREFIX));
        assert_eq!(p.len(), PREFIX.len() + 32);
        assert!(!p.to_lowercase().contains("alice"));
        assert_eq!(p, encode(&a, " alice@example.com "));
        assert_ne!(p, encode(&b, "alice@example.com"));
        assert_ne!(p, encode(&a, "bob@example.com"));
    }
}
