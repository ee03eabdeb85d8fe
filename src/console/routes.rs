//! Console page handlers: extract → check (admin, CSRF) → one service call → a page or a
//! redirect with a flash message.

use std::collections::HashMap;

use actix_web::cookie::Cookie;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use super::ConsoleError;
use super::chart;
use super::pages::{
    self, AuditEntryPage, AuditForm, AuditPage, AuditRowView, ChainStatus, Chrome, ConfirmPage,
    DashboardPage, Flash, KeyRow, KeysPage, LoginPage, SessionRow, SessionsPage, Stats, UserPage,
    UserRow, UsersPage, link,
};
use super::session::{self, Admin};
use crate::accounts::admin::{
    self as users_admin, AdminActor, AdminError, Change, UserFilter, UserStatus,
};
use crate::accounts::{self, SignIn};
use crate::audit::{Action, AuditEntry, AuditFilter, Event, Outcome};
use crate::auth::{Role, request_meta};
use crate::console::session::CookieNames;
use crate::error::AppError;
use crate::http::pagination::{id_cursor, parse_id_cursor, parse_uuid_cursor, uuid_cursor};
use crate::state::AppState;

/// Rows per console table page.
const PAGE: i64 = 50;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin").route(web::get().to(dashboard)))
        .service(
            web::resource("/admin/login")
                .route(web::get().to(login_form))
                .route(web::post().to(login)),
        )
        .service(web::resource("/admin/logout").route(web::post().to(logout)))
        .service(web::resource("/admin/audit").route(web::get().to(audit)))
        .service(web::resource("/admin/audit/export.csv").route(web::get().to(audit_export)))
        .service(web::resource("/admin/audit/verify").route(web::post().to(audit_verify)))
        .service(web::resource("/admin/audit/{id}").route(web::get().to(audit_entry)))
        .service(web::resource("/admin/users").route(web::get().to(users)))
        .service(web::resource("/admin/users/{id}").route(web::get().to(user)))
        .service(
            web::resource("/admin/users/{id}/{action}")
                .route(web::get().to(user_confirm))
                .route(web::post().to(user_act)),
        )
        .service(web::resource("/admin/keys").route(web::get().to(keys)))
        .service(
            web::resource("/admin/keys/{id}/revoke")
                .route(web::get().to(key_confirm))
                .route(web::post().to(key_revoke)),
        )
        .service(web::resource("/admin/sessions").route(web::get().to(sessions_page)))
        .service(
            web::resource("/admin/sessions/{id}/revoke")
                .route(web::get().to(session_confirm))
                .route(web::post().to(session_revoke)),
        );
}

// --- plumbing -------------------------------------------------------------------------------------

/// A rendered page, clearing the flash cookie if the page showed it.
fn page(
    status: StatusCode,
    template: &impl Template,
    clear_flash: Option<Cookie<'static>>,
) -> Result<HttpResponse, ConsoleError> {
    let body = template
        .render()
        .map_err(|e| ConsoleError::App(AppError::internal(anyhow::anyhow!("template: {e}"))))?;
    let mut res = HttpResponse::build(status);
    res.content_type("text/html; charset=utf-8");
    if let Some(cookie) = clear_flash {
        res.cookie(cookie);
    }
    Ok(res.body(body))
}

/// The chrome of a page, with the flash message left by the previous action (and the cookie
/// that clears it).
fn chrome(
    state: &AppState,
    req: &HttpRequest,
    admin: Option<&Admin>,
    title: impl Into<String>,
    section: &'static str,
) -> (Chrome, Option<Cookie<'static>>) {
    let names = &CookieNames::for_settings(&state.settings);
    let flash = req.cookie(names.flash).and_then(|c| {
        let raw = percent_decode(c.value());
        let (kind, text) = raw.split_once('|')?;
        let kind = if kind == "error" { "error" } else { "ok" };
        Some(Flash {
            kind,
            text: text.chars().take(300).collect(),
        })
    });
    let clear = flash.as_ref().map(|_| names.removal(names.flash));
    (
        Chrome {
            title: title.into(),
            section,
            admin: admin.map(|a| a.user.username.clone()),
            csrf: admin.map(|a| a.csrf.clone()).unwrap_or_default(),
            flash,
        },
        clear,
    )
}

