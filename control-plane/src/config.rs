//! Configuration from `INTENTGATE_*` environment variables, checked once at start so that a
//! misconfigured control plane refuses to run instead of failing requests later.

use std::net::SocketAddr;

use crate::auth::{MIN_TOKEN_CHARS, Secret};
use crate::keys::MasterSeed;
use crate::validate;

/// Used when `INTENTGATE_DATABASE_URL` is unset: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://intentgate.db?mode=rwc";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8081";
/// Where filters reach FilterSync (gRPC).
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:8082";
/// How often each replica reads the state version when `INTENTGATE_SYNC_POLL_MS` is unset.
pub const DEFAULT_SYNC_POLL_MS: u64 = 1000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "no admin token configured: set INTENTGATE_ADMIN_TOKEN and/or INTENTGATE_TENANT_ADMIN_TOKENS"
    )]
    NoAdminToken,
    #[error("{0} must be at least {MIN_TOKEN_CHARS} characters")]
    WeakToken(String),
    #[error("INTENTGATE_TENANT_ADMIN_TOKENS entry {0}: {1}")]
    TenantTokens(usize, String),
    #[error("INTENTGATE_MASTER_KEY: {0}")]
    MasterKey(String),
    #[error("INTENTGATE_DATABASE_URL: {0}")]
    DatabaseUrl(String),
    #[error("INTENTGATE_READ_DATABASE_URL: {0}")]
    ReadDatabaseUrl(String),
    #[error("INTENTGATE_SYNC_POLL_MS: {0:?} is not a whole number of milliseconds from 0 to 60000")]
    SyncPoll(String),
    #[error("INTENTGATE_HTTP_ADDR: {0:?} is not a socket address (host:port)")]
    HttpAddr(String),
    #[error("INTENTGATE_GRPC_ADDR: {0:?} is not a socket address (host:port)")]
    GrpcAddr(String),
    /// A discovery or reports variable; the message names it.
    #[error("{0}")]
    Discovery(String),
    /// An audit delivery or tree head variable; the message names it.
    #[error("{0}")]
    Audit(String),
    /// An approvals variable; the message names it.
    #[error("{0}")]
    Approvals(String),
    /// An OAuth authorization server variable; the message names it.
    #[error("{0}")]
    OAuth(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `None`: load the seed persisted in the database, or generate and persist one.
    pub master_seed: Option<MasterSeed>,
    pub admin_token: Option<Secret>,
    /// `(tenant, token)` pairs.
    pub tenant_admin_tokens: Vec<(String, Secret)>,
    pub database_url: String,
    /// `INTENTGATE_READ_DATABASE_URL`: a Postgres read replica for the audit log's reads.
    pub read_database_url: Option<String>,
    /// `INTENTGATE_SYNC_POLL_MS`: how often the state version is read regardless of notifications
    /// from other replicas; `None` (0) relies on the notifications alone.
    pub sync_poll: Option<std::time::Duration>,
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// `INTENTGATE_FILTER_TOKEN`: when set, filters must present it on every gRPC call.
    pub filter_token: Option<Secret>,
    /// Discovery sync and reports tokens, and the AI catalog's additions.
    pub discovery: crate::discovery::Settings,
    /// SIEM and webhook destinations of the audit log.
    pub delivery: crate::delivery::DeliveryConfig,
    /// `INTENTGATE_AUDIT_TREE_HEAD_INTERVAL_SECS`: how often tree heads are signed; zero: only on demand.
    pub tree_head_interval: std::time::Duration,
    /// `INTENTGATE_APPROVAL_GRACE_MS`: when the control plane ends held calls' approvals itself.
    pub approvals: crate::approvals::Settings,
    /// The OAuth authorization server's issuer and trusted proxies.
    pub oauth: crate::oauth::Settings,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let master_seed = get("INTENTGATE_MASTER_KEY")
            .map(|text| {
                intentgate_core::token::IssuerKey::from_base64_seed(&text)
                    .map(|key| MasterSeed(*key.seed()))
                    .map_err(|e| ConfigError::MasterKey(e.to_string()))
            })
            .transpose()?;
        let admin_token = get("INTENTGATE_ADMIN_TOKEN").map(|t| Secret(t.trim().to_owned()));
        if let Some(token) = &admin_token {
            check_strength(&token.0, "INTENTGATE_ADMIN_TOKEN")?;
        }
        let tenant_admin_tokens = match get("INTENTGATE_TENANT_ADMIN_TOKENS") {
            Some(text) => parse_tenant_tokens(&text, admin_token.as_ref())?,
            None => Vec::new(),
        };
        if admin_token.is_none() && tenant_admin_tokens.is_empty() {
            return Err(ConfigError::NoAdminToken);
        }
        let database_url =
            get("INTENTGATE_DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        check_database_url(&database_url)?;
        let read_database_url = get("INTENTGATE_READ_DATABASE_URL");
        if let Some(url) = &read_database_url {
            check_read_database_url(url, &database_url)?;
        }
        let sync_poll = match get("INTENTGATE_SYNC_POLL_MS") {
            None => Some(std::time::Duration::from_millis(DEFAULT_SYNC_POLL_MS)),
            Some(text) => match text.trim().parse::<u64>() {
                Ok(0) => None,
                Ok(ms) if ms <= 60_000 => Some(std::time::Duration::from_millis(ms)),
                _ => return Err(ConfigError::SyncPoll(text)),
            },
        };
        let addr_text = get("INTENTGATE_HTTP_ADDR").unwrap_or_else(|| DEFAULT_HTTP_ADDR.into());
        let http_addr = addr_text
            .trim()
            .parse()
            .map_err(|_| ConfigError::HttpAddr(addr_text.clone()))?;
        let discovery =
            crate::discovery::Settings::from_lookup(get).map_err(ConfigError::Discovery)?;
        let grpc_text = get("INTENTGATE_GRPC_ADDR").unwrap_or_else(|| DEFAULT_GRPC_ADDR.into());
        let grpc_addr = grpc_text
            .trim()
            .parse()
            .map_err(|_| ConfigError::GrpcAddr(grpc_text.clone()))?;
        let filter_token = get("INTENTGATE_FILTER_TOKEN").map(|t| Secret(t.trim().to_owned()));
        if let Some(token) = &filter_token {
            check_strength(&token.0, "INTENTGATE_FILTER_TOKEN")?;
        }
        Ok(Config {
            master_seed,
            admin_token,
            tenant_admin_tokens,
            database_url,
            read_database_url,
            sync_poll,
            http_addr,
            grpc_addr,
            filter_token,
            discovery,
            delivery: crate::delivery::DeliveryConfig::from_lookup(&get)
                .map_err(ConfigError::Audit)?,
            tree_head_interval: crate::audit::tree::heads::interval(&get)
                .map_err(ConfigError::Audit)?,
            approvals: crate::approvals::Settings::from_lookup(&get)
                .map_err(ConfigError::Approvals)?,
            oauth: crate::oauth::Settings::from_lookup(get).map_err(ConfigError::OAuth)?,
        })
    }
}

