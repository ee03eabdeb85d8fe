//! Operator commands on accounts: `create-admin` and `users import`. They run outside the HTTP
//! server, on one direct connection, and audit as the `system` actor.

use std::collections::HashSet;
use std::path::Path;

use diesel::{Connection, PgConnection};
use secrecy::SecretString;

use crate::audit::{Action, Actor, Auditor, Event, Outcome, RequestMeta};
use crate::auth::Role;
use crate::config::Settings;
use crate::crypto::passwords::is_supported_hash;
use crate::error::AppError;
use crate::users::store;
use crate::users::{AdminGrant, Email, NewPassword, Username};

pub struct CreatedAdmin {
    pub username: String,
    pub email: String,
    /// Set when the password was generated (to be printed once).
    pub generated_password: Option<String>,
}

fn system_meta() -> RequestMeta {
    RequestMeta {
        ip: None,
        user_agent: Some("rampart-cli".into()),
        request_id: None,
        server_request_id: None,
    }
}

/// Creates an admin. `password` None → a random one is generated and returned for printing once.
pub fn create_admin(
    conn: &mut PgConnection,
    settings: &Settings,
    auditor: &Auditor,
    username: &str,
    email: &str,
    password: Option<SecretString>,
) -> Result<CreatedAdmin, AppError> {
    let mut errors = Vec::new();
    let username = Username::parse(username).map_err(|e| errors.push(e)).ok();
    let email = Email::parse(email).map_err(|e| errors.push(e)).ok();
    let (Some(username), Some(email)) = (username, email) else {
        return Err(AppError::Validation(errors));
    };
    let (password, generated) = match password {
        Some(p) => (p, None),
        None => {
            let p = crate::crypto::random::secret_string().map_err(AppError::internal)?;
            (SecretString::from(p.clone()), Some(p))
        }
    };
    let password = NewPassword::parse(
        password,
        settings.auth.password_policy,
        Some(username.as_str()),
        Some(&email),
        "password",
    )
    .map_err(AppError::Validation)?;
    let hasher = crate::state::password_hasher(settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AppError::internal)?;
    let hash = runtime.block_on(hasher.hash(password.into_secret()))?;
    let now = time::OffsetDateTime::now_utc();
    conn.transaction::<_, AppError, _>(|conn| {
        let user = super::create_user(
            conn,
            &username,
            &email,
            Some(&hash),
            Role::Admin,
            Some(AdminGrant::Operator),
            now,
        )?;
        auditor.record(
            conn,
            &system_meta(),
            Event {
                action: Action::UserRegistered,
                outcome: Outcome::Success,
                actor: Actor::system(),
                target: Some(("user".into(), user.id.to_string())),
                metadata: serde_json::json!({ "role": "admin", "via": "create-admin" }),
            },
        )?;
        Ok(())
    })?;
    Ok(CreatedAdmin {
        username: username.as_str().to_string(),
        email: email.as_str().to_string(),
        generated_password: generated,
    })
}

pub struct PromotedAdmin {
    pub username: String,
    pub email: String,
    pub previous_role: String,
}

/// `create-admin --promote USER`: makes an existing account (by username or email) an admin, as
/// an operator's decision — so an ADMIN_EMAILS or SUPER_ADMIN_EMAIL address it holds counts from
/// now on. Audited as a role change by the system actor. Idempotent for an operator-made admin.
pub fn promote_admin(
    conn: &mut PgConnection,
    auditor: &Auditor,
    login: &str,
) -> Result<PromotedAdmin, AppError> {
    let now = time::OffsetDateTime::now_utc();
    conn.transaction::<_, AppError, _>(|conn| {
        let Some(found) = store::find_by_login(conn, login)? else {
            return Err(AppError::BadRequest(format!(
                "no account has the username or email `{}`",
                login.chars().take(100).collect::<String>().escape_default()
            )));
        };
        let Some(user) = store::lock(conn, found.id)? else {
            return Err(AppError::NotFound);
        };
        store::promote_admin(conn, user.id, AdminGrant::Operator.as_str(), now)?;
        auditor.record(
            conn,
            &system_meta(),
            Event::new(Action::UserRoleChanged, Outcome::Success, Actor::system())
                .target("user", user.id)
                .metadata(serde_json::json!({
                    "from": user.role,
                    "to": "admin",
                    "via": "create-admin --promote",
                    "granted_by": AdminGrant::Operator.as_str(),
                })),
        )?;
        Ok(PromotedAdmin {
            username: user.username,
            email: user.email,
            previous_role: user.role,
        })
    })
}

pub fn any_admin(conn: &mut PgConnection) -> Result<bool, AppError> {
    Ok(store::any_admin(conn)?)
}

/// One problem in an import file, by 1-based line number.
#[derive(Debug)]
pub struct ImportProblem {
    pub line: u64,
    pub message: String,
}

struct ImportRow {
    username: Username,
    email: Email,
    hash: String,
    role: Role,
}

