//! JWTs presented to the token endpoint (RFC 7519): compact JWS only, read once, their signature
//! checked against a [`KeySet`] and their times and audience against what the grant expects. The
//! header's key-carrying members (`jwk`, `jku`, `x5u`, `x5c`) are never used: keys come from the
//! trusted issuer's or the client's registration alone.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use intentgate_core::token::CLOCK_SKEW_SECS;
use serde_json::{Map, Value};

use super::jwk::{Alg, KeySet};

/// Longest JWT read.
pub const MAX_JWT_BYTES: usize = 16 * 1024;

/// Why a JWT is refused; the text goes to the log, never to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed JWT: {0}")]
    Malformed(String),
    #[error("unsupported JWS algorithm {0:?}")]
    Algorithm(String),
    #[error("the JWT's signature does not verify with the trusted keys")]
    Signature,
    #[error("the JWT has expired")]
    Expired,
    #[error("the JWT is not valid yet")]
    NotYetValid,
    #[error("the JWT lives too long: {0}")]
    Lifetime(String),
    #[error("the JWT's audience {0:?} is not accepted here")]
    Audience(Vec<String>),
    #[error("the JWT lacks the claim {0}")]
    MissingClaim(&'static str),
}

/// A JWT as read: its header's algorithm, key id and type, its claims, and what was signed.
#[derive(Debug, Clone)]
pub struct Jwt {
    pub alg: Alg,
    pub kid: Option<String>,
    pub typ: Option<String>,
    pub claims: Map<String, Value>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

fn part(text: &str, what: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| JwtError::Malformed(format!("the {what} is not base64url")))
}

fn object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, JwtError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed(format!(
            "the {what} is not a JSON object"
        ))),
    }
}