fn percent_decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("m={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// 303 to `location`, leaving a flash message for the page there.
fn redirect(state: &AppState, location: &str, kind: &str, text: &str) -> HttpResponse {
    let names = &CookieNames::for_settings(&state.settings);
    let value: String =
        url::form_urlencoded::byte_serialize(format!("{kind}|{text}").as_bytes()).collect();
    let mut cookie = names.cookie(names.flash, value);
    cookie.set_max_age(actix_web::cookie::time::Duration::seconds(60));
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_string()))
        .cookie(cookie)
        .finish()
}

fn parse_id(raw: &str) -> Result<Uuid, ConsoleError> {
    Uuid::parse_str(raw).map_err(|_| ConsoleError::NotFound)
}

/// The non-empty filters of a list page, as query pairs.
fn filter_pairs<'a>(filters: &[(&'a str, &String)]) -> Vec<(&'a str, String)> {
    filters
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (*k, (*v).clone()))
        .collect()
}

/// The "older" and "newer" links of a newest-first list page, keeping its filters.
fn pager(
    path: &str,
    pairs: &[(&str, String)],
    older: Option<Uuid>,
    newer: Option<Uuid>,
) -> (Option<String>, Option<String>) {
    let with = |key: &'static str, id: Uuid| {
        let mut p = pairs.to_vec();
        p.push((key, uuid_cursor(id)));
        link(path, p)
    };
    (
        older.map(|id| with("before", id)),
        newer.map(|id| with("after", id)),
    )
}

/// A user filter typed into a form (username or id): the id, or a message when nobody has that
/// name. A name that matches nobody filters to nothing rather than to everything.
async fn named_user(
    state: &AppState,
    raw: &str,
) -> Result<(Option<Uuid>, Option<String>), ConsoleError> {
    if raw.is_empty() {
        return Ok((None, None));
    }
    let lookup = raw.to_string();
    let found = state
        .pool
        .run(move |conn| users_admin::resolve_user(conn, &lookup))
        .await?;
    Ok(match found {
        Some(id) => (Some(id), None),
        None => (
            Some(Uuid::nil()),
            Some(format!("There is no user named {raw}.")),
        ),
    })
}

/// Usernames for every user id among these audit rows' actors and targets.
fn names_for(
    conn: &mut diesel::PgConnection,
    entries: &[AuditEntry],
) -> Result<HashMap<Uuid, String>, AppError> {
    let ids: Vec<Uuid> = entries
        .iter()
        .flat_map(|e| [e.actor_id.as_deref(), e.target_id.as_deref()])
        .flatten()
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    users_admin::usernames(conn, &ids)
}

// --- sign-in --------------------------------------------------------------------------------------

async fn login_form(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    if let Some(token) = session::presented_token(&req, &CookieNames::for_settings(&state.settings))
        && session::resolve(&state, token).await?.is_some()
    {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/admin"))
            .finish());
    }
    login_page(&state, &req, StatusCode::OK, String::new(), None)
}

fn login_page(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    login: String,
    error: Option<&'static str>,
) -> Result<HttpResponse, ConsoleError> {
    let nonce = session::login_nonce()?;
    let (chrome, clear) = chrome(state, req, None, "Sign in", "login");
    let mut res = page(
        status,
        &LoginPage {
            chrome,
            login,
            nonce: nonce.clone(),
            error,
        },
        clear,
    )?;
    let names = &CookieNames::for_settings(&state.settings);
    let cookie = names.cookie(names.login, nonce);
    res.add_cookie(&cookie)
        .map_err(|e| ConsoleError::App(AppError::internal(e)))?;
    Ok(res)
}