fn check_strength(token: &str, what: &str) -> Result<(), ConfigError> {
    if token.chars().count() < MIN_TOKEN_CHARS {
        return Err(ConfigError::WeakToken(what.into()));
    }
    Ok(())
}

/// `tenant:token,tenant:token`. Every token must be distinct: a shared token would make the
/// tenant it grants ambiguous.
fn parse_tenant_tokens(
    text: &str,
    admin: Option<&Secret>,
) -> Result<Vec<(String, Secret)>, ConfigError> {
    let mut out: Vec<(String, Secret)> = Vec::new();
    for (index, entry) in text.split(',').enumerate() {
        let n = index + 1;
        let fail = |why: &str| ConfigError::TenantTokens(n, why.into());
        let (tenant, token) = entry
            .trim()
            .split_once(':')
            .ok_or_else(|| fail("expected tenant:token"))?;
        let (tenant, token) = (tenant.trim(), token.trim());
        validate::assignable_tenant(tenant).map_err(|e| fail(&e))?;
        if token.chars().count() < MIN_TOKEN_CHARS {
            return Err(fail(&format!(
                "the token must be at least {MIN_TOKEN_CHARS} characters"
            )));
        }
        if admin.is_some_and(|a| a.0 == token) || out.iter().any(|(_, t)| t.0 == token) {
            return Err(fail("the token is already used by another admin"));
        }
        out.push((tenant.to_owned(), Secret(token.to_owned())));
    }
    Ok(out)
}

