//! The webhook inbox pages: the list and its filters (a bad filter is a 422 page), keyset pages
//! both ways, one delivery (its body escaped, its headers and verification shown), the replay
//! of a failed delivery (confirm page, CSRF, audited with the admin, 409 for anything else), the
//! dashboard's card, and sign-in.
//!
//! Deliveries arrive as a provider sends them: signed bodies POSTed to the real routes.

use diesel::prelude::*;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use time::OffsetDateTime;

use rampart::webhooks::verify::{standard_signature, stripe_signature};

use crate::client::{Console, admin_app, csrf_in, location, user_id};
use crate::support::TestApp;

const SCRIPT: &str = "<script>alert(1)</script>";

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A Stripe event body.
pub fn stripe_event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({ "id": id, "type": kind, "created": created, "data": { "object": object } })
}

/// Delivers `body` signed like Stripe, with `headers` added: the receipt.
pub async fn deliver_stripe_with(app: &TestApp, body: &Value, headers: &[(&str, &str)]) -> Value {
    let secret = app.settings.secrets.stripe_webhook_secret.as_ref().unwrap();
    let bytes = serde_json::to_vec(body).unwrap();
    let signature = stripe_signature(secret.expose_secret(), now(), &bytes);
    let mut req = app
        .client
        .post(app.url("/api/v1/webhooks/stripe"))
        .header("stripe-signature", signature)
        .header("content-type", "application/json");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.body(bytes).send().await.unwrap();
    assert_eq!(res.status(), 200, "stripe delivery of {body}");
    res.json().await.unwrap()
}

pub async fn deliver_stripe(app: &TestApp, body: &Value) -> Value {
    deliver_stripe_with(app, body, &[]).await
}

/// Delivers `body` signed like Clerk (Svix) with message id `id`: the receipt.
pub async fn deliver_clerk(app: &TestApp, id: &str, body: &Value) -> Value {
    let secret = app.settings.secrets.clerk_webhook_secret.as_ref().unwrap();
    let bytes = serde_json::to_vec(body).unwrap();
    let ts = now();
    let signature = standard_signature(secret.expose_secret(), id, ts, &bytes).unwrap();
    let res = app
        .client
        .post(app.url("/api/v1/webhooks/clerk"))
        .header("svix-id", id)
        .header("svix-timestamp", ts.to_string())
        .header("svix-signature", signature)
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "clerk delivery of {body}");
    res.json().await.unwrap()
}

/// A subscription update for a customer no checkout has linked: stored as `failed`.
pub async fn failed_delivery(app: &TestApp, event_id: &str, customer: &str) -> String {
    let receipt = deliver_stripe(
        app,
        &stripe_event(
            event_id,
            "customer.subscription.updated",
            now() - 30,
            json!({ "id": "sub_1", "customer": customer, "status": "active" }),
        ),
    )
    .await;
    assert_eq!(receipt["outcome"], "failed", "{receipt}");
    receipt["id"].as_str().unwrap().to_string()
}

/// A subscription update naming no customer: stored as `failed` ("the event has no customer id",
/// a page text free of anything an event-handler check could mistake for an attribute).
pub async fn failed_without_customer(app: &TestApp, event_id: &str) -> String {
    let receipt = deliver_stripe(
        app,
        &stripe_event(
            event_id,
            "customer.subscription.updated",
            now(),
            json!({ "id": "sub_1" }),
        ),
    )
    .await;
    assert_eq!(receipt["outcome"], "failed", "{receipt}");
    receipt["id"].as_str().unwrap().to_string()
}

/// An event type rampart does not act on: stored as `ignored`.
pub async fn ignored_delivery(app: &TestApp, event_id: &str) -> String {
    let receipt = deliver_stripe(
        app,
        &stripe_event(event_id, "customer.created", now(), json!({})),
    )
    .await;
    assert_eq!(receipt["outcome"], "ignored", "{receipt}");
    receipt["id"].as_str().unwrap().to_string()
}

/// (outcome, replays) of a stored delivery.
fn stored(app: &TestApp, id: &str) -> (String, i32) {
    use rampart::db::schema::webhook_events;
    let mut conn = app.db.as_ref().unwrap().connect();
    webhook_events::table
        .find(uuid::Uuid::parse_str(id).unwrap())
        .select((webhook_events::outcome, webhook_events::replays))
        .first(&mut conn)
        .unwrap()
}

