//! Minting root tokens (the issuer) and attenuating them (any holder, offline).

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use super::TokenError;
use super::claims::{AttenuationClaims, AuthorityClaims, Caveat, TOKEN_VERSION};
use super::codec::{self, RawBlock, RawToken};
use super::keys::IssuerKey;
use super::verify::{check_proof, interpret};
use crate::glob;

/// What a root token grants.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub jti: String,
    pub issuer: String,
    pub subject: String,
    pub tenant: String,
    pub issued_at: i64,
    pub not_before: i64,
    pub expires_at: i64,
    pub tools: Option<Vec<String>>,
    pub max_calls: Option<u64>,
    pub step_up_at: Option<i64>,
    pub memory_key: Option<VerifyingKey>,
}

/// What an attenuation block takes away. At least one field must be set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Narrowing {
    pub jti: String,
    pub issued_at: i64,
    pub tools: Option<Vec<String>>,
    pub max_calls: Option<u64>,
    pub expires_at: Option<i64>,
    /// Binds the token to this resource; refused when the token is bound to another.
    pub audience: Option<String>,
}

/// Signs a root token. `next_seed` must be fresh randomness: it becomes the token's proof key.
pub fn mint(key: &IssuerKey, grant: &Grant, next_seed: &[u8; 32]) -> Result<String, TokenError> {
    mint_for_audience(key, grant, None, next_seed)
}

/// As [`mint`], bound to the one resource `audience` names (an RFC 8707 resource URL) when given.
pub fn mint_for_audience(
    key: &IssuerKey,
    grant: &Grant,
    audience: Option<&str>,
    next_seed: &[u8; 32],
) -> Result<String, TokenError> {
    let mut caveats = Vec::new();
    if let Some(tools) = &grant.tools {
        caveats.push(Caveat::Tools(tools.clone()));
    }
    if let Some(n) = grant.max_calls {
        caveats.push(Caveat::MaxCalls(n));
    }
    if let Some(at) = grant.step_up_at {
        caveats.push(Caveat::StepUpAt(at));
    }
    if let Some(memory) = grant.memory_key {
        use base64::Engine as _;
        caveats.push(Caveat::MemoryKey(
            base64::engine::general_purpose::STANDARD.encode(memory.as_bytes()),
        ));
    }
    if let Some(audience) = audience {
        caveats.push(Caveat::Audience(audience.to_owned()));
    }
    let claims = AuthorityClaims {
        v: TOKEN_VERSION,
        jti: grant.jti.clone(),
        iss: grant.issuer.clone(),
        sub: grant.subject.clone(),
        tenant: grant.tenant.clone(),
        iat: grant.issued_at,
        nbf: grant.not_before,
        exp: grant.expires_at,
        caveats,
    };
    let payload = serde_json::to_vec(&claims).map_err(|e| TokenError::Malformed(e.to_string()))?;
    let next = SigningKey::from_bytes(next_seed);
    let next_key = next.verifying_key().to_bytes();
    let message = codec::signed_message(key.kid(), 0, None, &payload, &next_key);
    let signature = key.signing().sign(&message).to_bytes();
    let raw = RawToken {
        kid: key.kid().to_owned(),
        blocks: vec![RawBlock {
            payload,
            next_key,
            signature,
        }],
        proof: *next_seed,
    };
    // Validate what we produced exactly as a verifier will.
    interpret(&raw)?;
    codec::encode(&raw)
}

/// Appends a block that narrows `token`. Needs no issuer key: the token's proof signs it. Refuses
/// anything that is not strictly a narrowing (verifiers would ignore the widening part anyway, since
/// every block's caveats must hold at once).
pub fn attenuate(
    token: &str,
    narrowing: &Narrowing,
    next_seed: &[u8; 32],
) -> Result<String, TokenError> {
    let mut raw = codec::decode(token)?;
    check_proof(&raw)?;
    let current = interpret(&raw)?;
    let mut caveats = Vec::new();
    if let Some(tools) = &narrowing.tools {
        for tool in tools {
            if let Some(list) = current
                .tool_lists
                .iter()
                .find(|list| !list.iter().any(|p| glob::contains(p, tool)))
            {
                return Err(TokenError::Widening(format!(
                    "tool pattern {tool} is not within the token's tools {list:?}"
                )));
            }
        }
        caveats.push(Caveat::Tools(tools.clone()));
    }
    if let Some(n) = narrowing.max_calls {
        if let Some(max) = current.max_calls()
            && n > max
        {
            return Err(TokenError::Widening(format!(
                "max_calls {n} exceeds the token's {max}"
            )));
        }
        caveats.push(Caveat::MaxCalls(n));
    }
    if let Some(at) = narrowing.expires_at {
        if at > current.expires_at {
            return Err(TokenError::Widening(
                "expiry is later than the token's".into(),
            ));
        }
        caveats.push(Caveat::Expires(at));
    }
    if let Some(audience) = &narrowing.audience {
        match &current.audience {
            Some(held) if held != audience => {
                return Err(TokenError::Widening(format!(
                    "the token is for audience {held}; a derived token keeps it"
                )));
            }
            Some(_) => {}
            None => caveats.push(Caveat::Audience(audience.clone())),
        }
    }
    if caveats.is_empty() {
        return Err(TokenError::Widening(
            "an attenuation must narrow at least one of tools, max_calls, expiry, audience".into(),
        ));
    }
    let claims = AttenuationClaims {
        jti: narrowing.jti.clone(),
        iat: narrowing.issued_at,
        caveats,
    };
    let payload = serde_json::to_vec(&claims).map_err(|e| TokenError::Malformed(e.to_string()))?;
    let signer = SigningKey::from_bytes(&raw.proof);
    let next = SigningKey::from_bytes(next_seed);
    let next_key = next.verifying_key().to_bytes();
    let index = raw.blocks.len();
    let previous = raw.blocks.last().map(|b| b.signature);
    let message = codec::signed_message(&raw.kid, index, previous.as_ref(), &payload, &next_key);
    raw.blocks.push(RawBlock {
        payload,
        next_key,
        signature: signer.sign(&message).to_bytes(),
    });
    raw.proof = *next_seed;
    interpret(&raw)?;
    codec::encode(&raw)
}
