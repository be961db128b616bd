//! The columns audit queries filter on (`tenant`, `id`, `ts`, `event`, `decision`, `tool`,
//! `agent_id`): copies of the hashed body's top-level fields. The control plane writes them with
//! each row, from the body it has just built, so the database parses no JSON on the append path;
//! verify reads them back and reports a row whose columns say something its body does not.

use std::borrow::Cow;

use serde::Deserialize;

/// One row's queryable columns, as stored or as its body says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Columns<'a> {
    #[serde(borrow)]
    pub tenant: Cow<'a, str>,
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    #[serde(borrow)]
    pub decision: Cow<'a, str>,
    #[serde(borrow)]
    pub tool: Cow<'a, str>,
    #[serde(borrow)]
    pub agent_id: Cow<'a, str>,
}

impl<'a> Columns<'a> {
    /// What `body` (an event's JSON) says; `None` when it is not an object with the seven fields
    /// as strings.
    pub fn of_body(body: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }

    /// The stored columns, `None` when one is NULL or not text.
    pub fn stored(values: [Option<&'a str>; 7]) -> Option<Self> {
        let [tenant, id, ts, event, decision, tool, agent_id] = values;
        Some(Columns {
            tenant: tenant?.into(),
            id: id?.into(),
            ts: ts?.into(),
            event: event?.into(),
            decision: decision?.into(),
            tool: tool?.into(),
            agent_id: agent_id?.into(),
        })
    }

    pub fn into_owned(self) -> Columns<'static> {
        Columns {
            tenant: self.tenant.into_owned().into(),
            id: self.id.into_owned().into(),
            ts: self.ts.into_owned().into(),
            event: self.event.into_owned().into(),
            decision: self.decision.into_owned().into(),
            tool: self.tool.into_owned().into(),
            agent_id: self.agent_id.into_owned().into(),
        }
    }
}

/// The columns as a row lists them, after `pos, seq, prev_hash, hash, body`.
pub const SELECT: &str = "tenant, id, ts, event, decision, tool, agent_id";

#[cfg(test)]
mod tests {
    use intentgate_core::audit::{AuditEvent, EventKind};
    use intentgate_core::decision::AuditDecision;

    use super::*;

    #[test]
    fn a_body_gives_its_events_fields_unescaped() {
        let mut event = AuditEvent::new(
            "ev-1".into(),
            1_781_444_520_000,
            EventKind::ToolCall,
            AuditDecision::Deny,
        );
        event.tenant = "acme".into();
        event.tool = "say \"hi\"\u{e9}".into();
        event.agent_id = "bot".into();
        let body = event.canonical();
        let columns = Columns::of_body(body.as_bytes()).unwrap();
        assert_eq!(
            columns,
            Columns::stored([
                Some("acme"),
                Some("ev-1"),
                Some(event.ts.as_str()),
                Some("intentgate.tool_call"),
                Some("deny"),
                Some("say \"hi\"\u{e9}"),
                Some("bot"),
            ])
            .unwrap()
        );
    }

    #[test]
    fn a_body_without_the_fields_as_strings_gives_none() {
        assert_eq!(Columns::of_body(b"{\"tenant\":\"acme\"}"), None);
        assert_eq!(Columns::of_body(b"not json"), None);
        let numeric = br#"{"tenant":"a","id":"i","ts":"t","event":"e","decision":"d","tool":7,"agent_id":"g"}"#;
        assert_eq!(Columns::of_body(numeric), None);
        assert_eq!(
            Columns::stored([Some("a"), None, None, None, None, None, None]),
            None
        );
    }
}
