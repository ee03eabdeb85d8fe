//! NUL and other control characters in console input: refused at the edge with a readable page
//! (sign-in: the ordinary "those details did not work"), never a 500, never JSON, and the CSV
//! export answers its refusal before any byte of CSV.

use crate::client::{Console, admin_app, csrf_in, user_id, user_state};
use crate::support::PASSWORD;

fn is_html(res: &reqwest::Response) -> bool {
    res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html")
}

#[actix_web::test]
async fn console_sign_in_with_nul_is_the_ordinary_failed_sign_in() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let mut console = Console::new(&app);
    let wrong = console.sign_in_as("root", "not the password at all").await;
    assert_eq!(wrong.status(), 401);
    for (login, password) in [
        ("root\0", PASSWORD),
        ("root@example.org\0", PASSWORD),
        ("ro\0ot", PASSWORD),
        ("root", "correct horse\0battery staple 42"),
        ("root\u{1b}", PASSWORD),
    ] {
        let res = console.sign_in_as(login, password).await;
        assert_eq!(res.status(), 401, "{login:?}");
        assert!(is_html(&res), "{login:?}");
        let html = res.text().await.unwrap();
        assert!(html.contains("did not work"), "{login:?}: {html}");
        assert!(!html.contains('\0'));
    }
    // Signing in still works.
    console.sign_in("root").await;
}

#[actix_web::test]
async fn console_filters_and_the_csv_export_refuse_nul_with_a_page_and_reasons_keep_line_breaks() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    app.register("mallory").await;
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    for (path, field) in [
        ("/admin/audit?actor=%00", "actor"),
        ("/admin/audit?target=a%00b", "target"),
        ("/admin/audit?action=auth.%01", "action"),
        ("/admin/users?q=ro%00", "q"),
        ("/admin/keys?owner=%00", "owner"),
        ("/admin/sessions?user=%00", "user"),
        ("/admin/audit/export.csv?actor=%00", "actor"),
        ("/admin/audit/export.csv?target=x&q=%1b", "q"),
    ] {
        let res = console.get(path).await;
        assert_eq!(res.status(), 422, "{path}");
        assert!(is_html(&res), "{path}");
        assert!(res.headers().get("content-disposition").is_none(), "{path}");
        let html = res.text().await.unwrap();
        assert!(html.contains(&format!("“{field}”")), "{path}: {html}");
        assert!(html.contains("control characters"), "{path}");
    }
    // A 1 MB filter is refused cleanly too (no client library sends such a URL: a raw one).
    let (status, _) = crate::support::raw_http(
        app.port,
        &format!(
            "GET /admin/users?q={} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            "a".repeat(1 << 20)
        ),
    )
    .await;
    assert!((400..500).contains(&status), "1 MB filter: {status}");
    // A reason may span lines; a NUL in it is refused and changes nothing.
    let id = user_id(&app, "mallory");
    let (_, html) = console
        .get_text(&format!("/admin/users/{id}/disable"))
        .await;
    let csrf = csrf_in(&html).unwrap();
    let res = console
        .post(
            &format!("/admin/users/{id}/disable"),
            &[("csrf_token", &csrf), ("reason", "stuffing\0")],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(is_html(&res));
    assert!(user_state(&app, "mallory").0, "nothing was changed");
    let res = console
        .post(
            &format!("/admin/users/{id}/disable"),
            &[
                ("csrf_token", &csrf),
                ("reason", "credential stuffing\r\nticket 42, see log"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(!user_state(&app, "mallory").0);
}