/// Every field defaults: a form without its token is refused as a CSRF failure (403), not as
/// a malformed request.
#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default = "empty_secret")]
    password: SecretString,
    #[serde(default)]
    csrf_token: String,
}

fn empty_secret() -> SecretString {
    SecretString::from(String::new())
}

const SIGN_IN_FAILED: &str = "Those details did not work. Check them and try again (admins only; repeated failures lock the account for a while).";

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    if !session::same_origin(&req) {
        return Err(ConsoleError::Forbidden(
            "This sign-in form was sent from another site. Nothing was changed.",
        ));
    }
    if !session::check_login_nonce(
        &req,
        &CookieNames::for_settings(&state.settings),
        &form.csrf_token,
    ) {
        return Err(ConsoleError::Forbidden(
            "This sign-in form has expired. Go back, reload the page and sign in again.",
        ));
    }
    let login: String = form.login.trim().chars().take(254).collect();
    if form.login.len() > 254 {
        return login_page(
            &state,
            &req,
            StatusCode::UNAUTHORIZED,
            login,
            Some(SIGN_IN_FAILED),
        );
    }
    let meta = request_meta(&req);
    let verified = match accounts::verify_credentials(
        &state,
        login.clone(),
        form.password,
        &meta,
        SignIn::Console,
    )
    .await
    {
        Ok(verified) => verified,
        Err(AppError::Unauthorized) => {
            return login_page(
                &state,
                &req,
                StatusCode::UNAUTHORIZED,
                login,
                Some(SIGN_IN_FAILED),
            );
        }
        Err(other) => return Err(other.into()),
    };
    let names = CookieNames::for_settings(&state.settings);
    let previous = session::presented_token(&req, &names);
    let token = session::sign_in(&state, verified, previous, meta).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/admin"))
        .cookie(names.cookie(names.session, token))
        .cookie(names.removal(names.login))
        .finish())
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check_form(&state, &req, &form.csrf_token)?;
    session::sign_out(&state, &admin, request_meta(&req)).await?;
    let names = CookieNames::for_settings(&state.settings);
    let mut res = redirect(&state, "/admin/login", "ok", "You are signed out.");
    res.add_removal_cookie(&names.cookie(names.session, String::new()))
        .map_err(|e| ConsoleError::App(AppError::internal(e)))?;
    Ok(res)
}

// --- dashboard ------------------------------------------------------------------------------------

async fn dashboard(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<HttpResponse, ConsoleError> {
    let now = state.clock.now();
    let since = now - time::Duration::hours(24);
    let chart_since = now - time::Duration::hours(25);
    let idle = state.settings.auth.refresh_token_idle;
    let (stats, hourly) = state
        .pool
        .run(move |conn| {
            let (users, active, disabled, locked) = users_admin::counts(conn, now)?;
            let counted = crate::audit::occurrences_since(
                conn,
                &[
                    Action::AuthLoginFailed,
                    Action::AdminLoginFailed,
                    Action::AuthLockout,
                    Action::RateLimitExceeded,
                    Action::AuthRefreshReuseDetected,
                ],
                since,
            )?;
            let of = |wanted: &[Action]| -> i64 {
                counted
                    .iter()
                    .filter(|(a, _)| wanted.contains(a))
                    .map(|(_, n)| n)
                    .sum()
            };
            let stats = Stats {
                users,
                active,
                disabled,
                locked,
                live_sessions: crate::sessions::count_live(conn, now, idle)?,
                live_keys: crate::api_keys::count_accepting(conn, now)?,
                failed_logins: of(&[Action::AuthLoginFailed, Action::AdminLoginFailed]),
                lockouts: of(&[Action::AuthLockout]),
                rate_limited: of(&[Action::RateLimitExceeded]),
                refresh_reuse: of(&[Action::AuthRefreshReuseDetected]),
            };
            let hourly = crate::audit::hourly_since(conn, &chart::actions(), chart_since)?;
            Ok((stats, hourly))
        })
        .await?;
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "Dashboard", "dashboard");
    page(
        StatusCode::OK,
        &DashboardPage {
            chrome,
            stats,
            chart: chart::build(&hourly, now),
        },
        clear,
    )
}

