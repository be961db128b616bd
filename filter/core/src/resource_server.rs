//! The gateway as an OAuth 2.1 resource server in MCP's sense: its Protected Resource Metadata
//! (RFC 9728), the `WWW-Authenticate` challenge of its 401 answers (RFC 6750 §3, RFC 9728 §5.1),
//! and which token audiences (RFC 8707 resources) it accepts.
//!
//! Every resource is the public base URL plus a served path (`https://gw.example.com/v1/mcp`); the
//! base URL alone names the whole gateway. A path's metadata is at the well-known prefix followed by
//! that path (RFC 9728 §3.1).

use serde::Deserialize;
use serde_json::json;

use crate::decision::Denial;
use crate::token::VerifiedToken;

/// Where RFC 9728 puts the metadata, before the resource's path.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The resource server's settings (the plugin configuration's `protected_resource`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectedResource {
    /// The gateway's public base URL, as clients address it (`https://gw.example.com`).
    pub url: String,
    /// Issuers of the authorization servers whose tokens are accepted (the control plane's
    /// `INTENTGATE_PUBLIC_URL`).
    pub authorization_servers: Vec<String>,
    /// The paths served as resources, each with its own metadata document.
    #[serde(default = "default_paths")]
    pub paths: Vec<String>,
    /// `scopes_supported` of the metadata; the authorization server's own by default.
    #[serde(default = "default_scopes")]
    pub scopes_supported: Vec<String>,
}

fn default_paths() -> Vec<String> {
    vec!["/v1/mcp".into(), "/v1/tool-call".into()]
}

fn default_scopes() -> Vec<String> {
    vec!["tool:*".into()]
}

/// What a well-known request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataAnswer {
    /// 200 with this JSON document.
    Document(String),
    /// No resource at this path, or no resource configured: 404.
    Unknown,
    /// Metadata is read with GET: 405.
    MethodNotAllowed,
}

/// The answer to a request for a metadata path, `None` when `path` is not one. Without settings
/// there is no metadata: the path is still answered (404), never taken for a tool-server request.
pub fn metadata_answer(
    resource: Option<&ProtectedResource>,
    http_method: &str,
    path: &str,
) -> Option<MetadataAnswer> {
    let bare = path.split(['?', '#']).next().unwrap_or_default();
    let suffix = bare.strip_prefix(WELL_KNOWN)?;
    if !(suffix.is_empty() || suffix.starts_with('/')) {
        return None;
    }
    if !matches!(http_method, "GET" | "HEAD") {
        return Some(MetadataAnswer::MethodNotAllowed);
    }
    Some(resource.map_or(MetadataAnswer::Unknown, |r| r.metadata(suffix)))
}

/// Why a request is challenged (RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No credentials: the challenge carries no error code.
    Missing,
    /// A token was sent and refused (bad signature, expired, revoked, another tenant or resource).
    InvalidToken,
}

impl ProtectedResource {
    /// Checks the settings once, at load.
    pub fn validate(&self) -> Result<(), String> {
        let absolute = |text: &str| {
            (text.starts_with("https://") || text.starts_with("http://"))
                && !text.contains(['#', '?', ' '])
        };
        if !absolute(&self.url) {
            return Err(format!(
                "protected_resource.url {:?} must be an http(s) URL without query or fragment",
                self.url
            ));
        }
        if self.authorization_servers.is_empty()
            || !self.authorization_servers.iter().all(|s| absolute(s))
        {
            return Err("protected_resource.authorization_servers must list the issuer URL of at least one authorization server".into());
        }
        if let Some(bad) = self
            .paths
            .iter()
            .find(|p| !p.starts_with('/') || p.len() < 2 || p.contains(['?', '#', ' ']))
        {
            return Err(format!(
                "protected_resource.paths: {bad:?} must be an absolute path"
            ));
        }
        Ok(())
    }

    fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// The served path a request path names (its query left out), if any.
    fn served<'a>(&self, request_path: &'a str) -> Option<&'a str> {
        let path = request_path.split(['?', '#']).next().unwrap_or_default();
        self.paths.iter().any(|p| p == path).then_some(path)
    }

    /// The resource a request to `request_path` is for: its served path, else the whole gateway.
    pub fn resource_for(&self, request_path: &str) -> String {
        format!("{}{}", self.base(), self.served(request_path).unwrap_or(""))
    }

    /// The URL of the metadata of the resource a request to `request_path` is for.
    pub fn metadata_url(&self, request_path: &str) -> String {
        format!(
            "{}{WELL_KNOWN}{}",
            self.base(),
            self.served(request_path).unwrap_or("")
        )
    }

    /// The metadata of the resource at `suffix`, the path after [`WELL_KNOWN`].
    fn metadata(&self, suffix: &str) -> MetadataAnswer {
        let resource = match suffix {
            "" | "/" => self.base().to_owned(),
            served if self.paths.iter().any(|p| p == served) => {
                format!("{}{served}", self.base())
            }
            _ => return MetadataAnswer::Unknown,
        };
        let document = json!({
            "resource": resource,
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": ["header"],
            "scopes_supported": self.scopes_supported,
            "resource_name": "IntentGate",
        });
        MetadataAnswer::Document(document.to_string())
    }

    /// The `WWW-Authenticate` value of a 401 to a request for `request_path`.
    pub fn challenge(&self, request_path: &str, why: Challenge) -> String {
        let metadata = self.metadata_url(request_path);
        match why {
            Challenge::Missing => format!(r#"Bearer resource_metadata="{metadata}""#),
            Challenge::InvalidToken => {
                format!(r#"Bearer error="invalid_token", resource_metadata="{metadata}""#)
            }
        }
    }
}

impl ProtectedResource {
    /// Whether a token may be used for a request to `request_path`: one without an audience may
    /// (it is for its tenant wherever that is served); one with an audience must name this request's
    /// resource or the gateway as a whole.
    pub fn admits(&self, token: &VerifiedToken, request_path: &str) -> Result<(), Denial> {
        let Some(audience) = token.audience.as_deref() else {
            return Ok(());
        };
        let audience = audience.trim_end_matches('/');
        let resource = self.resource_for(request_path);
        if audience == self.base() || audience == resource {
            return Ok(());
        }
        Err(Denial::capability(format!(
            "the token is for the resource {audience}, not for {resource}"
        )))
    }
}

/// The challenge of a 401 when no resource is configured.
pub const BARE_CHALLENGE: &str = "Bearer";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn resource() -> ProtectedResource {
        serde_json::from_value(json!({
            "url": "https://gw.example.com/",
            "authorization_servers": ["https://gw.example.com"],
        }))
        .unwrap()
    }

    fn get(r: &ProtectedResource, path: &str) -> Option<MetadataAnswer> {
        metadata_answer(Some(r), "GET", path)
    }

    fn document(answer: Option<MetadataAnswer>) -> Value {
        match answer {
            Some(MetadataAnswer::Document(text)) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected a document, got {other:?}"),
        }
    }

    #[test]
    fn each_served_path_has_its_metadata_and_the_root_names_the_gateway() {
        let r = resource();
        let mcp = document(get(&r, "/.well-known/oauth-protected-resource/v1/mcp"));
        assert_eq!(mcp["resource"], "https://gw.example.com/v1/mcp");
        assert_eq!(
            mcp["authorization_servers"],
            json!(["https://gw.example.com"])
        );
        assert_eq!(mcp["bearer_methods_supported"], json!(["header"]));
        assert_eq!(mcp["scopes_supported"], json!(["tool:*"]));
        let direct = document(get(
            &r,
            "/.well-known/oauth-protected-resource/v1/tool-call?x=1",
        ));
        assert_eq!(direct["resource"], "https://gw.example.com/v1/tool-call");
        let root = document(get(&r, "/.well-known/oauth-protected-resource"));
        assert_eq!(root["resource"], "https://gw.example.com");
        assert_eq!(
            get(&r, "/.well-known/oauth-protected-resource/v1/admin"),
            Some(MetadataAnswer::Unknown)
        );
        assert_eq!(get(&r, "/.well-known/oauth-protected-resourcex"), None);
        assert_eq!(get(&r, "/v1/mcp"), None);
        assert_eq!(
            metadata_answer(Some(&r), "POST", WELL_KNOWN),
            Some(MetadataAnswer::MethodNotAllowed)
        );
        assert_eq!(
            metadata_answer(None, "GET", WELL_KNOWN),
            Some(MetadataAnswer::Unknown)
        );
    }

    #[test]
    fn challenges_point_to_the_metadata_of_the_requested_resource() {
        let r = resource();
        assert_eq!(
            r.challenge("/v1/mcp", Challenge::Missing),
            r#"Bearer resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/v1/mcp""#
        );
        assert_eq!(
            r.challenge("/v1/tool-call?trace=1", Challenge::InvalidToken),
            r#"Bearer error="invalid_token", resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/v1/tool-call""#
        );
        assert_eq!(
            r.challenge("/elsewhere", Challenge::Missing),
            r#"Bearer resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource""#
        );
    }

    #[test]
    fn settings_that_cannot_describe_a_resource_are_refused() {
        assert!(resource().validate().is_ok());
        for (field, value) in [
            ("url", json!("gw.example.com")),
            ("url", json!("https://gw.example.com/#x")),
            ("authorization_servers", json!([])),
            ("authorization_servers", json!(["issuer"])),
            ("paths", json!(["v1/mcp"])),
            ("paths", json!(["/"])),
        ] {
            let mut raw = json!({"url": "https://gw.example.com", "authorization_servers": ["https://as.example.com"]});
            raw[field] = value;
            let r: ProtectedResource = serde_json::from_value(raw).unwrap();
            assert!(r.validate().is_err(), "{field}");
        }
    }
}
