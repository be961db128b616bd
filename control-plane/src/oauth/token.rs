//! `POST /oauth/token`: the grants, each ending in one of our Ed25519 capability tokens, issued and
//! audited in its tenant's chain like a mint.
//!
//! - `client_credentials`: the authenticated client's registration is the grant.
//! - `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1): a JWT of a trusted issuer, mapped
//!   by the tenant's exchange rules. An identity assertion grant (ID-JAG, `typ` `oauth-id-jag+jwt`)
//!   also needs the client it names to authenticate, is addressed to this issuer, and is used once.
//! - `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693): a JWT of a trusted issuer as the
//!   subject token, mapped the same way; or one of our capability tokens
//!   ([`CAPABILITY_TOKEN_TYPE`]), exchanged for an attenuated child of it, never wider.
//!
//! An authenticated client confines a JWT grant to its tenant and holds it to its own registration.
//! `scope` narrows what the grant allows; `resource` binds the token to one resource.

use intentgate_core::token::{self, IssuerKey, Narrowing, TokenError, VerifiedToken};
use serde::Serialize;

use super::AuthorizationServer;
use super::clients::{Client, GrantType};
use super::error::{Code, OAuthError, OAuthResult};
use super::grant::{Ceiling, granted_scope, intersect, parse_scope};
use super::jwt::Jwt;
use super::request::Form;
use super::settings::Issuer;
use super::{client_auth, issuers, replay, rules};
use crate::audit::Recorder;
use crate::store::Db;
use crate::tokens::issue::{DEFAULT_TTL_SECONDS, Issue, describe, issue, record};
use crate::{audit, ids, keys, time, tokens};

/// `subject_token_type` of an IntentGate capability token.
pub const CAPABILITY_TOKEN_TYPE: &str = "urn:intentgate:token-type:capability";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// The JWT `typ` of an identity assertion authorization grant.
pub const ID_JAG_TYPE: &str = "oauth-id-jag+jwt";
/// The grant profile the metadata advertises for it.
pub const ID_JAG_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";

/// A token request as the transport read it.
#[derive(Debug)]
pub struct TokenRequest {
    pub form: Form,
    pub authorization: Option<String>,
    pub source: Option<std::net::IpAddr>,
}

/// RFC 6749 §5.1 (and RFC 8693 §2.2.1's `issued_token_type`).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// Who a JWT grant is for, once its issuer, signature and rule were checked.
struct Subject {
    tenant: String,
    ceiling: Ceiling,
    audience: Option<String>,
    /// For the audit event: the issuer and the JWT's subject.
    principal: String,
}

