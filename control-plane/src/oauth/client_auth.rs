//! Client authentication at the token endpoint: `client_secret_basic` (RFC 6749 §2.3.1: the id and
//! secret form-encoded, then Basic), `client_secret_post` (both in the body) and `private_key_jwt`
//! (RFC 7523 §2.2: a JWT signed with a key the client registered, `iss` = `sub` = client id, `aud`
//! the issuer or the token endpoint, `exp` at most an hour away, a `jti` used once). A secret client
//! may use either secret method. One method per request; every failure is `invalid_client`, the
//! reason logged.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::AuthorizationServer;
use super::clients::{self, AuthMethod, Client};
use super::error::{OAuthError, OAuthResult};
use super::jwt::Jwt;
use super::replay;
use super::request::Form;
use super::settings::Issuer;
use crate::auth::token::matches_stored;
use crate::store::Db;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How far in the future a single-use assertion's `exp` may lie.
pub const MAX_ASSERTION_LIFETIME: i64 = 3600;

/// The credentials a request presents.
#[derive(Debug)]
pub enum Presented {
    None,
    Secret {
        client_id: String,
        secret: String,
    },
    Assertion {
        client_id: String,
        assertion: Box<Jwt>,
    },
}

impl Presented {
    /// The client id it claims, before anything is checked (the failure limit counts by it).
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Presented::None => None,
            Presented::Secret { client_id, .. } | Presented::Assertion { client_id, .. } => {
                Some(client_id)
            }
        }
    }
}

/// One component of a Basic credential, form-decoded (RFC 6749 §2.3.1).
fn form_decoded(component: &str) -> String {
    let bytes = [b"v=", component.as_bytes()].concat();
    form_urlencoded::parse(&bytes)
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// What the `Authorization` header and the body present. A request that mixes methods is malformed.
pub fn presented(authorization: Option<&str>, form: &Form) -> OAuthResult<Presented> {
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    let assertion = form.get("client_assertion");
    let assertion_type = form.get("client_assertion_type");
    let methods = usize::from(authorization.is_some())
        + usize::from(body_secret.is_some())
        + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "use one client authentication method per request",
        ));
    }
    let agrees = |id: &str| -> OAuthResult<()> {
        match body_id {
            Some(body) if body != id => Err(OAuthError::invalid_request(
                "client_id does not match the client's credentials",
            )),
            _ => Ok(()),
        }
    };
    if let Some(header) = authorization {
        let (scheme, encoded) = header.trim().split_once(' ').unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(OAuthError::invalid_client(format!(
                "Authorization scheme {scheme:?} is not Basic"
            )));
        }
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| OAuthError::invalid_client("Basic credentials are not base64 UTF-8"))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| OAuthError::invalid_client("Basic credentials lack a ':'"))?;
        let client_id = form_decoded(id);
        agrees(&client_id)?;
        return Ok(Presented::Secret {
            client_id,
            secret: form_decoded(secret),
        });
    }
    if let Some(secret) = body_secret {
        let client_id =
            body_id.ok_or_else(|| OAuthError::invalid_request("client_secret needs client_id"))?;
        return Ok(Presented::Secret {
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
        });
    }
    if let Some(assertion) = assertion {
        if assertion_type != Some(ASSERTION_TYPE) {
            return Err(OAuthError::invalid_request(format!(
                "client_assertion_type must be {ASSERTION_TYPE}"
            )));
        }
        let jwt = Jwt::parse(assertion)
            .map_err(|e| OAuthError::invalid_client(format!("client assertion: {e}")))?;
        let client_id = jwt
            .required("sub")
            .map_err(|e| OAuthError::invalid_client(format!("client assertion: {e}")))?
            .to_owned();
        agrees(&client_id)?;
        return Ok(Presented::Assertion {
            client_id,
            assertion: Box::new(jwt),
        });
    }
    if assertion_type.is_some() {
        return Err(OAuthError::invalid_request(
            "client_assertion_type needs client_assertion",
        ));
    }
    match body_id {
        // There are no public clients: naming one without proving it is a failed authentication.
        Some(id) => Err(OAuthError::invalid_client(format!(
            "client {id} presented no credentials"
        ))),
        None => Ok(Presented::None),
    }
}

/// The enabled client the credentials prove, `None` when none were presented.
pub async fn authenticate(
    server: &AuthorizationServer,
    db: &Db,
    issuer: &Issuer,
    presented: Presented,
    now: i64,
) -> OAuthResult<Option<Client>> {
    let (client_id, proof) = match presented {
        Presented::None => return Ok(None),
        Presented::Secret { client_id, secret } => (client_id, Proof::Secret(secret)),
        Presented::Assertion {
            client_id,
            assertion,
        } => (client_id, Proof::Assertion(assertion)),
    };
    let refused = |why: &str| OAuthError::invalid_client(format!("client {client_id}: {why}"));
    let client = if crate::validate::id("client_id", &client_id).is_ok() {
        clients::TABLE.find(db, &client_id).await?
    } else {
        None
    };
    match proof {
        Proof::Secret(secret) => {
            let stored = client
                .as_ref()
                .and_then(|c| c.secret_sha256.clone())
                .unwrap_or_default();
            // Compared even for an unknown client, so timing does not tell which ids exist.
            let matches = matches_stored(&stored, &secret) || matches_stored(&[0; 32], &secret);
            let client = client.ok_or_else(|| refused("no such client"))?;
            if !client.token_endpoint_auth_method.uses_secret() || !matches {
                return Err(refused("wrong secret or not a secret client"));
            }
            enabled(client, &refused).map(Some)
        }
        Proof::Assertion(jwt) => {
            let client = client.ok_or_else(|| refused("no such client"))?;
            if client.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
                return Err(refused("not a private_key_jwt client"));
            }
            let client = enabled(client, &refused)?;
            let exp = check_assertion(server, issuer, &client, &jwt, now)
                .await
                .map_err(|why| refused(&why))?;
            let jti = jwt.required("jti").map_err(|e| refused(&e.to_string()))?;
            if !replay::use_once(db, &format!("client:{}", client.client_id), jti, exp).await? {
                return Err(refused(&format!(
                    "the assertion's jti {jti} was already used"
                )));
            }
            Ok(Some(client))
        }
    }
}

enum Proof {
    Secret(String),
    Assertion(Box<Jwt>),
}

fn enabled(client: Client, refused: &impl Fn(&str) -> OAuthError) -> OAuthResult<Client> {
    if client.enabled {
        Ok(client)
    } else {
        Err(refused("disabled"))
    }
}

/// The assertion's issuer, signature, times and audience; its expiry when they hold.
async fn check_assertion(
    server: &AuthorizationServer,
    issuer: &Issuer,
    client: &Client,
    jwt: &Jwt,
    now: i64,
) -> Result<i64, String> {
    if jwt.text("iss") != Some(client.client_id.as_str()) {
        return Err("the assertion's iss is not the client id".into());
    }
    let keys = client
        .keys
        .as_ref()
        .ok_or("no keys are registered")?
        .keys(&server.jwks, jwt.kid.as_deref())
        .await?;
    jwt.verify(&keys).map_err(|e| e.to_string())?;
    let exp = jwt
        .check_times(now, Some(MAX_ASSERTION_LIFETIME))
        .map_err(|e| e.to_string())?;
    jwt.check_audience(&issuer.audiences())
        .map_err(|e| e.to_string())?;
    Ok(exp)
}
