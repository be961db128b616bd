//! The token's byte layout. Block `i` is signed by the key whose public half block `i-1` names
//! (the issuer's key for block 0), over a message that also binds the previous signature, so blocks
//! can be appended by whoever holds the token's proof key but never removed, reordered or spliced.
//!
//! ```text
//! token   = "igt1." base64url-nopad(body)
//! body    = version:u8(=1) kid_len:u8 kid nblocks:u8 block{nblocks} proof:[32]
//! block   = payload_len:u16be payload next_key:[32] signature:[64]
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::TokenError;

pub const PREFIX: &str = "igt1.";
const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"intentgate/token/v1\0";

pub const MAX_TOKEN_CHARS: usize = 16 * 1024;
pub const MAX_BLOCKS: usize = 16;
pub const MAX_PAYLOAD_BYTES: usize = 4096;
pub const MAX_KID_BYTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBlock {
    pub payload: Vec<u8>,
    pub next_key: [u8; 32],
    pub signature: [u8; 64],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawToken {
    pub kid: String,
    pub blocks: Vec<RawBlock>,
    /// Secret seed of the last block's `next_key`: whoever holds it may append a block.
    pub proof: [u8; 32],
}

/// The bytes block `index` is signed over.
pub fn signed_message(
    kid: &str,
    index: usize,
    previous_signature: Option<&[u8; 64]>,
    payload: &[u8],
    next_key: &[u8; 32],
) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DOMAIN.len() + kid.len() + payload.len() + 104);
    msg.extend_from_slice(DOMAIN);
    msg.push(u8::try_from(index).unwrap_or(u8::MAX));
    msg.push(u8::try_from(kid.len()).unwrap_or(u8::MAX));
    msg.extend_from_slice(kid.as_bytes());
    if let Some(sig) = previous_signature {
        msg.extend_from_slice(sig);
    }
    msg.extend_from_slice(
        &u16::try_from(payload.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    msg.extend_from_slice(payload);
    msg.extend_from_slice(next_key);
    msg
}

pub fn encode(token: &RawToken) -> Result<String, TokenError> {
    if token.kid.is_empty() || token.kid.len() > MAX_KID_BYTES {
        return Err(TokenError::Malformed("key id length out of range".into()));
    }
    if token.blocks.is_empty() || token.blocks.len() > MAX_BLOCKS {
        return Err(TokenError::Malformed(format!(
            "a token has 1 to {MAX_BLOCKS} blocks"
        )));
    }
    let mut body = Vec::with_capacity(64 + token.blocks.len() * 400);
    body.push(VERSION);
    body.push(u8::try_from(token.kid.len()).unwrap_or(u8::MAX));
    body.extend_from_slice(token.kid.as_bytes());
    body.push(u8::try_from(token.blocks.len()).unwrap_or(u8::MAX));
    for block in &token.blocks {
        if block.payload.is_empty() || block.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(TokenError::Malformed(format!(
                "a block payload has 1 to {MAX_PAYLOAD_BYTES} bytes"
            )));
        }
        body.extend_from_slice(
            &u16::try_from(block.payload.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        body.extend_from_slice(&block.payload);
        body.extend_from_slice(&block.next_key);
        body.extend_from_slice(&block.signature);
    }
    body.extend_from_slice(&token.proof);
    let text = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(body));
    if text.len() > MAX_TOKEN_CHARS {
        return Err(TokenError::Malformed("token too large".into()));
    }
    Ok(text)
}

pub fn decode(text: &str) -> Result<RawToken, TokenError> {
    if text.len() > MAX_TOKEN_CHARS {
        return Err(TokenError::Malformed("token too large".into()));
    }
    let body = text
        .strip_prefix(PREFIX)
        .ok_or_else(|| TokenError::Malformed("not an IntentGate token (prefix igt1.)".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed("token is not valid base64url".into()))?;
    let mut r = Reader { bytes: &bytes };
    if r.u8()? != VERSION {
        return Err(TokenError::Malformed("unsupported token version".into()));
    }
    let kid_len = usize::from(r.u8()?);
    if kid_len == 0 || kid_len > MAX_KID_BYTES {
        return Err(TokenError::Malformed("key id length out of range".into()));
    }
    let kid = std::str::from_utf8(r.take(kid_len)?)
        .ok()
        .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| TokenError::Malformed("key id is not printable ASCII".into()))?
        .to_owned();
    let count = usize::from(r.u8()?);
    if count == 0 || count > MAX_BLOCKS {
        return Err(TokenError::Malformed(format!(
            "a token has 1 to {MAX_BLOCKS} blocks"
        )));
    }
    let mut blocks = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(u16::from_be_bytes(r.array()?));
        if len == 0 || len > MAX_PAYLOAD_BYTES {
            return Err(TokenError::Malformed(
                "block payload length out of range".into(),
            ));
        }
        let payload = r.take(len)?.to_vec();
        let next_key = r.array()?;
        let signature = r.array()?;
        blocks.push(RawBlock {
            payload,
            next_key,
            signature,
        });
    }
    let proof = r.array()?;
    if !r.bytes.is_empty() {
        return Err(TokenError::Malformed(
            "trailing bytes after the token".into(),
        ));
    }
    Ok(RawToken { kid, blocks, proof })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        if self.bytes.len() < n {
            return Err(TokenError::Malformed("token is truncated".into()));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, TokenError> {
        Ok(self.array::<1>()?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TokenError> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RawToken {
        RawToken {
            kid: "ig-0011223344556677".into(),
            blocks: vec![RawBlock {
                payload: b"{}".to_vec(),
                next_key: [1; 32],
                signature: [2; 64],
            }],
            proof: [3; 32],
        }
    }

    #[test]
    fn encoding_round_trips() {
        let token = sample();
        let text = encode(&token).unwrap();
        assert!(text.starts_with(PREFIX));
        assert_eq!(decode(&text).unwrap(), token);
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        let text = encode(&sample()).unwrap();
        let body = URL_SAFE_NO_PAD.decode(&text[PREFIX.len()..]).unwrap();
        for cut in 0..body.len() {
            let t = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&body[..cut]));
            assert!(decode(&t).is_err(), "truncated at {cut}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(decode(&format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(longer))).is_err());
        assert!(decode("Bearer xyz").is_err());
        assert!(decode("igt1.!!!").is_err());
    }
}
