//! Delivery configuration from `INTENTGATE_*` variables, checked at start: a destination is
//! configured when its address variable is set, and then every variable it needs must be valid, or
//! the control plane refuses to start with a message naming the variable. Secrets come from the
//! variable or from a file named by `<VARIABLE>_FILE` (never both), and never leave this process
//! except towards their destination.

use std::time::Duration;

use reqwest::Url;

use crate::auth::Secret;

/// Which events a destination receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    All,
    /// Denials, escalations and calls that required step-up authentication.
    Findings,
}

/// What every destination shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Most events per request (each destination may also cap bytes).
    pub batch_size: usize,
    /// How often an idle destination looks for new events.
    pub poll: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Per request (and per connection attempt).
    pub timeout: Duration,
    /// How long a replica's claim on a destination lasts without renewal.
    pub lease: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            batch_size: 500,
            poll: Duration::from_secs(1),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Splunk {
    pub url: Url,
    pub token: Secret,
    pub index: Option<String>,
    pub source: String,
    pub sourcetype: String,
    pub select: Selection,
}

#[derive(Debug, Clone)]
pub struct Datadog {
    pub url: Url,
    pub api_key: Secret,
    pub service: String,
    pub tags: Option<String>,
    pub select: Selection,
}

#[derive(Debug, Clone)]
pub struct Sentinel {
    /// `<data collection endpoint>/dataCollectionRules/<dcr>/streams/<stream>?api-version=…`.
    pub url: Url,
    /// `<authority>/<azure tenant>/oauth2/v2.0/token`.
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub select: Selection,
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: Url,
    pub secret: Secret,
    pub select: Selection,
}

#[derive(Debug, Clone)]
pub struct Syslog {
    pub host: String,
    pub port: u16,
    pub tls: Option<SyslogTls>,
    pub hostname: String,
    pub app_name: String,
    pub facility: u8,
    pub select: Selection,
}

