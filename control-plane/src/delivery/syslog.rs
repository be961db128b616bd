//! Syslog over TCP (RFC 6587 octet counting) or TLS (RFC 5425): each event one RFC 5424 message
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [intentgate@32473 id="…" tenant="…" …] {canonical JSON}
//! ```
//!
//! PRI is the configured facility with a severity from the decision (deny: warning, escalate and
//! reject: notice, otherwise informational); TIMESTAMP the event's `ts`; MSGID its kind; the
//! structured data the fields a SIEM filters on. 32473 is the enterprise number RFC 5612 reserves
//! for examples: use `intentgate@32473` as the SD-ID until IntentGate has its own.
//!
//! The connection is kept open between batches and reopened after any error. TCP acknowledges
//! bytes, not messages: a batch counts as delivered once written and flushed.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::config;
use super::config::Selection;
use super::event::Event;
use super::sink::{Limits, SendError, Shared, Sink};

pub const SD_ID: &str = "intentgate@32473";
const MAX_BYTES: usize = 1_000_000;
/// The structured-data parameters, in this order.
const SD_FIELDS: [&str; 8] = [
    "id", "tenant", "decision", "check", "tool", "agent_id", "rule", "method",
];

type Stream = Box<dyn AsyncWrite + Unpin + Send>;

pub struct Syslog {
    config: config::Syslog,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
    batch: usize,
    stream: Mutex<Option<Stream>>,
}

impl Syslog {
    /// Fails when the TLS settings cannot be used (an unreadable CA file, a bad server name).
    pub fn new(config: config::Syslog, timeout: Duration, batch: usize) -> Result<Self, String> {
        let tls = match &config.tls {
            None => None,
            Some(tls) => Some(connector(tls)?),
        };
        Ok(Syslog {
            config,
            tls,
            timeout,
            batch,
            stream: Mutex::new(None),
        })
    }

    async fn connect(&self) -> Result<Stream, SendError> {
        let addr = (self.config.host.as_str(), self.config.port);
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| SendError::retry("syslog: connecting timed out"))?
            .map_err(|e| SendError::retry(format!("syslog: cannot connect: {e}")))?;
        tcp.set_nodelay(true).ok();
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, name)) => {
                let tls = tokio::time::timeout(self.timeout, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| SendError::retry("syslog: TLS handshake timed out"))?
                    .map_err(|e| SendError::retry(format!("syslog: TLS handshake failed: {e}")))?;
                Ok(Box::new(tls))
            }
        }
    }

    /// One framed RFC 5424 message.
    pub fn frame(&self, event: &Event, out: &mut Vec<u8>) {
        let message = message(&self.config, event);
        out.extend_from_slice(message.len().to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(message.as_bytes());
    }
}

/// The RFC 5424 message for one event.
pub fn message(config: &config::Syslog, event: &Event) -> String {
    let severity = match event.field("decision") {
        "deny" => 4,
        "escalate" | "reject" => 5,
        _ => 6,
    };
    let pri = u16::from(config.facility) * 8 + severity;
    let msgid = header_field(event.field("event"), 32);
    let mut sd = format!("[{SD_ID}");
    for name in SD_FIELDS {
        sd.push_str(&format!(" {name}=\"{}\"", sd_escape(event.field(name))));
    }
    sd.push_str(&format!(" seq=\"{}\"]", event.seq));
    let ts = match event.field("ts") {
        "" => "-",
        ts => ts,
    };
    format!(
        "<{pri}>1 {ts} {} {} - {msgid} {sd} {}",
        config.hostname, config.app_name, event.body
    )
}

/// RFC 5424 §6.3.3: `"`, `\` and `]` are escaped in parameter values.
fn sd_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A header field: printable ASCII without spaces, at most `max` characters, `-` when empty.
fn header_field(value: &str, max: usize) -> String {
    let kept: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if kept.is_empty() { "-".into() } else { kept }
}

fn connector(tls: &config::SyslogTls) -> Result<(TlsConnector, ServerName<'static>), String> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("INTENTGATE_SYSLOG_TLS_CA_FILE: {}: {e}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("INTENTGATE_SYSLOG_TLS_CA_FILE: {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "INTENTGATE_SYSLOG_TLS_CA_FILE: {} holds no certificate",
                    path.display()
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("INTENTGATE_SYSLOG_TLS_CA_FILE: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("syslog TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(tls.server_name.clone())
        .map_err(|e| format!("INTENTGATE_SYSLOG_TLS_SERVER_NAME: {e}"))?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

impl Sink for Syslog {
    type Config = config::Syslog;

    fn build(config: &config::Syslog, shared: &Shared) -> Result<Self, String> {
        Syslog::new(
            config.clone(),
            shared.settings.timeout,
            shared.settings.batch_size,
        )
    }

    fn selection(config: &config::Syslog) -> Selection {
        config.select
    }

    fn name(&self) -> &'static str {
        "syslog"
    }

    fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "tls" } else { "tcp" };
        if self.config.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.config.host, self.config.port)
        } else {
            format!("{scheme}://{}:{}", self.config.host, self.config.port)
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_events: self.batch,
            max_bytes: MAX_BYTES,
        }
    }

    async fn send(&self, events: &[Event]) -> Result<(), SendError> {
        let mut bytes = Vec::with_capacity(events.iter().map(|e| e.body.len() + 300).sum());
        for event in events {
            self.frame(event, &mut bytes);
        }
        let mut guard = self.stream.lock().await;
        let mut stream = match guard.take() {
            Some(stream) => stream,
            None => self.connect().await?,
        };
        let written = tokio::time::timeout(self.timeout, async {
            stream.write_all(&bytes).await?;
            stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {
                *guard = Some(stream);
                Ok(())
            }
            Ok(Err(e)) => Err(SendError::retry(format!("syslog: write failed: {e}"))),
            Err(_) => Err(SendError::retry("syslog: write timed out")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syslog() -> config::Syslog {
        config::Syslog {
            host: "127.0.0.1".into(),
            port: 6514,
            tls: None,
            hostname: "gw-1".into(),
            app_name: "intentgate".into(),
            facility: 13,
            select: config::Selection::All,
        }
    }

    #[test]
    fn messages_are_rfc_5424_with_escaped_structured_data() {
        let body = r#"{"decision":"deny","event":"intentgate.tool_call","id":"e-1","reason":"x","rule":"a\"b]c\\d","tenant":"acme","tool":"wire","ts":"2026-06-14T13:42:00.123Z"}"#;
        let event = Event::new("acme".into(), 7, body.into());
        assert_eq!(
            message(&syslog(), &event),
            format!(
                "<108>1 2026-06-14T13:42:00.123Z gw-1 intentgate - intentgate.tool_call \
                 [intentgate@32473 id=\"e-1\" tenant=\"acme\" decision=\"deny\" check=\"\" tool=\"wire\" \
                 agent_id=\"\" rule=\"a\\\"b\\]c\\\\d\" method=\"\" seq=\"7\"] {body}"
            )
        );
        let sink = Syslog::new(syslog(), Duration::from_secs(1), 10).unwrap();
        let mut framed = Vec::new();
        sink.frame(&event, &mut framed);
        let text = String::from_utf8(framed).unwrap();
        let (len, rest) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rest.len());
    }
}
