//! A token request's parameters (RFC 6749 §3.2: `application/x-www-form-urlencoded`): none may
//! appear twice, except `resource` (RFC 8707 allows several; this server issues for one), and one
//! sent without a value counts as omitted (§3.1).

use std::collections::BTreeMap;

use super::error::{OAuthError, OAuthResult};

/// Largest token request body read.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    params: BTreeMap<String, String>,
    resources: Vec<String>,
}

impl Form {
    pub fn parse(body: &[u8]) -> OAuthResult<Form> {
        if body.len() > MAX_FORM_BYTES {
            return Err(OAuthError::invalid_request(format!(
                "the request body exceeds {MAX_FORM_BYTES} bytes"
            )));
        }
        let mut form = Form::default();
        for (name, value) in form_urlencoded::parse(body) {
            if value.is_empty() {
                continue;
            }
            if name == "resource" {
                form.resources.push(value.into_owned());
                continue;
            }
            if form
                .params
                .insert(name.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name} is given more than once"
                )));
            }
        }
        Ok(form)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub fn require(&self, name: &str) -> OAuthResult<&str> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter {name} is required")))
    }

    /// The resource the token is for (RFC 8707 `resource`, or RFC 8693 `audience`, which must then
    /// agree): an absolute URI without fragment; at most one.
    pub fn audience(&self) -> OAuthResult<Option<String>> {
        let mut named: Vec<&str> = self.resources.iter().map(String::as_str).collect();
        if let Some(audience) = self.get("audience") {
            named.push(audience);
        }
        named.dedup();
        match named.as_slice() {
            [] => Ok(None),
            [one] => {
                intentgate_core::token::check_audience(one)
                    .map_err(|e| OAuthError::invalid_target(format!("resource {one:?}: {e}")))?;
                Ok(Some((*one).to_owned()))
            }
            _ => Err(OAuthError::invalid_target(
                "a token is issued for one resource: give one resource (or audience)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::Code;

    #[test]
    fn parameters_are_read_once_and_empty_ones_are_omitted() {
        let form = Form::parse(b"grant_type=client_credentials&scope=tool%3Aecho+tool%3Aread_*&x=")
            .unwrap();
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
        assert_eq!(form.get("scope"), Some("tool:echo tool:read_*"));
        assert_eq!(form.get("x"), None);
        assert_eq!(form.require("x").unwrap_err().code, Code::InvalidRequest);
        let twice = Form::parse(b"scope=a&scope=b").unwrap_err();
        assert_eq!(twice.code, Code::InvalidRequest);
        assert!(twice.description.contains("scope"));
        assert!(Form::parse(&vec![b'a'; MAX_FORM_BYTES + 1]).is_err());
    }

    #[test]
    fn one_resource_becomes_the_audience() {
        let none = Form::parse(b"grant_type=x").unwrap();
        assert_eq!(none.audience().unwrap(), None);
        let one = Form::parse(b"resource=https%3A%2F%2Fgw.example.com%2Fv1%2Fmcp").unwrap();
        assert_eq!(
            one.audience().unwrap().as_deref(),
            Some("https://gw.example.com/v1/mcp")
        );
        let agreeing = Form::parse(b"resource=https%3A%2F%2Fa&audience=https%3A%2F%2Fa").unwrap();
        assert_eq!(agreeing.audience().unwrap().as_deref(), Some("https://a"));
        for bad in [
            &b"resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb"[..],
            b"resource=https%3A%2F%2Fa&audience=https%3A%2F%2Fb",
            b"resource=https%3A%2F%2Fa%23frag",
            b"resource=relative%2Fpath",
        ] {
            let err = Form::parse(bad).unwrap().audience().unwrap_err();
            assert_eq!(
                err.code,
                Code::InvalidTarget,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
