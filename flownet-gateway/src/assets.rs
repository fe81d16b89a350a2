//! The page, embedded at build time (see `build.rs`).

use axum::{
    extract::Path,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Shown when the binary was built before the page was.
const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>FlowNet</title>\
<body><h1>FlowNet gateway</h1><p>This binary was built without the web page. Build it with \
<code>scripts/build-web.sh</code>, then rebuild <code>flownet</code>. The JSON API under \
<code>/api</code> and the OpenAI-compatible API under <code>/v1</code> work without it.</p></body></html>";

/// The page may load only its own scripts, styles, images and audio (outputs it
/// fetched and checked, as `blob:` URLs) and talk only to this gateway: nothing from a
/// CDN, nothing inline.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
media-src blob:; \
connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn find(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

fn mime(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "webmanifest" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn page(path: &str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime(path)),
            // Asset names carry no hash, so browsers revalidate.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    match find("/index.html") {
        Some(b) => page("/index.html", b),
        None => page("/index.html", NOT_BUILT.as_bytes()),
    }
}

pub async fn asset(Path(path): Path<String>) -> Response {
    let full = format!("/assets/{path}");
    match find(&full) {
        Some(b) => page(&full, b),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// Whether the real page is embedded (not the placeholder).
pub fn page_built() -> bool {
    find("/index.html").is_some()
}