impl AuthorizationServer {
    /// Answers one token request: the client authenticated (counted by the failure limit), the
    /// grant checked, the token issued.
    pub async fn token(
        &self,
        recorder: &Recorder,
        key: &IssuerKey,
        request: TokenRequest,
    ) -> OAuthResult<TokenResponse> {
        let issuer = self
            .settings
            .issuer
            .as_ref()
            .ok_or_else(OAuthError::not_configured)?;
        let form = &request.form;
        let grant_name = form.require("grant_type")?;
        let grant = GrantType::parse(grant_name)
            .ok_or_else(|| OAuthError::unsupported_grant_type(grant_name))?;
        let now = time::now_ms().div_euclid(1000);
        let db = recorder.db();
        let client = self.authenticate(db, issuer, &request, now).await?;
        if let Some(client) = &client
            && !client.allows(grant)
        {
            return Err(OAuthError::unauthorized_client(format!(
                "client {} may not use {}",
                client.client_id,
                grant.as_str()
            )));
        }
        let audience = form.audience()?;
        let requested = parse_scope(form.get("scope"))?;
        let by_client = |client: &Client| format!("client:{}", client.client_id);
        let (subject, issued_type) = match grant {
            GrantType::ClientCredentials => {
                let client = client.ok_or_else(|| {
                    OAuthError::invalid_client("client_credentials without client authentication")
                })?;
                let subject = Subject {
                    tenant: client.tenant.clone(),
                    ceiling: client.ceiling(),
                    audience,
                    principal: by_client(&client),
                };
                (subject, None)
            }
            GrantType::JwtBearer => {
                let assertion = form.require("assertion")?;
                let subject = self
                    .trusted_jwt(
                        db,
                        issuer,
                        client.as_ref(),
                        form,
                        assertion,
                        true,
                        audience,
                        now,
                    )
                    .await?;
                (subject, None)
            }
            GrantType::TokenExchange => {
                let subject_token = form.require("subject_token")?;
                let subject_type = form.require("subject_token_type")?;
                if form.get("actor_token").is_some() || form.get("actor_token_type").is_some() {
                    return Err(OAuthError::invalid_request(
                        "actor_token is not supported: this server does not issue delegation tokens",
                    ));
                }
                if let Some(requested_type) = form.get("requested_token_type")
                    && requested_type != ACCESS_TOKEN_TYPE
                    && requested_type != CAPABILITY_TOKEN_TYPE
                {
                    return Err(OAuthError::invalid_request(format!(
                        "requested_token_type must be {ACCESS_TOKEN_TYPE} or {CAPABILITY_TOKEN_TYPE}"
                    )));
                }
                match subject_type {
                    CAPABILITY_TOKEN_TYPE => {
                        return self
                            .attenuate(
                                recorder,
                                client.as_ref(),
                                subject_token,
                                requested,
                                audience,
                                now,
                            )
                            .await;
                    }
                    JWT_TOKEN_TYPE | ID_TOKEN_TYPE | ACCESS_TOKEN_TYPE => {
                        let subject = self
                            .trusted_jwt(
                                db,
                                issuer,
                                client.as_ref(),
                                form,
                                subject_token,
                                false,
                                audience,
                                now,
                            )
                            .await?;
                        (subject, Some(ACCESS_TOKEN_TYPE))
                    }
                    other => {
                        return Err(OAuthError::invalid_request(format!(
                            "subject_token_type {other} is not supported"
                        )));
                    }
                }
            }
        };
        let ceiling = subject.ceiling.narrowed(requested)?;
        let order = Issue {
            issuer: issuer.as_str().to_owned(),
            subject: ceiling.subject.clone(),
            tenant: subject.tenant,
            ttl_seconds: ceiling.ttl_seconds,
            tools: ceiling.tools.clone(),
            max_calls: ceiling.max_calls,
            step_up: ceiling.step_up,
            audience: subject.audience,
            with_memory_signing_key: false,
        };
        let issued = issue(recorder, key, &order, |made| {
            token_event(
                &made.tenant,
                &subject.principal,
                format!(
                    "issued a token by {} {}",
                    grant.as_str(),
                    describe(made, order.audience.as_deref())
                ),
            )
        })
        .await?;
        Ok(TokenResponse {
            access_token: issued.token,
            token_type: "Bearer",
            expires_in: issued.grant.expires_at - issued.grant.issued_at,
            scope: granted_scope(issued.grant.tools.as_deref()),
            issued_token_type: issued_type,
        })
    }

    /// The client the request authenticates, if it presents credentials; every `invalid_client` is
    /// counted against the client id it claimed and its source, and a client id or source over the
    /// limit is refused before its credentials are looked at.
    async fn authenticate(
        &self,
        db: &Db,
        issuer: &Issuer,
        request: &TokenRequest,
        now: i64,
    ) -> OAuthResult<Option<Client>> {
        let presented = client_auth::presented(request.authorization.as_deref(), &request.form);
        let claimed = presented
            .as_ref()
            .ok()
            .and_then(client_auth::Presented::client_id)
            .map(str::to_owned);
        if let Err(wait) = self.limit.check(claimed.as_deref(), request.source) {
            return Err(OAuthError::rate_limited(
                wait,
                format!(
                    "client {} from {:?}: too many failed authentications",
                    claimed.as_deref().unwrap_or("-"),
                    request.source
                ),
            ));
        }
        let outcome = match presented {
            Ok(presented) => client_auth::authenticate(self, db, issuer, presented, now).await,
            Err(e) => Err(e),
        };
        if outcome
            .as_ref()
            .is_err_and(|e| e.code == Code::InvalidClient)
        {
            self.limit
                .record_failure(claimed.as_deref(), request.source);
        }
        outcome
    }

