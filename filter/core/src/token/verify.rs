//! Verification in two parts: `verify` checks what depends only on the token's bytes and the key set
//! (signatures, structure, caveat kinds), so its result can be cached; `VerifiedToken::check_live`
//! checks what changes with time and state (expiry, not-before, revocation) on every call.

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};

use super::TokenError;
use super::claims::{AttenuationClaims, AuthorityClaims, Caveat, TOKEN_VERSION};
use super::codec::{self, RawToken};
use super::keys::{PublicKeys, parse_public_key};
use super::revoked::Revoked;
use crate::glob;

/// Clock skew tolerated on `nbf` and `iat`, in seconds.
pub const CLOCK_SKEW_SECS: i64 = 30;

/// One `max_calls` caveat and the block it was set by: each is counted on its own key, so a
/// derived token's calls also count against its parent's budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallBudget {
    pub counter: String,
    pub max_calls: u64,
}

/// A token whose signatures and structure hold. Not yet checked against time or revocations.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub kid: String,
    /// `capability_token_id`: the jti of the last block (the root jti when not attenuated).
    pub jti: String,
    /// `root_capability_token_id`.
    pub root_jti: String,
    /// The jti of every block, root first; revoking any of them revokes this token.
    pub block_jtis: Vec<String>,
    pub issuer: String,
    pub subject: String,
    pub tenant: String,
    pub issued_at: i64,
    pub not_before: i64,
    /// The earliest expiry of all blocks.
    pub expires_at: i64,
    /// Every tool allow-list of every block; a tool must match one pattern of each.
    pub tool_lists: Vec<Vec<String>>,
    pub budgets: Vec<CallBudget>,
    pub step_up_at: Option<i64>,
    pub memory_key: Option<VerifyingKey>,
    /// The resource (RFC 8707 URL) the token is for; `None`: any resource of its tenant.
    pub audience: Option<String>,
    pub caveats: Vec<Caveat>,
    /// `input.capability` as policies see it, built once per verified token.
    pub policy_view: Option<regorus::Value>,
}

impl VerifiedToken {
    pub fn caveat_count(&self) -> usize {
        self.caveats.len()
    }

    /// Whether the tool caveats of every block allow `tool`.
    pub fn allows_tool(&self, tool: &str) -> bool {
        self.tool_lists
            .iter()
            .all(|list| glob::any_matches(list, tool))
    }

    /// The smallest `max_calls` of the chain, if any.
    pub fn max_calls(&self) -> Option<u64> {
        self.budgets.iter().map(|b| b.max_calls).min()
    }

    /// Expiry, not-before and revocation, for a call at `now` (unix seconds). A revocation of any
    /// block's jti in this token's tenant refuses it: revoking a root refuses every token derived
    /// from it, revoking a derived token's own block id refuses that token and its descendants.
    pub fn check_live(&self, now: i64, revoked: &Revoked) -> Result<(), TokenError> {
        if now >= self.expires_at {
            return Err(TokenError::Expired);
        }
        if now.saturating_add(CLOCK_SKEW_SECS) < self.not_before {
            return Err(TokenError::NotYetValid);
        }
        if let Some(jti) = self
            .block_jtis
            .iter()
            .find(|j| revoked.contains(&self.tenant, j))
        {
            return Err(TokenError::Revoked(jti.clone()));
        }
        Ok(())
    }
}

/// Longest audience accepted, in bytes.
pub const MAX_AUDIENCE_BYTES: usize = 2048;

/// An audience is an absolute URI without a fragment (RFC 8707 §2): a scheme, then no whitespace,
/// control character or `#`, at most [`MAX_AUDIENCE_BYTES`].
pub fn check_audience(audience: &str) -> Result<(), String> {
    if audience.is_empty() || audience.len() > MAX_AUDIENCE_BYTES {
        return Err(format!("audience must be 1 to {MAX_AUDIENCE_BYTES} bytes"));
    }
    if audience
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err("audience must be an absolute URI without whitespace or fragment".into());
    }
    let scheme = audience.split_once(':').map(|(scheme, _)| scheme);
    let valid_scheme = scheme.is_some_and(|s| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if !valid_scheme {
        return Err("audience must be an absolute URI (with a scheme)".into());
    }
    Ok(())
}

/// Checks the signature chain, the proof, the claims and every caveat.
pub fn verify(text: &str, keys: &PublicKeys) -> Result<VerifiedToken, TokenError> {
    let raw = codec::decode(text)?;
    let root_key = keys
        .get(&raw.kid)
        .ok_or_else(|| TokenError::UnknownKey(raw.kid.clone()))?;
    check_signatures(&raw, root_key)?;
    interpret(&raw)
}

/// Verifies every block's signature and that the proof is the secret of the last `next_key`.
pub(super) fn check_signatures(raw: &RawToken, root_key: &VerifyingKey) -> Result<(), TokenError> {
    let mut signer = *root_key;
    let mut previous: Option<&[u8; 64]> = None;
    for (index, block) in raw.blocks.iter().enumerate() {
        let message =
            codec::signed_message(&raw.kid, index, previous, &block.payload, &block.next_key);
        let signature = Signature::from_bytes(&block.signature);
        signer
            .verify_strict(&message, &signature)
            .map_err(|_| TokenError::BadSignature(index))?;
        signer = VerifyingKey::from_bytes(&block.next_key)
            .map_err(|_| TokenError::Malformed(format!("block {index} names an invalid key")))?;
        previous = Some(&block.signature);
    }
    check_proof(raw)
}

