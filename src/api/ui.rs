//! `GET /ui`: the operator dashboard every node serves, a page of plain HTML, CSS and
//! JavaScript (`ui/index.html`, `ui/app.js`, `ui/style.css`) built into the binary. The
//! page polls `GET /v1/cluster` on the node that served it and computes rates and
//! percentiles itself, from the differences between polls.
//!
//! This module only hands out the three files, with a Content-Security-Policy that lets
//! the page load nothing but them and talk to nothing but its own node. It reads no
//! state, and it must never put data into the page: the page fetches its data as JSON
//! and writes it as text.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const STYLE_CSS: &str = include_str!("ui/style.css");

/// Only this origin's files and JSON, no inline script or style; `data:` images for the
/// empty favicon (which saves a request that would answer 404).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; connect-src 'self'";

const HTML: &str = "text/html; charset=utf-8";

/// The files under `/ui/`: name, content type, content.
const ASSETS: [(&str, &str, &str); 2] = [
    ("app.js", "text/javascript; charset=utf-8", APP_JS),
    ("style.css", "text/css; charset=utf-8", STYLE_CSS),
];

/// The content type and content of the asset called `name`, if there is one.
fn asset_named(name: &str) -> Option<(&'static str, &'static str)> {
    ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .map(|(_, content_type, content)| (*content_type, *content))
}

/// A file of the page, revalidated on every load so that an upgraded node serves its
/// own page at once.
fn file(content_type: &'static str, content: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        content,
    )
        .into_response()
}

/// `GET /ui`: the page.
pub(super) async fn index() -> impl IntoResponse {
    file(HTML, INDEX_HTML)
}

/// `GET /ui/{name}`: the page's script and style sheet; any other name is the API's
/// `404 no_route`.
pub(super) async fn asset(Path(name): Path<String>) -> Response {
    match asset_named(&name) {
        Some((content_type, content)) => file(content_type, content),
        None => super::not_found().await.into_response(),
    }
}

#[cfg(test)]
mod tests;
