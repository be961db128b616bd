//! The one record type every vendor parser produces, so classification, import and reports never
//! see a vendor's field names.

/// One log record, normalised: who talked (agent, user, device, client address), to what (host,
/// URL path, the vendor's app name), when, and what the source thought of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// Unix milliseconds; `None` when the record carries no time (the import uses its own).
    pub time_ms: Option<i64>,
    /// An explicit agent identity, when the source names one (the generic shape can).
    pub agent: Option<String>,
    pub user: Option<String>,
    pub device: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Destination host: lower case, without port or trailing dot.
    pub host: Option<String>,
    /// The URL path, when the source logs URLs.
    pub path: Option<String>,
    /// The vendor's name for the application (Zscaler `appname`, Netskope `app`, ...).
    pub app: Option<String>,
    /// The vendor's category for the destination (URL category, app category).
    pub category: Option<String>,
    /// The source blocked the request.
    pub blocked: bool,
    /// The vendor rates the application poorly (Netskope CCL low/poor, MDCA score ≤ 4, ...).
    pub low_trust: bool,
    /// The vendor flagged a threat on the record.
    pub threat: bool,
}

impl Observation {
    /// Whether the record says where it went; one that does not is malformed.
    pub fn has_destination(&self) -> bool {
        self.host.is_some() || self.app.is_some()
    }
}
