//! Agent clients of the token endpoint, registered per tenant by its admins: each with the most its
//! tokens may grant (tools, lifetime, budget, step-up), the grant types it may use, and how it
//! authenticates: a secret (shown once, stored as its SHA-256) or its public keys for
//! `private_key_jwt`. The client id is the registration's id. Every change is audited.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::grant::Ceiling;
use super::keys::KeySource;
use super::registry::{
    self, Table, flag, from_column, from_optional_column, optional_unsigned, signed, to_column,
    unsigned,
};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::auth::token::issue_secret;
use crate::error::{Error, Result};
use crate::tokens::issue::{DEFAULT_TTL_SECONDS, check_grant};
use crate::{audit, ids, time, validate};

pub const LIST: &str = "oauth_clients";
/// Client secrets start with this, so a leaked one is recognisable.
pub const SECRET_PREFIX: &str = "igcs_";
const MAX_NAME: usize = 200;

pub const TABLE: Table<Client> = Table {
    name: "oauth_clients",
    noun: "client",
    from_row: Client::from_row,
};

/// How a client proves who it is at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
            AuthMethod::PrivateKeyJwt,
        ]
        .into_iter()
        .find(|m| m.as_str() == name)
    }

    pub fn uses_secret(self) -> bool {
        self != AuthMethod::PrivateKeyJwt
    }
}

/// The grant types a client may be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantType {
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    #[serde(rename = "urn:ietf:params:oauth:grant-type:jwt-bearer")]
    JwtBearer,
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::ClientCredentials,
        GrantType::JwtBearer,
        GrantType::TokenExchange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::JwtBearer => "urn:ietf:params:oauth:grant-type:jwt-bearer",
            GrantType::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == name)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub name: String,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub tenant: Option<String>,
    /// The agent its tokens name; the client id when left out.
    #[serde(default, deserialize_with = "validate::non_null")]
    pub subject: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub token_endpoint_auth_method: Option<AuthMethod>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub grant_types: Option<Vec<GrantType>>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub tools: Option<Vec<String>>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub ttl_seconds: Option<u64>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub max_calls: Option<u64>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub step_up: Option<bool>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub jwks: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub jwks_uri: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub created_by: Option<String>,
}

/// A partial update: fields left out keep their value. The authentication method stays.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientUpdate {
    #[serde(default, deserialize_with = "validate::non_null")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub subject: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub grant_types: Option<Vec<GrantType>>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub tools: Option<Vec<String>>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub ttl_seconds: Option<u64>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub max_calls: Option<u64>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub step_up: Option<bool>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub jwks: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub jwks_uri: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub enabled: Option<bool>,
}

/// A client as the API shows it: never its secret.
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    pub client_id: String,
    pub tenant: String,
    pub name: String,
    pub subject: String,
    pub token_endpoint_auth_method: AuthMethod,
    pub grant_types: Vec<GrantType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    pub ttl_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u64>,
    pub step_up: bool,
    pub enabled: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeySource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_rotated_at: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    pub(crate) secret_sha256: Option<Vec<u8>>,
    #[serde(skip)]
    updated_ms: i64,
}