/// Imports `username,email,password_hash[,role]` rows, keeping the bcrypt/argon2 hashes. The whole
/// file is checked first; any bad row means nothing is imported and every problem is returned.
pub fn import_users(
    conn: &mut PgConnection,
    auditor: &Auditor,
    path: &Path,
) -> Result<Result<usize, Vec<ImportProblem>>, AppError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| AppError::BadRequest(format!("cannot read {}: {e}", path.display())))?;
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    let mut seen_usernames = HashSet::new();
    let mut seen_emails = HashSet::new();
    for (index, record) in reader.records().enumerate() {
        let line = index as u64 + 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(ImportProblem {
                    line,
                    message: format!("cannot be parsed: {e}"),
                });
                continue;
            }
        };
        let mut fields: Vec<String> = record.iter().map(str::to_string).collect();
        // An unquoted argon2 PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) spans three
        // CSV fields: put it back together.
        if fields.len() >= 5 && fields[2].starts_with("$argon2") {
            let joined = fields[2..5].join(",");
            fields.splice(2..5, [joined]);
        }
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        if line == 1
            && fields
                .first()
                .is_some_and(|f| f.eq_ignore_ascii_case("username"))
        {
            continue;
        }
        if fields.len() < 3 || fields.len() > 4 {
            problems.push(ImportProblem {
                line,
                message: format!(
                    "has {} fields; expected username,email,password_hash[,role]",
                    fields.len()
                ),
            });
            continue;
        }
        let mut row_problems = Vec::new();
        let username = Username::parse(fields[0])
            .map_err(|e| row_problems.push(format!("username {}", e.message)))
            .ok();
        let email = Email::parse(fields[1])
            .map_err(|e| row_problems.push(format!("email {}", e.message)))
            .ok();
        if !is_supported_hash(fields[2]) {
            row_problems.push(
                "password_hash is not a supported argon2 or bcrypt ($2a/$2b/$2y, cost 10–14) hash"
                    .into(),
            );
        }
        let role = match fields.get(3).filter(|r| !r.is_empty()) {
            None => Some(Role::DEFAULT),
            Some(r) => r
                .parse::<Role>()
                .map_err(|_| {
                    row_problems.push(format!("role `{r}` is not admin, team_member or demo"))
                })
                .ok(),
        };
        if let Some(u) = &username {
            if !seen_usernames.insert(u.as_str().to_lowercase()) {
                row_problems.push("username appears earlier in the file".into());
            } else if store::username_taken(conn, u.as_str())? {
                row_problems.push("username is already taken".into());
            }
        }
        if let Some(e) = &email {
            if !seen_emails.insert(e.as_str().to_string()) {
                row_problems.push("email appears earlier in the file".into());
            } else if store::email_taken(conn, e.as_str())? {
                row_problems.push("email is already registered".into());
            }
        }
        match (username, email, role) {
            (Some(username), Some(email), Some(role)) if row_problems.is_empty() => {
                rows.push(ImportRow {
                    username,
                    email,
                    hash: fields[2].to_string(),
                    role,
                })
            }
            _ => problems.extend(
                row_problems
                    .into_iter()
                    .map(|message| ImportProblem { line, message }),
            ),
        }
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    let now = time::OffsetDateTime::now_utc();
    let count = conn.transaction::<_, AppError, _>(|conn| {
        for row in &rows {
            let user = super::create_user(
                conn,
                &row.username,
                &row.email,
                Some(&row.hash),
                row.role,
                Some(AdminGrant::Operator),
                now,
            )?;
            let pseudonym = auditor.pseudonym(conn, Some(user.id), row.username.as_str())?;
            auditor.record(
                conn,
                &system_meta(),
                Event {
                    action: Action::UserImported,
                    outcome: Outcome::Success,
                    actor: Actor::system(),
                    target: Some(("user".into(), user.id.to_string())),
                    // The imported name only as a pseudonym under the user's own salt:
                    // erasure destroys the salt, and the row never needs rewriting.
                    metadata: serde_json::json!({
                        "role": row.role.as_str(),
                        "username_pseudonym": pseudonym,
                    }),
                },
            )?;
        }
        Ok(rows.len())
    })?;
    Ok(Ok(count))
}

/// Reads a password from stdin (first line, without its line ending — nothing else is trimmed).
pub fn read_password_stdin() -> Result<SecretString, AppError> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| AppError::BadRequest(format!("cannot read the password from stdin: {e}")))?;
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line)
        .to_string();
    if password.is_empty() {
        return Err(AppError::BadRequest("no password on stdin".into()));
    }
    Ok(SecretString::from(password))
}

/// `rampart users reset-mfa ID --reason R`: exit 0 when the factor was removed, 1 when the user
/// does not exist or has no factor (nothing changed), 2 for a bad invocation.
pub fn cli_reset_mfa(
    settings: &Settings,
    auditor: &Auditor,
    conn: &mut PgConnection,
    id: &str,
    reason: &str,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let reason = match crate::audit::admin_reason(Some(reason), true) {
        Ok(Some(reason)) => reason,
        Ok(None) | Err(_) => {
            eprintln!("error: --reason must be 1-500 characters of text");
            return ExitCode::from(2);
        }
    };
    let found = match uuid::Uuid::parse_str(id.trim()) {
        Ok(uuid) => store::find(conn, uuid),
        Err(_) => store::find_by_username(conn, id.trim()),
    };
    let user = match found {
        Ok(Some(user)) => user,
        Ok(None) => {
            eprintln!("error: no user {id}");
            return ExitCode::FAILURE;
        }
        Err(error) => {
            eprintln!("error: the database refused the lookup: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut metadata = crate::audit::operator_origin();
    metadata["reason"] = serde_json::json!(reason);
    metadata["via"] = serde_json::json!("cli");
    let now = time::OffsetDateTime::now_utc();
    let meta = system_meta();
    let outcome = conn.transaction::<_, AppError, _>(|conn| {
        super::reset_mfa_in_tx(
            conn,
            auditor,
            &settings.email,
            &meta,
            user.id,
            Actor::system(),
            metadata,
            now,
        )
    });
    match outcome {
        Ok(true) => {
            println!(
                "reset the second factor of {} ({}): sessions ended; audited as mfa.reset",
                user.username, user.id
            );
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!(
                "error: {} ({}) has no second factor; nothing was changed",
                user.username, user.id
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