// --- audit log ------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct AuditParams {
    #[serde(flatten)]
    filter: AuditFilter,
    before: Option<String>,
    after: Option<String>,
}

fn audit_form(filter: &AuditFilter) -> AuditForm {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    AuditForm {
        action: v(&filter.action),
        actor: v(&filter.actor),
        target: v(&filter.target),
        outcome: v(&filter.outcome),
        ip: v(&filter.ip),
        from: v(&filter.from),
        to: v(&filter.to),
        errors: Vec::new(),
    }
}

async fn audit(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, ConsoleError> {
    let params = params.into_inner();
    let mut form = audit_form(&params.filter);
    let mut query = match params.filter.to_query() {
        Ok(query) => Some(query),
        Err(errors) => {
            form.errors = errors;
            None
        }
    };
    if let Some(q) = query.as_mut() {
        let cursor = |raw: &Option<String>| -> Result<Option<i64>, ()> {
            match raw.as_deref().filter(|c| !c.is_empty()) {
                None => Ok(None),
                Some(c) => parse_id_cursor(c).map(Some).ok_or(()),
            }
        };
        match (cursor(&params.before), cursor(&params.after)) {
            (Ok(before), Ok(after)) => {
                q.before_id = before;
                q.after_id = after;
            }
            _ => {
                form.errors.push(crate::error::FieldError::new(
                    "action",
                    "the page link is not valid; start again from the first page",
                ));
                query = None;
            }
        }
    }
    let pairs = params.filter.pairs();
    let filtered = !pairs.is_empty();
    let (rows, older, newer, chain) = match query {
        Some(mut q) => {
            q.limit = PAGE;
            let (page_rows, names, chain) = state
                .pool
                .run(move |conn| {
                    let page = crate::audit::list(conn, &q)?;
                    let names = names_for(conn, &page.items)?;
                    let chain = crate::audit::last_verification(conn)?;
                    Ok((page, names, chain))
                })
                .await?;
            let rows: Vec<AuditRowView> = page_rows
                .items
                .iter()
                .map(|e| AuditRowView::new(e, &names))
                .collect();
            let with = |key: &'static str, id: i64| {
                let mut p = pairs.clone();
                p.push((key, id_cursor(id)));
                link("/admin/audit", p)
            };
            (
                rows,
                page_rows.next_before_id.map(|id| with("before", id)),
                page_rows.prev_after_id.map(|id| with("after", id)),
                ChainStatus::from_entry(chain.as_ref()),
            )
        }
        None => {
            let chain = state
                .pool
                .run(|conn| Ok(crate::audit::last_verification(conn)?))
                .await?;
            (
                Vec::new(),
                None,
                None,
                ChainStatus::from_entry(chain.as_ref()),
            )
        }
    };
    let status = if form.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "Audit log", "audit");
    page(
        status,
        &AuditPage {
            chrome,
            form,
            actions: Action::ALL.iter().map(|a| a.as_str()).collect(),
            rows,
            older,
            newer,
            export: link("/admin/audit/export.csv", pairs),
            chain,
            filtered,
        },
        clear,
    )
}

async fn audit_entry(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id: i64 = path.parse().map_err(|_| ConsoleError::NotFound)?;
    let (entry, names) = state
        .pool
        .run(move |conn| {
            let entry = crate::audit::get(conn, id)?.ok_or(AppError::NotFound)?;
            let names = names_for(conn, std::slice::from_ref(&entry))?;
            Ok((entry, names))
        })
        .await?;
    let metadata = serde_json::to_string_pretty(&entry.metadata).unwrap_or_default();
    let (chrome, clear) = chrome(
        &state,
        &req,
        Some(&admin),
        format!("Audit row {id}"),
        "audit",
    );
    page(
        StatusCode::OK,
        &AuditEntryPage {
            chrome,
            row: AuditRowView::new(&entry, &names),
            metadata,
            prev_hash: entry.prev_hash.clone(),
        },
        clear,
    )
}