pub(super) fn check_proof(raw: &RawToken) -> Result<(), TokenError> {
    let last = raw
        .blocks
        .last()
        .ok_or_else(|| TokenError::Malformed("token has no blocks".into()))?;
    let derived = SigningKey::from_bytes(&raw.proof).verifying_key();
    if derived.as_bytes() != &last.next_key {
        return Err(TokenError::BadProof);
    }
    Ok(())
}

/// Reads the claims of every block and folds their caveats. Signatures must be checked first.
pub(super) fn interpret(raw: &RawToken) -> Result<VerifiedToken, TokenError> {
    let mut blocks = raw.blocks.iter();
    let first = blocks
        .next()
        .ok_or_else(|| TokenError::Malformed("token has no blocks".into()))?;
    let authority: AuthorityClaims = serde_json::from_slice(&first.payload)
        .map_err(|e| TokenError::Malformed(format!("authority block: {e}")))?;
    if authority.v != TOKEN_VERSION {
        return Err(TokenError::Malformed(format!(
            "unsupported claims version {}",
            authority.v
        )));
    }
    for (name, value) in [
        ("jti", &authority.jti),
        ("sub", &authority.sub),
        ("tenant", &authority.tenant),
        ("iss", &authority.iss),
    ] {
        if value.is_empty() {
            return Err(TokenError::Malformed(format!("claim {name} is empty")));
        }
        if value.chars().any(char::is_control) {
            return Err(TokenError::Malformed(format!(
                "claim {name} contains control characters"
            )));
        }
    }
    if authority.exp <= authority.nbf
        || authority.nbf < authority.iat.saturating_sub(CLOCK_SKEW_SECS)
    {
        return Err(TokenError::Malformed(
            "claims must satisfy iat <= nbf < exp".into(),
        ));
    }
    let mut token = VerifiedToken {
        kid: raw.kid.clone(),
        jti: authority.jti.clone(),
        root_jti: authority.jti.clone(),
        block_jtis: vec![authority.jti.clone()],
        issuer: authority.iss,
        subject: authority.sub,
        tenant: authority.tenant,
        issued_at: authority.iat,
        not_before: authority.nbf,
        expires_at: authority.exp,
        tool_lists: Vec::new(),
        budgets: Vec::new(),
        step_up_at: None,
        memory_key: None,
        audience: None,
        caveats: Vec::new(),
        policy_view: None,
    };
    for caveat in authority.caveats {
        apply(&mut token, caveat, true)?;
    }
    for (index, block) in blocks.enumerate() {
        let claims: AttenuationClaims = serde_json::from_slice(&block.payload)
            .map_err(|e| TokenError::Malformed(format!("block {}: {e}", index + 1)))?;
        if claims.jti.is_empty()
            || claims.jti.chars().any(char::is_control)
            || token.block_jtis.contains(&claims.jti)
        {
            return Err(TokenError::Malformed(format!(
                "block {} needs a fresh jti",
                index + 1
            )));
        }
        token.jti = claims.jti.clone();
        token.block_jtis.push(claims.jti);
        for caveat in claims.caveats {
            apply(&mut token, caveat, false)?;
        }
    }
    token.policy_view = crate::policy::CapabilityInput::of(&token).to_value().ok();
    Ok(token)
}

fn apply(token: &mut VerifiedToken, caveat: Caveat, authority: bool) -> Result<(), TokenError> {
    match &caveat {
        Caveat::Unknown(kind) => return Err(TokenError::UnknownCaveat(kind.clone())),
        Caveat::Tools(list) => {
            if list.is_empty() || list.iter().any(String::is_empty) {
                return Err(TokenError::InvalidCaveat(
                    "tools caveat needs non-empty patterns".into(),
                ));
            }
            token.tool_lists.push(list.clone());
        }
        Caveat::MaxCalls(n) => token.budgets.push(CallBudget {
            // An attenuation block's jti is its holder's choice: its counter lives under the
            // root's, so no holder can name (and so cap or drain) another token's counter.
            counter: if authority {
                token.jti.clone()
            } else {
                format!("{}/{}", token.root_jti, token.jti)
            },
            max_calls: *n,
        }),
        Caveat::Expires(at) if !authority => token.expires_at = token.expires_at.min(*at),
        Caveat::Audience(audience) => {
            check_audience(audience).map_err(TokenError::InvalidCaveat)?;
            if token.audience.as_ref().is_some_and(|held| held != audience) {
                return Err(TokenError::InvalidCaveat(
                    "a block names another audience than an earlier one".into(),
                ));
            }
            token.audience = Some(audience.clone());
        }
        Caveat::StepUpAt(at) if authority => token.step_up_at = Some(*at),
        Caveat::MemoryKey(key) if authority => {
            token.memory_key = Some(parse_public_key(key).map_err(|_| {
                TokenError::InvalidCaveat("memory_key is not a valid public key".into())
            })?);
        }
        other => {
            return Err(TokenError::InvalidCaveat(format!(
                "caveat {} is not allowed in {} block",
                other.kind(),
                if authority {
                    "the authority"
                } else {
                    "an attenuation"
                }
            )));
        }
    }
    token.caveats.push(caveat);
    Ok(())
}