impl Jwt {
    /// Reads a compact JWS. Nothing in it is trusted until [`Jwt::verify`] passed.
    pub fn parse(text: &str) -> Result<Jwt, JwtError> {
        if text.len() > MAX_JWT_BYTES {
            return Err(JwtError::Malformed(format!(
                "longer than {MAX_JWT_BYTES} bytes"
            )));
        }
        let mut parts = text.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed(
                "not a compact JWS (three dot-separated parts)".into(),
            ));
        };
        let head = object(&part(header, "header")?, "header")?;
        if head.contains_key("crit") {
            return Err(JwtError::Malformed(
                "the header names critical extensions".into(),
            ));
        }
        let alg_name = head
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| JwtError::Malformed("the header has no alg".into()))?;
        let alg = Alg::parse(alg_name).ok_or_else(|| JwtError::Algorithm(alg_name.to_owned()))?;
        let text_member = |name: &str| head.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(Jwt {
            alg,
            kid: text_member("kid"),
            typ: text_member("typ"),
            claims: object(&part(payload, "payload")?, "payload")?,
            signing_input: format!("{header}.{payload}").into_bytes(),
            signature: part(signature, "signature")?,
        })
    }

    /// Whether a key of `keys` signed it (the one named by the header's `kid`, when it names one).
    pub fn verify(&self, keys: &KeySet) -> Result<(), JwtError> {
        if keys.verifies(
            self.alg,
            self.kid.as_deref(),
            &self.signing_input,
            &self.signature,
        ) {
            Ok(())
        } else {
            Err(JwtError::Signature)
        }
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub fn required(&self, name: &'static str) -> Result<&str, JwtError> {
        self.text(name)
            .filter(|v| !v.is_empty())
            .ok_or(JwtError::MissingClaim(name))
    }

    /// A claim by name, or by JSON Pointer (RFC 6901) when the name starts with `/`
    /// (`/kubernetes.io/namespace`).
    pub fn claim(&self, name: &str) -> Option<&Value> {
        if let Some(pointer) = name.strip_prefix('/') {
            let (first, rest) = match pointer.split_once('/') {
                Some((first, rest)) => (first, Some(rest)),
                None => (pointer, None),
            };
            let first = first.replace("~1", "/").replace("~0", "~");
            let top = self.claims.get(&first)?;
            match rest {
                Some(rest) => top.pointer(&format!("/{rest}")),
                None => Some(top),
            }
        } else {
            self.claims.get(name)
        }
    }

    /// `aud` as a list (a string is a list of one).
    pub fn audiences(&self) -> Vec<String> {
        match self.claims.get("aud") {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Refused unless `aud` names one of `accepted`.
    pub fn check_audience(&self, accepted: &[String]) -> Result<(), JwtError> {
        let audiences = self.audiences();
        if audiences.iter().any(|a| accepted.contains(a)) {
            Ok(())
        } else {
            Err(JwtError::Audience(audiences))
        }
    }

    fn time(&self, name: &'static str) -> Result<Option<i64>, JwtError> {
        match self.claims.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| JwtError::Malformed(format!("{name} is not a number"))),
        }
    }

    /// `exp` (required), `nbf` and `iat` against `now` (unix seconds), with the gateway's clock skew.
    /// `max_lifetime`: how far in the future `exp` may lie, for JWTs whose `jti` is remembered until
    /// then.
    pub fn check_times(&self, now: i64, max_lifetime: Option<i64>) -> Result<i64, JwtError> {
        let exp = self.time("exp")?.ok_or(JwtError::MissingClaim("exp"))?;
        if now.saturating_sub(CLOCK_SKEW_SECS) >= exp {
            return Err(JwtError::Expired);
        }
        if let Some(nbf) = self.time("nbf")?
            && now.saturating_add(CLOCK_SKEW_SECS) < nbf
        {
            return Err(JwtError::NotYetValid);
        }
        if let Some(iat) = self.time("iat")?
            && now.saturating_add(CLOCK_SKEW_SECS) < iat
        {
            return Err(JwtError::NotYetValid);
        }
        if let Some(max) = max_lifetime
            && exp > now.saturating_add(max)
        {
            return Err(JwtError::Lifetime(format!(
                "exp is more than {max} seconds away"
            )));
        }
        Ok(exp)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    use serde_json::json;

    /// Signs `claims` with an Ed25519 key made from `seed`; returns the JWT and its key set.
    pub(crate) fn signed(seed: u8, header: Value, claims: &Value) -> (String, KeySet) {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let mut head = json!({"alg": "EdDSA", "kid": "k1"});
        head.as_object_mut()
            .unwrap()
            .extend(header.as_object().unwrap().clone());
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(head.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = URL_SAFE_NO_PAD.encode(pair.sign(input.as_bytes()));
        let keys = KeySet::from_value(
            &json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1"}]}),
            true,
        )
        .unwrap();
        (format!("{input}.{signature}"), keys)
    }

    const NOW: i64 = 1_781_444_520;

    #[test]
    fn a_signed_jwt_verifies_and_its_claims_read() {
        let claims = json!({"iss": "https://idp", "sub": "svc", "aud": ["a", "b"], "exp": NOW + 60,
            "kubernetes.io": {"namespace": "agents", "serviceaccount": {"name": "bot"}}});
        let (text, keys) = signed(1, json!({"typ": "JWT"}), &claims);
        let jwt = Jwt::parse(&text).unwrap();
        jwt.verify(&keys).unwrap();
        assert_eq!(jwt.typ.as_deref(), Some("JWT"));
        assert_eq!(jwt.required("sub").unwrap(), "svc");
        assert!(matches!(
            jwt.required("jti"),
            Err(JwtError::MissingClaim("jti"))
        ));
        assert_eq!(jwt.audiences(), vec!["a", "b"]);
        assert!(jwt.check_audience(&["b".into()]).is_ok());
        assert!(jwt.check_audience(&["c".into()]).is_err());
        assert_eq!(
            jwt.claim("/kubernetes.io/serviceaccount/name"),
            Some(&json!("bot"))
        );
        assert_eq!(
            jwt.claim("/kubernetes.io/namespace"),
            Some(&json!("agents"))
        );
        assert_eq!(jwt.claim("sub"), Some(&json!("svc")));
        assert_eq!(jwt.check_times(NOW, None).unwrap(), NOW + 60);
    }

    #[test]
    fn another_key_or_a_changed_payload_does_not_verify() {
        let claims = json!({"sub": "svc", "exp": NOW + 60});
        let (text, _) = signed(1, json!({}), &claims);
        let (_, other_keys) = signed(2, json!({}), &claims);
        let jwt = Jwt::parse(&text).unwrap();
        assert_eq!(jwt.verify(&other_keys), Err(JwtError::Signature));
        let (_, keys) = signed(1, json!({}), &claims);
        let mut parts: Vec<&str> = text.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(json!({"sub": "root", "exp": NOW + 60}).to_string());
        parts[1] = &forged;
        let tampered = Jwt::parse(&parts.join(".")).unwrap();
        assert_eq!(tampered.verify(&keys), Err(JwtError::Signature));
        // A header naming another key id finds no key.
        let (renamed, keys) = signed(1, json!({"kid": "k2"}), &claims);
        assert_eq!(
            Jwt::parse(&renamed).unwrap().verify(&keys),
            Err(JwtError::Signature)
        );
    }

    #[test]
    fn unsigned_symmetric_and_malformed_jwts_are_refused() {
        let head = |h: Value| URL_SAFE_NO_PAD.encode(h.to_string());
        let body = URL_SAFE_NO_PAD.encode(json!({"sub": "x", "exp": NOW + 60}).to_string());
        for alg in ["none", "HS256"] {
            let text = format!("{}.{body}.", head(json!({"alg": alg})));
            assert_eq!(
                Jwt::parse(&text).unwrap_err(),
                JwtError::Algorithm(alg.into())
            );
        }
        let crit = format!(
            "{}.{body}.AA",
            head(json!({"alg": "EdDSA", "crit": ["exp"]}))
        );
        assert!(matches!(Jwt::parse(&crit), Err(JwtError::Malformed(_))));
        for bad in [
            "",
            "a.b",
            "a.b.c.d.e",
            "!!.!!.!!",
            &"a".repeat(MAX_JWT_BYTES + 1),
        ] {
            assert!(
                matches!(Jwt::parse(bad), Err(JwtError::Malformed(_))),
                "{bad:.20}"
            );
        }
        let array = format!(
            "{}.{}.AA",
            head(json!({"alg": "EdDSA"})),
            URL_SAFE_NO_PAD.encode("[1]")
        );
        assert!(matches!(Jwt::parse(&array), Err(JwtError::Malformed(_))));
    }

    #[test]
    fn times_are_checked_with_the_clock_skew() {
        let jwt = |claims: Value| Jwt::parse(&signed(1, json!({}), &claims).0).unwrap();
        assert_eq!(
            jwt(json!({})).check_times(NOW, None),
            Err(JwtError::MissingClaim("exp"))
        );
        assert_eq!(
            jwt(json!({"exp": NOW - CLOCK_SKEW_SECS})).check_times(NOW, None),
            Err(JwtError::Expired)
        );
        assert!(jwt(json!({"exp": NOW - 1})).check_times(NOW, None).is_ok());
        assert_eq!(
            jwt(json!({"exp": NOW + 600, "nbf": NOW + 100})).check_times(NOW, None),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(
            jwt(json!({"exp": NOW + 600, "iat": NOW + 100})).check_times(NOW, None),
            Err(JwtError::NotYetValid)
        );
        assert!(matches!(
            jwt(json!({"exp": NOW + 7200})).check_times(NOW, Some(3600)),
            Err(JwtError::Lifetime(_))
        ));
        assert!(matches!(
            jwt(json!({"exp": "soon"})).check_times(NOW, None),
            Err(JwtError::Malformed(_))
        ));
    }
}
