//! Data export and account erasure (issue 16), from the attacker's and the auditor's side: the
//! export holds every kind of the user's data and nothing private of anyone else; erasure leaves
//! no plaintext name or email in any text or JSON column, makes the user's content unreadable,
//! frees the username, ends every credential, holds under a parallel burst, and needs
//! re-authentication.

use std::io::Read;

use serde_json::{Value, json};

use crate::attachments::{png, upload};
use crate::conversations::{post, send, start};
use crate::support::{PASSWORD, TestApp, app};

async fn export(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.get_auth(&format!("/api/v1/me/export{query}"), token)
        .await
}

async fn erase(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.client
        .delete(app.url("/api/v1/me"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Every (table, column, value) of a text, varchar or jsonb column that contains `needle`
/// (case-insensitive).
fn rows_containing(app: &TestApp, needle: &str) -> Vec<(String, String, String)> {
    use diesel::prelude::*;
    use diesel::sql_types::Text;
    #[derive(QueryableByName)]
    struct Column {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
    }
    #[derive(QueryableByName)]
    struct Hit {
        #[diesel(sql_type = Text)]
        value: String,
    }
    let mut conn = app.db.as_ref().unwrap().connect();
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb') \
           AND table_name <> '__diesel_schema_migrations'",
    )
    .load(&mut conn)
    .unwrap();
    assert!(columns.len() > 20, "the scan sees the schema");
    let mut hits = Vec::new();
    for c in columns {
        let found: Vec<Hit> = diesel::sql_query(format!(
            "SELECT \"{}\"::text AS value FROM \"{}\" WHERE strpos(lower(\"{}\"::text), lower($1)) > 0",
            c.column_name, c.table_name, c.column_name
        ))
        .bind::<Text, _>(needle)
        .load(&mut conn)
        .unwrap();
        for hit in found {
            hits.push((c.table_name.clone(), c.column_name.clone(), hit.value));
        }
    }
    hits
}

/// alice (with a message and a file to bob, a conversation she left, a block, a key, two
/// sessions, a linked identity and a subscription), bob, and carol+bob talking without alice.
struct World {
    alice: crate::support::Tokens,
    bob: crate::support::Tokens,
    shared: String,
    secret_of_others: String,
}

async fn world(app: &TestApp, alice_name: &str) -> World {
    let alice = app.user(alice_name).await;
    app.login(alice_name).await; // a second session
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let shared = start(app, &alice.access, &["bob"]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        send(app, &alice.access, &shared, "alice-says-hello-4471")
            .await
            .status(),
        201
    );
    assert_eq!(
        send(app, &bob.access, &shared, "bob-replies-to-alice-8812")
            .await
            .status(),
        201
    );
    let res = upload(
        app,
        &alice.access,
        &shared,
        &[
            ("body", None, None, b"with a picture".to_vec()),
            (
                "files",
                Some("holiday.png"),
                Some("image/png"),
                png(64, 64, 300_000),
            ),
        ],
    )
    .await;
    assert_eq!(res.status(), 201);
    // A group alice left: her own message there is still hers to export.
    let left = post(
        app,
        &alice.access,
        "/api/v1/conversations",
        json!({ "member_usernames": ["bob", "carol"], "title": "planning" }),
    )
    .await;
    assert_eq!(left.status(), 201, "{}", left.text().await.unwrap());
    let left: Value = left.json().await.unwrap();
    let left = left["id"].as_str().unwrap().to_string();
    assert_eq!(
        send(app, &alice.access, &left, "alice-in-the-group-5530")
            .await
            .status(),
        201
    );
    assert_eq!(
        send(app, &carol.access, &left, "carol-after-alice-left-1203")
            .await
            .status(),
        201
    );
    let res = post(
        app,
        &alice.access,
        &format!("/api/v1/conversations/{left}/leave"),
        json!({}),
    )
    .await;
    assert!(res.status().is_success(), "leave: {}", res.status());
    // bob and carol, without alice.
    let private = start(app, &carol.access, &["bob"]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_of_others = "carol-to-bob-private-9931".to_string();
    assert_eq!(
        send(app, &carol.access, &private, &secret_of_others)
            .await
            .status(),
        201
    );
    let res = post(app, &alice.access, "/api/v1/me/blocks/carol", json!({})).await;
    assert!(res.status().is_success());
    app.api_key(&alice.access, "laptop", &["profile:read"])
        .await;
    let alice_id = app.user_id(alice_name);
    app.sql(&format!(
        "INSERT INTO user_identities (id, provider, issuer, subject, user_id, email, created_at, last_seen_at) \
         VALUES (gen_random_uuid(), 'clerk', 'clerk', 'user_2alicesubject77', '{alice_id}', \
                 '{alice_name}@provider.example', now(), now()); \
         INSERT INTO subscriptions (user_id, customer_id, subscription_id, price_id, status, \
                 cancel_at_period_end, event_created_at, created_at, updated_at) \
         VALUES ('{alice_id}', 'cus_alice0001', 'sub_alice0001', 'price_pro', 'active', false, now(), now(), now());"
    ));
    World {
        alice,
        bob,
        shared,
        secret_of_others,
    }
}

#[actix_web::test]
async fn the_export_holds_every_kind_of_the_users_data_and_nothing_private_of_anyone_else() {
    let app = app().spawn().await;
    let w = world(&app, "alice").await;
    let res = export(&app, &w.alice.access, "").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let text = res.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["user"]["username"], "alice");
    assert_eq!(doc["identities"][0]["subject"], "user_2alicesubject77");
    assert_eq!(doc["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(
        doc["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["current"] == true)
            .count(),
        1
    );
    assert_eq!(doc["api_keys"][0]["name"], "laptop");
    assert!(!text.contains("key_hash"), "never a key hash");
    assert_eq!(doc["subscription"]["customer_id"], "cus_alice0001");
    assert_eq!(doc["blocks"][0]["username"], "carol");
    // The shared conversation: both sides of it, decrypted, with the file inline.
    let conversations = doc["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 1, "only conversations she is in");
    assert_eq!(conversations[0]["conversation"]["id"], w.shared.as_str());
    let messages = conversations[0]["messages"].as_array().unwrap();
    let bodies: Vec<&str> = messages.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(
        bodies,
        [
            "alice-says-hello-4471",
            "bob-replies-to-alice-8812",
            "with a picture"
        ]
    );
    let file = &messages[2]["attachments"][0];
    assert_eq!(file["name"], "holiday.png");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(file["content_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        bytes,
        png(64, 64, 300_000),
        "the file, whole, across chunk boundaries"
    );
    // Her words in the group she left — and nothing carol wrote there after.
    let left = doc["messages_in_left_conversations"].as_array().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["body"], "alice-in-the-group-5530");
    assert!(!text.contains("carol-after-alice-left-1203"));
    assert!(
        !text.contains(&w.secret_of_others),
        "another pair's conversation leaked"
    );
    // Her audit events, as stored (scrubbed), and this export among them next time.
    let actions: Vec<&str> = doc["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "user.registered",
        "auth.login.succeeded",
        "api_key.created",
        "user.blocked",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert!(!text.contains("PASSWORD") && !text.contains(PASSWORD));

    // The zip: the same document, the file beside it.
    let res = export(&app, &w.alice.access, "?format=zip").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let zipped = res.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zipped.to_vec())).unwrap();
    let mut json_text = String::new();
    archive
        .by_name("export.json")
        .unwrap()
        .read_to_string(&mut json_text)
        .unwrap();
    let zdoc: Value = serde_json::from_str(&json_text).unwrap();
    let path = zdoc["conversations"][0]["messages"][2]["attachments"][0]["file"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        path.starts_with("attachments/") && path.ends_with("/holiday.png"),
        "{path}"
    );
    let mut file = Vec::new();
    archive
        .by_name(&path)
        .unwrap()
        .read_to_end(&mut file)
        .unwrap();
    assert_eq!(file, png(64, 64, 300_000));

    // A bad format is a 422; an API key needs data:export.
    assert_eq!(
        export(&app, &w.alice.access, "?format=tar").await.status(),
        422
    );
    let key = app
        .api_key(&w.alice.access, "reader", &["profile:read"])
        .await;
    assert_eq!(
        export(&app, key["key"].as_str().unwrap(), "")
            .await
            .status(),
        403
    );
    let _ = w.bob;
}

#[actix_web::test]
async fn erasure_leaves_no_name_or_email_in_any_column_and_other_members_see_a_deleted_user() {
    let app = app().spawn().await;
    let name = "Zelda_Erasable42";
    let email = "zelda_erasable42@example.org";
    let w = world(&app, name).await;
    let id = app.user_id(name);
    let key = app
        .api_key(&w.alice.access, "zelda's key", &["profile:read"])
        .await;
    // A failed login with her name, and one with a name nobody has.
    assert_eq!(
        app.login_as(name, "wrong password here").await.status(),
        401
    );
    assert_eq!(
        app.login_as("zelda-nobody-guess", "wrong password here")
            .await
            .status(),
        401
    );
    // The webhook inbox holds a Clerk delivery that names her.
    app.sql(&format!(
        "INSERT INTO webhook_events (id, provider, event_id, event_type, received_at, signature, \
           signed_at, outcome, deliveries, last_delivery_at, replays, raw_body, headers) \
         VALUES (gen_random_uuid(), 'clerk', 'evt_zelda1', 'user.updated', now(), 'v1,x', now(), \
           'processed', 1, now(), 0, convert_to('{{\"email\":\"{email}\"}}', 'UTF8'), '{{}}')"
    ));
    assert!(
        !rows_containing(&app, name).is_empty(),
        "the scan finds her before"
    );

    // Refused without re-authentication, with a wrong password, and with an API key.
    assert_eq!(erase(&app, &w.alice.access, json!({})).await.status(), 422);
    assert_eq!(
        erase(
            &app,
            &w.alice.access,
            json!({"current_password": "not her password at all"})
        )
        .await
        .status(),
        422
    );
    assert_eq!(
        erase(
            &app,
            key["key"].as_str().unwrap(),
            json!({"current_password": PASSWORD})
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        app.get_auth("/api/v1/me", &w.alice.access).await.status(),
        200,
        "still there"
    );

    let res = erase(&app, &w.alice.access, json!({"current_password": PASSWORD})).await;
    assert_eq!(res.status(), 204);

    // No column anywhere holds her name or email; IPs only in audit rows.
    for needle in [
        name,
        email,
        "zelda-nobody-guess",
        "user_2alicesubject77",
        "cus_alice0001",
    ] {
        let hits = rows_containing(&app, needle);
        assert!(hits.is_empty(), "{needle} still in {hits:?}");
    }
    {
        use diesel::prelude::*;
        let mut conn = app.db.as_ref().unwrap().connect();
        let with_ip: i64 = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM sessions WHERE user_id = '{id}' AND (ip IS NOT NULL OR user_agent IS NOT NULL)"
        ))
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n;
        assert_eq!(with_ip, 0);
        // The data key is gone: the master keys open nothing of hers.
        let wraps: i64 = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM data_keys WHERE user_id = '{id}' AND wrapped IS NOT NULL"
        ))
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n;
        assert_eq!(wraps, 0);
        let ring = rampart::state::key_ring(&app.settings).unwrap();
        let uuid: uuid::Uuid = id.parse().unwrap();
        let key_ids: Vec<uuid::Uuid> = rampart::db::schema::data_keys::table
            .filter(rampart::db::schema::data_keys::user_id.eq(uuid))
            .select(rampart::db::schema::data_keys::id)
            .load(&mut conn)
            .unwrap();
        let keys = rampart::users::data_keys::open(&mut conn, &ring, &key_ids).unwrap();
        assert!(key_ids.iter().all(|k| !keys.contains(*k)));
    }

    // Every credential is dead: access token, refresh token, API key.
    assert_eq!(
        app.get_auth("/api/v1/me", &w.alice.access).await.status(),
        401
    );
    assert_eq!(
        app.get_auth("/api/v1/me", key["key"].as_str().unwrap())
            .await
            .status(),
        401
    );
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": w.alice.refresh}),
        )
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(app.login_as(email, PASSWORD).await.status(), 401);

    // bob's view degrades: [deleted user], [message unavailable], never ciphertext or a 500.
    let res = app
        .get_auth(
            &format!("/api/v1/conversations/{}/messages", w.shared),
            &w.bob.access,
        )
        .await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for m in items {
        if m["author"]["id"] == id.as_str() {
            assert_eq!(m["author"]["username"], "[deleted user]");
            assert_eq!(m["body"], "[message unavailable]");
        } else {
            assert_eq!(m["body"], "bob-replies-to-alice-8812");
        }
    }
    let res = app.get_auth("/api/v1/conversations", &w.bob.access).await;
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    assert!(list.to_string().contains("[deleted user]"));
    assert!(!list.to_string().contains(name));

    // The old name and email are free again.
    let res = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"username": name, "email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 201);
    // Nobody can register a tombstone-looking name.
    let res = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"username": "deleted-0123456789ab", "email": "x@example.org", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 422);
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[actix_web::test]
async fn twenty_parallel_erasures_erase_once() {
    let app = app().spawn().await;
    let alice = app.user("alice").await;
    let requests =
        (0..20).map(|_| erase(&app, &alice.access, json!({"current_password": PASSWORD})));
    let statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    // Each is the erasure (204, also when it found the account already erased), arrives after
    // the session died (401), or meets the lockout (429): never a 500, never two erasures.
    // (429: the burst of password checks tripped the account lockout, as any burst does.)
    assert!(
        statuses.iter().all(|s| [204, 401, 429].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&204));
    let mut conn = app.db.as_ref().unwrap().connect();
    let erased = rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(rampart::audit::Action::UserErased),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(erased.items.len(), 1, "one user.erased row");
}

