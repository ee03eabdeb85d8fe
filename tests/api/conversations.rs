//! Encrypted conversations (issue 15), from the attacker's side: membership is the only way in
//! (every id of someone else's answers exactly like a random one), pages neither skip nor repeat
//! while others write, nothing readable reaches the database, quotas hold under a burst, blocks
//! hold, and retention prunes.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::support::{TestApp, Tokens, app, spawn_app};

pub async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub async fn start(app: &TestApp, token: &str, members: &[&str]) -> Value {
    let res = post(
        app,
        token,
        "/api/v1/conversations",
        json!({ "member_usernames": members }),
    )
    .await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

pub async fn send(app: &TestApp, token: &str, conversation: &str, body: &str) -> reqwest::Response {
    post(
        app,
        token,
        &format!("/api/v1/conversations/{conversation}/messages"),
        json!({ "body": body }),
    )
    .await
}

async fn page(app: &TestApp, token: &str, conversation: &str, query: &str) -> Value {
    let res = app
        .get_auth(
            &format!("/api/v1/conversations/{conversation}/messages{query}"),
            token,
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// alice and bob with a direct conversation: their tokens and its id.
pub async fn pair(app: &TestApp) -> (Tokens, Tokens, String) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let c = start(app, &alice.access, &["bob"]).await;
    (alice, bob, c["id"].as_str().unwrap().to_string())
}

#[actix_web::test]
async fn members_talk_and_the_shapes_are_as_documented() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    app.register("carol").await;
    let res = post(
        &app,
        &alice.access,
        "/api/v1/conversations",
        json!({ "member_usernames": ["bob", "Carol"], "title": "Plans" }),
    )
    .await;
    assert_eq!(res.status(), 201);
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["title"], "Plans");
    assert_eq!(c["kind"], "group");
    assert!(c["created_at"].is_string());
    let names: Vec<&str> = c["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert!(c["members"][0]["id"].is_string());
    let id = c["id"].as_str().unwrap();

    let res = send(&app, &alice.access, id, "hello 👋").await;
    assert_eq!(res.status(), 201);
    let m: Value = res.json().await.unwrap();
    assert_eq!(m["conversation_id"], id);
    assert_eq!(m["author"]["username"], "alice");
    assert_eq!(m["body"], "hello 👋");
    assert_eq!(m["attachments"], json!([]));
    assert!(m["created_at"].is_string() && m["id"].is_string());

    let bob = app.login("bob").await;
    let list: Value = app
        .get_auth("/api/v1/conversations", &bob.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["id"], id);
    assert_eq!(list["items"][0]["unread_count"], 1);
    assert_eq!(list["items"][0]["title"], "Plans");
    let got: Value = app
        .get_auth(&format!("/api/v1/conversations/{id}"), &bob.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["members"].as_array().unwrap().len(), 3);
    let msgs = page(&app, &bob.access, id, "").await;
    assert_eq!(msgs["items"][0]["body"], "hello 👋");
    assert_eq!(msgs["next_cursor"], Value::Null);

    // Reading clears the unread count; the marker never moves back.
    let cursor = msgs["items"][0]["cursor"].as_str().unwrap();
    let res = post(
        &app,
        &bob.access,
        &format!("/api/v1/conversations/{id}/read"),
        json!({ "up_to": cursor }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let read: Value = res.json().await.unwrap();
    assert_eq!(read["unread_count"], 0);
    let list: Value = app
        .get_auth("/api/v1/conversations", &bob.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["unread_count"], 0);
}

#[actix_web::test]
async fn newest_activity_comes_first_in_the_list() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    app.register("carol").await;
    let first = start(&app, &alice.access, &["bob"]).await;
    let second = start(&app, &alice.access, &["carol"]).await;
    let list: Value = app
        .get_auth("/api/v1/conversations?limit=1", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["id"], second["id"]);
    let next = list["next_cursor"].as_str().unwrap();
    let older: Value = app
        .get_auth(
            &format!("/api/v1/conversations?limit=1&cursor={next}"),
            &alice.access,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(older["items"][0]["id"], first["id"]);
    assert_eq!(older["next_cursor"], Value::Null);
    // A message moves the first conversation back to the top.
    assert_eq!(
        send(&app, &alice.access, first["id"].as_str().unwrap(), "bump")
            .await
            .status(),
        201
    );
    let list: Value = app
        .get_auth("/api/v1/conversations", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["id"], first["id"]);
}

/// Every conversation route with someone else's conversation, message and attachment ids answers
/// exactly like a random id: same status, same body (apart from the request id).
#[actix_web::test]
async fn other_peoples_ids_look_exactly_like_ids_that_do_not_exist() {
    let app = spawn_app().await;
    let (alice, _bob, id) = pair(&app).await;
    let m: Value = send(&app, &alice.access, &id, "private")
        .await
        .json()
        .await
        .unwrap();
    let mid = m["id"].as_str().unwrap().to_string();
    let mallory = app.user("mallory").await;
    let random = uuid::Uuid::now_v7().to_string();
    let random2 = uuid::Uuid::now_v7().to_string();

    async fn call(app: &TestApp, token: &str, method: &str, path: &str) -> (u16, Value) {
        let req = match method {
            "GET" => app.client.get(app.url(path)),
            "POST" => app.client.post(app.url(path)),
            "PATCH" => app.client.patch(app.url(path)),
            "DELETE" => app.client.delete(app.url(path)),
            _ => unreachable!(),
        };
        let body = if path.ends_with("/read") {
            json!({ "up_to": "AAAAAAAAAAE" })
        } else {
            json!({ "body": "x" })
        };
        let res = req.bearer_auth(token).json(&body).send().await.unwrap();
        let status = res.status().as_u16();
        let mut body: Value = res.json().await.unwrap_or(Value::Null);
        if let Some(o) = body.as_object_mut() {
            o.remove("request_id");
        }
        (status, body)
    }
    let routes = [
        ("GET", "/api/v1/conversations/{c}"),
        ("GET", "/api/v1/conversations/{c}/messages"),
        ("POST", "/api/v1/conversations/{c}/messages"),
        ("PATCH", "/api/v1/conversations/{c}/messages/{m}"),
        ("DELETE", "/api/v1/conversations/{c}/messages/{m}"),
        ("POST", "/api/v1/conversations/{c}/read"),
        ("POST", "/api/v1/conversations/{c}/leave"),
        ("GET", "/api/v1/conversations/{c}/attachments/{m}"),
    ];
    for (method, pattern) in routes {
        let theirs = pattern.replace("{c}", &id).replace("{m}", &mid);
        let unknown = pattern.replace("{c}", &random).replace("{m}", &random2);
        let a = call(&app, &mallory.access, method, &theirs).await;
        let b = call(&app, &mallory.access, method, &unknown).await;
        assert_eq!(a.0, 404, "{method} {pattern}");
        assert_eq!(a, b, "{method} {pattern}");
    }
    // A member using a message id of another conversation: also 404.
    let other = start(&app, &mallory.access, &["alice"]).await;
    let other = other["id"].as_str().unwrap();
    let (status, _) = call(
        &app,
        &alice.access,
        "PATCH",
        &format!("/api/v1/conversations/{other}/messages/{mid}"),
    )
    .await;
    assert_eq!(status, 404);
    // Nothing changed for the members.
    let msgs = page(&app, &alice.access, &id, "").await;
    assert_eq!(msgs["items"].as_array().unwrap().len(), 1);
    assert_eq!(msgs["items"][0]["body"], "private");
}

#[actix_web::test]
async fn pages_have_no_duplicates_or_gaps_while_another_client_inserts() {
    let app = spawn_app().await;
    let (alice, bob, id) = pair(&app).await;
    for i in 0..30 {
        assert_eq!(
            send(&app, &alice.access, &id, &format!("m{i}"))
                .await
                .status(),
            201
        );
    }
    // Bob pages backwards (limit 7) while Alice keeps writing.
    let writer = {
        let app_client = app.client.clone();
        let url = app.url(&format!("/api/v1/conversations/{id}/messages"));
        let token = alice.access.clone();
        actix_web::rt::spawn(async move {
            for i in 30..60 {
                let res = app_client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({ "body": format!("m{i}") }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
            }
        })
    };
    let first = page(&app, &bob.access, &id, "?limit=7").await;
    let newest_seen = first["items"][0]["cursor"].as_str().unwrap().to_string();
    let mut seen: Vec<String> = Vec::new();
    let mut body = first;
    loop {
        for m in body["items"].as_array().unwrap() {
            seen.push(m["body"].as_str().unwrap().to_string());
        }
        let Some(next) = body["next_cursor"].as_str() else {
            break;
        };
        body = page(&app, &bob.access, &id, &format!("?limit=7&before={next}")).await;
    }
    writer.await.unwrap();
    let newest: usize = seen[0][1..].parse().unwrap();
    let expected: Vec<String> = (0..=newest).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(seen, expected, "backwards: no duplicates, no gaps");

    // Catching up forwards from the newest seen: exactly the rest, in order, each once.
    let mut forward: Vec<String> = Vec::new();
    let mut cursor = newest_seen;
    loop {
        let body = page(&app, &bob.access, &id, &format!("?limit=4&after={cursor}")).await;
        let items = body["items"].as_array().unwrap();
        // Newest first within the page.
        let mut bodies: Vec<String> = items
            .iter()
            .map(|m| m["body"].as_str().unwrap().to_string())
            .collect();
        bodies.reverse();
        forward.extend(bodies);
        match body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    let expected: Vec<String> = (newest + 1..60).map(|i| format!("m{i}")).collect();
    assert_eq!(forward, expected, "forwards: no duplicates, no gaps");
    let unique: HashSet<&String> = forward.iter().chain(seen.iter()).collect();
    assert_eq!(unique.len(), 60);
}

#[actix_web::test]
async fn pagination_parameters_are_validated() {
    let app = spawn_app().await;
    let (alice, _bob, id) = pair(&app).await;
    for query in [
        "?limit=0",
        "?limit=101",
        "?before=!!",
        "?after=zz%00",
        "?before=AAAAAAAAAAE&after=AAAAAAAAAAE",
    ] {
        let res = app
            .get_auth(
                &format!("/api/v1/conversations/{id}/messages{query}"),
                &alice.access,
            )
            .await;
        assert!(
            matches!(res.status().as_u16(), 404 | 422),
            "{query}: {}",
            res.status()
        );
    }
}

/// The database holds no plaintext: not the body, not the title, not the data key.
#[actix_web::test]
async fn nothing_readable_reaches_the_database() {
    use diesel::prelude::*;
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let res = post(
        &app,
        &alice.access,
        "/api/v1/conversations",
        json!({ "member_usernames": ["bob"], "title": "TopSecretTitle" }),
    )
    .await;
    let c: Value = res.json().await.unwrap();
    let id = c["id"].as_str().unwrap();
    send(&app, &alice.access, id, "the launch code is 0000").await;
    let mut conn = app.db.as_ref().unwrap().connect();
    let dump: String = diesel::sql_query(
        "SELECT string_agg(t::text, '\n') AS text FROM ( \
           SELECT row_to_json(c)::text AS t FROM conversations c \
           UNION ALL SELECT row_to_json(m)::text FROM messages m \
           UNION ALL SELECT row_to_json(k)::text FROM data_keys k) x",
    )
    .get_result::<Dump>(&mut conn)
    .unwrap()
    .text;
    assert!(!dump.contains("launch code"), "{dump}");
    assert!(!dump.contains("TopSecretTitle"), "{dump}");
    assert!(dump.contains("gAAAAA"), "Fernet tokens are stored: {dump}");
    // Each encrypted row names its data key, and the data key is stored wrapped only.
    let (master, wrapped): (String, String) = rampart::db::schema::data_keys::table
        .select((
            rampart::db::schema::data_keys::master_key_id,
            rampart::db::schema::data_keys::wrapped.assume_not_null(),
        ))
        .first(&mut conn)
        .unwrap();
    assert!(master.starts_with("mk_"));
    assert!(wrapped.starts_with("gAAAAA"));
}

#[derive(diesel::QueryableByName)]
struct Dump {
    #[diesel(sql_type = diesel::sql_types::Text)]
    text: String,
}

/// 100 parallel sends at 99 used: exactly one is stored; the refusals are 429 with Retry-After
/// and RateLimit headers, and store nothing.
#[actix_web::test]
async fn a_burst_at_the_edge_of_the_daily_quota_admits_exactly_one() {
    let app = spawn_app().await;
    let (alice, _bob, id) = pair(&app).await;
    let user_id = app.user_id("alice");
    let day = time::OffsetDateTime::now_utc().date();
    app.sql(&format!(
        "INSERT INTO quota_usage (subject_type, subject_id, kind, day, used) \
         VALUES ('user', '{user_id}', 'messages_sent', '{day}', 99)"
    ));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let client = app.client.clone();
        let url = app.url(&format!("/api/v1/conversations/{id}/messages"));
        let token = alice.access.clone();
        tasks.push(actix_web::rt::spawn(async move {
            client
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({ "body": format!("burst {i}") }))
                .send()
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    let mut refused = 0;
    for t in tasks {
        let res = t.await.unwrap();
        match res.status().as_u16() {
            201 => created += 1,
            429 => {
                refused += 1;
                assert!(res.headers().contains_key("retry-after"));
                assert_eq!(res.headers()["ratelimit-remaining"], "0");
                assert_eq!(res.headers()["ratelimit-limit"], "100");
                let body: Value = res.json().await.unwrap();
                assert!(body["detail"].as_str().unwrap().contains("messages_sent"));
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((created, refused), (1, 99));
    let msgs = page(&app, &alice.access, &id, "?limit=100").await;
    assert_eq!(msgs["items"].as_array().unwrap().len(), 1);
}

/// The monthly quota (conversations started) holds under a burst too.
#[actix_web::test]
async fn the_monthly_conversation_quota_holds_under_a_burst() {
    let app = app()
        .env("QUOTA_CONVERSATIONS_PER_MONTH", "3")
        .spawn()
        .await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = app.url("/api/v1/conversations");
        let token = alice.access.clone();
        tasks.push(actix_web::rt::spawn(async move {
            client
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({ "member_usernames": ["bob"] }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 3);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 17);
    let list: Value = app
        .get_auth("/api/v1/conversations", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
}

#[actix_web::test]
async fn a_blocked_user_cannot_start_a_conversation_with_or_message_the_blocker() {
    let app = spawn_app().await;
    let (alice, bob, id) = pair(&app).await;
    let res = post(&app, &alice.access, "/api/v1/me/blocks/BOB", json!({})).await;
    assert_eq!(res.status(), 201);
    let first: Value = res.json().await.unwrap();
    // Again: the same block stands (its first time), audited once.
    let res = post(&app, &alice.access, "/api/v1/me/blocks/bob", json!({})).await;
    assert_eq!(res.status(), 201);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["created_at"], first["created_at"]);
    assert_eq!(send(&app, &bob.access, &id, "hi?").await.status(), 403);
    let res = post(
        &app,
        &bob.access,
        "/api/v1/conversations",
        json!({ "member_usernames": ["alice"] }),
    )
    .await;
    assert_eq!(res.status(), 403);
    // A group with the blocker in it: refused too.
    app.register("carol").await;
    let res = post(
        &app,
        &bob.access,
        "/api/v1/conversations",
        json!({ "member_usernames": ["carol", "alice"] }),
    )
    .await;
    assert_eq!(res.status(), 403);
    let blocks: Value = app
        .get_auth("/api/v1/me/blocks", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(blocks["items"][0]["username"], "bob");
    // Nothing of Bob's got through.
    let msgs = page(&app, &alice.access, &id, "").await;
    assert_eq!(msgs["items"].as_array().unwrap().len(), 0);

    let res = app
        .client
        .delete(app.url("/api/v1/me/blocks/bob"))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(send(&app, &bob.access, &id, "hi again").await.status(), 201);
    // Blocking oneself or nobody: 404.
    let res = post(&app, &alice.access, "/api/v1/me/blocks/alice", json!({})).await;
    assert_eq!(res.status(), 404);
    let res = post(&app, &alice.access, "/api/v1/me/blocks/nobody", json!({})).await;
    assert_eq!(res.status(), 404);
}

#[actix_web::test]
async fn only_the_author_edits_or_deletes_and_only_within_the_window() {
    let app = app().env("MESSAGE_EDIT_WINDOW_MINUTES", "2").spawn().await;
    let (alice, bob, id) = pair(&app).await;
    let m: Value = send(&app, &alice.access, &id, "frist")
        .await
        .json()
        .await
        .unwrap();
    let mid = m["id"].as_str().unwrap();
    let path = format!("/api/v1/conversations/{id}/messages/{mid}");
    let res = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&bob.access)
        .json(&json!({ "body": "hijacked" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&alice.access)
        .json(&json!({ "body": "first" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let edited: Value = res.json().await.unwrap();
    assert_eq!(edited["body"], "first");
    assert!(edited["edited_at"].is_string());

    app.clock.advance(std::time::Duration::from_secs(121));
    let res = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&alice.access)
        .json(&json!({ "body": "too late" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);

    let m: Value = send(&app, &alice.access, &id, "oops")
        .await
        .json()
        .await
        .unwrap();
    let path = format!(
        "/api/v1/conversations/{id}/messages/{}",
        m["id"].as_str().unwrap()
    );
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&bob.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let msgs = page(&app, &bob.access, &id, "").await;
    assert_eq!(msgs["items"][0]["body"], Value::Null);
    assert!(msgs["items"][0]["deleted_at"].is_string());
    assert_eq!(msgs["items"][1]["body"], "first");
}

#[actix_web::test]
async fn leaving_ends_access_and_the_last_one_out_deletes_the_conversation() {
    let app = spawn_app().await;
    let (alice, bob, id) = pair(&app).await;
    send(&app, &alice.access, &id, "bye").await;
    let res = post(
        &app,
        &bob.access,
        &format!("/api/v1/conversations/{id}/leave"),
        json!({}),
    )
    .await;
    assert_eq!(res.status(), 204);
    let res = app
        .get_auth(&format!("/api/v1/conversations/{id}/messages"), &bob.access)
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(send(&app, &bob.access, &id, "back?").await.status(), 404);
    let res = post(
        &app,
        &alice.access,
        &format!("/api/v1/conversations/{id}/leave"),
        json!({}),
    )
    .await;
    assert_eq!(res.status(), 204);
    let mut conn = app.db.as_ref().unwrap().connect();
    use diesel::prelude::*;
    let left: i64 = rampart::db::schema::messages::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(left, 0);
}

#[actix_web::test]
async fn demo_accounts_and_read_only_keys_read_but_never_write() {
    let app = spawn_app().await;
    let (alice, _bob, id) = pair(&app).await;
    send(&app, &alice.access, &id, "hello").await;
    let key = app
        .api_key(&alice.access, "reader", &["messages:read"])
        .await;
    let key = key["key"].as_str().unwrap();
    assert_eq!(page(&app, key, &id, "").await["items"][0]["body"], "hello");
    assert_eq!(send(&app, key, &id, "nope").await.status(), 403);

    app.register("dee").await;
    app.sql("UPDATE users SET role = 'demo' WHERE username = 'dee'");
    let dee = app.login("dee").await;
    let res = post(
        &app,
        &dee.access,
        "/api/v1/conversations",
        json!({ "member_usernames": ["alice"] }),
    )
    .await;
    assert_eq!(res.status(), 403);
    let res = app.get_auth("/api/v1/conversations", &dee.access).await;
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn hostile_text_is_refused_with_a_field_error_and_stores_nothing() {
    let app = spawn_app().await;
    let (alice, _bob, id) = pair(&app).await;
    let big = "a".repeat(8 * 1024 + 1);
    let megabyte = "b".repeat(1 << 20);
    for (body, status) in [
        ("nul \u{0} byte", 422),
        ("escape \u{1b}[2J", 422),
        ("   ", 422),
        (big.as_str(), 422),
        (megabyte.as_str(), 413),
    ] {
        let res = send(&app, &alice.access, &id, body).await;
        assert_eq!(res.status(), status, "{}", &body[..body.len().min(20)]);
    }
    // Exactly 8 KiB is fine.
    let max = "c".repeat(8 * 1024);
    assert_eq!(send(&app, &alice.access, &id, &max).await.status(), 201);
    // Titles and member lists.
    for body in [
        json!({ "member_usernames": [] }),
        json!({ "member_usernames": ["bob"], "title": "x".repeat(201) }),
        json!({ "member_usernames": ["bob"], "title": "two\nlines" }),
        json!({ "member_usernames": ["no such user"] }),
        json!({ "member_usernames": ["ghost"] }),
        json!({ "member_usernames": ["alice"] }),
        json!({ "member_usernames": "bob" }),
    ] {
        let res = post(&app, &alice.access, "/api/v1/conversations", body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
    }
    let msgs = page(&app, &alice.access, &id, "").await;
    assert_eq!(msgs["items"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn the_member_cap_holds() {
    let app = app().env("CONVERSATION_MAX_MEMBERS", "3").spawn().await;
    let alice = app.user("alice").await;
    for u in ["bob", "carol", "dave"] {
        app.register(u).await;
    }
    let res = post(
        &app,
        &alice.access,
        "/api/v1/conversations",
        json!({ "member_usernames": ["bob", "carol", "dave"] }),
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = post(
        &app,
        &alice.access,
        "/api/v1/conversations",
        json!({ "member_usernames": ["bob", "carol"] }),
    )
    .await;
    assert_eq!(res.status(), 201);
}

#[actix_web::test]
async fn retention_prunes_old_messages_and_audits_the_count() {
    let app = app().env("MESSAGE_RETENTION_DAYS", "30").spawn().await;
    let (alice, _bob, id) = pair(&app).await;
    for i in 0..3 {
        send(&app, &alice.access, &id, &format!("old {i}")).await;
    }
    app.sql("UPDATE messages SET created_at = now() - interval '31 days'");
    send(&app, &alice.access, &id, "new").await;
    let mut conn = app.db.as_ref().unwrap().connect();
    let auditor = rampart::audit::Auditor::for_operator(&app.settings).unwrap();
    let deleted = rampart::conversations::prune(
        &mut conn,
        &auditor,
        &app.settings.conversations,
        time::OffsetDateTime::now_utc(),
        rampart::audit::Actor::system(),
    )
    .unwrap();
    assert_eq!(deleted, 3);
    let msgs = page(&app, &alice.access, &id, "").await;
    let bodies: Vec<&str> = msgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["new"]);
    use diesel::prelude::*;
    let audited: Vec<serde_json::Value> = rampart::db::schema::audit_logs::table
        .filter(rampart::db::schema::audit_logs::action.eq("message.pruned"))
        .select(rampart::db::schema::audit_logs::metadata)
        .load(&mut conn)
        .unwrap();
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["deleted"], 3);
}

/// An instance started without the master key that wraps the data keys (removed from
/// configuration before rotation finished) answers with content marked unavailable and refuses
/// to write with 503 — never a 500, never ciphertext; with the key back, everything reads again.
#[actix_web::test]
async fn a_missing_master_key_makes_content_unavailable_not_an_error() {
    let app = spawn_app().await;
    let (alice, _bob, id) = pair(&app).await;
    send(&app, &alice.access, &id, "written under key A").await;
    let other_key = rampart::crypto::random::fernet_key().unwrap();
    let b = crate::support::app_sharing_database(&app)
        .env("ENCRYPTION_KEY", &other_key)
        .spawn()
        .await;
    let res = b
        .get_auth(
            &format!("/api/v1/conversations/{id}/messages"),
            &alice.access,
        )
        .await;
    assert_eq!(res.status(), 200);
    let msgs: Value = res.json().await.unwrap();
    assert_eq!(msgs["items"][0]["body"], "[message unavailable]");
    let res = send(&b, &alice.access, &id, "new").await;
    assert_eq!(res.status(), 503);
    // The old key back as a previous key: readable again, and writable.
    let c = crate::support::app_sharing_database(&app)
        .env("ENCRYPTION_KEY", &other_key)
        .env(
            "ENCRYPTION_KEYS_PREVIOUS",
            &app.settings_env["ENCRYPTION_KEY"].clone(),
        )
        .spawn()
        .await;
    let msgs: Value = c
        .get_auth(
            &format!("/api/v1/conversations/{id}/messages"),
            &alice.access,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(msgs["items"][0]["body"], "written under key A");
    assert_eq!(send(&c, &alice.access, &id, "new").await.status(), 201);
}
