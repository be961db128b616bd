//! Plain values that cross between a module and Envoy: header lists, local answers, callouts.

use std::fmt;

use crate::abi;

/// Which side of the stream a body or a header map belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// One of the stream's four header maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderMap {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
}

impl HeaderMap {
    pub(crate) fn abi(self) -> abi::HeaderType {
        match self {
            HeaderMap::RequestHeaders => abi::HeaderType::RequestHeader,
            HeaderMap::RequestTrailers => abi::HeaderType::RequestTrailer,
            HeaderMap::ResponseHeaders => abi::HeaderType::ResponseHeader,
            HeaderMap::ResponseTrailers => abi::HeaderType::ResponseTrailer,
        }
    }
}

/// A copy of a header map, in Envoy's order. Names are lowercase, as Envoy keeps them; values are
/// bytes (HTTP does not promise UTF-8).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, Vec<u8>)>,
}

impl Headers {
    pub fn new(entries: Vec<(String, Vec<u8>)>) -> Headers {
        Headers { entries }
    }

    /// The first value of `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Every value of `name` (lowercase), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An answer the module gives instead of the upstream's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Envoy's response code details (`%RESPONSE_CODE_DETAILS%` in access logs).
    pub details: String,
}

impl LocalResponse {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> LocalResponse {
        LocalResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
            details: String::new(),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> LocalResponse {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn details(mut self, details: &str) -> LocalResponse {
        self.details = details.to_owned();
        self
    }

    /// The answer of a stream whose module failed: nothing of the request goes upstream.
    pub fn internal_error() -> LocalResponse {
        LocalResponse::new(500, "internal error\n")
            .header("content-type", "text/plain")
            .details("dynamic_module_failed_closed")
    }
}

/// Envoy's handle on one callout, as it reports the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CalloutId(pub u64);

/// Why Envoy did not start a callout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalloutError {
    /// `:method`, `:path` and `host` are required.
    MissingRequiredHeaders,
    ClusterNotFound,
    DuplicateCalloutId,
    /// No healthy upstream, for example.
    CannotCreateRequest,
    Unknown(u32),
}

impl CalloutError {
    /// `Ok` for success, else the error Envoy's init result names.
    pub(crate) fn check(result: abi::CalloutInitResult) -> Result<(), CalloutError> {
        match result {
            abi::CALLOUT_INIT_SUCCESS => Ok(()),
            abi::CALLOUT_INIT_MISSING_REQUIRED_HEADERS => Err(CalloutError::MissingRequiredHeaders),
            abi::CALLOUT_INIT_CLUSTER_NOT_FOUND => Err(CalloutError::ClusterNotFound),
            abi::CALLOUT_INIT_DUPLICATE_CALLOUT_ID => Err(CalloutError::DuplicateCalloutId),
            abi::CALLOUT_INIT_CANNOT_CREATE_REQUEST => Err(CalloutError::CannotCreateRequest),
            other => Err(CalloutError::Unknown(other)),
        }
    }
}

impl fmt::Display for CalloutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CalloutError::MissingRequiredHeaders => {
                f.write_str("callout lacks :method, :path or host")
            }
            CalloutError::ClusterNotFound => f.write_str("callout cluster not found"),
            CalloutError::DuplicateCalloutId => f.write_str("duplicate callout id"),
            CalloutError::CannotCreateRequest => {
                f.write_str("callout request could not be created")
            }
            CalloutError::Unknown(code) => write!(f, "callout not started (init result {code})"),
        }
    }
}

impl std::error::Error for CalloutError {}

/// A callout's answer, copied out of Envoy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalloutResponse {
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl CalloutResponse {
    /// The `:status` pseudo-header, if it is a number.
    pub fn status(&self) -> Option<u16> {
        std::str::from_utf8(self.headers.get(":status")?)
            .ok()?
            .parse()
            .ok()
    }
}

/// Why a started callout brought no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalloutFailure {
    /// Reset: connection failure, timeout, upstream reset.
    Reset,
    /// The answer exceeded Envoy's buffer limit.
    ResponseTooLarge,
    Unknown(u32),
}

impl CalloutFailure {
    pub(crate) fn from_abi(result: abi::CalloutResult) -> CalloutFailure {
        match result {
            abi::CALLOUT_RESET => CalloutFailure::Reset,
            abi::CALLOUT_EXCEED_RESPONSE_BUFFER_LIMIT => CalloutFailure::ResponseTooLarge,
            other => CalloutFailure::Unknown(other),
        }
    }
}

impl fmt::Display for CalloutFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CalloutFailure::Reset => f.write_str("callout reset"),
            CalloutFailure::ResponseTooLarge => f.write_str("callout answer over the buffer limit"),
            CalloutFailure::Unknown(code) => write!(f, "callout failed (result {code})"),
        }
    }
}

impl std::error::Error for CalloutFailure {}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> Headers {
        Headers::new(vec![
            (":status".into(), b"204".to_vec()),
            ("set-cookie".into(), b"a=1".to_vec()),
            ("set-cookie".into(), b"b=2".to_vec()),
        ])
    }

    #[test]
    fn header_lookup_finds_first_and_all_values_by_name() {
        let h = headers();
        assert_eq!(h.get("set-cookie"), Some(&b"a=1"[..]));
        assert_eq!(
            h.get_all("set-cookie").collect::<Vec<_>>(),
            [b"a=1", b"b=2"]
        );
        assert_eq!(h.get("missing"), None);
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn callout_status_reads_the_status_pseudo_header() {
        let answer = CalloutResponse {
            headers: headers(),
            body: Vec::new(),
        };
        assert_eq!(answer.status(), Some(204));
        let garbled = CalloutResponse {
            headers: Headers::new(vec![(":status".into(), b"2x4".to_vec())]),
            body: Vec::new(),
        };
        assert_eq!(garbled.status(), None);
    }

    #[test]
    fn init_results_map_to_typed_errors() {
        assert_eq!(CalloutError::check(abi::CALLOUT_INIT_SUCCESS), Ok(()));
        assert_eq!(
            CalloutError::check(abi::CALLOUT_INIT_CLUSTER_NOT_FOUND),
            Err(CalloutError::ClusterNotFound)
        );
        assert_eq!(CalloutError::check(99), Err(CalloutError::Unknown(99)));
        assert_eq!(
            CalloutFailure::from_abi(abi::CALLOUT_RESET),
            CalloutFailure::Reset
        );
        assert_eq!(CalloutFailure::from_abi(7), CalloutFailure::Unknown(7));
    }

    #[test]
    fn the_fail_closed_answer_is_a_500_that_names_its_cause() {
        let answer = LocalResponse::internal_error();
        assert_eq!(answer.status, 500);
        assert_eq!(answer.details, "dynamic_module_failed_closed");
    }
}