    /// A JWT of an issuer some tenant trusts: the tenant (the client's, else the only one trusting
    /// this issuer and audience, else the one the `tenant` parameter names), its signature, times
    /// and audience, and the exchange rule that maps it. `assertion`: presented with the jwt-bearer
    /// grant, where an identity assertion grant is allowed.
    #[allow(clippy::too_many_arguments)]
    async fn trusted_jwt(
        &self,
        db: &Db,
        issuer: &Issuer,
        client: Option<&Client>,
        form: &Form,
        text: &str,
        assertion: bool,
        audience: Option<String>,
        now: i64,
    ) -> OAuthResult<Subject> {
        let jwt = Jwt::parse(text).map_err(|e| OAuthError::invalid_grant(e.to_string()))?;
        let id_jag = jwt
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(ID_JAG_TYPE));
        if id_jag {
            if !assertion {
                return Err(OAuthError::invalid_grant(
                    "an identity assertion grant is presented with the jwt-bearer grant",
                ));
            }
            let client = client.ok_or_else(|| {
                OAuthError::invalid_client(
                    "an identity assertion grant needs client authentication",
                )
            })?;
            if jwt.text("client_id") != Some(client.client_id.as_str()) {
                return Err(OAuthError::invalid_grant(format!(
                    "the identity assertion grant is for client {:?}, not {}",
                    jwt.text("client_id"),
                    client.client_id
                )));
            }
        }
        let iss = jwt
            .required("iss")
            .map_err(|e| OAuthError::invalid_grant(e.to_string()))?;
        let tenant = match client {
            Some(client) => Some(client.tenant.as_str()),
            None => form.get("tenant"),
        };
        let ours = if id_jag {
            vec![issuer.as_str().to_owned()]
        } else {
            issuer.audiences()
        };
        let mut candidates: Vec<issuers::TrustedIssuer> = issuers::trusting(db, iss, tenant)
            .await?
            .into_iter()
            .filter(|t| {
                let accepted = if id_jag {
                    ours.clone()
                } else {
                    t.accepted_audiences(ours.clone())
                };
                jwt.check_audience(&accepted).is_ok()
            })
            .collect();
        let trusted = match candidates.len() {
            0 => {
                return Err(OAuthError::invalid_grant(format!(
                    "no tenant{} trusts issuer {iss} for audience {:?}",
                    tenant.map(|t| format!(" ({t})")).unwrap_or_default(),
                    jwt.audiences()
                )));
            }
            1 => candidates.remove(0),
            _ => {
                return Err(OAuthError::invalid_request(format!(
                    "several tenants trust issuer {iss}: name one with the tenant parameter"
                )));
            }
        };
        let keys = trusted
            .keys
            .keys(&self.jwks, jwt.kid.as_deref())
            .await
            .map_err(|e| OAuthError::invalid_grant(format!("issuer {iss}: {e}")))?;
        jwt.verify(&keys)
            .map_err(|e| OAuthError::invalid_grant(format!("issuer {iss}: {e}")))?;
        let exp = jwt
            .check_times(now, id_jag.then_some(client_auth::MAX_ASSERTION_LIFETIME))
            .map_err(|e| OAuthError::invalid_grant(format!("issuer {iss}: {e}")))?;
        let audience = if id_jag {
            let jti = jwt
                .required("jti")
                .map_err(|e| OAuthError::invalid_grant(e.to_string()))?;
            if !replay::use_once(db, iss, jti, exp).await? {
                return Err(OAuthError::invalid_grant(format!(
                    "identity assertion grant {jti} of {iss} was already used"
                )));
            }
            resource_of(&jwt, audience)?
        } else {
            audience
        };
        let rule = rules::deciding(db, &trusted.id, &jwt)
            .await?
            .ok_or_else(|| {
                OAuthError::invalid_grant(format!(
                    "no exchange rule of tenant {} matches this JWT of {iss}",
                    trusted.tenant
                ))
            })?;
        let mut ceiling = rule.ceiling(&jwt).ok_or_else(|| {
            OAuthError::invalid_grant(format!(
                "claim {} (exchange rule {}) does not name an agent",
                rule.subject_claim, rule.id
            ))
        })?;
        let mut principal = format!(
            "issuer:{iss} sub:{} rule:{}",
            jwt.text("sub").unwrap_or("-"),
            rule.id
        );
        if let Some(client) = client {
            ceiling = ceiling.within(&client.ceiling());
            principal = format!("client:{} {principal}", client.client_id);
        }
        Ok(Subject {
            tenant: trusted.tenant,
            ceiling,
            audience,
            principal,
        })
    }

    /// A capability token of ours for an attenuated child: narrower tools by `scope`, bound to
    /// `resource` when it had no audience, expiring no later than it (and within the default
    /// lifetime). An authenticated client must belong to the token's tenant.
    async fn attenuate(
        &self,
        recorder: &Recorder,
        client: Option<&Client>,
        subject_token: &str,
        requested: Option<Vec<String>>,
        audience: Option<String>,
        now: i64,
    ) -> OAuthResult<TokenResponse> {
        let db = recorder.db();
        let trusted = keys::signing::trusted_keys(db).await?;
        let parent = token::verify(subject_token, &trusted)
            .map_err(|e| OAuthError::invalid_grant(format!("subject token: {e}")))?;
        let revoked = tokens::revoke::revoked_among(db, &parent.tenant, &parent.block_jtis).await?;
        parent
            .check_live(now, &revoked)
            .map_err(|e| OAuthError::invalid_grant(format!("subject token: {e}")))?;
        if let Some(client) = client
            && client.tenant != parent.tenant
        {
            return Err(OAuthError::invalid_grant(format!(
                "subject token of tenant {} presented by client {} of {}",
                parent.tenant, client.client_id, client.tenant
            )));
        }
        if let (Some(held), Some(asked)) = (&parent.audience, &audience)
            && held != asked
        {
            return Err(OAuthError::invalid_target(
                "the subject token is bound to another resource",
            ));
        }
        let default_ttl = i64::try_from(DEFAULT_TTL_SECONDS).unwrap_or(i64::MAX);
        let narrowing = Narrowing {
            jti: ids::new_id()?,
            issued_at: now,
            tools: requested.clone(),
            max_calls: None,
            expires_at: Some(parent.expires_at.min(now.saturating_add(default_ttl))),
            audience: audience.filter(|_| parent.audience.is_none()),
        };
        let child = token::attenuate(subject_token, &narrowing, &ids::random32()?).map_err(
            |e| match e {
                TokenError::Widening(why) => {
                    OAuthError::invalid_scope(format!("scope outside the grant: {why}"))
                }
                other => OAuthError::invalid_grant(format!("subject token: {other}")),
            },
        )?;
        let expires_at = narrowing.expires_at.unwrap_or(parent.expires_at);
        let tools = match requested {
            Some(tools) => Some(tools),
            None => narrowest(&parent),
        };
        let principal = match client {
            Some(client) => format!("client:{}", client.client_id),
            None => format!("capability:{}", parent.jti),
        };
        let mut event = token_event(
            &parent.tenant,
            &principal,
            format!(
                "issued a token by token exchange of capability token {} for {}: tools {}, expires {}{}",
                parent.jti,
                parent.subject,
                granted_scope(tools.as_deref()),
                time::rfc3339(expires_at * 1000),
                narrowing
                    .audience
                    .as_ref()
                    .or(parent.audience.as_ref())
                    .map(|a| format!(", audience {a}"))
                    .unwrap_or_default(),
            ),
        )?;
        event.agent_id.clone_from(&parent.subject);
        event.capability_token_id.clone_from(&narrowing.jti);
        event.root_capability_token_id.clone_from(&parent.root_jti);
        event.caveat_count = parent.caveat_count() as u64 + 1;
        let recorded = intentgate_core::token::Grant {
            jti: narrowing.jti.clone(),
            issuer: parent.issuer.clone(),
            subject: parent.subject.clone(),
            tenant: parent.tenant.clone(),
            issued_at: now,
            not_before: now,
            expires_at,
            tools: None,
            max_calls: None,
            step_up_at: None,
            memory_key: None,
        };
        let mut tx = recorder.begin().await?;
        record(&mut tx, &recorded, &parent.kid).await?;
        tx.commit(event).await?;
        Ok(TokenResponse {
            access_token: child,
            token_type: "Bearer",
            expires_in: expires_at - now,
            scope: granted_scope(tools.as_deref()),
            issued_token_type: Some(ACCESS_TOKEN_TYPE),
        })
    }
}

