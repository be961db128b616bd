//! The OAuth authorization server: metadata, the token endpoint's grants and refusals, and its admin
//! resources (clients, trusted issuers, exchange rules), each on SQLite and Postgres.

mod clients;
mod exchange;
mod grants;
mod trust;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use intentgate_core::token::{PublicKeys, VerifiedToken};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};

use crate::support::{SUPER, TestApp};

pub const TOKEN_ENDPOINT: &str = "https://gw.example.com/oauth/token";
pub const RESOURCE: &str = "https://gw.example.com/v1/mcp";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const CAPABILITY_TYPE: &str = "urn:intentgate:token-type:capability";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An answer of the token endpoint.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }

    pub fn token(&self) -> String {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        self.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Asserts an RFC 6749 refusal with this status and code, never cached.
    pub fn refused(&self, status: StatusCode, code: &str) {
        assert_eq!((self.status, self.error()), (status, code), "{}", self.body);
        assert!(self.body["error_description"].is_string(), "{}", self.body);
        assert_eq!(self.headers[header::CACHE_CONTROL], "no-store");
    }
}

/// Form-encodes `params`.
pub fn form(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// POSTs a form to the token endpoint; `basic` adds HTTP Basic client authentication, `peer` the
/// connection's address.
pub async fn token(
    app: &TestApp,
    params: &[(&str, &str)],
    basic: Option<(&str, &str)>,
    peer: Option<&str>,
) -> Answer {
    let mut request = Request::builder()
        .method("POST")
        .uri("/oauth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        let encoded = STANDARD.encode(format!("{}:{}", form_component(id), form_component(secret)));
        request = request.header(header::AUTHORIZATION, format!("Basic {encoded}"));
    }
    let mut request = request.body(Body::from(form(params))).unwrap();
    if let Some(peer) = peer {
        let addr: SocketAddr = format!("{peer}:40000").parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
    }
    let (status, headers, bytes) = app.request(request).await;
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn form_component(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A secret client of `tenant` (registered by the superadmin) with `extra` fields; its id and secret.
pub async fn secret_client(app: &TestApp, tenant: &str, extra: Value) -> (String, String) {
    let mut body = json!({"name": "agent client", "tenant": tenant});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, created) = app.post(SUPER, "/v1/admin/clients", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        created["client_id"].as_str().unwrap().to_owned(),
        created["client_secret"].as_str().unwrap().to_owned(),
    )
}

/// Verifies an issued capability token with the control plane's trusted keys.
pub fn verified(app: &TestApp, token: &str) -> VerifiedToken {
    let mut keys = PublicKeys::new();
    keys.insert(app.state.signing.active().public());
    intentgate_core::token::verify(token, &keys).expect("the issued token verifies")
}

/// An Ed25519 signer of JWTs, with its public JWK.
pub struct Signer {
    pair: Ed25519KeyPair,
    pub kid: String,
}

impl Signer {
    pub fn new(seed: u8, kid: &str) -> Self {
        Signer {
            pair: Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap(),
            kid: kid.to_owned(),
        }
    }

    pub fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": self.kid,
               "x": URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref())})
    }

    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk()]})
    }

    /// A compact JWS of `claims`, with `header` members added to `{alg, kid}`.
    pub fn sign(&self, header: Value, claims: &Value) -> String {
        let mut head = json!({"alg": "EdDSA", "kid": self.kid});
        head.as_object_mut()
            .unwrap()
            .extend(header.as_object().unwrap().clone());
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(head.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = URL_SAFE_NO_PAD.encode(self.pair.sign(input.as_bytes()));
        format!("{input}.{signature}")
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fresh id for `jti` claims.
pub fn jti() -> String {
    URL_SAFE_NO_PAD.encode(
        ring::rand::generate::<[u8; 16]>(&ring::rand::SystemRandom::new())
            .unwrap()
            .expose(),
    )
}

/// The newest audit event of `tenant` whose method is `method`.
pub async fn last_event(app: &TestApp, tenant: &str, method: &str) -> Value {
    app.events(tenant)
        .await
        .into_iter()
        .find(|e| e["method"] == method)
        .unwrap_or_else(|| panic!("no {method} event in {tenant}"))
}
