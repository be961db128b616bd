//! Pull credentials: how the control plane authenticates to a source's export endpoint. Stored
//! sealed (XChaCha20-Poly1305 under a key derived from the master key, the source id as associated
//! data, so a sealed value cannot be moved to another source) and never returned by the API.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::parse::Vendor;
use crate::error::{Error, Result};

const KEY_INFO: &[u8] = b"intentgate/discovery-credentials/v1";
const MAX_SECRET_CHARS: usize = 4096;

/// `{"type": "token", "token": "..."}` uses the vendor's own scheme (Netskope
/// `Netskope-Api-Token`, Defender for Cloud Apps and Infoblox `Authorization: Token`, others
/// `Authorization: Bearer`); `header` sends any header; `basic` sends HTTP basic credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Credentials {
    Token { token: String },
    Header { name: String, value: String },
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

impl Credentials {
    pub fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::bad_request(format!("credentials: {m}")));
        let secrets: Vec<&str> = match self {
            Credentials::Token { token } => vec![token],
            Credentials::Header { name, value } => {
                let valid_name = !name.is_empty()
                    && name.len() <= 128
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !valid_name {
                    return bad("`name` must be an HTTP header name");
                }
                vec![value]
            }
            Credentials::Basic { username, password } => vec![username, password],
        };
        for secret in secrets {
            if secret.is_empty() || secret.chars().count() > MAX_SECRET_CHARS {
                return bad(&format!(
                    "values must be 1 to {MAX_SECRET_CHARS} characters"
                ));
            }
            if secret.chars().any(char::is_control) {
                return bad("values must not contain control characters");
            }
        }
        Ok(())
    }

    /// The header this credential sends to `vendor`'s endpoint.
    pub fn header(&self, vendor: Vendor) -> (String, String) {
        match self {
            Credentials::Token { token } => match vendor {
                Vendor::Netskope => ("Netskope-Api-Token".into(), token.clone()),
                Vendor::Mdca | Vendor::Infoblox => {
                    ("Authorization".into(), format!("Token {token}"))
                }
                Vendor::Zscaler | Vendor::Generic => {
                    ("Authorization".into(), format!("Bearer {token}"))
                }
            },
            Credentials::Header { name, value } => (name.clone(), value.clone()),
            Credentials::Basic { username, password } => (
                "Authorization".into(),
                format!(
                    "Basic {}",
                    STANDARD.encode(format!("{username}:{password}"))
                ),
            ),
        }
    }
}

fn cipher(master_seed: &[u8; 32]) -> Result<XChaCha20Poly1305> {
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(None, master_seed)
        .expand(KEY_INFO, &mut key)
        .map_err(|e| Error::Internal(format!("credential key derivation: {e}")))?;
    Ok(XChaCha20Poly1305::new(&key.into()))
}

/// `base64(nonce ‖ ciphertext)`.
pub fn seal(master_seed: &[u8; 32], source_id: &str, credentials: &Credentials) -> Result<String> {
    let plain = serde_json::to_vec(credentials)
        .map_err(|e| Error::Internal(format!("credentials: {e}")))?;
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(crate::ids::random32()?.get(..24).unwrap_or(&[0; 24]));
    let sealed = cipher(master_seed)?
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: source_id.as_bytes(),
            },
        )
        .map_err(|_| Error::Internal("cannot seal credentials".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(STANDARD.encode(out))
}

pub fn open(master_seed: &[u8; 32], source_id: &str, sealed: &str) -> Result<Credentials> {
    let unusable = || {
        Error::Unavailable(
            "the source's stored credentials cannot be opened (was the master key changed?)".into(),
        )
    };
    let bytes = STANDARD.decode(sealed).map_err(|_| unusable())?;
    if bytes.len() < 24 {
        return Err(unusable());
    }
    let (nonce, body) = bytes.split_at(24);
    let plain = cipher(master_seed)?
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: source_id.as_bytes(),
            },
        )
        .map_err(|_| unusable())?;
    serde_json::from_slice(&plain).map_err(|_| unusable())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_credentials_open_only_for_their_source_and_key() {
        let creds = Credentials::Token {
            token: "api-token".into(),
        };
        let sealed = seal(&[1; 32], "src-1", &creds).unwrap();
        assert!(!sealed.contains("api-token"));
        assert_eq!(open(&[1; 32], "src-1", &sealed).unwrap(), creds);
        assert!(open(&[1; 32], "src-2", &sealed).is_err());
        assert!(open(&[2; 32], "src-1", &sealed).is_err());
        assert!(format!("{creds:?}").contains(".."));
    }

    #[test]
    fn tokens_use_each_vendors_scheme() {
        let token = Credentials::Token { token: "t".into() };
        assert_eq!(token.header(Vendor::Netskope).0, "Netskope-Api-Token");
        assert_eq!(token.header(Vendor::Mdca).1, "Token t");
        assert_eq!(token.header(Vendor::Generic).1, "Bearer t");
        let bad = Credentials::Header {
            name: "X Bad".into(),
            value: "v".into(),
        };
        assert!(bad.check().is_err());
    }
}