/// (actor_type, actor_id) of every `webhook.replayed` audit row.
fn replay_audit_rows(app: &TestApp) -> Vec<(String, Option<String>)> {
    use rampart::db::schema::audit_logs;
    let mut conn = app.db.as_ref().unwrap().connect();
    audit_logs::table
        .filter(audit_logs::action.eq("webhook.replayed"))
        .order(audit_logs::id.asc())
        .select((audit_logs::actor_type, audit_logs::actor_id))
        .load(&mut conn)
        .unwrap()
}

fn is_html(res: &reqwest::Response) -> bool {
    res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html")
}

/// The number of data rows of the page's table.
fn rows_in(html: &str) -> usize {
    html.matches("<tr").count().saturating_sub(1)
}

/// The first link (unescaped) starting with `prefix`.
fn href(html: &str, prefix: &str) -> Option<String> {
    let html = html.replace("&#38;", "&");
    let at = html.find(&format!("href=\"{prefix}"))?;
    let rest = &html[at + "href=\"".len()..];
    Some(rest[..rest.find('"')?].to_string())
}

#[actix_web::test]
async fn the_list_shows_deliveries_and_its_filters_work() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    ignored_delivery(&app, "evt_ignored_1").await;
    failed_delivery(&app, "evt_failed_1", "cus_nobody").await;
    let clerk = deliver_clerk(
        &app,
        "msg_clerk_1",
        &json!({ "type": "session.created", "data": { "id": "sess_1" } }),
    )
    .await;
    assert_eq!(clerk["outcome"], "ignored");
    // A redelivery is counted on the stored row, not listed twice.
    let again = deliver_stripe(
        &app,
        &stripe_event("evt_ignored_1", "customer.created", now(), json!({})),
    )
    .await;
    assert_eq!(again["outcome"], "duplicate");

    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let (status, html) = console.get_text("/admin/webhooks").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("href=\"/admin/webhooks\" aria-current=\"page\""));
    for id in ["evt_ignored_1", "evt_failed_1", "msg_clerk_1"] {
        assert!(html.contains(id), "{id} listed");
    }
    assert_eq!(rows_in(&html), 3);
    // The failed one is marked; the redelivered one shows its two deliveries.
    assert_eq!(html.matches("class=\"row-failed\"").count(), 1);
    assert!(html.contains("outcome-failed"));
    let ignored_row = &html[html.find("evt_ignored_1").unwrap()..];
    let ignored_row = &ignored_row[..ignored_row.find("</tr>").unwrap()];
    assert!(ignored_row.contains("<td>2</td>"), "{ignored_row}");

    for (query, present, absent) in [
        (
            "provider=clerk",
            vec!["msg_clerk_1"],
            vec!["evt_ignored_1", "evt_failed_1"],
        ),
        (
            "provider=stripe",
            vec!["evt_ignored_1", "evt_failed_1"],
            vec!["msg_clerk_1"],
        ),
        (
            "outcome=failed",
            vec!["evt_failed_1"],
            vec!["evt_ignored_1", "msg_clerk_1"],
        ),
        (
            "outcome=ignored&provider=stripe",
            vec!["evt_ignored_1"],
            vec!["evt_failed_1", "msg_clerk_1"],
        ),
        (
            "type=customer.created",
            vec!["evt_ignored_1"],
            vec!["evt_failed_1", "msg_clerk_1"],
        ),
        (
            "from=2000-01-01&to=2999-01-01T00:00",
            vec!["evt_ignored_1", "evt_failed_1", "msg_clerk_1"],
            vec![],
        ),
        (
            "from=2999-01-01",
            vec!["No deliveries match these filters."],
            vec!["evt_ignored_1", "evt_failed_1", "msg_clerk_1"],
        ),
    ] {
        let (status, html) = console.get_text(&format!("/admin/webhooks?{query}")).await;
        assert_eq!(status, 200, "{query}: {html}");
        for text in present {
            assert!(html.contains(text), "{query}: {text} shown");
        }
        for text in absent {
            assert!(!html.contains(text), "{query}: {text} not shown");
        }
        // The form shows the filters back, and offers to clear them.
        assert!(html.contains("<a class=\"button\" href=\"/admin/webhooks\">Clear</a>"));
    }
    let (_, html) = console
        .get_text("/admin/webhooks?provider=clerk&outcome=ignored")
        .await;
    assert!(html.contains("<option value=\"clerk\" selected>"));
    assert!(html.contains("<option value=\"ignored\" selected>"));

    // Bad filter values: a readable 422 page naming the field, the form kept, no rows.
    for (query, sentence) in [
        (
            "outcome=bogus",
            "Outcome must be processed, ignored or failed",
        ),
        (
            "outcome=duplicate",
            "Outcome must be processed, ignored or failed",
        ),
        ("provider=paypal", "Provider must be stripe or clerk"),
        ("from=yesterday", "From is not a date"),
        ("to=9999-12-31T23:59:59-23:59", "To is outside the range"),
        ("type=a%20b", "Type is not an event type"),
        ("before=not-a-cursor", "The page link is not valid"),
    ] {
        let res = console.get(&format!("/admin/webhooks?{query}")).await;
        assert_eq!(res.status(), 422, "{query}");
        assert!(is_html(&res), "{query}");
        let html = res.text().await.unwrap();
        assert!(html.contains(sentence), "{query}: {html}");
        assert!(html.contains("<form method=\"get\" action=\"/admin/webhooks\""));
        assert_eq!(rows_in(&html), 0, "{query}");
    }
    // Markup typed into a filter comes back as text.
    let res = console
        .get(&format!(
            "/admin/webhooks?type={}",
            url_encode(&format!("x{SCRIPT}"))
        ))
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("&#60;script&#62;"));
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[actix_web::test]
async fn the_list_pages_both_ways_and_keeps_its_filters() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    // 120 deliveries, every other one from Clerk: 60 Stripe rows, more than one page of 50.
    let mut values = Vec::new();
    for i in 0..120 {
        let provider = if i % 2 == 0 { "stripe" } else { "clerk" };
        values.push(format!(
            "('{}', '{provider}', 'evt_{i:03}', 'customer.created', now(), 'verified:secret0', \
             now(), 'ignored', now(), convert_to('{{}}', 'UTF8'))",
            uuid::Uuid::now_v7()
        ));
    }
    app.sql(&format!(
        "INSERT INTO webhook_events (id, provider, event_id, event_type, received_at, signature, \
         signed_at, outcome, last_delivery_at, raw_body) VALUES {}",
        values.join(", ")
    ));
    let stripe_ids: Vec<String> = (0..120)
        .step_by(2)
        .rev()
        .map(|i| format!("evt_{i:03}"))
        .collect();
    let ids_in = |html: &str| -> Vec<String> {
        html.match_indices("<code>evt_")
            .map(|(at, _)| html[at + 6..at + 13].to_string())
            .collect()
    };

    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let (status, first) = console.get_text("/admin/webhooks?provider=stripe").await;
    assert_eq!(status, 200);
    assert_eq!(ids_in(&first), stripe_ids[..50].to_vec());
    assert!(!first.contains("rel=\"prev\""), "no newer page");
    let older = href(&first, "/admin/webhooks?provider=stripe&").expect("an older link");
    assert!(older.contains("before="), "{older}");

    let (status, second) = console.get_text(&older).await;
    assert_eq!(status, 200);
    assert_eq!(ids_in(&second), stripe_ids[50..].to_vec());
    assert!(!second.contains("rel=\"next\""), "the last page");
    let newer = href(&second, "/admin/webhooks?provider=stripe&").expect("a newer link");
    assert!(newer.contains("after="), "{newer}");

    let (status, back) = console.get_text(&newer).await;
    assert_eq!(status, 200);
    assert_eq!(
        ids_in(&back),
        stripe_ids[..50].to_vec(),
        "back to the first page"
    );
    assert!(
        !back.contains("rel=\"prev\""),
        "nothing newer than the newest"
    );
    assert!(back.contains("rel=\"next\""));
}