async fn audit_export(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, ConsoleError> {
    let filter = params.into_inner().filter;
    let query = filter.to_query().map_err(AppError::Validation)?;
    // Taking a copy of the audit log is itself worth a row.
    let auditor = state.auditor.clone();
    let meta = request_meta(&req);
    let admin_id = admin.user.id;
    let filters = serde_json::to_value(&filter).unwrap_or_default();
    state
        .pool
        .run(move |conn| {
            auditor.record_standalone(
                conn,
                &meta,
                Event::new(
                    Action::DataExported,
                    Outcome::Success,
                    crate::audit::Actor::admin(admin_id),
                )
                .metadata(serde_json::json!({ "export": "audit_log_csv", "filters": filters })),
            )?;
            Ok(())
        })
        .await?;
    let stamp = state.clock.now().unix_timestamp();
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"rampart-audit-{stamp}.csv\""),
        ))
        .streaming(super::export::stream(state.clone(), query)))
}

async fn audit_verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check_form(&state, &req, &form.csrf_token)?;
    let report = crate::audit::verify_recorded(
        &state.pool,
        &state.auditor,
        crate::audit::Actor::admin(admin.user.id),
        request_meta(&req),
    )
    .await?;
    Ok(match report.failure {
        None => redirect(
            &state,
            "/admin/audit",
            "ok",
            &format!("The chain verifies: {} rows.", report.rows_verified),
        ),
        Some(failure) => redirect(
            &state,
            "/admin/audit",
            "error",
            &format!("The chain is broken: {failure}."),
        ),
    })
}

// --- users ----------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct UsersParams {
    q: Option<String>,
    role: Option<String>,
    status: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

async fn users(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    params: web::Query<UsersParams>,
) -> Result<HttpResponse, ConsoleError> {
    let p = params.into_inner();
    let q = p.q.clone().unwrap_or_default().trim().to_string();
    let role = p.role.clone().unwrap_or_default();
    let status = p.status.clone().unwrap_or_default();
    let filter = UserFilter {
        prefix: Some(q.chars().take(254).collect()).filter(|s: &String| !s.is_empty()),
        role: role.parse::<Role>().ok(),
        status: UserStatus::parse(&status),
        before: p.before.as_deref().and_then(parse_uuid_cursor),
        after: p.after.as_deref().and_then(parse_uuid_cursor),
        limit: PAGE,
    };
    let result = users_admin::list(&state, filter).await?;
    let pairs = filter_pairs(&[("q", &q), ("role", &role), ("status", &status)]);
    let (older, newer) = pager("/admin/users", &pairs, result.older, result.newer);
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "Users", "users");
    page(
        StatusCode::OK,
        &UsersPage {
            chrome,
            filtered: !pairs.is_empty(),
            q,
            role,
            status,
            rows: result.items.iter().map(UserRow::new).collect(),
            older,
            newer,
        },
        clear,
    )
}

async fn user(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = parse_id(&path)?;
    let view = users_admin::get(&state, id).await?;
    let sessions = crate::sessions::admin_list(&state, Some(id), (None, None), 20).await?;
    let keys = crate::api_keys::admin_list(
        &state,
        crate::api_keys::KeyQuery {
            owner: Some(id),
            ..Default::default()
        },
        50,
    )
    .await?;
    let (events, names) = state
        .pool
        .run(move |conn| {
            let (mut events, _) = accounts::audit_events_of(conn, id, 20)?;
            events.truncate(20);
            let names = names_for(conn, &events)?;
            Ok((events, names))
        })
        .await?;
    let can_change_role = admin
        .user
        .is_super_admin(state.settings.super_admin_email.as_deref());
    let (chrome, clear) = chrome(&state, &req, Some(&admin), view.username.clone(), "users");
    page(
        StatusCode::OK,
        &UserPage {
            chrome,
            is_self: view.id == admin.user.id,
            display_name: view.display_name.clone().unwrap_or_default(),
            user: UserRow::new(&view),
            sessions: sessions.items.iter().map(SessionRow::new).collect(),
            keys: keys.items.iter().map(KeyRow::new).collect(),
            events: events
                .iter()
                .map(|e| AuditRowView::new(e, &names))
                .collect(),
            can_change_role,
        },
        clear,
    )
}

