//! Account rows and the validated domain types every account use-case takes (parse, don't
//! validate): `Username`, `Email`, `NewPassword`.

use diesel::prelude::*;
use email_address::EmailAddress;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;
use zxcvbn::matching::patterns::MatchPattern;

use crate::config::settings::PasswordPolicy;
use crate::db::schema::users;
use crate::error::FieldError;

/// What an erased account's username and email start with.
pub const TOMBSTONE_PREFIX: &str = "deleted-";

/// The domain of an erased account's email (RFC 2606 `.invalid`: never deliverable).
pub const TOMBSTONE_EMAIL_DOMAIN: &str = "erased.invalid";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// 3–50 characters of `[A-Za-z0-9_-]`. Case is kept for display; uniqueness ignores it.
    pub fn parse(raw: &str) -> Result<Username, FieldError> {
        let len = raw.chars().count();
        if len < 3 {
            return Err(FieldError::new("username", "must be at least 3 characters"));
        }
        if len > 50 {
            return Err(FieldError::new("username", "must be at most 50 characters"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(FieldError::new(
                "username",
                "may contain only letters, digits, '_' and '-'",
            ));
        }
        if raw
            .get(..TOMBSTONE_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(TOMBSTONE_PREFIX))
        {
            return Err(FieldError::new(
                "username",
                "may not start with 'deleted-' (reserved for erased accounts)",
            ));
        }
        Ok(Username(raw.to_string()))
    }

    /// The username an erased account keeps: `deleted-` and 12 hex digits of its id's random
    /// part. Nobody can register one ([`Username::parse`] refuses the prefix), so a name of this
    /// shape always means "erased".
    pub fn tombstone(id: Uuid) -> String {
        let simple = id.simple().to_string();
        format!("{TOMBSTONE_PREFIX}{}", &simple[simple.len() - 12..])
    }

    /// Whether `name` is an erased account's tombstone.
    pub fn is_tombstone(name: &str) -> bool {
        name.strip_prefix(TOMBSTONE_PREFIX)
            .is_some_and(|rest| rest.len() == 12 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// A syntactically valid address, normalised to lower case.
    pub fn parse(raw: &str) -> Result<Email, FieldError> {
        let trimmed = raw.trim();
        if trimmed.len() > 254 {
            return Err(FieldError::new("email", "must be at most 254 characters"));
        }
        let lower = trimmed.to_lowercase();
        // The address must have a dotted domain: `user@localhost` is not deliverable here.
        let valid = EmailAddress::is_valid(&lower)
            && lower
                .rsplit_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !lower.contains(['<', '>', '"', ' ', '(', ')', ',', ';', ':', '\\']);
        if !valid {
            return Err(FieldError::new("email", "is not a valid email address"));
        }
        Ok(Email(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

/// Characters that change how text is shown without being seen: bidi embeddings, overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069 — "Trojan Source"), directional and zero-width marks and
/// joiners, the word joiner and invisible operators, the BOM, the soft hyphen, Mongolian vowel
/// separator, interlinear annotation controls and Unicode tags. A name that holds one can pose as
/// another name in the console and the audit log.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// A name people read (display names, API key names): no control characters and no invisible
/// format characters; `max` characters at most. `Err` holds the message for the field.
pub fn check_visible_name(name: &str, max: usize) -> Result<(), String> {
    if name.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if name.chars().any(is_invisible_format) {
        return Err(
            "must not contain invisible formatting characters (bidi controls, zero-width \
             characters)"
                .into(),
        );
    }
    Ok(())
}

/// A new password that passed the configured policy. Checked exactly as received: never trimmed,
/// normalised or truncated.
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(
        raw: SecretString,
        policy: PasswordPolicy,
        username: Option<&str>,
        email: Option<&Email>,
        field: &str,
    ) -> Result<NewPassword, Vec<FieldError>> {
        let mut errors = Vec::new();
        let password = raw.expose_secret();
        let len = password.chars().count();
        let min = match policy {
            PasswordPolicy::Modern => 12,
            PasswordPolicy::Classic => 8,
        };
        if len < min {
            errors.push(FieldError::new(
                field,
                format!("must be at least {min} characters"),
            ));
        }
        if len > 128 {
            errors.push(FieldError::new(field, "must be at most 128 characters"));
        }
        if policy == PasswordPolicy::Classic {
            if !password.chars().any(char::is_uppercase) {
                errors.push(FieldError::new(field, "must contain an upper-case letter"));
            }
            if !password.chars().any(char::is_lowercase) {
                errors.push(FieldError::new(field, "must contain a lower-case letter"));
            }
            if !password.chars().any(|c| c.is_ascii_digit()) {
                errors.push(FieldError::new(field, "must contain a digit"));
            }
        }
        let lower = password.to_lowercase();
        if let Some(name) = username.filter(|u| u.len() >= 3)
            && lower.contains(&name.to_lowercase())
        {
            errors.push(FieldError::new(field, "must not contain your username"));
        }
        if let Some(email) = email
            && email.local_part().len() >= 3
            && lower.contains(email.local_part())
        {
            errors.push(FieldError::new(
                field,
                "must not contain your email address",
            ));
        }
        // zxcvbn is only meaningful (and bounded in cost) on plausible lengths.
        if len <= 128 && len > 0 {
            let mut inputs: Vec<&str> = Vec::new();
            if let Some(u) = username {
                inputs.push(u);
            }
            if let Some(e) = email {
                inputs.push(e.as_str());
                inputs.push(e.local_part());
            }
            let entropy = zxcvbn::zxcvbn(password, &inputs);
            if is_common(password, entropy.sequence()) {
                errors.push(FieldError::new(field, "is a commonly used password"));
            } else if len >= min && u8::from(entropy.score()) < 3 {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "is too easy to guess (strength {}/4; at least 3 is required): add more unrelated words or characters",
                        u8::from(entropy.score())
                    ),
                ));
            }
        }
        if errors.is_empty() {
            Ok(NewPassword(raw))
        } else {
            Err(errors)
        }
    }

    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

/// On the common-password list: zxcvbn matches (most of) it against its "passwords" dictionary,
/// including l33t and reversed variants.
fn is_common(password: &str, sequence: &[zxcvbn::Match]) -> bool {
    let len = password.chars().count();
    sequence.iter().any(|m| {
        // zxcvbn does not export its dictionary type; "passwords" is its `Default`.
        matches!(&m.pattern, MatchPattern::Dictionary(d)
            if d.dictionary_name == Default::default())
            && m.token.chars().count() * 10 >= len * 8
    })
}

/// A `users` row. Never serialised: `UserView` is what leaves the service.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    /// `None` for an account that signs in only through an identity provider.
    pub password_hash: Option<String>,
    pub role: String,
    pub active: bool,
    pub display_name: Option<String>,
    pub failed_logins: i32,
    pub locked_until: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// How an admin became one: `operator` (create-admin, `--promote`, import) or
    /// `verified_email`. `None` for everyone else — and for an admin made by another admin.
    pub admin_granted_by: Option<String>,
    /// When the account was erased (its name and email are tombstones since).
    pub erased_at: Option<OffsetDateTime>,
    /// When the owner of `email` proved it (a verification link used); `None` until then.
    pub email_verified_at: Option<OffsetDateTime>,
}

/// How an admin was made one, when that proves who they are (`users.admin_granted_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminGrant {
    /// An operator's command: `create-admin`, `create-admin --promote`, `users import`.
    Operator,
    /// The owner of an ADMIN_EMAILS address proved it (email verification).
    VerifiedEmail,
}

impl AdminGrant {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminGrant::Operator => "operator",
            AdminGrant::VerifiedEmail => "verified_email",
        }
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: Option<&'a str>,
    pub role: &'a str,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub admin_granted_by: Option<&'a str>,
    pub email_verified_at: Option<OffsetDateTime>,
}

/// The public shape of a user: never a hash, lockout counter or internal flag.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub role: String,
    pub active: bool,
    pub display_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Whether the owner of `email` proved it (a verification link was used).
    pub email_verified: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            role: u.role.clone(),
            active: u.active,
            display_name: u.display_name.clone(),
            created_at: u.created_at,
            email_verified: u.email_verified_at.is_some(),
        }
    }
}