#[derive(Debug, Clone)]
pub struct SyslogTls {
    /// PEM certificates to trust instead of the bundled web roots.
    pub ca_file: Option<std::path::PathBuf>,
    pub server_name: String,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryConfig {
    pub settings: Settings,
    pub splunk: Option<Splunk>,
    pub datadog: Option<Datadog>,
    pub sentinel: Option<Sentinel>,
    pub webhook: Option<Webhook>,
    pub syslog: Option<Syslog>,
}

/// The Logs Ingestion API version the requests name.
pub const SENTINEL_API_VERSION: &str = "2023-01-01";
const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Facility 13, "log audit" (RFC 5424 §6.2.1).
const DEFAULT_FACILITY: u8 = 13;

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl DeliveryConfig {
    /// Reads the variables through `get` (which treats empty values as unset).
    pub fn from_lookup(get: Lookup<'_>) -> Result<Self, String> {
        Ok(DeliveryConfig {
            settings: settings(get)?,
            splunk: splunk(get)?,
            datadog: datadog(get)?,
            sentinel: sentinel(get)?,
            webhook: webhook(get)?,
            syslog: syslog(get)?,
        })
    }
}

fn settings(get: Lookup<'_>) -> Result<Settings, String> {
    let d = Settings::default();
    let ms = |name: &str, default: Duration, min: u64| -> Result<Duration, String> {
        number(
            get,
            name,
            u64::try_from(default.as_millis()).unwrap_or(u64::MAX),
            min,
            86_400_000,
        )
        .map(Duration::from_millis)
    };
    let settings = Settings {
        batch_size: usize::try_from(number(
            get,
            "INTENTGATE_DELIVERY_BATCH_SIZE",
            500,
            1,
            10_000,
        )?)
        .unwrap_or(500),
        poll: ms("INTENTGATE_DELIVERY_POLL_MS", d.poll, 10)?,
        min_backoff: ms("INTENTGATE_DELIVERY_MIN_BACKOFF_MS", d.min_backoff, 1)?,
        max_backoff: ms("INTENTGATE_DELIVERY_MAX_BACKOFF_MS", d.max_backoff, 1)?,
        timeout: ms("INTENTGATE_DELIVERY_TIMEOUT_MS", d.timeout, 100)?,
        lease: ms("INTENTGATE_DELIVERY_LEASE_MS", d.lease, 1000)?,
    };
    if settings.max_backoff < settings.min_backoff {
        return Err(
            "INTENTGATE_DELIVERY_MAX_BACKOFF_MS must not be below INTENTGATE_DELIVERY_MIN_BACKOFF_MS"
                .into(),
        );
    }
    Ok(settings)
}

fn splunk(get: Lookup<'_>) -> Result<Option<Splunk>, String> {
    let Some(base) = get("INTENTGATE_SPLUNK_HEC_URL") else {
        return Ok(None);
    };
    Ok(Some(Splunk {
        url: endpoint(
            "INTENTGATE_SPLUNK_HEC_URL",
            &base,
            "/services/collector/event",
        )?,
        token: secret(get, "INTENTGATE_SPLUNK_HEC_TOKEN")?,
        index: get("INTENTGATE_SPLUNK_INDEX"),
        source: get("INTENTGATE_SPLUNK_SOURCE").unwrap_or_else(|| "intentgate".into()),
        sourcetype: get("INTENTGATE_SPLUNK_SOURCETYPE")
            .unwrap_or_else(|| "intentgate:audit".into()),
        select: selection(get, "INTENTGATE_SPLUNK_SELECT")?,
    }))
}

fn datadog(get: Lookup<'_>) -> Result<Option<Datadog>, String> {
    let url = match (
        get("INTENTGATE_DATADOG_URL"),
        get("INTENTGATE_DATADOG_SITE"),
    ) {
        (Some(url), _) => endpoint("INTENTGATE_DATADOG_URL", &url, "/api/v2/logs")?,
        (None, Some(site)) => endpoint(
            "INTENTGATE_DATADOG_SITE",
            &format!("https://http-intake.logs.{}", site.trim()),
            "/api/v2/logs",
        )?,
        (None, None) => return Ok(None),
    };
    Ok(Some(Datadog {
        url,
        api_key: secret(get, "INTENTGATE_DATADOG_API_KEY")?,
        service: get("INTENTGATE_DATADOG_SERVICE").unwrap_or_else(|| "intentgate".into()),
        tags: get("INTENTGATE_DATADOG_TAGS"),
        select: selection(get, "INTENTGATE_DATADOG_SELECT")?,
    }))
}

fn sentinel(get: Lookup<'_>) -> Result<Option<Sentinel>, String> {
    let Some(dce) = get("INTENTGATE_SENTINEL_DCE_URL") else {
        return Ok(None);
    };
    let path_part = |name: &str| -> Result<String, String> {
        let value = required(get, name)?;
        if value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            Ok(value)
        } else {
            Err(format!(
                "{name} may hold only letters, digits, '-', '_' and '.'"
            ))
        }
    };
    let dcr = path_part("INTENTGATE_SENTINEL_DCR_ID")?;
    let stream = path_part("INTENTGATE_SENTINEL_STREAM")?;
    let azure_tenant = path_part("INTENTGATE_SENTINEL_TENANT_ID")?;
    let mut url = endpoint(
        "INTENTGATE_SENTINEL_DCE_URL",
        &dce,
        &format!("/dataCollectionRules/{dcr}/streams/{stream}"),
    )?;
    url.set_query(Some(&format!("api-version={SENTINEL_API_VERSION}")));
    let authority =
        get("INTENTGATE_SENTINEL_AUTHORITY_URL").unwrap_or_else(|| DEFAULT_AUTHORITY.into());
    Ok(Some(Sentinel {
        url,
        token_url: endpoint(
            "INTENTGATE_SENTINEL_AUTHORITY_URL",
            &authority,
            &format!("/{azure_tenant}/oauth2/v2.0/token"),
        )?,
        client_id: required(get, "INTENTGATE_SENTINEL_CLIENT_ID")?,
        client_secret: secret(get, "INTENTGATE_SENTINEL_CLIENT_SECRET")?,
        select: selection(get, "INTENTGATE_SENTINEL_SELECT")?,
    }))
}

fn webhook(get: Lookup<'_>) -> Result<Option<Webhook>, String> {
    let Some(url) = get("INTENTGATE_WEBHOOK_URL") else {
        return Ok(None);
    };
    Ok(Some(Webhook {
        url: endpoint("INTENTGATE_WEBHOOK_URL", &url, "")?,
        secret: secret(get, "INTENTGATE_WEBHOOK_SECRET")?,
        select: selection(get, "INTENTGATE_WEBHOOK_SELECT")?,
    }))
}

fn syslog(get: Lookup<'_>) -> Result<Option<Syslog>, String> {
    let Some(addr) = get("INTENTGATE_SYSLOG_ADDR") else {
        return Ok(None);
    };
    let bad = || format!("INTENTGATE_SYSLOG_ADDR: {addr:?} is not host:port");
    let (host, port) = addr.trim().rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    if host.is_empty() {
        return Err(bad());
    }
    let tls = match flag(get, "INTENTGATE_SYSLOG_TLS")? {
        false => None,
        true => Some(SyslogTls {
            ca_file: get("INTENTGATE_SYSLOG_TLS_CA_FILE").map(Into::into),
            server_name: get("INTENTGATE_SYSLOG_TLS_SERVER_NAME").unwrap_or_else(|| host.clone()),
        }),
    };
    let hostname = get("INTENTGATE_SYSLOG_HOSTNAME")
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "-".into());
    Ok(Some(Syslog {
        host,
        port,
        tls,
        hostname: printable("INTENTGATE_SYSLOG_HOSTNAME", hostname, 255)?,
        app_name: printable(
            "INTENTGATE_SYSLOG_APP_NAME",
            get("INTENTGATE_SYSLOG_APP_NAME").unwrap_or_else(|| "intentgate".into()),
            48,
        )?,
        facility: u8::try_from(number(
            get,
            "INTENTGATE_SYSLOG_FACILITY",
            u64::from(DEFAULT_FACILITY),
            0,
            23,
        )?)
        .unwrap_or(DEFAULT_FACILITY),
        select: selection(get, "INTENTGATE_SYSLOG_SELECT")?,
    }))
}