/// What each user action page says and does.
struct UserAction {
    heading: &'static str,
    message: &'static str,
    button: &'static str,
    danger: bool,
    reason_required: bool,
    done: &'static str,
}

fn user_action(name: &str) -> Option<UserAction> {
    Some(match name {
        "disable" => UserAction {
            heading: "Disable this account?",
            message: "The user will not be able to sign in; their sessions end now and their API keys stop working.",
            button: "Disable account",
            danger: true,
            reason_required: true,
            done: "Account disabled; its sessions were ended.",
        },
        "enable" => UserAction {
            heading: "Enable this account?",
            message: "The user will be able to sign in again; earlier sessions stay ended.",
            button: "Enable account",
            danger: false,
            reason_required: false,
            done: "Account enabled.",
        },
        "unlock" => UserAction {
            heading: "Unlock this account?",
            message: "Failed sign-in attempts are forgotten and any lockout ends now.",
            button: "Unlock account",
            danger: false,
            reason_required: false,
            done: "Account unlocked.",
        },
        "sign-out" => UserAction {
            heading: "Sign this user out everywhere?",
            message: "Every session of this user (API and console) ends now; they must sign in again.",
            button: "Sign out everywhere",
            danger: true,
            reason_required: false,
            done: "The user was signed out everywhere.",
        },
        "role" => UserAction {
            heading: "Change this user's role?",
            message: "The new role applies to their next request.",
            button: "Change role",
            danger: false,
            reason_required: false,
            done: "Role changed.",
        },
        _ => return None,
    })
}

#[allow(clippy::too_many_arguments)]
fn user_confirm_page(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    view: &users_admin::AdminUserView,
    name: &str,
    action: &UserAction,
    status: StatusCode,
    reason_value: String,
    error: Option<String>,
) -> Result<HttpResponse, ConsoleError> {
    let (chrome, clear) = chrome(state, req, Some(admin), action.heading, "users");
    let role_change = name == "role";
    page(
        status,
        &ConfirmPage {
            chrome,
            heading: action.heading.to_string(),
            message: action.message.to_string(),
            facts: vec![
                ("User", view.username.clone()),
                ("Email", view.email.clone()),
                ("Role", view.role.clone()),
                (
                    "Status",
                    if !view.active {
                        "disabled".into()
                    } else if view.locked {
                        format!("locked until {}", pages::when_opt(view.locked_until))
                    } else {
                        "active".into()
                    },
                ),
            ],
            action: format!("/admin/users/{}/{name}", view.id),
            button: action.button,
            danger: action.danger,
            reason: !role_change,
            reason_required: action.reason_required,
            reason_value,
            roles: if role_change {
                ["admin", "team_member", "demo"]
                    .into_iter()
                    .map(|r| (r, r == view.role))
                    .collect()
            } else {
                Vec::new()
            },
            error,
            cancel: format!("/admin/users/{}", view.id),
        },
        clear,
    )
}

async fn user_confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (id, name) = path.into_inner();
    let id = parse_id(&id)?;
    let action = user_action(&name).ok_or(ConsoleError::NotFound)?;
    if name == "role"
        && !admin
            .user
            .is_super_admin(state.settings.super_admin_email.as_deref())
    {
        return Err(ConsoleError::Forbidden(
            "Only the super admin (SUPER_ADMIN_EMAIL) changes roles.",
        ));
    }
    let view = users_admin::get(&state, id).await?;
    user_confirm_page(
        &state,
        &req,
        &admin,
        &view,
        &name,
        &action,
        StatusCode::OK,
        String::new(),
        None,
    )
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf_token: String,
    reason: Option<String>,
    role: Option<String>,
}

