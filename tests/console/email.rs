//! The mail outbox page: failed mails listed with the recipient masked, and a retry that needs
//! the session's CSRF token, is audited with the admin, and then delivers.

use std::time::Duration;

use rampart::audit::Action;

use crate::client::{Console, admin_app, audit_count, csrf_in};
use crate::support::eventually;
use crate::support::smtp::SmtpSink;

#[actix_web::test]
async fn a_failed_mail_is_listed_masked_and_an_admin_retries_it() {
    let sink = SmtpSink::start();
    sink.refuse_next(1);
    let app = admin_app()
        .env("EMAIL_BACKEND", "smtp")
        .env("SMTP_URL", &sink.url())
        .env("EMAIL_POLL_INTERVAL_MS", "20")
        .env("EMAIL_MAX_ATTEMPTS", "1")
        .spawn()
        .await;
    app.register_admin("root").await;
    // root's verification mail is refused once and, with one attempt allowed, fails.
    eventually("the mail failed", || {
        app.count("email_outbox WHERE status = 'failed'") == 1
    })
    .await;
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let (status, html) = console.get_text("/admin/outbox?status=failed").await;
    assert_eq!(status, 200);
    assert!(html.contains("r***@example.org"), "masked: {html}");
    assert!(
        !html.contains("root@example.org"),
        "never the whole address"
    );
    assert!(html.contains("451"), "the server's answer is shown");
    let marker = "action=\"/admin/outbox/";
    let at = html.find(marker).unwrap() + marker.len();
    let id = html[at..at + 36].to_string();
    let csrf = csrf_in(&html).unwrap();
    let path = format!("/admin/outbox/{id}/retry");

    let forged = console.post(&path, &[("csrf_token", "forged")]).await;
    assert_eq!(forged.status(), 403);
    let res = console.post(&path, &[("csrf_token", &csrf)]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(audit_count(&app, Action::EmailRetried), 1);
    let mails = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["root@example.org".to_string()]);
    // Sent now: retrying again is refused.
    let again = console.post(&path, &[("csrf_token", &csrf)]).await;
    assert_eq!(again.status(), 409);
    let (status, _) = console.get_text("/admin/outbox?status=nonsense").await;
    assert_eq!(status, 422);
}
