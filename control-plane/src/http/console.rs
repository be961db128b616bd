//! The admin console under `/console/`: hand-written HTML, CSS and ES modules from
//! `control-plane/console/`, embedded in the binary so it loads with no network beyond the
//! gateway. Every answer carries a strict Content-Security-Policy (scripts and styles from this
//! origin only, no inline code, Trusted Types so no string reaches an HTML sink), no framing and no
//! referrer. A path without a file extension is one of the console's own screens and gets
//! `index.html`; the modules route on the client.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::AppState;

/// The policy every console answer carries. `connect-src 'self'`: the console talks to the admin
/// API of the origin that served it and nothing else.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $content_type:expr),* $(,)?) => {
        &[$(Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)),
        }),*]
    };
}

static ASSETS: &[Asset] = assets! {
    "index.html" => HTML,
    "console.css" => CSS,
    "icon.svg" => SVG,
    "app.js" => JS,
    "api.js" => JS,
    "dom.js" => JS,
    "ui.js" => JS,
    "charts.js" => JS,
    "sha256.js" => JS,
    "merkle.js" => JS,
    "screens/overview.js" => JS,
    "screens/approvals.js" => JS,
    "screens/policies.js" => JS,
    "screens/audit.js" => JS,
    "screens/tokens.js" => JS,
    "screens/keys.js" => JS,
    "screens/discovery.js" => JS,
    "screens/reports.js" => JS,
};

/// A strong validator per asset, so a browser revalidates cheaply (`no-cache` + `ETag`).
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.body);
            let tag = format!("\"{}\"", hex::encode(digest.get(..16).unwrap_or_default()));
            HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\""))
        })
        .collect()
});

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(redirect))
        .route("/console/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                serve(&path, &headers)
            }),
        )
}

async fn redirect() -> Response {
    secured(
        StatusCode::PERMANENT_REDIRECT,
        &[(LOCATION, HeaderValue::from_static("/console/"))],
        Vec::new(),
    )
}

/// Which asset answers `path`: the file itself, or `index.html` for a screen's path.
fn lookup(path: &str) -> Option<usize> {
    let position = |wanted: &str| ASSETS.iter().position(|asset| asset.path == wanted);
    position(path).or_else(|| {
        if is_screen(path) {
            position("index.html")
        } else {
            None
        }
    })
}

/// The asset at `path` (304 when the browser's copy is current), 404 for anything else.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let found = lookup(path).and_then(|index| Some((ASSETS.get(index)?, ETAGS.get(index)?)));
    let Some((asset, etag)) = found else {
        return secured(
            StatusCode::NOT_FOUND,
            &[(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            b"no such console file".to_vec(),
        );
    };
    let cache = (CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let tag = (ETAG, etag.clone());
    if headers.get(IF_NONE_MATCH) == Some(etag) {
        return secured(StatusCode::NOT_MODIFIED, &[cache, tag], Vec::new());
    }
    let content_type = (CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    secured(
        StatusCode::OK,
        &[content_type, cache, tag],
        asset.body.to_vec(),
    )
}

/// A client-side screen: one or more plain path segments, none of them a file name.
fn is_screen(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn secured(status: StatusCode, headers: &[(HeaderName, HeaderValue)], body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let out = response.headers_mut();
    for (name, value) in headers {
        out.insert(name.clone(), value.clone());
    }
    out.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    out.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    out.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    out.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_script_and_style_is_a_file_the_index_can_load() {
        let index = ASSETS.iter().find(|a| a.path == "index.html").unwrap();
        let html = std::str::from_utf8(index.body).unwrap();
        assert!(html.contains("src=\"/console/app.js\""), "{html}");
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("style="), "no inline style");
        for asset in ASSETS {
            assert!(!asset.body.is_empty(), "{} is empty", asset.path);
            if asset.content_type == JS {
                let text = std::str::from_utf8(asset.body).unwrap();
                assert!(!text.contains("innerHTML"), "{} writes HTML", asset.path);
                assert!(
                    !text.contains("insertAdjacentHTML"),
                    "{} writes HTML",
                    asset.path
                );
                assert!(!text.contains("eval("), "{} evaluates code", asset.path);
            }
        }
    }

    #[test]
    fn screens_are_plain_segments_and_files_are_not() {
        assert!(is_screen("audit"));
        assert!(is_screen("policies/drafts"));
        assert!(!is_screen(""));
        assert!(!is_screen("missing.js"));
        assert!(!is_screen("audit/"));
        assert!(!is_screen("../etc/passwd"));
    }
}