async fn user_act(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (id, name) = path.into_inner();
    let id = parse_id(&id)?;
    let action = user_action(&name).ok_or(ConsoleError::NotFound)?;
    let form = form.into_inner();
    admin.check_form(&state, &req, &form.csrf_token)?;
    let reason = form.reason.clone().unwrap_or_default();
    let change = Change::parse(&name, form.reason.as_deref(), form.role.as_deref())
        .ok_or(ConsoleError::NotFound)?;
    let result = match change {
        Ok(change) => {
            users_admin::apply(
                &state,
                &AdminActor::from_user(&admin.user, state.settings.super_admin_email.as_deref()),
                id,
                change,
                request_meta(&req),
            )
            .await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(view) => Ok(redirect(
            &state,
            &format!("/admin/users/{}", view.id),
            "ok",
            action.done,
        )),
        Err(AdminError::NotSuperAdmin) => Err(ConsoleError::Forbidden(
            "Only the super admin (SUPER_ADMIN_EMAIL) changes roles. Nothing was changed.",
        )),
        Err(AdminError::NotFound) => Err(ConsoleError::NotFound),
        Err(
            refusal @ (AdminError::SuperAdmin(_)
            | AdminError::SelfAction(_)
            | AdminError::Invalid(_)),
        ) => {
            let status = match refusal {
                AdminError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::CONFLICT,
            };
            let view = users_admin::get(&state, id).await?;
            user_confirm_page(
                &state,
                &req,
                &admin,
                &view,
                &name,
                &action,
                status,
                reason,
                Some(refusal.sentence()),
            )
        }
        Err(AdminError::App(other)) => Err(other.into()),
    }
}

// --- API keys -------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct KeysParams {
    owner: Option<String>,
    status: Option<String>,
    prefix: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

async fn keys(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    params: web::Query<KeysParams>,
) -> Result<HttpResponse, ConsoleError> {
    use crate::api_keys::model::KeyStatus;
    let p = params.into_inner();
    let owner = p.owner.clone().unwrap_or_default().trim().to_string();
    let status = p.status.clone().unwrap_or_default();
    let prefix = p.prefix.clone().unwrap_or_default().trim().to_string();
    let (owner_id, error) = named_user(&state, &owner).await?;
    let result = crate::api_keys::admin_list(
        &state,
        crate::api_keys::KeyQuery {
            owner: owner_id,
            status: KeyStatus::parse(&status),
            prefix: Some(prefix.clone()).filter(|p| !p.is_empty()),
            before: p.before.as_deref().and_then(parse_uuid_cursor),
            after: p.after.as_deref().and_then(parse_uuid_cursor),
        },
        PAGE,
    )
    .await?;
    let pairs = filter_pairs(&[("owner", &owner), ("status", &status), ("prefix", &prefix)]);
    let (older, newer) = pager("/admin/keys", &pairs, result.older, result.newer);
    let statuses = KeyStatus::ALL
        .iter()
        .map(|s| (s.as_str(), s.as_str() == status))
        .collect();
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "API keys", "keys");
    page(
        StatusCode::OK,
        &KeysPage {
            chrome,
            filtered: !pairs.is_empty(),
            owner,
            status,
            prefix,
            statuses,
            rows: result.items.iter().map(KeyRow::new).collect(),
            older,
            newer,
            error,
        },
        clear,
    )
}

