//! API key rows, validated inputs (name, scopes, lifetime) and what clients see of a key.

use std::fmt;

use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{Permission, Principal};
use crate::db::schema::api_keys;
use crate::error::FieldError;

/// Longest lifetime a client may ask for.
pub const MAX_EXPIRES_IN_DAYS: i64 = 3650;
pub const MAX_NAME_CHARS: usize = 100;

/// One `api_keys` row exactly as stored (the hash, never the key).
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::pg::Pg))]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub key_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<Uuid>,
    pub revoke_reason: Option<String>,
    pub rotated_to: Option<Uuid>,
    pub grace_until: Option<OffsetDateTime>,
}

impl ApiKeyRow {
    /// The stored scopes that name a known permission (an unknown name grants nothing).
    pub fn permissions(&self) -> Vec<Permission> {
        let mut scopes: Vec<Permission> =
            self.scopes.iter().filter_map(|s| s.parse().ok()).collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }

    pub fn status(&self, now: OffsetDateTime) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyStatus::Expired
        } else if self.rotated_to.is_some() {
            if self.grace_until.is_some_and(|until| until > now) {
                KeyStatus::RotationGrace
            } else {
                KeyStatus::Rotated
            }
        } else {
            KeyStatus::Active
        }
    }
}

/// Where a key stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    /// Replaced by a rotation, still accepted until `grace_until`.
    RotationGrace,
    /// Replaced by a rotation, grace period over.
    Rotated,
    Expired,
    Revoked,
}

impl KeyStatus {
    pub const ALL: [KeyStatus; 5] = [
        KeyStatus::Active,
        KeyStatus::RotationGrace,
        KeyStatus::Rotated,
        KeyStatus::Expired,
        KeyStatus::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::RotationGrace => "rotation_grace",
            KeyStatus::Rotated => "rotated",
            KeyStatus::Expired => "expired",
            KeyStatus::Revoked => "revoked",
        }
    }

    pub fn parse(raw: &str) -> Option<KeyStatus> {
        KeyStatus::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The `status` filter of the admin key list (the JSON API's and the console's): empty means
    /// "any"; an unknown name is refused, never read as "any".
    pub fn parse_filter(raw: Option<&str>) -> Result<Option<KeyStatus>, crate::error::FieldError> {
        match raw.filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(raw) => KeyStatus::parse(raw).map(Some).ok_or_else(|| {
                crate::error::FieldError::new(
                    "status",
                    "must be active, rotation_grace, rotated, expired or revoked",
                )
            }),
        }
    }

    /// Whether a request authenticated with the key is accepted.
    pub fn accepts_requests(self) -> bool {
        matches!(self, KeyStatus::Active | KeyStatus::RotationGrace)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a [u8],
    pub scopes: Vec<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

/// A key's name: 1–100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(raw: &str) -> Result<KeyName, FieldError> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(FieldError::new(
                "name",
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        crate::users::check_visible_name(name, MAX_NAME_CHARS)
            .map_err(|message| FieldError::new("name", message))?;
        Ok(KeyName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Scopes a caller may grant: known permission names, at least one, none admin-only, and each one
/// something the caller itself can do (for a caller using an API key: within that key's scopes
/// too, so a key can never mint a broader key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<Permission>);

impl Scopes {
    pub fn parse(raw: &[String], grantor: &Principal) -> Result<Scopes, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut scopes = Vec::new();
        if raw.is_empty() {
            errors.push(FieldError::new(
                "scopes",
                "must name at least one permission",
            ));
        }
        for name in raw {
            let shown: String = name.chars().take(64).collect();
            match name.parse::<Permission>() {
                Err(()) => errors.push(FieldError::new(
                    "scopes",
                    format!("`{shown}` is not a permission"),
                )),
                Ok(p) if p.is_admin_only() => errors.push(FieldError::new(
                    "scopes",
                    format!("`{p}` is an admin permission, which API keys can never use"),
                )),
                Ok(p) if !grantor.can(p) => errors.push(FieldError::new(
                    "scopes",
                    format!("`{p}` is not one of your permissions"),
                )),
                Ok(p) => scopes.push(p),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        scopes.sort();
        scopes.dedup();
        Ok(Scopes(scopes))
    }

    /// Scopes taken over from an existing key (rotation): already validated once.
    pub fn from_permissions(mut scopes: Vec<Permission>) -> Scopes {
        scopes.sort();
        scopes.dedup();
        Scopes(scopes)
    }

    pub fn permissions(&self) -> &[Permission] {
        &self.0
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|p| p.as_str().to_string()).collect()
    }
}

/// The key as handed out once, at creation or rotation (DESIGN §4).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    pub id: Uuid,
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String)]
    pub key: SecretString,
    pub prefix: String,
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedKey")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn expose<S: Serializer>(key: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(key.expose_secret())
}