/// An http(s) URL without credentials in it.
fn endpoint(name: &str, text: &str, path: &str) -> Result<Url, String> {
    let mut url = Url::parse(text.trim()).map_err(|e| format!("{name}: not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{name}: must be an http:// or https:// URL with a host"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{name}: put credentials in their own variable, not in the URL"
        ));
    }
    // A bare host gets the vendor's path; a URL with a path (a proxy, say) is used as given.
    if !path.is_empty() && (url.path() == "/" || url.path().is_empty()) {
        url.set_path(path);
    }
    Ok(url)
}

fn required(get: Lookup<'_>, name: &str) -> Result<String, String> {
    get(name)
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| format!("{name} is required by the destination configured beside it"))
}

/// The secret from `name`, or from the file `name_FILE` names (one trailing newline removed).
fn secret(get: Lookup<'_>, name: &str) -> Result<Secret, String> {
    let file_var = format!("{name}_FILE");
    let value = match (get(name), get(&file_var)) {
        (Some(_), Some(_)) => return Err(format!("set {name} or {file_var}, not both")),
        (Some(value), None) => value,
        (None, Some(path)) => std::fs::read_to_string(path.trim())
            .map_err(|e| format!("{file_var}: cannot read {}: {e}", path.trim()))?,
        (None, None) => {
            return Err(format!(
                "{name} (or {file_var}) is required by the destination configured beside it"
            ));
        }
    };
    let value = value.trim_end_matches(['\n', '\r']).to_owned();
    if value.trim().is_empty() {
        return Err(format!("{name} is empty"));
    }
    Ok(Secret(value))
}

fn selection(get: Lookup<'_>, name: &str) -> Result<Selection, String> {
    match get(name).as_deref().map(str::trim) {
        None | Some("all") => Ok(Selection::All),
        Some("findings") => Ok(Selection::Findings),
        Some(other) => Err(format!("{name}: {other:?} is neither all nor findings")),
    }
}

fn flag(get: Lookup<'_>, name: &str) -> Result<bool, String> {
    match get(name).as_deref().map(str::trim) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(format!("{name}: {other:?} is neither true nor false")),
    }
}

fn number(get: Lookup<'_>, name: &str, default: u64, min: u64, max: u64) -> Result<u64, String> {
    match get(name) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("{name}: {text:?} is not a whole number from {min} to {max}")),
    }
}

