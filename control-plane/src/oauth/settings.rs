//! The authorization server's configuration from `INTENTGATE_*` variables, read once at start:
//! its issuer (the gateway's public base URL) and the proxies whose `X-Forwarded-For` names the
//! source of a token request.

use std::net::IpAddr;

/// `INTENTGATE_PUBLIC_URL`.
pub const PUBLIC_URL: &str = "INTENTGATE_PUBLIC_URL";
/// `INTENTGATE_TRUSTED_PROXIES`.
pub const TRUSTED_PROXIES: &str = "INTENTGATE_TRUSTED_PROXIES";
pub const DEFAULT_TRUSTED_PROXIES: &str = "127.0.0.0/8,::1/128";
pub const TOKEN_PATH: &str = "/oauth/token";
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";

/// The issuer identifier (RFC 8414 §2): an http(s) URL without query or fragment, kept without a
/// trailing slash so it reads the same in metadata, in `aud` checks and in tokens' `iss`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    url: String,
    path: String,
}

impl Issuer {
    pub fn parse(text: &str) -> Result<Issuer, String> {
        let text = text.trim();
        let url = reqwest::Url::parse(text)
            .map_err(|_| format!("{PUBLIC_URL} must be an absolute http(s) URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!("{PUBLIC_URL} must be an absolute http(s) URL"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{PUBLIC_URL} must have no query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{PUBLIC_URL} must not carry credentials"));
        }
        let path = url.path().trim_end_matches('/').to_owned();
        let origin = url.origin().ascii_serialization();
        if url.scheme() == "http" {
            tracing::warn!(
                issuer = %origin,
                "{PUBLIC_URL} is plain http: clients send their secrets to the token endpoint, so \
                 serve it over https outside a test"
            );
        }
        Ok(Issuer {
            url: format!("{origin}{path}"),
            path,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The issuer's path ("" at the root): RFC 8414 puts it after the well-known name.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}{TOKEN_PATH}", self.url)
    }

    pub fn authorization_endpoint(&self) -> String {
        format!("{}{AUTHORIZE_PATH}", self.url)
    }

    /// The audiences a JWT addressed to this server may carry (RFC 7523 §3): the issuer or the
    /// token endpoint.
    pub fn audiences(&self) -> Vec<String> {
        vec![self.url.clone(), self.token_endpoint()]
    }
}

/// An address range: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    network: IpAddr,
    prefix: u8,
}

impl Range {
    pub fn parse(text: &str) -> Result<Range, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{TRUSTED_PROXIES}: {text:?} is not an address or CIDR range"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("{TRUSTED_PROXIES}: {text:?} has a bad prefix length"))?,
        };
        Ok(Range { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `None`: the OAuth endpoints answer 503 until `INTENTGATE_PUBLIC_URL` is set.
    pub issuer: Option<Issuer>,
    pub trusted_proxies: Vec<Range>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            issuer: None,
            trusted_proxies: parse_ranges(DEFAULT_TRUSTED_PROXIES).unwrap_or_default(),
        }
    }
}

fn parse_ranges(text: &str) -> Result<Vec<Range>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Range::parse)
        .collect()
}

impl Settings {
    /// Reads the variables through `get` (which treats empty values as unset); errors name the
    /// variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        Ok(Settings {
            issuer: get(PUBLIC_URL).map(|t| Issuer::parse(&t)).transpose()?,
            trusted_proxies: parse_ranges(
                &get(TRUSTED_PROXIES).unwrap_or_else(|| DEFAULT_TRUSTED_PROXIES.into()),
            )?,
        })
    }

    /// The source of a request from `peer`: the peer itself, unless it is a trusted proxy; then the
    /// nearest `X-Forwarded-For` entry that is not a trusted proxy (each proxy appends the address it
    /// saw, so entries further left are whatever the client wrote).
    pub fn source(&self, peer: Option<IpAddr>, forwarded_for: &[&str]) -> Option<IpAddr> {
        let mut source = peer?;
        let trusted = |ip: IpAddr| self.trusted_proxies.iter().any(|r| r.contains(ip));
        let hops = forwarded_for
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .rev();
        for hop in hops {
            if !trusted(source) {
                break;
            }
            match hop.parse::<IpAddr>() {
                Ok(ip) => source = ip,
                Err(_) => break,
            }
        }
        Some(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_is_normalised_and_bad_urls_are_named() {
        let issuer = Issuer::parse("https://GW.example.com:443/").unwrap();
        assert_eq!(issuer.as_str(), "https://gw.example.com");
        assert_eq!(
            issuer.token_endpoint(),
            "https://gw.example.com/oauth/token"
        );
        assert_eq!(issuer.path(), "");
        let pathed = Issuer::parse("http://localhost:8080/gateway/").unwrap();
        assert_eq!(pathed.as_str(), "http://localhost:8080/gateway");
        assert_eq!(pathed.path(), "/gateway");
        for bad in [
            "gw.example.com",
            "ftp://gw.example.com",
            "https://gw.example.com/?x=1",
            "https://gw.example.com/#f",
            "https://u:p@gw.example.com",
        ] {
            assert!(
                Issuer::parse(bad).unwrap_err().contains(PUBLIC_URL),
                "{bad}"
            );
        }
    }

    #[test]
    fn ranges_contain_their_addresses() {
        let loopback = Range::parse("127.0.0.0/8").unwrap();
        assert!(loopback.contains("127.1.2.3".parse().unwrap()));
        assert!(loopback.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!loopback.contains("10.0.0.1".parse().unwrap()));
        let pods = Range::parse("10.0.0.0/16").unwrap();
        assert!(pods.contains("10.0.255.1".parse().unwrap()));
        assert!(!pods.contains("10.1.0.1".parse().unwrap()));
        assert!(
            Range::parse("::/0")
                .unwrap()
                .contains("2001:db8::1".parse().unwrap())
        );
        assert!(
            Range::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/a", "::/129"] {
            assert!(Range::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_source_is_the_first_untrusted_hop() {
        let settings = Settings::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            settings.source(Some(ip("192.0.2.7")), &["198.51.100.1"]),
            Some(ip("192.0.2.7"))
        );
        assert_eq!(
            settings.source(Some(ip("127.0.0.1")), &["203.0.113.9, 198.51.100.1"]),
            Some(ip("198.51.100.1")),
            "the entry the local proxy appended, not what the client wrote before it"
        );
        assert_eq!(
            settings.source(Some(ip("127.0.0.1")), &[]),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            settings.source(Some(ip("127.0.0.1")), &["junk"]),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(settings.source(None, &["198.51.100.1"]), None);
        let settings = Settings::from_lookup(|name| {
            (name == TRUSTED_PROXIES).then(|| "10.0.0.0/8".to_owned())
        })
        .unwrap();
        assert_eq!(
            settings.source(Some(ip("10.1.1.1")), &["198.51.100.1, 10.2.2.2"]),
            Some(ip("198.51.100.1"))
        );
        assert_eq!(
            settings.source(Some(ip("127.0.0.1")), &["198.51.100.1"]),
            Some(ip("127.0.0.1"))
        );
        assert!(
            Settings::from_lookup(|name| (name == TRUSTED_PROXIES).then(|| "x".into())).is_err()
        );
    }
}