/// A new client, with its secret shown this once (secret clients only).
#[derive(Debug, Serialize)]
pub struct Created {
    #[serde(flatten)]
    pub client: Client,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl Client {
    fn from_row(row: &AnyRow) -> Result<Self> {
        use sqlx::Row as _;
        let method: String = row.try_get("auth_method")?;
        Ok(Client {
            client_id: row.try_get("id")?,
            tenant: row.try_get("tenant")?,
            name: row.try_get("name")?,
            subject: row.try_get("subject")?,
            token_endpoint_auth_method: AuthMethod::parse(&method)
                .ok_or_else(|| Error::Internal(format!("stored auth_method {method:?}")))?,
            grant_types: from_column(row, "grant_types")?,
            tools: from_optional_column(row, "tools")?,
            ttl_seconds: unsigned(row, "ttl_seconds")?,
            max_calls: optional_unsigned(row, "max_calls")?,
            step_up: flag(row, "step_up")?,
            enabled: flag(row, "enabled")?,
            keys: KeySource::from_row(row)?,
            secret_rotated_at: row
                .try_get::<Option<i64>, _>("secret_rotated_at")?
                .map(time::rfc3339),
            created_by: row.try_get("created_by")?,
            created_at: time::rfc3339(row.try_get("created_at")?),
            updated_at: time::rfc3339(row.try_get("updated_at")?),
            updated_ms: row.try_get("updated_at")?,
            secret_sha256: row.try_get("secret_sha256")?,
        })
    }

    /// The most a token of this client grants.
    pub fn ceiling(&self) -> Ceiling {
        Ceiling {
            subject: self.subject.clone(),
            tools: self.tools.clone(),
            ttl_seconds: self.ttl_seconds,
            max_calls: self.max_calls,
            step_up: self.step_up,
        }
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    fn summary(&self) -> String {
        format!(
            "{} ({}, {}, grants {}, tools {}, ttl {} s{}, enabled {})",
            self.client_id,
            self.name,
            self.token_endpoint_auth_method.as_str(),
            self.grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            self.tools
                .as_ref()
                .map_or_else(|| "any".to_owned(), |t| format!("{t:?}")),
            self.ttl_seconds,
            self.max_calls
                .map(|n| format!(", max_calls {n}"))
                .unwrap_or_default(),
            self.enabled,
        )
    }
}

fn check(
    name: &str,
    subject: &str,
    grant_types: &[GrantType],
    tools: Option<&[String]>,
    ttl: u64,
    max_calls: Option<u64>,
) -> Result<()> {
    validate::required_text("name", name, MAX_NAME).map_err(Error::BadRequest)?;
    validate::required_text("subject", subject, 256).map_err(Error::BadRequest)?;
    if grant_types.is_empty() {
        return Err(Error::bad_request(
            "grant_types must name at least one grant type",
        ));
    }
    check_grant(tools, Some(ttl), max_calls)
}

/// The keys a client's method needs: a `private_key_jwt` client must have some, a secret client none.
fn check_keys(method: AuthMethod, keys: Option<&KeySource>) -> Result<()> {
    match (method.uses_secret(), keys) {
        (false, None) => Err(Error::bad_request(
            "a private_key_jwt client needs jwks or jwks_uri",
        )),
        (true, Some(_)) => Err(Error::bad_request(
            "jwks and jwks_uri apply only to token_endpoint_auth_method private_key_jwt",
        )),
        _ => Ok(()),
    }
}

pub async fn create(recorder: &Recorder, admin: &Admin, new: NewClient) -> Result<Created> {
    let tenant = admin.tenant_for_change(new.tenant.as_deref())?;
    let created_by = admin.labelled("created_by", new.created_by)?;
    let id = ids::new_id()?;
    let method = new
        .token_endpoint_auth_method
        .unwrap_or(AuthMethod::ClientSecretBasic);
    let subject = new.subject.unwrap_or_else(|| id.clone());
    let grant_types = new
        .grant_types
        .unwrap_or_else(|| vec![GrantType::ClientCredentials]);
    let ttl = new.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    check(
        &new.name,
        &subject,
        &grant_types,
        new.tools.as_deref(),
        ttl,
        new.max_calls,
    )?;
    let keys = KeySource::change(admin, None, new.jwks, new.jwks_uri)?;
    check_keys(method, keys.as_ref())?;
    let secret = method
        .uses_secret()
        .then(|| issue_secret(SECRET_PREFIX))
        .transpose()?;
    let now = time::now_ms();
    let mut tx = recorder.begin().await?;
    sqlx::query(
        "INSERT INTO oauth_clients (id, tenant, name, subject, auth_method, secret_sha256, jwks, \
         jwks_uri, private_reach, grant_types, tools, ttl_seconds, max_calls, step_up, enabled, \
         created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)",
    )
    .bind(&id)
    .bind(&tenant)
    .bind(&new.name)
    .bind(&subject)
    .bind(method.as_str())
    .bind(secret.as_ref().map(|s| s.digest.to_vec()))
    .bind(keys.as_ref().and_then(KeySource::jwks_text))
    .bind(keys.as_ref().and_then(|k| k.jwks_uri.clone()))
    .bind(i64::from(keys.as_ref().is_some_and(|k| k.private_reach)))
    .bind(to_column(&grant_types)?)
    .bind(new.tools.as_ref().map(to_column).transpose()?)
    .bind(signed(ttl)?)
    .bind(new.max_calls.map(signed).transpose()?)
    .bind(i64::from(new.step_up.unwrap_or(false)))
    .bind(i64::from(new.enabled.unwrap_or(true)))
    .bind(&created_by.label)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let client = TABLE
        .commit_written(recorder.db(), tx, &id, true, |client| {
            audit::record::admin(
                &tenant,
                "oauth_client_create",
                &created_by.audited,
                format!("registered OAuth client {}", client.summary()),
            )
        })
        .await?;
    Ok(Created {
        client,
        client_secret: secret.map(|s| s.secret),
    })
}

pub async fn update(
    recorder: &Recorder,
    admin: &Admin,
    id: &str,
    change: ClientUpdate,
) -> Result<Client> {
    let db = recorder.db();
    let current = TABLE.get(db, admin, id).await?;
    let name = change.name.unwrap_or_else(|| current.name.clone());
    let subject = change.subject.unwrap_or_else(|| current.subject.clone());
    let grant_types = change
        .grant_types
        .unwrap_or_else(|| current.grant_types.clone());
    let tools = change.tools.or_else(|| current.tools.clone());
    let ttl = change.ttl_seconds.unwrap_or(current.ttl_seconds);
    let max_calls = change.max_calls.or(current.max_calls);
    check(
        &name,
        &subject,
        &grant_types,
        tools.as_deref(),
        ttl,
        max_calls,
    )?;
    let keys = KeySource::change(admin, current.keys.as_ref(), change.jwks, change.jwks_uri)?;
    check_keys(current.token_endpoint_auth_method, keys.as_ref())?;
    let mut tx = recorder.begin().await?;
    let updated = sqlx::query(
        "UPDATE oauth_clients SET name = $2, subject = $3, grant_types = $4, tools = $5, \
         ttl_seconds = $6, max_calls = $7, step_up = $8, enabled = $9, jwks = $10, jwks_uri = $11, \
         private_reach = $12, updated_at = $13 WHERE id = $1 AND updated_at = $14",
    )
    .bind(id)
    .bind(&name)
    .bind(&subject)
    .bind(to_column(&grant_types)?)
    .bind(tools.as_ref().map(to_column).transpose()?)
    .bind(signed(ttl)?)
    .bind(max_calls.map(signed).transpose()?)
    .bind(i64::from(change.step_up.unwrap_or(current.step_up)))
    .bind(i64::from(change.enabled.unwrap_or(current.enabled)))
    .bind(keys.as_ref().and_then(KeySource::jwks_text))
    .bind(keys.as_ref().and_then(|k| k.jwks_uri.clone()))
    .bind(i64::from(keys.as_ref().is_some_and(|k| k.private_reach)))
    .bind(registry::next_version(current.updated_ms))
    .bind(current.updated_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    TABLE
        .commit_written(db, tx, id, updated == 1, |client| {
            audit::record::admin(
                &current.tenant,
                "oauth_client_update",
                &admin.actor(),
                format!("updated OAuth client {}", client.summary()),
            )
        })
        .await
}

pub async fn delete(recorder: &Recorder, admin: &Admin, id: &str) -> Result<()> {
    let current = TABLE.get(recorder.db(), admin, id).await?;
    let reason = format!("deleted OAuth client {id} ({})", current.name);
    TABLE
        .delete(
            recorder,
            admin,
            &current.tenant,
            id,
            "oauth_client_delete",
            reason,
        )
        .await
}

/// Replaces a secret client's secret; the old one stops working at once.
pub async fn rotate_secret(recorder: &Recorder, admin: &Admin, id: &str) -> Result<String> {
    let current = TABLE.get(recorder.db(), admin, id).await?;
    if !current.token_endpoint_auth_method.uses_secret() {
        return Err(Error::Conflict(format!(
            "client {id} authenticates with private_key_jwt: it has no secret; update its jwks instead"
        )));
    }
    let secret = issue_secret(SECRET_PREFIX)?;
    let now = time::now_ms();
    let event = audit::record::admin(
        &current.tenant,
        "oauth_client_rotate_secret",
        &admin.actor(),
        format!("rotated the secret of OAuth client {id} ({})", current.name),
    )?;
    let mut tx = recorder.begin().await?;
    let updated = sqlx::query(
        "UPDATE oauth_clients SET secret_sha256 = $2, secret_rotated_at = $3, updated_at = $4 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(secret.digest.to_vec())
    .bind(now)
    .bind(registry::next_version(current.updated_ms))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(TABLE.gone(id));
    }
    tx.commit(event).await?;
    Ok(secret.secret)
}

impl registry::Tenanted for Client {
    fn tenant(&self) -> &str {
        &self.tenant
    }
}