/// RFC 5424 header fields are printable US-ASCII without spaces.
fn printable(name: &str, value: String, max: usize) -> Result<String, String> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| (33..=126).contains(&b)) {
        return Err(format!(
            "{name}: {value:?} must be 1 to {max} printable ASCII characters without spaces"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<DeliveryConfig, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DeliveryConfig::from_lookup(&|name| map.get(name).cloned())
    }

    #[test]
    fn nothing_is_configured_by_default() {
        let config = load(&[]).unwrap();
        assert!(config.splunk.is_none() && config.webhook.is_none() && config.syslog.is_none());
        assert_eq!(config.settings, Settings::default());
    }

    #[test]
    fn destinations_get_their_vendor_paths() {
        let config = load(&[
            ("INTENTGATE_SPLUNK_HEC_URL", "https://splunk.example:8088"),
            ("INTENTGATE_SPLUNK_HEC_TOKEN", "hec-token"),
            ("INTENTGATE_DATADOG_SITE", "datadoghq.eu"),
            ("INTENTGATE_DATADOG_API_KEY", "dd-key"),
            (
                "INTENTGATE_SENTINEL_DCE_URL",
                "https://dce.westeurope-1.ingest.monitor.azure.com",
            ),
            ("INTENTGATE_SENTINEL_DCR_ID", "dcr-0123456789abcdef"),
            ("INTENTGATE_SENTINEL_STREAM", "Custom-IntentGateAudit_CL"),
            (
                "INTENTGATE_SENTINEL_TENANT_ID",
                "72f988bf-86f1-41af-91ab-2d7cd011db47",
            ),
            ("INTENTGATE_SENTINEL_CLIENT_ID", "app-id"),
            ("INTENTGATE_SENTINEL_CLIENT_SECRET", "app-secret"),
            ("INTENTGATE_SENTINEL_SELECT", "findings"),
        ])
        .unwrap();
        let splunk = config.splunk.unwrap();
        assert_eq!(
            splunk.url.as_str(),
            "https://splunk.example:8088/services/collector/event"
        );
        assert_eq!(splunk.select, Selection::All);
        assert_eq!(
            config.datadog.unwrap().url.as_str(),
            "https://http-intake.logs.datadoghq.eu/api/v2/logs"
        );
        let sentinel = config.sentinel.unwrap();
        assert_eq!(
            sentinel.url.as_str(),
            "https://dce.westeurope-1.ingest.monitor.azure.com/dataCollectionRules/\
             dcr-0123456789abcdef/streams/Custom-IntentGateAudit_CL?api-version=2023-01-01"
        );
        assert_eq!(
            sentinel.token_url.as_str(),
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
        );
        assert_eq!(sentinel.select, Selection::Findings);
    }

    #[test]
    fn secrets_come_from_files_and_never_from_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-a-file\n").unwrap();
        let path = path.to_str().unwrap();
        let config = load(&[
            ("INTENTGATE_WEBHOOK_URL", "https://hooks.example/in"),
            ("INTENTGATE_WEBHOOK_SECRET_FILE", path),
        ])
        .unwrap();
        assert_eq!(config.webhook.unwrap().secret.0, "from-a-file");
        let both = load(&[
            ("INTENTGATE_WEBHOOK_URL", "https://hooks.example/in"),
            ("INTENTGATE_WEBHOOK_SECRET", "x"),
            ("INTENTGATE_WEBHOOK_SECRET_FILE", path),
        ]);
        assert!(both.unwrap_err().contains("not both"));
    }

    #[test]
    fn bad_values_are_refused_naming_the_variable() {
        for (vars, named) in [
            (
                vec![("INTENTGATE_WEBHOOK_URL", "https://h.example")],
                "INTENTGATE_WEBHOOK_SECRET",
            ),
            (
                vec![
                    ("INTENTGATE_WEBHOOK_URL", "ftp://h.example"),
                    ("INTENTGATE_WEBHOOK_SECRET", "s"),
                ],
                "INTENTGATE_WEBHOOK_URL",
            ),
            (
                vec![
                    ("INTENTGATE_SPLUNK_HEC_URL", "https://user:pw@h.example"),
                    ("INTENTGATE_SPLUNK_HEC_TOKEN", "t"),
                ],
                "INTENTGATE_SPLUNK_HEC_URL",
            ),
            (
                vec![
                    ("INTENTGATE_WEBHOOK_URL", "https://h.example"),
                    ("INTENTGATE_WEBHOOK_SECRET", "s"),
                    ("INTENTGATE_WEBHOOK_SELECT", "some"),
                ],
                "INTENTGATE_WEBHOOK_SELECT",
            ),
            (
                vec![("INTENTGATE_SYSLOG_ADDR", "nowhere")],
                "INTENTGATE_SYSLOG_ADDR",
            ),
            (
                vec![
                    ("INTENTGATE_SYSLOG_ADDR", "h:514"),
                    ("INTENTGATE_SYSLOG_TLS", "yes"),
                ],
                "INTENTGATE_SYSLOG_TLS",
            ),
            (
                vec![
                    ("INTENTGATE_SYSLOG_ADDR", "h:514"),
                    ("INTENTGATE_SYSLOG_FACILITY", "24"),
                ],
                "INTENTGATE_SYSLOG_FACILITY",
            ),
            (
                vec![("INTENTGATE_DELIVERY_BATCH_SIZE", "0")],
                "INTENTGATE_DELIVERY_BATCH_SIZE",
            ),
            (
                vec![
                    ("INTENTGATE_SENTINEL_DCE_URL", "https://dce.example"),
                    ("INTENTGATE_SENTINEL_DCR_ID", "a/b"),
                ],
                "INTENTGATE_SENTINEL_DCR_ID",
            ),
        ] {
            let err = load(&vars).unwrap_err();
            assert!(err.contains(named), "{vars:?}: {err}");
        }
    }

    #[test]
    fn syslog_takes_tls_and_header_fields() {
        let config = load(&[
            ("INTENTGATE_SYSLOG_ADDR", "[::1]:6514"),
            ("INTENTGATE_SYSLOG_TLS", "true"),
            ("INTENTGATE_SYSLOG_HOSTNAME", "gw-1"),
        ])
        .unwrap();
        let syslog = config.syslog.unwrap();
        assert_eq!((syslog.host.as_str(), syslog.port), ("::1", 6514));
        assert_eq!(syslog.tls.unwrap().server_name, "::1");
        assert_eq!((syslog.hostname.as_str(), syslog.facility), ("gw-1", 13));
    }
}
