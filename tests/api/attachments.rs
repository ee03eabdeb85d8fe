//! Message attachments (issue 15): multipart uploads checked by content, stored encrypted in
//! chunks, served to members only as downloads that no browser will render. Every refusal stores
//! nothing.

use serde_json::Value;

use crate::conversations::{send, start};
use crate::support::{TestApp, Tokens, app, spawn_app};

/// A PNG of `w`×`h` whose IDAT carries `payload` bytes, with valid chunk CRCs.
pub fn png(w: u32, h: u32, payload: usize) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let data: Vec<u8> = (0..payload).map(|i| (i * 31 % 251) as u8).collect();
    chunk(&mut out, b"IDAT", &data);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// One part of a hand-built multipart body: (name, filename, content type, bytes).
pub type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Vec<u8>);

pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "rampart-test-boundary-7d2f";
    let mut body = Vec::new();
    for (name, filename, content_type, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            // A name a client cannot put in a quoted string goes RFC 5987-encoded.
            Some(f) if f.chars().any(char::is_control) => {
                let encoded: String = f.bytes().map(|b| format!("%{b:02X}")).collect();
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename*=UTF-8''{encoded}\r\n"
                    )
                    .as_bytes(),
                )
            }
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n")
                    .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n").as_bytes(),
            ),
        }
        if let Some(t) = content_type {
            body.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub async fn upload(
    app: &TestApp,
    token: &str,
    conversation: &str,
    parts: &[Part<'_>],
) -> reqwest::Response {
    let (content_type, body) = multipart(parts);
    app.client
        .post(app.url(&format!("/api/v1/conversations/{conversation}/messages")))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn pair(app: &TestApp) -> (Tokens, Tokens, String) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let c = start(app, &alice.access, &["bob"]).await;
    (alice, bob, c["id"].as_str().unwrap().to_string())
}

fn stored(app: &TestApp) -> (i64, i64) {
    use diesel::prelude::*;
    let mut conn = app.db.as_ref().unwrap().connect();
    let messages: i64 = rampart::db::schema::messages::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    let attachments: i64 = rampart::db::schema::attachments::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    (messages, attachments)
}

#[actix_web::test]
async fn files_are_stored_encrypted_and_served_only_as_sandboxed_downloads() {
    let app = spawn_app().await;
    let (alice, bob, id) = pair(&app).await;
    let image = png(3, 2, 600 * 1024); // three chunks
    let text = "plain words, nothing more\n".repeat(10).into_bytes();
    let res = upload(
        &app,
        &alice.access,
        &id,
        &[
            ("body", None, None, b"two files".to_vec()),
            ("files", Some("photo.png"), Some("image/png"), image.clone()),
            ("files", Some("notes.txt"), None, text.clone()),
        ],
    )
    .await;
    assert_eq!(res.status(), 201);
    let m: Value = res.json().await.unwrap();
    assert_eq!(m["body"], "two files");
    let files = m["attachments"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["name"], "photo.png");
    assert_eq!(files[0]["content_type"], "image/png");
    assert_eq!(files[0]["size"], image.len());
    assert_eq!(files[1]["content_type"], "text/plain; charset=utf-8");

    let aid = files[0]["id"].as_str().unwrap();
    let path = format!("/api/v1/conversations/{id}/attachments/{aid}");
    let res = app.get_auth(&path, &bob.access).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "sandbox");
    assert_eq!(res.bytes().await.unwrap().to_vec(), image);

    // The page shows them too; a stranger gets 404 for the file.
    let page: Value = app
        .get_auth(&format!("/api/v1/conversations/{id}/messages"), &bob.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["attachments"][1]["name"], "notes.txt");
    let mallory = app.user("mallory").await;
    assert_eq!(app.get_auth(&path, &mallory.access).await.status(), 404);

    // Nothing readable in the database: no name, no text, no PNG signature.
    use diesel::prelude::*;
    let mut conn = app.db.as_ref().unwrap().connect();
    let chunks: Vec<String> = rampart::db::schema::attachment_chunks::table
        .select(rampart::db::schema::attachment_chunks::ciphertext)
        .load(&mut conn)
        .unwrap();
    assert_eq!(chunks.len(), 3 + 1);
    for c in &chunks {
        assert!(c.starts_with("gAAAAA"));
        assert!(!c.contains("plain words"));
    }
    let names: Vec<String> = rampart::db::schema::attachments::table
        .select(rampart::db::schema::attachments::name_ciphertext)
        .load(&mut conn)
        .unwrap();
    assert!(
        names
            .iter()
            .all(|n| !n.contains("photo") && !n.contains("notes"))
    );
}

#[actix_web::test]
async fn the_largest_allowed_file_round_trips_and_one_byte_more_is_413_storing_nothing() {
    let app = spawn_app().await;
    let (alice, _bob, id) = pair(&app).await;
    let limit = 5 * 1024 * 1024;
    // A PNG of exactly 5 MiB.
    let fixed = png(10, 10, 0).len();
    let exact = png(10, 10, limit - fixed);
    assert_eq!(exact.len(), limit);
    let res = upload(
        &app,
        &alice.access,
        &id,
        &[
            ("body", None, None, b"big".to_vec()),
            ("files", Some("big.png"), Some("image/png"), exact.clone()),
        ],
    )
    .await;
    assert_eq!(res.status(), 201);
    let m: Value = res.json().await.unwrap();
    let aid = m["attachments"][0]["id"].as_str().unwrap();
    let got = app
        .get_auth(
            &format!("/api/v1/conversations/{id}/attachments/{aid}"),
            &alice.access,
        )
        .await;
    assert_eq!(got.headers()["content-length"], limit.to_string().as_str());
    assert_eq!(got.bytes().await.unwrap().to_vec(), exact);
    assert_eq!(stored(&app), (1, 1));

    let over = png(10, 10, limit - fixed + 1);
    let res = upload(
        &app,
        &alice.access,
        &id,
        &[
            ("body", None, None, b"too big".to_vec()),
            ("files", Some("big.png"), Some("image/png"), over),
        ],
    )
    .await;
    assert_eq!(res.status(), 413);
    assert_eq!(stored(&app), (1, 1));
}

#[actix_web::test]
async fn lying_hostile_and_misnamed_files_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let (alice, _bob, id) = pair(&app).await;
    let image = png(4, 4, 64);
    let mut appended = image.clone();
    appended.extend_from_slice(b"<html><script>alert(1)</script></html>");
    let gifar =
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;<script>alert(document.domain)</script>".to_vec();
    let mut truncated = image.clone();
    truncated.truncate(30);
    let cases: Vec<(&str, Part<'_>, u16)> = vec![
        (
            "a PNG renamed .pdf and declared as a PDF",
            (
                "files",
                Some("report.pdf"),
                Some("application/pdf"),
                image.clone(),
            ),
            422,
        ),
        (
            "a PNG with HTML after IEND",
            ("files", Some("cat.png"), Some("image/png"), appended),
            422,
        ),
        (
            "a GIF/JavaScript polyglot",
            ("files", Some("a.gif"), Some("image/gif"), gifar),
            422,
        ),
        (
            "a path in the name",
            (
                "files",
                Some("../../etc/passwd"),
                Some("image/png"),
                image.clone(),
            ),
            422,
        ),
        (
            "a declared text/html",
            (
                "files",
                Some("page.txt"),
                Some("text/html"),
                b"just text".to_vec(),
            ),
            422,
        ),
        (
            "an HTML page as text",
            (
                "files",
                Some("page.txt"),
                Some("text/plain"),
                b"<!DOCTYPE html><html><body>hi</body></html>".to_vec(),
            ),
            422,
        ),
        (
            "a truncated PNG",
            ("files", Some("cut.png"), Some("image/png"), truncated),
            422,
        ),
        (
            "a control character in the name",
            (
                "files",
                Some("a\u{1b}b.png"),
                Some("image/png"),
                image.clone(),
            ),
            422,
        ),
        (
            "an executable",
            (
                "files",
                Some("tool.png"),
                None,
                b"\x7fELF\x02\x01\x01\x00rest".to_vec(),
            ),
            422,
        ),
    ];
    for (what, part, status) in cases {
        let res = upload(
            &app,
            &alice.access,
            &id,
            &[("body", None, None, b"see attached".to_vec()), part],
        )
        .await;
        assert_eq!(res.status(), status, "{what}");
        let problem: Value = res.json().await.unwrap();
        assert!(
            problem["errors"][0]["field"]
                .as_str()
                .is_some_and(|f| f.starts_with("files")),
            "{what}: {problem}"
        );
    }
    // Five files, one more than allowed.
    let five: Vec<Part<'_>> = std::iter::once(("body", None, None, b"x".to_vec()))
        .chain((0..5).map(|_| ("files", Some("a.png"), Some("image/png"), image.clone())))
        .collect();
    assert_eq!(upload(&app, &alice.access, &id, &five).await.status(), 413);
    // No body part, or a stray part.
    let res = upload(
        &app,
        &alice.access,
        &id,
        &[("files", Some("a.png"), Some("image/png"), image.clone())],
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = upload(
        &app,
        &alice.access,
        &id,
        &[
            ("body", None, None, b"x".to_vec()),
            ("other", None, None, b"y".to_vec()),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(stored(&app), (0, 0));
    // Sanity: the same body with a good file is accepted.
    let res = upload(
        &app,
        &alice.access,
        &id,
        &[
            ("body", None, None, b"see attached".to_vec()),
            ("files", Some("ok.png"), Some("image/png"), image),
        ],
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(stored(&app), (1, 1));
    assert_eq!(
        send(&app, &alice.access, &id, "json still works")
            .await
            .status(),
        201
    );
}

#[actix_web::test]
async fn the_attachment_quota_counts_files_and_a_refusal_stores_nothing() {
    let app = app().env("QUOTA_ATTACHMENTS_PER_DAY", "2").spawn().await;
    let (alice, _bob, id) = pair(&app).await;
    let image = png(2, 2, 10);
    let parts = |n: usize| -> Vec<Part<'static>> {
        std::iter::once(("body", None, None, b"files".to_vec()))
            .chain((0..n).map(|_| ("files", Some("a.png"), Some("image/png"), image.clone())))
            .collect()
    };
    assert_eq!(
        upload(&app, &alice.access, &id, &parts(2)).await.status(),
        201
    );
    let res = upload(&app, &alice.access, &id, &parts(1)).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(stored(&app), (1, 2));
}

/// `Expect: 100-continue` is answered per route before routing: an upload to the messages route
/// within its total is told to go on, one over it gets the final 413 at once — and a body that
/// large declared to any other route is refused at once too.
#[actix_web::test]
async fn expect_continue_is_answered_by_the_route_the_path_matches() {
    let app = spawn_app().await;
    let (alice, _bob, id) = pair(&app).await;
    let port = app.port;
    let token = alice.access.clone();
    let heads = [
        (
            format!("/api/v1/conversations/{id}/messages"),
            10 * 1024 * 1024,
            true,
        ),
        (
            format!("/api/v1/conversations/{id}/messages"),
            64 * 1024 * 1024,
            false,
        ),
        ("/api/v1/auth/login".to_string(), 10 * 1024 * 1024, false),
    ];
    for (path, len, goes_on) in heads {
        let token = token.clone();
        let answer = actix_web::rt::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            s.write_all(
                format!(
                    "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
                     Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {len}\r\n\
                     Expect: 100-continue\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
            let mut first = [0u8; 12];
            s.read_exact(&mut first).unwrap();
            String::from_utf8_lossy(&first).to_string()
        })
        .await
        .unwrap();
        if goes_on {
            assert_eq!(answer, "HTTP/1.1 100", "{len}");
        } else {
            assert_eq!(answer, "HTTP/1.1 413", "{len}");
        }
    }
}
