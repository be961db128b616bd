//! Agent clients: their admin resource, the client_credentials grant, client authentication and its
//! refusals, the failed-authentication limit.

use axum::http::{StatusCode, header};
use serde_json::{Value, json};

use super::*;
use crate::on_both_backends;
use crate::support::{ACME, GLOBEX, ISSUER, SUPER, TestApp};

on_both_backends!(
    metadata_names_the_issuer_and_the_token_endpoint,
    a_client_credentials_token_is_the_clients_grant_narrowed_by_scope,
    clients_are_confined_to_their_tenant_and_every_change_is_audited,
    a_rotated_secret_replaces_the_old_one_and_a_disabled_client_gets_nothing,
    token_requests_are_refused_with_rfc_6749_errors,
    private_key_jwt_clients_authenticate_with_single_use_assertions,
    failed_authentications_are_limited_per_client_and_per_source,
);

async fn metadata_names_the_issuer_and_the_token_endpoint(app: TestApp) {
    let (status, doc) = app
        .call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(doc["token_endpoint"], TOKEN_ENDPOINT);
    assert_eq!(
        doc["grant_types_supported"],
        json!(["client_credentials", JWT_BEARER, TOKEN_EXCHANGE])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    assert!(
        doc["token_endpoint_auth_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("RS256"))
    );
    assert_eq!(doc["scopes_supported"], json!(["tool:*"]));
    // An issuer at the root has no path-suffixed metadata.
    let (status, _) = app
        .call(
            "GET",
            "/.well-known/oauth-authorization-server/other",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // There is no authorization flow.
    let (status, body) = app
        .call("GET", "/oauth/authorize?response_type=code", None, None)
        .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("unsupported_response_type"))
    );
}

async fn a_client_credentials_token_is_the_clients_grant_narrowed_by_scope(app: TestApp) {
    let (id, secret) = secret_client(
        &app,
        "acme",
        json!({"subject": "invoice-bot", "tools": ["read_*", "echo"], "ttl_seconds": 600,
               "max_calls": 50, "step_up": true}),
    )
    .await;
    assert!(secret.starts_with("igcs_"));
    let whole = token(
        &app,
        &[("grant_type", "client_credentials")],
        Some((&id, &secret)),
        None,
    )
    .await;
    let token_text = whole.token();
    assert_eq!(whole.body["token_type"], "Bearer");
    assert_eq!(whole.body["expires_in"], 600);
    assert_eq!(whole.body["scope"], "tool:read_* tool:echo");
    assert_eq!(whole.headers[header::CACHE_CONTROL], "no-store");
    let verified_token = verified(&app, &token_text);
    assert_eq!(verified_token.subject, "invoice-bot");
    assert_eq!(verified_token.tenant, "acme");
    assert_eq!(verified_token.issuer, ISSUER);
    assert_eq!(
        verified_token.tool_lists,
        vec![vec!["read_*".to_owned(), "echo".to_owned()]]
    );
    assert_eq!(verified_token.max_calls(), Some(50));
    assert!(verified_token.step_up_at.is_some());
    assert_eq!(verified_token.expires_at - verified_token.issued_at, 600);
    assert_eq!(verified_token.audience, None);

    // client_secret_post, a narrower scope and a resource.
    let narrowed = token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "tool:read_invoice"),
            ("resource", RESOURCE),
        ],
        None,
        None,
    )
    .await;
    let child = verified(&app, &narrowed.token());
    assert_eq!(narrowed.body["scope"], "tool:read_invoice");
    assert_eq!(child.tool_lists, vec![vec!["read_invoice".to_owned()]]);
    assert_eq!(child.audience.as_deref(), Some(RESOURCE));

    // Every token issued is an audit event of its tenant, without the token or the secret.
    let event = last_event(&app, "acme", "oauth/token").await;
    assert_eq!(event["event"], "intentgate.admin");
    assert_eq!(event["decided_by"], format!("client:{id}"));
    assert_eq!(event["agent_id"], "invoice-bot");
    assert_eq!(event["capability_token_id"], child.jti);
    let reason = event["reason"].as_str().unwrap();
    assert!(
        reason.contains("client_credentials") && reason.contains("[\"read_invoice\"]"),
        "{reason}"
    );
    assert!(reason.contains(RESOURCE), "{reason}");
    let text = event.to_string();
    assert!(!text.contains(&secret) && !text.contains(&token_text));

    // Issued tokens are revocable by jti like minted ones.
    let (status, body) = app
        .post(
            SUPER,
            "/v1/admin/revoke",
            json!({"jti": child.jti, "reason": "test"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

async fn clients_are_confined_to_their_tenant_and_every_change_is_audited(app: TestApp) {
    let (status, created) = app
        .post(
            ACME,
            "/v1/admin/clients",
            json!({"name": "bot", "tools": ["echo"], "tenant": "globex"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["tenant"], "acme",
        "a tenant admin's client is its own tenant's"
    );
    let id = created["client_id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["subject"],
        id.as_str(),
        "the subject defaults to the client id"
    );
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(created["grant_types"], json!(["client_credentials"]));
    let secret = created["client_secret"].as_str().unwrap();

    let (status, shown) = app.get(ACME, &format!("/v1/admin/clients/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        shown.get("client_secret").is_none(),
        "the secret is shown once"
    );
    assert!(!shown.to_string().contains(secret));
    let (status, _) = app.get(GLOBEX, &format!("/v1/admin/clients/{id}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant's client is absent"
    );
    for (method, uri, body) in [
        (
            "PUT",
            format!("/v1/admin/clients/{id}"),
            Some(json!({"enabled": false})),
        ),
        ("DELETE", format!("/v1/admin/clients/{id}"), None),
        ("POST", format!("/v1/admin/clients/{id}/secret"), None),
    ] {
        let (status, _) = app.call(method, &uri, Some(GLOBEX), body.as_ref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}");
    }
    let (_, globex_list) = app.get(GLOBEX, "/v1/admin/clients").await;
    assert_eq!(globex_list["items"], json!([]));
    let (_, acme_list) = app.get(ACME, "/v1/admin/clients?tenant=globex").await;
    assert_eq!(acme_list["items"].as_array().unwrap().len(), 1);

    let (status, updated) = app
        .put(
            ACME,
            &format!("/v1/admin/clients/{id}"),
            json!({"tools": ["echo", "read_*"], "max_calls": 9}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["tools"], json!(["echo", "read_*"]));
    assert_eq!(updated["max_calls"], 9);
    for bad in [
        json!({"name": "x", "tools": []}),
        json!({"name": "x", "ttl_seconds": 0}),
        json!({"name": "x", "grant_types": ["password"]}),
        json!({"name": "x", "grant_types": []}),
        json!({"name": "x", "jwks": {"keys": []}}),
        json!({"name": "x", "token_endpoint_auth_method": "private_key_jwt"}),
        json!({"name": "x", "token_endpoint_auth_method": "none"}),
        json!({"name": "", "tools": ["echo"]}),
        json!({"name": "x", "tenant": "_system"}),
    ] {
        let (status, body) = app.post(SUPER, "/v1/admin/clients", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
    }
    let (status, _) = app.delete(ACME, &format!("/v1/admin/clients/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let denied = token(
        &app,
        &[("grant_type", "client_credentials")],
        Some((&id, secret)),
        None,
    )
    .await;
    denied.refused(StatusCode::UNAUTHORIZED, "invalid_client");

    let methods: Vec<String> = app
        .events("acme")
        .await
        .iter()
        .map(|e| e["method"].as_str().unwrap().to_owned())
        .collect();
    for action in [
        "oauth_client_create",
        "oauth_client_update",
        "oauth_client_delete",
    ] {
        assert!(
            methods.contains(&format!("admin/{action}")),
            "{action}: {methods:?}"
        );
    }
    let create = last_event(&app, "acme", "admin/oauth_client_create").await;
    assert_eq!(create["decided_by"], "tenant-admin:acme");
    assert!(!create.to_string().contains(secret));
    assert!(
        app.events("globex").await.is_empty(),
        "nothing lands in globex's chain"
    );
}

async fn a_rotated_secret_replaces_the_old_one_and_a_disabled_client_gets_nothing(app: TestApp) {
    let (id, old) = secret_client(&app, "acme", json!({"tools": ["echo"]})).await;
    let (status, rotated) = app
        .post(ACME, &format!("/v1/admin/clients/{id}/secret"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let grant = [("grant_type", "client_credentials")];
    token(&app, &grant, Some((&id, &old)), None)
        .await
        .refused(StatusCode::UNAUTHORIZED, "invalid_client");
    token(&app, &grant, Some((&id, &new)), None).await.token();
    let (_, shown) = app.get(ACME, &format!("/v1/admin/clients/{id}")).await;
    assert!(shown["secret_rotated_at"].is_string());

    let (status, _) = app
        .put(
            ACME,
            &format!("/v1/admin/clients/{id}"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    token(&app, &grant, Some((&id, &new)), None)
        .await
        .refused(StatusCode::UNAUTHORIZED, "invalid_client");
    let (status, _) = app
        .put(
            ACME,
            &format!("/v1/admin/clients/{id}"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    token(&app, &grant, Some((&id, &new)), None).await.token();
    let rotation = last_event(&app, "acme", "admin/oauth_client_rotate_secret").await;
    assert!(!rotation.to_string().contains(&new));
}

async fn token_requests_are_refused_with_rfc_6749_errors(app: TestApp) {
    let (id, secret) = secret_client(&app, "acme", json!({"tools": ["read_*"]})).await;
    let basic = Some((id.as_str(), secret.as_str()));
    let cc = ("grant_type", "client_credentials");

    token(&app, &[], basic, None)
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_request");
    token(&app, &[("grant_type", "password")], basic, None)
        .await
        .refused(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    token(&app, &[("grant_type", "authorization_code")], basic, None)
        .await
        .refused(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    let wrong = token(&app, &[cc], Some((&id, "igcs_wrong")), None).await;
    wrong.refused(StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(
        wrong.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(
        wrong.body["error_description"], "client authentication failed",
        "no detail leaks"
    );
    token(&app, &[cc], Some(("no-such-client", &secret)), None)
        .await
        .refused(StatusCode::UNAUTHORIZED, "invalid_client");
    token(&app, &[cc], None, None)
        .await
        .refused(StatusCode::UNAUTHORIZED, "invalid_client");
    token(&app, &[cc, ("client_id", &id)], None, None)
        .await
        .refused(StatusCode::UNAUTHORIZED, "invalid_client");
    // Two authentication methods, or a body client_id that disagrees with Basic.
    token(
        &app,
        &[cc, ("client_id", &id), ("client_secret", &secret)],
        basic,
        None,
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_request");
    token(&app, &[cc, ("client_id", "someone-else")], basic, None)
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_request");
    // A repeated parameter.
    let twice = app
        .request(
            axum::http::Request::builder()
                .method("POST")
                .uri("/oauth/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(format!(
                    "grant_type=client_credentials&client_id={id}&client_secret={secret}&scope=tool:read_a&scope=tool:read_b"
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(twice.0, StatusCode::BAD_REQUEST);
    // A JSON body is not a token request.
    let (status, body) = app
        .call(
            "POST",
            "/oauth/token",
            None,
            Some(&json!({"grant_type": "client_credentials"})),
        )
        .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_request"))
    );
    // Scopes outside the grant, or not tool scopes, are invalid_scope: never silently dropped.
    for scope in [
        "tool:write_invoice",
        "tool:read_invoice tool:delete",
        "openid",
        "tool:",
    ] {
        let refused = token(&app, &[cc, ("scope", scope)], basic, None).await;
        refused.refused(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    // One resource per token, an absolute URI.
    token(
        &app,
        &[
            cc,
            ("resource", "https://a.example"),
            ("resource", "https://b.example"),
        ],
        basic,
        None,
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_target");
    token(&app, &[cc, ("resource", "not-a-uri")], basic, None)
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_target");
    // A client may use only the grant types it was registered for.
    token(
        &app,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", "x"),
            ("subject_token_type", JWT_TYPE),
        ],
        basic,
        None,
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "unauthorized_client");
    // None of this issued anything.
    assert!(
        app.events("acme")
            .await
            .iter()
            .all(|e| e["method"] != "oauth/token")
    );
    // `tool:*`, what the metadata advertises and MCP clients ask for, is the whole registration.
    let all = token(&app, &[cc, ("scope", "tool:*")], basic, None).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(all.body["scope"], "tool:read_*");
}

async fn private_key_jwt_clients_authenticate_with_single_use_assertions(app: TestApp) {
    let key = Signer::new(7, "client-key-1");
    let (status, created) = app
        .post(
            ACME,
            "/v1/admin/clients",
            json!({"name": "signed bot", "token_endpoint_auth_method": "private_key_jwt",
                   "jwks": key.jwks(), "tools": ["echo"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created.get("client_secret").is_none());
    assert_eq!(created["jwks"], key.jwks());
    let id = created["client_id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .post(ACME, &format!("/v1/admin/clients/{id}/secret"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let assertion = |signer: &Signer, claims: Value| signer.sign(json!({}), &claims);
    let claims = |aud: &str, exp: i64, jti: &str| json!({"iss": id, "sub": id, "aud": aud, "exp": exp, "iat": now(), "jti": jti});
    let app = &app;
    let request = |assertion: String| async move {
        token(
            app,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
            None,
            None,
        )
        .await
    };
    let once = jti();
    let good = assertion(&key, claims(ISSUER, now() + 120, &once));
    let issued = request(good.clone()).await;
    assert_eq!(verified(app, &issued.token()).subject, id);
    request(good)
        .await
        .refused(StatusCode::UNAUTHORIZED, "invalid_client");
    // The token endpoint is an accepted audience too.
    request(assertion(&key, claims(TOKEN_ENDPOINT, now() + 120, &jti())))
        .await
        .token();
    for bad in [
        assertion(
            &key,
            claims("https://elsewhere.example", now() + 120, &jti()),
        ),
        assertion(&key, claims(ISSUER, now() - 120, &jti())),
        assertion(&key, claims(ISSUER, now() + 7200, &jti())),
        assertion(
            &Signer::new(8, "client-key-1"),
            claims(ISSUER, now() + 120, &jti()),
        ),
        assertion(
            &key,
            json!({"iss": "other", "sub": id, "aud": ISSUER, "exp": now() + 60, "jti": jti()}),
        ),
        assertion(
            &key,
            json!({"iss": id, "sub": id, "aud": ISSUER, "exp": now() + 60}),
        ),
    ] {
        request(bad)
            .await
            .refused(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    // A secret is no way in for a private_key_jwt client.
    token(
        app,
        &[("grant_type", "client_credentials")],
        Some((&id, "igcs_x")),
        None,
    )
    .await
    .refused(StatusCode::UNAUTHORIZED, "invalid_client");
    // Its keys rotate by update.
    let next = Signer::new(9, "client-key-2");
    let (status, _) = app
        .put(
            ACME,
            &format!("/v1/admin/clients/{id}"),
            json!({"jwks": next.jwks()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    request(assertion(&key, claims(ISSUER, now() + 120, &jti())))
        .await
        .refused(StatusCode::UNAUTHORIZED, "invalid_client");
    request(assertion(&next, claims(ISSUER, now() + 120, &jti())))
        .await
        .token();
}

async fn failed_authentications_are_limited_per_client_and_per_source(app: TestApp) {
    let (id, secret) = secret_client(&app, "acme", json!({"tools": ["echo"]})).await;
    let cc = [("grant_type", "client_credentials")];
    for _ in 0..10 {
        token(&app, &cc, Some((&id, "igcs_guess")), Some("198.51.100.1"))
            .await
            .refused(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    // Now even the right secret, from anywhere, waits for the window to end.
    let limited = token(&app, &cc, Some((&id, &secret)), Some("198.51.100.2")).await;
    limited.refused(StatusCode::TOO_MANY_REQUESTS, "invalid_client");
    let wait: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Another client is not affected.
    let (other, other_secret) = secret_client(&app, "acme", json!({"tools": ["echo"]})).await;
    token(
        &app,
        &cc,
        Some((&other, &other_secret)),
        Some("198.51.100.3"),
    )
    .await
    .token();

    // One source failing for many client ids is limited as a source; others are not.
    for i in 0..30 {
        token(
            &app,
            &cc,
            Some((&format!("guess-{i}"), "igcs_guess")),
            Some("203.0.113.9"),
        )
        .await
        .refused(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    token(
        &app,
        &cc,
        Some((&other, &other_secret)),
        Some("203.0.113.9"),
    )
    .await
    .refused(StatusCode::TOO_MANY_REQUESTS, "invalid_client");
    token(
        &app,
        &cc,
        Some((&other, &other_secret)),
        Some("203.0.113.10"),
    )
    .await
    .token();
    // Behind a trusted proxy (loopback), the hop it appended is the source.
    let behind_proxy = |forwarded: &'static str| {
        let form = form(&[("grant_type", "client_credentials")]);
        let basic = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{other}:{other_secret}"),
        );
        let mut request = axum::http::Request::builder()
            .method("POST")
            .uri("/oauth/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::AUTHORIZATION, format!("Basic {basic}"))
            .header("x-forwarded-for", forwarded)
            .body(axum::body::Body::from(form))
            .unwrap();
        request.extensions_mut().insert(axum::extract::ConnectInfo(
            "127.0.0.1:5000".parse::<std::net::SocketAddr>().unwrap(),
        ));
        request
    };
    let (status, _, _) = app.request(behind_proxy("1.2.3.4, 203.0.113.9")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, _) = app.request(behind_proxy("203.0.113.9, 192.0.2.50")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a client cannot pose as a limited source by writing it first"
    );
}