/// What the owner sees of a key in lists: metadata only.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub prefix: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub status: KeyStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoke_reason: Option<String>,
    pub rotated_to: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub grace_until: Option<OffsetDateTime>,
}

impl ApiKeyView {
    pub fn new(row: &ApiKeyRow, now: OffsetDateTime) -> ApiKeyView {
        ApiKeyView {
            id: row.id,
            prefix: row.prefix.clone(),
            name: row.name.clone(),
            scopes: row.scopes.clone(),
            status: row.status(now),
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
            revoke_reason: row.revoke_reason.clone(),
            rotated_to: row.rotated_to,
            grace_until: row.grace_until,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Credential, Role};

    fn session(role: Role) -> Principal {
        Principal {
            user_id: Uuid::now_v7(),
            role,
            credential: Credential::Session {
                session_id: Uuid::now_v7(),
            },
            user: None,
            authentication: crate::auth::Authentication::NONE,
        }
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scopes_must_be_known_grantable_and_not_admin_only() {
        let member = session(Role::TeamMember);
        let ok = Scopes::parse(
            &strings(&["messages:read", "profile:read", "profile:read"]),
            &member,
        )
        .unwrap();
        assert_eq!(
            ok.permissions(),
            &[Permission::ProfileRead, Permission::MessagesRead]
        );
        for bad in [
            vec![],
            strings(&["profile:read", "nope"]),
            strings(&["users:manage"]),
        ] {
            assert!(Scopes::parse(&bad, &member).is_err(), "{bad:?}");
        }
        // Even an admin cannot put an admin permission on a key.
        let admin = session(Role::Admin);
        assert!(Scopes::parse(&strings(&["audit:read"]), &admin).is_err());
        // A demo user cannot grant what a demo user cannot do.
        let demo = session(Role::Demo);
        let errors = Scopes::parse(&strings(&["profile:write"]), &demo).unwrap_err();
        assert!(errors[0].message.contains("not one of your permissions"));
        // A key can only mint keys within its own scopes.
        let key = Principal {
            user_id: Uuid::now_v7(),
            role: Role::TeamMember,
            credential: Credential::ApiKey {
                key_id: Uuid::now_v7(),
                scopes: vec![Permission::KeysManage, Permission::ProfileRead],
            },
            user: None,
            authentication: crate::auth::Authentication::NONE,
        };
        assert!(Scopes::parse(&strings(&["profile:read"]), &key).is_ok());
        assert!(Scopes::parse(&strings(&["profile:write"]), &key).is_err());
    }

    #[test]
    fn names_and_reasons_are_bounded() {
        assert_eq!(
            KeyName::parse("  ci deploy  ").unwrap().as_str(),
            "ci deploy"
        );
        assert!(KeyName::parse("   ").is_err());
        assert!(KeyName::parse(&"x".repeat(101)).is_err());
        assert!(KeyName::parse("tab\there").is_err());
        use crate::audit::parse_reason;
        assert!(parse_reason("leaked in a public repo").is_ok());
        assert!(parse_reason("").is_err());
        assert!(parse_reason(&"r".repeat(501)).is_err());
        assert_eq!(parse_reason(" two\r\nlines ").unwrap(), "two\nlines");
        assert!(parse_reason("bell\u{7}").is_err());
    }

    #[test]
    fn created_key_debug_never_shows_the_key() {
        let created = CreatedKey {
            id: Uuid::now_v7(),
            key: SecretString::from("rk_secretsecretsecret"),
            prefix: "rk_secretse".into(),
            name: "n".into(),
            scopes: vec![],
            created_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: None,
        };
        assert!(!format!("{created:?}").contains("rk_secretsecretsecret"));
        let json = serde_json::to_value(&created).unwrap();
        assert_eq!(json["key"], "rk_secretsecretsecret");
        assert!(json["expires_at"].is_null());
    }
}