/// The resource of an identity assertion grant: the request's `resource` must be one the grant
/// names; without one, the grant's only resource.
fn resource_of(jwt: &Jwt, requested: Option<String>) -> OAuthResult<Option<String>> {
    let named: Vec<String> = match jwt.claim("resource") {
        None => return Ok(requested),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        Some(serde_json::Value::Array(many)) => many
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            return Err(OAuthError::invalid_grant(
                "the grant's resource claim is malformed",
            ));
        }
    };
    match (requested, named.as_slice()) {
        (Some(asked), _) if named.contains(&asked) => Ok(Some(asked)),
        (Some(_), _) => Err(OAuthError::invalid_target(
            "the identity assertion grant is for another resource",
        )),
        (None, [one]) => {
            intentgate_core::token::check_audience(one)
                .map_err(|e| OAuthError::invalid_grant(format!("the grant's resource: {e}")))?;
            Ok(Some(one.clone()))
        }
        (None, _) => Err(OAuthError::invalid_target(
            "the identity assertion grant names several resources: give one as resource",
        )),
    }
}

/// What a verified token's tool lists allow together, as one list (`None`: any tool). May be
/// narrower than the token when two lists' patterns overlap without either containing the other.
fn narrowest(token: &VerifiedToken) -> Option<Vec<String>> {
    let mut lists = token.tool_lists.iter();
    let first = lists.next()?.clone();
    Some(lists.fold(first, |acc, list| intersect(&acc, list)))
}

/// The audit event of an issued token: `oauth/token`, decided by the client or the subject's issuer.
fn token_event(
    tenant: &str,
    principal: &str,
    reason: String,
) -> crate::error::Result<intentgate_core::audit::AuditEvent> {
    let mut event = audit::record::admin(tenant, "oauth_token", principal, reason)?;
    event.method = "oauth/token".into();
    Ok(event)
}