#[actix_web::test]
async fn erasure_needs_the_person_and_never_takes_the_super_admin() {
    let app = app()
        .env("SUPER_ADMIN_EMAIL", "root@example.org")
        .spawn()
        .await;
    let root = app.admin_user("root").await;
    let res = erase(&app, &root.access, json!({"current_password": PASSWORD})).await;
    assert_eq!(res.status(), 409);
    assert_eq!(app.get_auth("/api/v1/me", &root.access).await.status(), 200);
    // Both proofs at once, an oversized token, NUL and control characters: clear 4xx, no change.
    let alice = app.user("alice").await;
    for body in [
        json!({"current_password": PASSWORD, "provider_token": "x"}),
        json!({"provider_token": "a".repeat(1_000_000)}),
        json!({"current_password": "pass\u{0}word"}),
        json!({"provider_token": "not-a-jwt"}),
        json!({"surprise": true}),
    ] {
        let res = erase(&app, &alice.access, body.clone()).await;
        assert!(res.status().is_client_error(), "{body}: {}", res.status());
        assert_ne!(res.status(), 204);
    }
    assert_eq!(
        app.get_auth("/api/v1/me", &alice.access).await.status(),
        200
    );
}

#[actix_web::test]
async fn a_provider_only_account_erases_itself_with_a_fresh_token_of_its_own_identity() {
    use crate::identities::{supabase_app, supabase_token};
    let app = supabase_app().spawn().await;
    let token = supabase_token(&app, "sb-erase-me", Some("erin@example.org"));
    let me: Value = app
        .get_auth("/api/v1/me", &token)
        .await
        .json()
        .await
        .unwrap();
    let id = me["id"].as_str().unwrap().to_string();
    // Somebody else's token, a password the account does not have, a token that is not one.
    app.get_auth("/api/v1/me", &supabase_token(&app, "sb-other", None))
        .await;
    let other = supabase_token(&app, "sb-other", None);
    for body in [
        json!({"provider_token": other}),
        json!({"current_password": PASSWORD}),
        json!({"provider_token": "eyJhbGciOiJub25lIn0.e30."}),
    ] {
        let res = erase(&app, &token, body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
    }
    // A token issued more than 5 minutes ago is no re-authentication.
    app.clock.advance(std::time::Duration::from_secs(6 * 60));
    let res = erase(&app, &token, json!({"provider_token": token})).await;
    assert_eq!(res.status(), 422);
    assert_eq!(
        app.get_auth("/api/v1/me", &token).await.status(),
        200,
        "still there"
    );
    // A fresh one is.
    let fresh = supabase_token(&app, "sb-erase-me", Some("erin@example.org"));
    let res = erase(&app, &fresh, json!({"provider_token": fresh})).await;
    assert_eq!(res.status(), 204);
    // The provider token never reaches the erased account again (at most a new sign-up).
    let res = app.get_auth("/api/v1/me", &fresh).await;
    if res.status() == 200 {
        let me: Value = res.json().await.unwrap();
        assert_ne!(
            me["id"],
            id.as_str(),
            "a provider token reached an erased account"
        );
    } else {
        assert_eq!(res.status(), 401);
    }
    assert!(
        rows_containing(&app, "sb-erase-me")
            .iter()
            .all(|(table, _, _)| table == "user_identities"),
        "only a new sign-up's own link"
    );
}
