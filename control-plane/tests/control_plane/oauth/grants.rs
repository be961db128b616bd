//! The JWT bearer grant (RFC 7523), the identity assertion grant (ID-JAG) among it, and the token
//! exchange of a trusted issuer's JWT (RFC 8693).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::*;
use crate::on_both_backends;
use crate::support::{ACME, ISSUER, SUPER, TestApp};

pub const IDP: &str = "https://idp.example.com";

on_both_backends!(
    a_trusted_issuers_jwt_is_mapped_by_the_first_matching_rule,
    untrusted_expired_misaddressed_and_tampered_jwts_are_invalid_grants,
    an_identity_assertion_grant_needs_its_client_and_is_used_once,
    a_subject_token_from_a_trusted_issuer_is_exchanged_for_a_capability_token,
    a_client_holds_a_jwt_grant_to_its_tenant_and_registration,
);

/// Trusts `issuer` (with `signer`'s keys) in `tenant` and adds `rules`; returns the issuer's id.
pub async fn trust(
    app: &TestApp,
    tenant: &str,
    issuer: &str,
    signer: &Signer,
    rules: &[Value],
) -> String {
    let (status, trusted) = app
        .post(
            SUPER,
            "/v1/admin/trusted-issuers",
            json!({"name": "idp", "tenant": tenant, "issuer": issuer, "jwks": signer.jwks()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{trusted}");
    let id = trusted["id"].as_str().unwrap().to_owned();
    for rule in rules {
        let mut body = json!({"name": "rule", "tenant": tenant, "trusted_issuer_id": id});
        body.as_object_mut()
            .unwrap()
            .extend(rule.as_object().unwrap().clone());
        let (status, created) = app.post(SUPER, "/v1/admin/exchange-rules", body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    id
}

pub fn idp_claims(sub: &str, extra: Value) -> Value {
    let mut claims =
        json!({"iss": IDP, "sub": sub, "aud": ISSUER, "iat": now(), "exp": now() + 300});
    claims
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    claims
}

pub async fn bearer(app: &TestApp, assertion: &str, extra: &[(&str, &str)]) -> Answer {
    let mut params = vec![("grant_type", JWT_BEARER), ("assertion", assertion)];
    params.extend_from_slice(extra);
    token(app, &params, None, None).await
}

async fn a_trusted_issuers_jwt_is_mapped_by_the_first_matching_rule(app: TestApp) {
    let idp = Signer::new(21, "idp-1");
    trust(
        &app,
        "acme",
        IDP,
        &idp,
        &[
            json!({"name": "finance", "priority": 10, "conditions": {"groups": ["finance-*"]},
                   "tools": ["read_*", "pay_*"], "ttl_seconds": 900, "max_calls": 20}),
            json!({"name": "k8s agents", "priority": 20,
                   "subject_claim": "/kubernetes.io/serviceaccount/name",
                   "conditions": {"/kubernetes.io/namespace": ["agents"]}, "tools": ["echo"]}),
            json!({"name": "everyone else", "priority": 30, "tools": ["read_public"], "ttl_seconds": 60}),
            json!({"name": "disabled", "priority": 1, "enabled": false, "tools": ["*"]}),
        ],
    )
    .await;
    let finance = bearer(
        &app,
        &idp.sign(
            json!({}),
            &idp_claims("alice", json!({"groups": ["staff", "finance-emea"]})),
        ),
        &[],
    )
    .await;
    assert_eq!(finance.body["scope"], "tool:read_* tool:pay_*");
    assert_eq!(finance.body["expires_in"], 900);
    let token_of_finance = verified(&app, &finance.token());
    assert_eq!(
        (
            token_of_finance.subject.as_str(),
            token_of_finance.tenant.as_str()
        ),
        ("alice", "acme")
    );
    assert_eq!(token_of_finance.max_calls(), Some(20));

    let k8s = bearer(
        &app,
        &idp.sign(
            json!({}),
            &idp_claims(
                "system:serviceaccount:agents:invoice-bot",
                json!({"kubernetes.io": {"namespace": "agents", "serviceaccount": {"name": "invoice-bot"}}}),
            ),
        ),
        &[("scope", "tool:echo")],
    )
    .await;
    assert_eq!(verified(&app, &k8s.token()).subject, "invoice-bot");

    let other = bearer(
        &app,
        &idp.sign(json!({}), &idp_claims("bob", json!({}))),
        &[],
    )
    .await;
    assert_eq!(other.body["scope"], "tool:read_public");
    bearer(
        &app,
        &idp.sign(json!({}), &idp_claims("bob", json!({}))),
        &[("scope", "tool:pay_x")],
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_scope");

    let event = last_event(&app, "acme", "oauth/token").await;
    assert!(
        event["decided_by"]
            .as_str()
            .unwrap()
            .starts_with(&format!("issuer:{IDP} sub:bob"))
    );
    assert!(event["reason"].as_str().unwrap().contains(JWT_BEARER));
}

async fn untrusted_expired_misaddressed_and_tampered_jwts_are_invalid_grants(app: TestApp) {
    let idp = Signer::new(22, "idp-1");
    trust(
        &app,
        "acme",
        IDP,
        &idp,
        &[json!({"conditions": {"groups": ["agents"]}, "tools": ["echo"]})],
    )
    .await;
    let good = idp_claims("alice", json!({"groups": ["agents"]}));
    bearer(&app, &idp.sign(json!({}), &good), &[]).await.token();
    let with = |change: Value| {
        let mut claims = good.clone();
        claims
            .as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        idp.sign(json!({}), &claims)
    };
    let tampered = {
        let text = idp.sign(json!({}), &good);
        let mut parts: Vec<String> = text.split('.').map(str::to_owned).collect();
        let mut claims = good.clone();
        claims["sub"] = json!("root");
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            claims.to_string(),
        );
        parts.join(".")
    };
    for (why, assertion) in [
        (
            "untrusted issuer",
            with(json!({"iss": "https://evil.example.com"})),
        ),
        (
            "expired",
            with(json!({"exp": now() - 600, "iat": now() - 900})),
        ),
        ("not yet valid", with(json!({"nbf": now() + 600}))),
        (
            "wrong audience",
            with(json!({"aud": "https://other-as.example.com"})),
        ),
        ("no rule matches", with(json!({"groups": ["visitors"]}))),
        ("no subject", with(json!({"sub": 42}))),
        ("tampered", tampered),
        (
            "another key",
            Signer::new(23, "idp-1").sign(json!({}), &good),
        ),
        ("unsigned", {
            let text = idp.sign(json!({}), &good);
            let parts: Vec<&str> = text.split('.').collect();
            let none = base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                json!({"alg": "none"}).to_string(),
            );
            format!("{none}.{}.", parts[1])
        }),
        ("not a JWT", "garbage".to_owned()),
    ] {
        let refused = bearer(&app, &assertion, &[]).await;
        assert_eq!(refused.error(), "invalid_grant", "{why}: {}", refused.body);
        refused.refused(StatusCode::BAD_REQUEST, "invalid_grant");
        assert_eq!(
            refused.body["error_description"],
            "the grant is invalid, expired, revoked or not trusted here",
            "{why}: details stay in the log"
        );
    }
    bearer(&app, &idp.sign(json!({}), &good), &[]).await.token();
    token(&app, &[("grant_type", JWT_BEARER)], None, None)
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_request");
    // A disabled trusted issuer is not trusted.
    let (_, issuers) = app
        .get(SUPER, "/v1/admin/trusted-issuers?tenant=acme")
        .await;
    let id = issuers["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .put(
            SUPER,
            &format!("/v1/admin/trusted-issuers/{id}"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    bearer(&app, &idp.sign(json!({}), &good), &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");
}

async fn an_identity_assertion_grant_needs_its_client_and_is_used_once(app: TestApp) {
    let idp = Signer::new(24, "idp-1");
    trust(
        &app,
        "acme",
        IDP,
        &idp,
        &[json!({"tools": ["read_*", "echo"], "ttl_seconds": 300})],
    )
    .await;
    let (id, secret) = secret_client(
        &app,
        "acme",
        json!({"grant_types": [JWT_BEARER], "tools": ["read_*"], "subject": "mcp-app"}),
    )
    .await;
    let id_jag = |claims: Value| idp.sign(json!({"typ": "oauth-id-jag+jwt"}), &claims);
    let claims = |client: &str, jti: &str| {
        idp_claims(
            "alice@acme.example",
            json!({"client_id": client, "jti": jti, "resource": RESOURCE}),
        )
    };
    let with_client = |assertion: String| {
        let (id, secret) = (id.clone(), secret.clone());
        let app = &app;
        async move {
            token(
                app,
                &[
                    ("grant_type", JWT_BEARER),
                    ("assertion", &assertion),
                    ("client_id", &id),
                    ("client_secret", &secret),
                    ("resource", RESOURCE),
                ],
                None,
                None,
            )
            .await
        }
    };
    let grant = id_jag(claims(&id, &jti()));
    let issued = with_client(grant.clone()).await;
    let capability = verified(&app, &issued.token());
    assert_eq!(
        capability.subject, "alice@acme.example",
        "the user the grant names"
    );
    assert_eq!(capability.audience.as_deref(), Some(RESOURCE));
    assert_eq!(
        issued.body["scope"], "tool:read_*",
        "held to the client's registration too"
    );
    assert_eq!(capability.expires_at - capability.issued_at, 300);
    let event = last_event(&app, "acme", "oauth/token").await;
    assert!(
        event["decided_by"]
            .as_str()
            .unwrap()
            .starts_with(&format!("client:{id} issuer:{IDP}"))
    );

    with_client(grant.clone())
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");
    bearer(&app, &id_jag(claims(&id, &jti())), &[])
        .await
        .refused(StatusCode::UNAUTHORIZED, "invalid_client");
    with_client(id_jag(claims("another-client", &jti())))
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");
    let mut to_token_endpoint = claims(&id, &jti());
    to_token_endpoint["aud"] = json!(TOKEN_ENDPOINT);
    with_client(id_jag(to_token_endpoint))
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");
    let mut long_lived = claims(&id, &jti());
    long_lived["exp"] = json!(now() + 7200);
    with_client(id_jag(long_lived))
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");
    let mut without_jti = claims(&id, "x");
    without_jti.as_object_mut().unwrap().remove("jti");
    with_client(id_jag(without_jti))
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");
    let mut elsewhere = claims(&id, &jti());
    elsewhere["resource"] = json!("https://other.example.com/mcp");
    with_client(id_jag(elsewhere))
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_target");
    // A client not registered for the jwt-bearer grant may not present one.
    let (cc_only, cc_secret) = secret_client(&app, "acme", json!({"tools": ["read_*"]})).await;
    token(
        &app,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &id_jag(claims(&cc_only, &jti()))),
        ],
        Some((&cc_only, &cc_secret)),
        None,
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "unauthorized_client");
}

async fn a_subject_token_from_a_trusted_issuer_is_exchanged_for_a_capability_token(app: TestApp) {
    let idp = Signer::new(25, "idp-1");
    trust(
        &app,
        "acme",
        IDP,
        &idp,
        &[json!({"tools": ["read_*", "echo"], "max_calls": 5})],
    )
    .await;
    let subject = idp.sign(json!({"typ": "JWT"}), &idp_claims("svc-reports", json!({})));
    let exchange = |subject_type: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let subject = subject.clone();
        let app = &app;
        async move {
            let mut params = vec![
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", subject.as_str()),
                ("subject_token_type", subject_type),
            ];
            params.extend_from_slice(extra);
            token(app, &params, None, None).await
        }
    };
    for subject_type in [
        JWT_TYPE,
        ACCESS_TOKEN_TYPE,
        "urn:ietf:params:oauth:token-type:id_token",
    ] {
        let issued = exchange(subject_type, &[("scope", "tool:echo")]).await;
        assert_eq!(
            issued.body["issued_token_type"], ACCESS_TOKEN_TYPE,
            "{}",
            issued.body
        );
        assert_eq!(issued.body["scope"], "tool:echo");
        let capability = verified(&app, &issued.token());
        assert_eq!(capability.subject, "svc-reports");
        assert_eq!(capability.max_calls(), Some(5));
    }
    exchange(JWT_TYPE, &[("scope", "tool:delete_all")])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_scope");
    exchange("urn:ietf:params:oauth:token-type:saml2", &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_request");
    exchange(
        JWT_TYPE,
        &[("actor_token", "x"), ("actor_token_type", JWT_TYPE)],
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_request");
    exchange(
        JWT_TYPE,
        &[(
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:saml2",
        )],
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_request");
    token(
        &app,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token_type", JWT_TYPE),
        ],
        None,
        None,
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_request");
    // An identity assertion grant is not a subject token.
    let id_jag = idp.sign(
        json!({"typ": "oauth-id-jag+jwt"}),
        &idp_claims("alice", json!({"client_id": "c", "jti": jti()})),
    );
    token(
        &app,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &id_jag),
            ("subject_token_type", JWT_TYPE),
        ],
        None,
        None,
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_grant");
}

async fn a_client_holds_a_jwt_grant_to_its_tenant_and_registration(app: TestApp) {
    let idp = Signer::new(26, "idp-1");
    // Two tenants trust the same issuer: without a client, the request names the tenant.
    trust(&app, "acme", IDP, &idp, &[json!({"tools": ["read_*"]})]).await;
    trust(&app, "globex", IDP, &idp, &[json!({"tools": ["echo"]})]).await;
    let assertion = idp.sign(json!({}), &idp_claims("carol", json!({})));
    bearer(&app, &assertion, &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_request");
    let globex = bearer(&app, &assertion, &[("tenant", "globex")]).await;
    assert_eq!(verified(&app, &globex.token()).tenant, "globex");
    bearer(&app, &assertion, &[("tenant", "initech")])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");
    // An authenticated client's tenant decides, whatever the parameter says.
    let (id, secret) = secret_client(
        &app,
        "acme",
        json!({"grant_types": [JWT_BEARER], "tools": ["read_invoice", "echo"], "ttl_seconds": 120, "max_calls": 3}),
    )
    .await;
    let held = token(
        &app,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &assertion),
            ("tenant", "globex"),
        ],
        Some((&id, &secret)),
        None,
    )
    .await;
    let capability = verified(&app, &held.token());
    assert_eq!(capability.tenant, "acme");
    assert_eq!(capability.subject, "carol");
    assert_eq!(capability.tool_lists, vec![vec!["read_invoice".to_owned()]]);
    assert_eq!(capability.expires_at - capability.issued_at, 120);
    assert_eq!(capability.max_calls(), Some(3));
    // A tenant admin sees only its own trusted issuers.
    let (_, listed) = app.get(ACME, "/v1/admin/trusted-issuers").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["tenant"], "acme");
}
