//! The JSON inside each signed block: the authority block's claims and each attenuation block's caveats.

use serde::{Deserialize, Serialize};

/// Token format version carried in the `v` claim.
pub const TOKEN_VERSION: u32 = 1;

/// Block 0, signed by the issuer's key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityClaims {
    pub v: u32,
    pub jti: String,
    pub iss: String,
    pub sub: String,
    pub tenant: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    #[serde(default)]
    pub caveats: Vec<Caveat>,
}

/// Blocks 1.., appended offline by a holder; they can only add restrictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttenuationClaims {
    pub jti: String,
    pub iat: i64,
    pub caveats: Vec<Caveat>,
}

/// A restriction carried by a block. Caveats of all blocks must hold at once.
#[derive(Debug, Clone, PartialEq)]
pub enum Caveat {
    /// Tool allow-list: exact names and `*` patterns.
    Tools(Vec<String>),
    /// At most this many `tools/call`s, counted against the block that carries it.
    MaxCalls(u64),
    /// Unix time of a fresh second factor (authority block only); Rego reads it.
    StepUpAt(i64),
    /// An earlier expiry (attenuation blocks only).
    Expires(i64),
    /// Base64 Ed25519 public key that verifies the holder's signed memory (authority block only).
    MemoryKey(String),
    /// The one resource (RFC 8707 URL) the token is for. Any block may set it once; no later block
    /// may name another, so a child keeps its parent's.
    Audience(String),
    /// A kind this verifier does not know. Always denied: ignoring it could widen the token.
    Unknown(String),
}

impl Caveat {
    pub fn kind(&self) -> &str {
        match self {
            Caveat::Tools(_) => "tools",
            Caveat::MaxCalls(_) => "max_calls",
            Caveat::StepUpAt(_) => "step_up_at",
            Caveat::Expires(_) => "expires",
            Caveat::MemoryKey(_) => "memory_key",
            Caveat::Audience(_) => "audience",
            Caveat::Unknown(kind) => kind,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum WireCaveat {
    Tools { tools: Vec<String> },
    MaxCalls { max_calls: u64 },
    StepUpAt { step_up_at: i64 },
    Expires { exp: i64 },
    MemoryKey { public_key: String },
    Audience { audience: String },
}

const KNOWN_KINDS: [&str; 6] = [
    "tools",
    "max_calls",
    "step_up_at",
    "expires",
    "memory_key",
    "audience",
];

impl Serialize for Caveat {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let wire = match self {
            Caveat::Tools(tools) => WireCaveat::Tools {
                tools: tools.clone(),
            },
            Caveat::MaxCalls(n) => WireCaveat::MaxCalls { max_calls: *n },
            Caveat::StepUpAt(at) => WireCaveat::StepUpAt { step_up_at: *at },
            Caveat::Expires(at) => WireCaveat::Expires { exp: *at },
            Caveat::MemoryKey(key) => WireCaveat::MemoryKey {
                public_key: key.clone(),
            },
            Caveat::Audience(audience) => WireCaveat::Audience {
                audience: audience.clone(),
            },
            Caveat::Unknown(kind) => {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("kind", kind)?;
                return map.end();
            }
        };
        wire.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Caveat {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        let kind = value
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| D::Error::custom("caveat without a string `kind`"))?;
        if !KNOWN_KINDS.contains(&kind) {
            return Ok(Caveat::Unknown(kind.to_owned()));
        }
        let wire = WireCaveat::deserialize(value).map_err(D::Error::custom)?;
        Ok(match wire {
            WireCaveat::Tools { tools } => Caveat::Tools(tools),
            WireCaveat::MaxCalls { max_calls } => Caveat::MaxCalls(max_calls),
            WireCaveat::StepUpAt { step_up_at } => Caveat::StepUpAt(step_up_at),
            WireCaveat::Expires { exp } => Caveat::Expires(exp),
            WireCaveat::MemoryKey { public_key } => Caveat::MemoryKey(public_key),
            WireCaveat::Audience { audience } => Caveat::Audience(audience),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caveats_round_trip_and_unknown_kinds_are_kept() {
        let json = r#"[{"kind":"tools","tools":["a","b*"]},{"kind":"max_calls","max_calls":5},{"kind":"audience","audience":"https://mcp.example.com/v1/mcp"},{"kind":"geo_fence","region":"eu"}]"#;
        let caveats: Vec<Caveat> = serde_json::from_str(json).unwrap();
        assert_eq!(
            caveats,
            vec![
                Caveat::Tools(vec!["a".into(), "b*".into()]),
                Caveat::MaxCalls(5),
                Caveat::Audience("https://mcp.example.com/v1/mcp".into()),
                Caveat::Unknown("geo_fence".into())
            ]
        );
        let back = serde_json::to_string(&caveats[..3]).unwrap();
        assert_eq!(
            back,
            r#"[{"kind":"tools","tools":["a","b*"]},{"kind":"max_calls","max_calls":5},{"kind":"audience","audience":"https://mcp.example.com/v1/mcp"}]"#
        );
    }

    #[test]
    fn malformed_known_caveats_are_errors() {
        for json in [
            r#"{"kind":"max_calls","max_calls":-1}"#,
            r#"{"kind":"tools","tools":"a"}"#,
            r#"{"kind":"tools","tools":["a"],"extra":1}"#,
            r#"{"max_calls":3}"#,
            r#"{"kind":"audience","audience":7}"#,
        ] {
            assert!(serde_json::from_str::<Caveat>(json).is_err(), "{json}");
        }
    }
}
