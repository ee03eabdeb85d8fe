//! The console's static files, built into the binary: a fixed table of names, so there is no
//! directory to list and no path to traverse, and every file has its correct content type.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

/// (name, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/console.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../static/favicon.svg"),
    ),
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/static/{name}").route(web::get().to(asset)));
}

pub fn find(name: &str) -> Option<(&'static str, &'static [u8])> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, ct, bytes)| (*ct, *bytes))
}

async fn asset(name: web::Path<String>) -> HttpResponse {
    match find(&name) {
        Some((content_type, bytes)) => HttpResponse::Ok()
            .content_type(content_type)
            // The same for every user, and changed only by a new release.
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(bytes),
        None => HttpResponse::NotFound().finish(),
    }
}