#[actix_web::test]
async fn a_delivery_page_shows_everything_stored_and_escapes_the_body() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let text = format!("{SCRIPT} Zoë — 日本語 ✓ \"quoted\"");
    let body = stripe_event(
        "evt_markup",
        "customer.created",
        now(),
        json!({ "description": text, "name": "<img src=x onerror=alert(2)>" }),
    );
    let secret = app.settings.secrets.stripe_webhook_secret.as_ref().unwrap();
    let bytes = serde_json::to_vec(&body).unwrap();
    let res = app
        .client
        .post(app.url("/api/v1/webhooks/stripe"))
        .header(
            "stripe-signature",
            stripe_signature(secret.expose_secret(), now(), &bytes),
        )
        .header("content-type", "application/json")
        .header("user-agent", "Stripe/1.0 <b>bold</b>")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let receipt: Value = res.json().await.unwrap();
    let id = receipt["id"].as_str().unwrap();

    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let (status, html) = console.get_text(&format!("/admin/webhooks/{id}")).await;
    assert_eq!(status, 200, "{html}");
    // Markup in the body and the headers is text; non-ASCII arrives intact.
    assert!(!html.contains("<script"), "raw script tag");
    assert!(!html.contains("<img"), "raw img tag");
    assert!(!html.contains("<b>"), "raw b tag");
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62; Zoë — 日本語 ✓"));
    assert!(html.contains("&#60;img src=x onerror=alert(2)&#62;"));
    assert!(html.contains("Stripe/1.0 &#60;b&#62;bold&#60;/b&#62;"));
    // Pretty-printed (indented) JSON.
    assert!(
        html.contains("\n  &#34;type&#34;: &#34;customer.created&#34;"),
        "{html}"
    );
    assert!(html.contains("JSON shown indented"));
    // Verification, processing and provenance.
    for shown in [
        "evt_markup",
        "verified:secret0",
        "stripe-signature",
        "content-type",
        "application/json",
        "outcome-ignored",
        "127.0.0.1",
        request_id.as_str(),
    ] {
        assert!(html.contains(shown), "{shown} shown");
    }
    // Not failed: no replay button, and the replay pages answer 409.
    assert!(!html.contains("/replay"));
    let res = console.get(&format!("/admin/webhooks/{id}/replay")).await;
    assert_eq!(res.status(), 409);

    // A malformed or unknown id: the console's 404 page.
    for bad in [
        "nope".to_string(),
        format!("{id}x"),
        uuid::Uuid::now_v7().to_string(),
    ] {
        for path in [
            format!("/admin/webhooks/{bad}"),
            format!("/admin/webhooks/{bad}/replay"),
        ] {
            let res = console.get(&path).await;
            assert_eq!(res.status(), 404, "{path}");
            assert!(is_html(&res), "{path}");
        }
    }
}

