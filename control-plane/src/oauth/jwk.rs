//! JSON Web Keys (RFC 7517) as the token endpoint uses them: the public keys of a trusted issuer or
//! of a `private_key_jwt` client, each able to check a JWS signature of the algorithms it fits.
//! Only asymmetric keys: RSA (2048 to 8192 bits), EC P-256 and P-384, and Ed25519.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::Value;

/// Most keys kept from one set.
pub const MAX_KEYS: usize = 100;

/// JWS algorithms accepted (RFC 7518, RFC 8037). `none` and the HMAC family never are: a shared
/// secret cannot tell the issuer from anyone who verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    pub const ALL: [Alg; 9] = [
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
        Alg::Es256,
        Alg::Es384,
        Alg::EdDsa,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }

    pub fn parse(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|alg| alg.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { curve: Curve, point: Vec<u8> },
    Ed25519(Vec<u8>),
}

/// One public key, with the `kid` and `alg` its set gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub kid: Option<String>,
    alg: Option<Alg>,
    material: Material,
}

impl Key {
    /// Whether this key may check `alg` signatures: its type fits, and so does its own `alg`.
    fn fits(&self, alg: Alg) -> bool {
        if self.alg.is_some_and(|own| own != alg) {
            return false;
        }
        match (&self.material, alg) {
            (Material::Rsa { .. }, Alg::Rs256 | Alg::Rs384 | Alg::Rs512) => true,
            (Material::Rsa { .. }, Alg::Ps256 | Alg::Ps384 | Alg::Ps512) => true,
            (Material::Ec { curve, .. }, Alg::Es256) => *curve == Curve::P256,
            (Material::Ec { curve, .. }, Alg::Es384) => *curve == Curve::P384,
            (Material::Ed25519(_), Alg::EdDsa) => true,
            _ => false,
        }
    }

