//! Where the control plane may connect on a tenant's behalf (discovery pull sources, the JWKS of
//! trusted issuers and OAuth clients). A URL a per-tenant admin set reaches public addresses only:
//! otherwise the control plane would fetch internal services on that admin's behalf and report how
//! they answered (server-side request forgery). The superadmin may point one anywhere, an internal
//! service included. Names are checked when resolved, for every connection, so a name that later
//! resolves inward (DNS rebinding) is refused too. [`Clients`] holds the two HTTP clients, and
//! [`read_bounded`] reads an answer up to a size limit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::{Error, Result};

/// Longest URL accepted for a fetched endpoint.
pub const MAX_URL_CHARS: usize = 2048;

/// A fetched URL is HTTPS, so credentials and keys never cross a network in clear; plain HTTP is
/// accepted only on the loopback interface (a local collector, the tests). `field` names the URL
/// in the message.
pub fn check_url(field: &str, url: &str) -> std::result::Result<(), String> {
    let bad = |m: &str| Err(format!("{field} {m}"));
    if url.chars().count() > MAX_URL_CHARS {
        return bad(&format!("must be at most {MAX_URL_CHARS} characters"));
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return bad("must be an absolute http(s) URL");
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return bad("must not carry credentials");
    }
    let Some(host) = parsed.host_str() else {
        return bad("must name a host");
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => bad("must use https (plain http only to a loopback address)"),
        _ => bad("must be an absolute http(s) URL"),
    }
}

/// The HTTP clients for fetches made on a tenant's behalf: no redirects (a redirect could carry
/// credentials to another host, or lead inward), bounded connect and total time. `public` connects
/// to public addresses only.
pub struct Clients {
    any: reqwest::Client,
    public: reqwest::Client,
}

impl Clients {
    pub fn new(user_agent: &str, connect: Duration, total: Duration) -> Result<Self> {
        let builder = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(connect)
                .timeout(total)
                .user_agent(user_agent)
        };
        let built = |b: reqwest::ClientBuilder| {
            b.build()
                .map_err(|e| Error::Internal(format!("http client: {e}")))
        };
        Ok(Clients {
            any: built(builder())?,
            public: built(builder().dns_resolver(public_only()))?,
        })
    }

    /// The client for `url`, or why it may not be fetched: `private_reach` when the superadmin set
    /// it. Literal addresses never reach the resolver, so they are checked here.
    pub fn for_url(
        &self,
        url: &str,
        private_reach: bool,
    ) -> std::result::Result<&reqwest::Client, String> {
        if private_reach {
            return Ok(&self.any);
        }
        if names_private_endpoint(url) {
            return Err(
                "the URL is not a public address; an internal one takes the superadmin token"
                    .to_owned(),
            );
        }
        Ok(&self.public)
    }
}

/// Sends `request` and reads a successful answer of at most `max` bytes. Errors are short
/// and say nothing of the answer's body: a tenant admin may read them, and the URL may be anything.
pub async fn fetch_bounded(
    request: reqwest::RequestBuilder,
    max: usize,
) -> std::result::Result<Vec<u8>, String> {
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            "the endpoint timed out".to_owned()
        } else if e.is_connect() {
            "cannot connect to the endpoint".to_owned()
        } else {
            "the request to the endpoint failed".to_owned()
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the endpoint answered HTTP {}", status.as_u16()));
    }
    read_bounded(response, max).await
}

/// The body of `response`, refused once it exceeds `max` bytes.
pub async fn read_bounded(
    response: reqwest::Response,
    max: usize,
) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| "the answer was cut off".to_owned())?;
        if body.len() + chunk.len() > max {
            return Err(format!("the answer exceeds {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether `ip` is on the public internet: not loopback, private, link-local, shared (CGNAT),
/// unspecified, broadcast, multicast, documentation or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
}

/// Whether an endpoint URL names, on its face, a host that is not public (see [`names_private_host`]);
/// a URL that does not parse names none (its validation is the caller's).
pub fn names_private_endpoint(endpoint: &str) -> bool {
    reqwest::Url::parse(endpoint)
        .ok()
        .and_then(|url| url.host_str().map(names_private_host))
        .unwrap_or(false)
}

/// Whether a host is, on its face, not public: `localhost` or a non-public literal. Names are left
/// to [`PublicOnly`] at connection time.
pub fn names_private_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| !is_public(ip))
}

/// A resolver that answers only the public addresses of a name, and fails when it has none.
#[derive(Debug, Default)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// [`PublicOnly`] for a client builder.
pub fn public_only() -> Arc<PublicOnly> {
    Arc::new(PublicOnly)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn private_hosts_are_named_on_their_face() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "[::1]", "10.0.0.8"] {
            assert!(names_private_host(host), "{host}");
        }
        for host in ["tenant.goskope.com", "8.8.8.8"] {
            assert!(!names_private_host(host), "{host}");
        }
        assert!(names_private_endpoint("https://[::1]:8443/export"));
        assert!(!names_private_endpoint("https://tenant.goskope.com/export"));
    }

    #[test]
    fn fetched_urls_are_https_or_loopback_http_without_credentials() {
        for good in [
            "https://idp.example.com/jwks",
            "http://127.0.0.1:8000/x",
            "http://localhost/x",
            "http://[::1]:9/x",
        ] {
            assert!(check_url("jwks_uri", good).is_ok(), "{good}");
        }
        for bad in [
            "http://idp.example.com/jwks",
            "ftp://idp.example.com/jwks",
            "https://user:pw@idp.example.com/jwks",
            "not a url",
            "/relative",
        ] {
            let err = check_url("jwks_uri", bad).unwrap_err();
            assert!(err.starts_with("jwks_uri "), "{bad}: {err}");
        }
        let long = format!("https://idp.example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(check_url("jwks_uri", &long).is_err());
    }

    #[tokio::test]
    async fn names_that_resolve_inward_are_refused_when_resolved() {
        let name: Name = "localhost".parse().unwrap();
        let refused = PublicOnly.resolve(name).await;
        assert!(refused.is_err());
    }
}