#[actix_web::test]
async fn replaying_a_failed_delivery_needs_csrf_and_is_audited_with_the_admin() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    app.register("alice").await;
    let alice_id = user_id(&app, "alice");
    let root_id = user_id(&app, "root");
    let failed = failed_delivery(&app, "evt_sub_1", "cus_X").await;
    let ignored = ignored_delivery(&app, "evt_other").await;

    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let (status, html) = console.get_text(&format!("/admin/webhooks/{failed}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("customer cus_X is not linked to a rampart user"));
    assert!(html.contains(&format!("href=\"/admin/webhooks/{failed}/replay\"")));

    // The confirm page, with the session's token.
    let (status, html) = console
        .get_text(&format!("/admin/webhooks/{failed}/replay"))
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Replay this delivery?"));
    assert!(html.contains("evt_sub_1"));
    let token = csrf_in(&html).unwrap();
    assert_eq!(token, console.csrf().await);
    let path = format!("/admin/webhooks/{failed}/replay");

    // No token, a wrong one, or another site's form: refused, nothing replayed.
    for fields in [
        vec![],
        vec![("csrf_token", "")],
        vec![("csrf_token", "not-the-token")],
    ] {
        let res = console.post(&path, &fields).await;
        assert_eq!(res.status(), 403, "{fields:?}");
        assert!(is_html(&res));
    }
    console.origin = Some("https://evil.example".into());
    let res = console.post(&path, &[("csrf_token", &token)]).await;
    assert_eq!(res.status(), 403);
    console.origin = Some(app.address.clone());
    assert_eq!(stored(&app, &failed), ("failed".to_string(), 0));
    assert!(replay_audit_rows(&app).is_empty());

    // The cause is not fixed yet: the replay runs, fails again, and says so.
    let res = console.post(&path, &[("csrf_token", &token)]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        location(&res).as_deref(),
        Some(format!("/admin/webhooks/{failed}").as_str())
    );
    let (_, html) = console.get_text(&format!("/admin/webhooks/{failed}")).await;
    assert!(html.contains("Replayed; it failed again"), "{html}");
    assert_eq!(stored(&app, &failed), ("failed".to_string(), 1));

    // Fix the cause: a checkout links cus_X to alice. The replay applies the update.
    let checkout = deliver_stripe(
        &app,
        &stripe_event(
            "evt_checkout_1",
            "checkout.session.completed",
            now() - 60,
            json!({ "client_reference_id": alice_id, "customer": "cus_X" }),
        ),
    )
    .await;
    assert_eq!(checkout["outcome"], "processed", "{checkout}");
    let res = console.post(&path, &[("csrf_token", &token)]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(stored(&app, &failed), ("processed".to_string(), 2));
    let (_, html) = console.get_text(&format!("/admin/webhooks/{failed}")).await;
    assert!(html.contains("Replayed: the delivery is now processed."));
    assert!(html.contains("outcome-processed"));
    assert!(!html.contains("/replay\""), "no replay button any more");
    let alice = app.login("alice").await;
    let sub: Value = app
        .get_auth("/api/v1/me/subscription", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sub["status"], "active", "{sub}");

    // Both replays are audited with the admin as actor.
    let rows = replay_audit_rows(&app);
    assert_eq!(rows.len(), 2);
    for (actor_type, actor_id) in rows {
        assert_eq!(actor_type, "admin");
        assert_eq!(actor_id.as_deref(), Some(root_id.as_str()));
    }

    // Processed now, or never failed: a readable 409, nothing replayed.
    for id in [&failed, &ignored] {
        let path = format!("/admin/webhooks/{id}/replay");
        let res = console.get(&path).await;
        assert_eq!(res.status(), 409, "GET {path}");
        let res = console.post(&path, &[("csrf_token", &token)]).await;
        assert_eq!(res.status(), 409, "POST {path}");
        assert!(is_html(&res));
        let html = res.text().await.unwrap();
        assert!(
            html.contains("only failed deliveries can be replayed"),
            "{html}"
        );
    }
    assert_eq!(stored(&app, &failed), ("processed".to_string(), 2));
    assert_eq!(stored(&app, &ignored), ("ignored".to_string(), 0));
    assert_eq!(replay_audit_rows(&app).len(), 2);

    // The delivery page's audit link lists its receipt and both replays.
    let (_, html) = console.get_text(&format!("/admin/webhooks/{failed}")).await;
    let audit = href(&html, "/admin/audit?target=").unwrap();
    let (status, html) = console.get_text(&audit).await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(html.matches("<code>webhook.replayed</code>").count(), 2);
    assert_eq!(html.matches("<code>webhook.received</code>").count(), 1);
}

#[actix_web::test]
async fn the_dashboard_counts_the_last_days_failed_deliveries() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let card = |n: i64| {
        format!(
            "<span class=\"card-value\">{n}</span><span class=\"card-label\">webhooks failed, 24 \
             h</span>"
        )
    };
    let (_, html) = console.get_text("/admin").await;
    assert!(html.contains(&card(0)), "{html}");

    let old = failed_delivery(&app, "evt_old", "cus_a").await;
    failed_delivery(&app, "evt_new_1", "cus_b").await;
    failed_delivery(&app, "evt_new_2", "cus_c").await;
    ignored_delivery(&app, "evt_fine").await;
    app.sql(&format!(
        "UPDATE webhook_events SET received_at = now() - interval '25 hours' WHERE id = '{old}'"
    ));
    let (status, html) = console.get_text("/admin").await;
    assert_eq!(status, 200);
    assert!(html.contains(&card(2)), "{html}");
    // The card leads to exactly those deliveries.
    let link = href(&html, "/admin/webhooks?outcome=failed").unwrap();
    let (status, list) = console.get_text(&link).await;
    assert_eq!(status, 200, "{link}: {list}");
    assert!(list.contains("evt_new_1") && list.contains("evt_new_2"));
    assert!(!list.contains("evt_old") && !list.contains("evt_fine"));
}

#[actix_web::test]
async fn webhook_pages_are_for_signed_in_admins_only() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    app.register_admin("ops").await;
    app.register("member").await;
    let failed = failed_delivery(&app, "evt_f", "cus_f").await;
    let pages = [
        "/admin/webhooks".to_string(),
        "/admin/webhooks?outcome=failed".to_string(),
        format!("/admin/webhooks/{failed}"),
        format!("/admin/webhooks/{failed}/replay"),
    ];

    // Signed out: the sign-in page, for reading and for replaying.
    let mut console = Console::new(&app);
    for path in &pages {
        let res = console.get(path).await;
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(location(&res).as_deref(), Some("/admin/login"));
    }
    let res = console
        .post(
            &format!("/admin/webhooks/{failed}/replay"),
            &[("csrf_token", "x")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res).as_deref(), Some("/admin/login"));

    // A member gets no console session; an API token does not open the console.
    assert_eq!(
        console
            .sign_in_as("member", crate::support::PASSWORD)
            .await
            .status(),
        401
    );
    let member = app.login("member").await;
    for path in &pages {
        let res = app
            .client
            .get(app.url(path))
            .bearer_auth(&member.access)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{path} with a member's token");
    }

    // An admin demoted while signed in is out at the next page.
    let mut ops = Console::new(&app);
    ops.sign_in("ops").await;
    let token = ops.csrf().await;
    assert_eq!(ops.get("/admin/webhooks").await.status(), 200);
    app.sql("UPDATE users SET role = 'team_member' WHERE username = 'ops'");
    assert_eq!(ops.get("/admin/webhooks").await.status(), 303);
    let res = ops
        .post(
            &format!("/admin/webhooks/{failed}/replay"),
            &[("csrf_token", &token)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(stored(&app, &failed), ("failed".to_string(), 0));
    assert!(replay_audit_rows(&app).is_empty());
}
