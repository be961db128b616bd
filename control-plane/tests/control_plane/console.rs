//! The console's files: served without a token, with the safety headers on every answer, the index
//! for a screen's path, revalidated by ETag, and nothing but the embedded files.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use crate::support::TestApp;

async fn fetch(
    app: &TestApp,
    uri: &str,
    etag: Option<&str>,
) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    let mut request = Request::builder().uri(uri);
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    let response = app.answer(request.body(Body::empty()).unwrap()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    (status, headers, body)
}

fn assert_safety_headers(headers: &header::HeaderMap) {
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(csp.contains(directive), "{csp} lacks {directive}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_with_its_safety_headers() {
    let app = TestApp::sqlite().await;
    let (status, headers, index) = fetch(&app, "/console/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert_safety_headers(&headers);
    let html = String::from_utf8(index.clone()).unwrap();
    assert!(html.contains(r#"<script type="module" src="/console/app.js"></script>"#));

    for screen in ["/console/audit", "/console/policies", "/console/keys"] {
        let (status, headers, body) = fetch(&app, screen, None).await;
        assert_eq!((status, body == index), (StatusCode::OK, true), "{screen}");
        assert_safety_headers(&headers);
    }
    let (status, headers, module) = fetch(&app, "/console/screens/audit.js", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(
        String::from_utf8(module)
            .unwrap()
            .contains("export function render")
    );
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, headers, body) = fetch(&app, "/console/screens/audit.js", Some(&etag)).await;
    assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0));
    assert_safety_headers(&headers);
    let (status, _, _) = fetch(&app, "/console/screens/audit.js", Some("\"stale\"")).await;
    assert_eq!(status, StatusCode::OK);

    for missing in [
        "/console/missing.js",
        "/console/../Cargo.toml",
        "/console/screens/",
        "/console/a.b/c",
    ] {
        let (status, headers, _) = fetch(&app, missing, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert_safety_headers(&headers);
    }
    let (status, headers, _) = fetch(&app, "/console", None).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers[header::LOCATION], "/console/");
}
