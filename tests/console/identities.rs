//! Linked identities on the console's user page, and their unlinking: confirm page, CSRF,
//! audited with the admin, and never the account's last way to sign in (409 page).

use diesel::prelude::*;

use crate::client::{Console, admin_app, csrf_in, location, user_id};
use crate::support::TestApp;

fn link(app: &TestApp, user: &str, subject: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    app.sql(&format!(
        "INSERT INTO user_identities (id, provider, issuer, subject, user_id, email, created_at, last_seen_at) \
         VALUES ('{id}', 'clerk', 'clerk', '{subject}', '{user}', '<b>x</b>@example.org', now(), now())"
    ));
    id
}

fn linked(app: &TestApp, id: &str) -> bool {
    use rampart::db::schema::user_identities as t;
    let mut conn = app.db.as_ref().unwrap().connect();
    t::table
        .filter(t::id.eq(uuid::Uuid::parse_str(id).unwrap()))
        .count()
        .get_result::<i64>(&mut conn)
        .unwrap()
        == 1
}

fn unlink_actors(app: &TestApp) -> Vec<(String, Option<String>)> {
    use rampart::db::schema::audit_logs as a;
    let mut conn = app.db.as_ref().unwrap().connect();
    a::table
        .filter(a::action.eq("identity.unlinked"))
        .select((a::actor_type, a::actor_id))
        .load(&mut conn)
        .unwrap()
}

#[actix_web::test]
async fn admins_see_linked_identities_and_unlink_them_with_csrf_but_never_the_last_way_in() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    app.register("alice").await;
    let alice = user_id(&app, "alice");
    let root = user_id(&app, "root");
    let first = link(&app, &alice, "user_alice_1");
    let second = link(&app, &alice, "user_alice_2");

    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let (status, html) = console.get_text(&format!("/admin/users/{alice}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("user_alice_1") && html.contains("user_alice_2"));
    assert!(html.contains("&#60;b&#62;x&#60;"), "escaped");
    assert!(!html.contains("<b>x</b>"));
    assert!(html.contains(&format!("href=\"/admin/identities/{first}/unlink\"")));

    let path = format!("/admin/identities/{first}/unlink");
    let (status, html) = console.get_text(&path).await;
    assert_eq!(status, 200);
    assert!(html.contains("Unlink this identity?"));
    let token = csrf_in(&html).unwrap();
    for fields in [vec![], vec![("csrf_token", "not-the-token")]] {
        assert_eq!(console.post(&path, &fields).await.status(), 403);
    }
    assert!(linked(&app, &first));

    let res = console.post(&path, &[("csrf_token", &token)]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), Some(format!("/admin/users/{alice}")));
    assert!(!linked(&app, &first));
    assert_eq!(
        unlink_actors(&app),
        [("admin".to_string(), Some(root.clone()))]
    );

    // Alice loses her password: her last identity is her only way in, and stays.
    app.sql(&format!(
        "UPDATE users SET password_hash = NULL WHERE id = '{alice}'"
    ));
    let path = format!("/admin/identities/{second}/unlink");
    let res = console.post(&path, &[("csrf_token", &token)]).await;
    assert_eq!(res.status(), 409);
    let html = res.text().await.unwrap();
    assert!(html.contains("only way to sign in"), "{html}");
    assert!(linked(&app, &second));
    // Unknown or malformed ids are 404 pages.
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(
        console
            .get(&format!("/admin/identities/{unknown}/unlink"))
            .await
            .status(),
        404
    );
    assert_eq!(
        console.get("/admin/identities/nope/unlink").await.status(),
        404
    );
}

#[actix_web::test]
async fn admins_link_a_provider_account_to_a_user_with_csrf_never_one_linked_elsewhere() {
    let app = admin_app()
        .env("CLERK_ISSUER", "https://clerk.example.com")
        .spawn()
        .await;
    app.register_admin("root").await;
    app.register("alice").await;
    app.register("bob").await;
    let alice = user_id(&app, "alice");
    let bob = user_id(&app, "bob");
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let path = format!("/admin/users/{alice}/identities/new");
    let (status, html) = console.get_text(&path).await;
    assert_eq!(status, 200);
    assert!(html.contains("<option value=\"clerk\""));
    assert!(
        !html.contains("<option value=\"supabase\""),
        "only configured providers"
    );
    let token = csrf_in(&html).unwrap();
    // Without the session's token nothing is linked.
    let res = console
        .post(&path, &[("provider", "clerk"), ("subject", "user_alice")])
        .await;
    assert_eq!(res.status(), 403);
    // A malformed subject or an unconfigured provider is a 422 page.
    for (provider, subject) in [
        ("clerk", "user alice"),
        ("clerk", ""),
        ("supabase", "x"),
        ("nope", "x"),
    ] {
        let res = console
            .post(
                &path,
                &[
                    ("csrf_token", &token),
                    ("provider", provider),
                    ("subject", subject),
                ],
            )
            .await;
        assert_eq!(res.status(), 422, "{provider} {subject:?}");
    }
    let res = console
        .post(
            &path,
            &[
                ("csrf_token", &token),
                ("provider", "clerk"),
                ("subject", "user_alice"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (_, html) = console.get_text(&format!("/admin/users/{alice}")).await;
    assert!(html.contains("user_alice"));
    // The same provider account cannot be linked to Bob.
    let res = console
        .post(
            &format!("/admin/users/{bob}/identities/new"),
            &[
                ("csrf_token", &token),
                ("provider", "clerk"),
                ("subject", "user_alice"),
            ],
        )
        .await;
    assert_eq!(res.status(), 409);
    use rampart::db::schema::audit_logs as a;
    let mut conn = app.db.as_ref().unwrap().connect();
    let linked: Vec<String> = a::table
        .filter(a::action.eq("identity.linked"))
        .select(a::actor_type)
        .load(&mut conn)
        .unwrap();
    assert_eq!(linked, ["admin"]);
}