/// A read replica serves a Postgres primary's audit log: SQLite has none.
fn check_read_database_url(url: &str, primary: &str) -> Result<(), ConfigError> {
    let postgres = |u: &str| {
        let lower = u.to_ascii_lowercase();
        lower.starts_with("postgres://") || lower.starts_with("postgresql://")
    };
    if !postgres(url) {
        return Err(ConfigError::ReadDatabaseUrl(
            "expected postgres://… (a streaming replica of the primary)".into(),
        ));
    }
    if !postgres(primary) {
        return Err(ConfigError::ReadDatabaseUrl(
            "a read replica needs a Postgres INTENTGATE_DATABASE_URL".into(),
        ));
    }
    Ok(())
}

fn check_database_url(url: &str) -> Result<(), ConfigError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return Ok(());
    }
    if !lower.starts_with("sqlite:") {
        return Err(ConfigError::DatabaseUrl(
            "expected sqlite://<file> or postgres://…".into(),
        ));
    }
    // The audit chain must outlive the process, and verify reads the file directly.
    if lower.contains(":memory:") || lower.contains("mode=memory") {
        return Err(ConfigError::DatabaseUrl(
            "an in-memory SQLite database would lose the audit chain; use a file".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SUPER: &str = "super-secret-token-1";

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply() {
        let config = load(&[("INTENTGATE_ADMIN_TOKEN", SUPER)]).unwrap();
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.http_addr.to_string(), DEFAULT_HTTP_ADDR);
        assert!(config.master_seed.is_none());
    }

    #[test]
    fn refuses_to_start_without_any_admin_token() {
        assert_eq!(load(&[]).unwrap_err(), ConfigError::NoAdminToken);
        assert_eq!(
            load(&[("INTENTGATE_ADMIN_TOKEN", "  ")]).unwrap_err(),
            ConfigError::NoAdminToken
        );
    }

    #[test]
    fn tenant_tokens_parse_and_malformed_lists_fail() {
        let config = load(&[(
            "INTENTGATE_TENANT_ADMIN_TOKENS",
            "acme:acme-token-0123456789, globex:globex-token-012345",
        )])
        .unwrap();
        assert_eq!(config.tenant_admin_tokens.len(), 2);
        assert_eq!(config.tenant_admin_tokens[1].0, "globex");
        for bad in [
            "acme",
            "acme:short",
            ":acme-token-0123456789",
            "bad tenant:acme-token-0123456789",
            "a:acme-token-0123456789,b:acme-token-0123456789",
            // `_system` is the control plane's own chain, not a tenant one may administer.
            "_system:acme-token-0123456789",
        ] {
            let err = load(&[("INTENTGATE_TENANT_ADMIN_TOKENS", bad)]).unwrap_err();
            assert!(matches!(err, ConfigError::TenantTokens(..)), "{bad}: {err}");
        }
        let reused = load(&[
            ("INTENTGATE_ADMIN_TOKEN", SUPER),
            ("INTENTGATE_TENANT_ADMIN_TOKENS", &format!("acme:{SUPER}")),
        ]);
        assert!(reused.is_err());
    }

    #[test]
    fn a_read_replica_is_postgres_beside_a_postgres_primary() {
        let with = |vars: &[(&str, &str)]| {
            let mut all = vec![("INTENTGATE_ADMIN_TOKEN", SUPER)];
            all.extend_from_slice(vars);
            load(&all)
        };
        let primary = (
            "INTENTGATE_DATABASE_URL",
            "postgres://db-primary/intentgate",
        );
        let config = with(&[
            primary,
            (
                "INTENTGATE_READ_DATABASE_URL",
                "postgres://db-standby/intentgate",
            ),
        ])
        .unwrap();
        assert_eq!(
            config.read_database_url.as_deref(),
            Some("postgres://db-standby/intentgate")
        );
        assert!(with(&[primary]).unwrap().read_database_url.is_none());
        for bad in [
            vec![
                primary,
                ("INTENTGATE_READ_DATABASE_URL", "sqlite://copy.db"),
            ],
            vec![(
                "INTENTGATE_READ_DATABASE_URL",
                "postgres://db-standby/intentgate",
            )],
        ] {
            assert!(
                matches!(with(&bad), Err(ConfigError::ReadDatabaseUrl(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_sync_poll_can_be_turned_off() {
        let poll = |ms: &str| {
            load(&[
                ("INTENTGATE_ADMIN_TOKEN", SUPER),
                ("INTENTGATE_SYNC_POLL_MS", ms),
            ])
            .unwrap()
            .sync_poll
        };
        assert_eq!(
            load(&[("INTENTGATE_ADMIN_TOKEN", SUPER)])
                .unwrap()
                .sync_poll,
            Some(std::time::Duration::from_secs(1))
        );
        assert_eq!(poll("250"), Some(std::time::Duration::from_millis(250)));
        assert_eq!(poll("0"), None);
    }

    #[test]
    fn bad_values_are_named() {
        let with =
            |name: &str, value: &str| load(&[("INTENTGATE_ADMIN_TOKEN", SUPER), (name, value)]);
        assert!(matches!(
            with("INTENTGATE_MASTER_KEY", "AAAA"),
            Err(ConfigError::MasterKey(_))
        ));
        assert!(matches!(
            with("INTENTGATE_GRPC_ADDR", "nowhere"),
            Err(ConfigError::GrpcAddr(_))
        ));
        assert!(matches!(
            with("INTENTGATE_FILTER_TOKEN", "short"),
            Err(ConfigError::WeakToken(_))
        ));
        assert!(matches!(
            with("INTENTGATE_HTTP_ADDR", "nowhere"),
            Err(ConfigError::HttpAddr(_))
        ));
        assert!(matches!(
            with("INTENTGATE_DATABASE_URL", "mysql://x"),
            Err(ConfigError::DatabaseUrl(_))
        ));
        assert!(matches!(
            with("INTENTGATE_DATABASE_URL", "sqlite::memory:"),
            Err(ConfigError::DatabaseUrl(_))
        ));
        assert!(matches!(
            with("INTENTGATE_ADMIN_TOKEN", "short"),
            Err(ConfigError::WeakToken(_))
        ));
        assert!(matches!(
            with("INTENTGATE_SYNC_POLL_MS", "soon"),
            Err(ConfigError::SyncPoll(_))
        ));
        assert!(matches!(
            with("INTENTGATE_SYNC_POLL_MS", "60001"),
            Err(ConfigError::SyncPoll(_))
        ));
        assert!(matches!(
            with("INTENTGATE_PUBLIC_URL", "gw.example.com"),
            Err(ConfigError::OAuth(m)) if m.contains("INTENTGATE_PUBLIC_URL")
        ));
        assert!(matches!(
            with("INTENTGATE_TRUSTED_PROXIES", "10.0.0.0/99"),
            Err(ConfigError::OAuth(m)) if m.contains("INTENTGATE_TRUSTED_PROXIES")
        ));
        assert_eq!(
            with("INTENTGATE_PUBLIC_URL", "http://localhost:8080/")
                .unwrap()
                .oauth
                .issuer
                .unwrap()
                .as_str(),
            "http://localhost:8080"
        );
        let seed = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        assert_eq!(
            with("INTENTGATE_MASTER_KEY", seed)
                .unwrap()
                .master_seed
                .unwrap()
                .0,
            [1u8; 32]
        );
    }
}