fn key_confirm_page(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    key: &crate::api_keys::AdminKeyView,
    status: StatusCode,
    reason_value: String,
    error: Option<String>,
) -> Result<HttpResponse, ConsoleError> {
    let (chrome, clear) = chrome(state, req, Some(admin), "Revoke API key", "keys");
    page(
        status,
        &ConfirmPage {
            chrome,
            heading: "Revoke this API key?".into(),
            message: "Requests with this key are refused from now on. The owner sees the reason."
                .into(),
            facts: vec![
                ("Key", key.key.prefix.clone()),
                ("Name", key.key.name.clone()),
                ("Owner", key.owner_username.clone()),
                ("Scopes", key.key.scopes.join(", ")),
                ("Status", key.key.status.as_str().to_string()),
            ],
            action: format!("/admin/keys/{}/revoke", key.key.id),
            button: "Revoke key",
            danger: true,
            reason: true,
            reason_required: true,
            reason_value,
            roles: Vec::new(),
            error,
            cancel: "/admin/keys".into(),
        },
        clear,
    )
}

async fn key_confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let key = crate::api_keys::admin_get(&state, parse_id(&path)?).await?;
    key_confirm_page(
        &state,
        &req,
        &admin,
        &key,
        StatusCode::OK,
        String::new(),
        None,
    )
}

async fn key_revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = parse_id(&path)?;
    let form = form.into_inner();
    admin.check_form(&state, &req, &form.csrf_token)?;
    let raw = form.reason.unwrap_or_default();
    let reason = match crate::audit::parse_reason(&raw) {
        Ok(reason) => reason,
        Err(e) => {
            let key = crate::api_keys::admin_get(&state, id).await?;
            return key_confirm_page(
                &state,
                &req,
                &admin,
                &key,
                StatusCode::UNPROCESSABLE_ENTITY,
                raw,
                Some(format!("The reason {}.", e.message)),
            );
        }
    };
    crate::api_keys::revoke_any(&state, admin.user.id, id, reason, request_meta(&req)).await?;
    Ok(redirect(&state, "/admin/keys", "ok", "API key revoked."))
}

// --- sessions -------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct SessionsParams {
    user: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

async fn sessions_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    params: web::Query<SessionsParams>,
) -> Result<HttpResponse, ConsoleError> {
    let p = params.into_inner();
    let user = p.user.clone().unwrap_or_default().trim().to_string();
    let (user_id, error) = named_user(&state, &user).await?;
    let result = crate::sessions::admin_list(
        &state,
        user_id,
        (
            p.before.as_deref().and_then(parse_uuid_cursor),
            p.after.as_deref().and_then(parse_uuid_cursor),
        ),
        PAGE,
    )
    .await?;
    let pairs = filter_pairs(&[("user", &user)]);
    let (older, newer) = pager("/admin/sessions", &pairs, result.older, result.newer);
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "Sessions", "sessions");
    page(
        StatusCode::OK,
        &SessionsPage {
            chrome,
            user,
            rows: result.items.iter().map(SessionRow::new).collect(),
            older,
            newer,
            error,
        },
        clear,
    )
}

async fn session_confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let s = crate::sessions::admin_get(&state, parse_id(&path)?).await?;
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "Revoke session", "sessions");
    let row = SessionRow::new(&s);
    page(
        StatusCode::OK,
        &ConfirmPage {
            chrome,
            heading: "Revoke this session?".into(),
            message: "The device using it is signed out at its next request.".into(),
            facts: vec![
                ("User", row.username.clone()),
                ("Started", row.created.clone()),
                ("Last used", row.last_used.clone()),
                ("IP", row.ip.clone()),
                ("User agent", row.user_agent.clone()),
            ],
            action: format!("/admin/sessions/{}/revoke", row.id),
            button: "Revoke session",
            danger: true,
            reason: true,
            reason_required: false,
            reason_value: String::new(),
            roles: Vec::new(),
            error: None,
            cancel: "/admin/sessions".into(),
        },
        clear,
    )
}

async fn session_revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = parse_id(&path)?;
    let form = form.into_inner();
    admin.check_form(&state, &req, &form.csrf_token)?;
    let reason = users_admin::parse_reason(form.reason.as_deref(), false)?;
    crate::sessions::admin_revoke(&state, admin.user.id, id, reason, request_meta(&req)).await?;
    Ok(redirect(
        &state,
        "/admin/sessions",
        "ok",
        "Session revoked.",
    ))
}