    /// Whether `signature` over `message` verifies with this key under `alg`.
    pub fn verifies(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match &self.material {
            Material::Rsa { n, e } => {
                let params = match alg {
                    Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Alg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok()
            }
            Material::Ec { curve, point } => {
                let algorithm = match curve {
                    Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
                };
                UnparsedPublicKey::new(algorithm, point)
                    .verify(message, signature)
                    .is_ok()
            }
            Material::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

/// A JWK Set's usable keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Key>,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<Value>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<Value>,
}

fn bytes(field: &str, value: Option<&String>) -> Result<Vec<u8>, String> {
    let text = value.ok_or_else(|| format!("a key lacks `{field}`"))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("a key's `{field}` is not base64url"))
}

/// Big-endian integers as ring reads them: without leading zero bytes.
fn unsigned(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// One key of a set: `Ok(None)` for a key this server does not use (another type or use).
fn key(raw: RawKey) -> Result<Option<Key>, String> {
    if raw.usage.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let alg = match raw.alg.as_deref() {
        None => None,
        Some(name) => match Alg::parse(name) {
            Some(alg) => Some(alg),
            None => return Ok(None),
        },
    };
    let material = match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => {
            let n = unsigned(bytes("n", raw.n.as_ref())?);
            if !(256..=1024).contains(&n.len()) {
                return Err("an RSA key must have 2048 to 8192 bits".into());
            }
            Material::Rsa {
                n,
                e: unsigned(bytes("e", raw.e.as_ref())?),
            }
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (curve, size) = if crv == "P-256" {
                (Curve::P256, 32)
            } else {
                (Curve::P384, 48)
            };
            let x = bytes("x", raw.x.as_ref())?;
            let y = bytes("y", raw.y.as_ref())?;
            if x.len() != size || y.len() != size {
                return Err(format!("a {crv} key's coordinates must be {size} bytes"));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Material::Ec { curve, point }
        }
        ("OKP", Some("Ed25519")) => {
            let x = bytes("x", raw.x.as_ref())?;
            if x.len() != 32 {
                return Err("an Ed25519 key must be 32 bytes".into());
            }
            Material::Ed25519(x)
        }
        _ => return Ok(None),
    };
    Ok(Some(Key {
        kid: raw.kid,
        alg,
        material,
    }))
}

impl KeySet {
    /// The usable keys of a JWK Set (`{"keys": [...]}`); keys of other types are skipped, a
    /// malformed key of a known type is an error. `refuse_private`: whether private members (`d`)
    /// are refused (an admin's input: a private key must never be stored) or ignored.
    pub fn from_value(value: &Value, refuse_private: bool) -> Result<KeySet, String> {
        let raw: RawSet = serde_json::from_value(value.clone())
            .map_err(|_| "a JWK Set is an object with a `keys` array".to_owned())?;
        if raw.keys.len() > MAX_KEYS {
            return Err(format!("a JWK Set may hold at most {MAX_KEYS} keys"));
        }
        let mut keys = Vec::new();
        for entry in raw.keys {
            let raw: RawKey = serde_json::from_value(entry)
                .map_err(|_| "each key of a JWK Set is an object with a string `kty`".to_owned())?;
            if raw.d.is_some() && refuse_private {
                return Err("the JWK Set holds a private key: give only public keys".into());
            }
            if let Some(key) = key(raw)? {
                keys.push(key);
            }
        }
        Ok(KeySet { keys })
    }

    /// A JWK Set fetched from its URL.
    pub fn from_bytes(body: &[u8]) -> Result<KeySet, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|_| "the JWK Set is not JSON".to_owned())?;
        Self::from_value(&value, false)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Whether some key of the set (the one named `kid`, when given) verifies the signature.
    pub fn verifies(&self, alg: Alg, kid: Option<&str>, message: &[u8], signature: &[u8]) -> bool {
        self.keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .any(|k| k.verifies(alg, message, signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ed25519_jwk(seed: u8, kid: &str) -> (ring::signature::Ed25519KeyPair, Value) {
        use ring::signature::KeyPair as _;
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        (
            pair,
            json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid}),
        )
    }

    #[test]
    fn keys_verify_only_their_own_signatures_and_algorithms() {
        let (pair, jwk) = ed25519_jwk(1, "a");
        let set = KeySet::from_value(&json!({"keys": [jwk]}), true).unwrap();
        let signature = pair.sign(b"message");
        assert!(set.verifies(Alg::EdDsa, Some("a"), b"message", signature.as_ref()));
        assert!(set.verifies(Alg::EdDsa, None, b"message", signature.as_ref()));
        assert!(!set.verifies(Alg::EdDsa, Some("b"), b"message", signature.as_ref()));
        assert!(!set.verifies(Alg::EdDsa, Some("a"), b"other", signature.as_ref()));
        assert!(!set.verifies(Alg::Es256, Some("a"), b"message", signature.as_ref()));
        assert!(set.has_kid("a") && !set.has_kid("b"));
    }

    #[test]
    fn ec_keys_verify_es256() {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])});
        let set = KeySet::from_value(&json!({"keys": [jwk]}), true).unwrap();
        let signature = pair.sign(&rng, b"m").unwrap();
        assert!(set.verifies(Alg::Es256, None, b"m", signature.as_ref()));
        assert!(!set.verifies(Alg::Es384, None, b"m", signature.as_ref()));
    }

    #[test]
    fn unusable_keys_are_skipped_and_bad_ones_refused() {
        let skipped = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "X25519", "x": "AAAA"},
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-256", "alg": "HS256", "x": "AA", "y": "AA"}
        ]});
        assert!(KeySet::from_value(&skipped, true).unwrap().is_empty());
        for bad in [
            json!([]),
            json!({"keys": [{"kid": "no type"}]}),
            json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}),
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AQAB", "y": "AQAB"}]}),
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "!!"}]}),
        ] {
            assert!(KeySet::from_value(&bad, true).is_err(), "{bad}");
        }
        let (_, mut private) = ed25519_jwk(2, "p");
        private["d"] = json!("AAAA");
        let set = json!({"keys": [private]});
        assert!(
            KeySet::from_value(&set, true)
                .unwrap_err()
                .contains("private")
        );
        assert_eq!(KeySet::from_value(&set, false).unwrap().keys.len(), 1);
    }

    #[test]
    fn algorithms_round_trip_and_symmetric_ones_are_unknown() {
        for alg in Alg::ALL {
            assert_eq!(Alg::parse(alg.name()), Some(alg));
        }
        for name in ["none", "HS256", "rs256", ""] {
            assert_eq!(Alg::parse(name), None, "{name}");
        }
    }
}
