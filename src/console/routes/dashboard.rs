//! The dashboard: account counts, live sessions and keys, the last day's security events and
//! failed webhook deliveries.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{chrome, page, users_admin};
use crate::audit::Action;
use crate::console::ConsoleError;
use crate::console::chart;
use crate::console::pages::{DashboardPage, Stats, link};
use crate::console::session::Admin;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin").route(web::get().to(dashboard)));
}

async fn dashboard(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<HttpResponse, ConsoleError> {
    let now = state.clock.now();
    let since = now - time::Duration::hours(24);
    let chart_since = now - time::Duration::hours(25);
    // Whole seconds: the card's link to the list repeats the instant it counts from.
    let webhooks_since = since.replace_nanosecond(0).unwrap_or(since);
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
                webhooks_failed: crate::webhooks::failed_since(conn, webhooks_since)?,
                admins_without_mfa: crate::mfa::admins_without_factor(conn)?,
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
            webhooks_failed_link: link(
                "/admin/webhooks",
                [
                    ("outcome", "failed".to_string()),
                    ("from", crate::clock::rfc3339(webhooks_since)),
                ],
            ),
        },
        clear,
    )
}
