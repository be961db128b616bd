//! The columns audit queries filter on (`tenant`, `id`, `ts`, `event`, `decision`, `tool`,
//! `agent_id`): copies of the hashed body's top-level fields. The control plane writes them with
//! each row, from the body it has just built, so the database parses no JSON on the append path;
//! verify reads them back and reports a row whose columns say something its body does not.

use std::borrow::Cow;

mod scan;

/// One row's queryable columns, as stored or as its body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns<'a> {
    pub tenant: Cow<'a, str>,
    pub id: Cow<'a, str>,
    pub ts: Cow<'a, str>,
    pub event: Cow<'a, str>,
    pub decision: Cow<'a, str>,
    pub tool: Cow<'a, str>,
    pub agent_id: Cow<'a, str>,
}

impl<'a> Columns<'a> {
    /// What `body` (an event's JSON) says; `None` when it is not one object holding each of the
    /// seven fields once as a string, or is not well-formed JSON around them. Read in one pass
    /// over the body's top level ([`scan`]), borrowed from it unless a field has escapes.
    pub fn of_body(body: &'a [u8]) -> Option<Self> {
        let [tenant, id, ts, event, decision, tool, agent_id] = scan::fields(body)?;
        Some(Columns {
            tenant,
            id,
            ts,
            event,
            decision,
            tool,
            agent_id,
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

/// The columns verify reads back, after `pos, seq, prev_hash, hash, body`: all but `tenant`, which
/// its query filters on, so that a row it reads has the tenant it asked for stored (as text: a
/// value of another type equals no text).
pub const READ_BACK: &str = "id, ts, event, decision, tool, agent_id";

/// A row's stored columns in the order of [`Columns`], as the bytes of their text: `None` for a
/// NULL or a value that is not text.
pub type Stored<'a> = [Option<&'a [u8]>; 7];

/// Whether a row's stored columns say what its body says. Compared as bytes, so the stored text is
/// not decoded: equal to a field read strictly from the body, it is that field's valid UTF-8.
pub fn agree(body: &[u8], stored: &Stored<'_>) -> bool {
    scan::fields(body).is_some_and(|fields| {
        fields
            .iter()
            .zip(stored)
            .all(|(field, column)| *column == Some(field.as_bytes()))
    })
}

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
        let stored = [
            "acme",
            "ev-1",
            event.ts.as_str(),
            "intentgate.tool_call",
            "deny",
            "say \"hi\"\u{e9}",
            "bot",
        ];
        assert_eq!(
            [
                &columns.tenant,
                &columns.id,
                &columns.ts,
                &columns.event,
                &columns.decision,
                &columns.tool,
                &columns.agent_id
            ],
            stored
        );
        let mut stored = stored.map(|s| Some(s.as_bytes()));
        assert!(agree(body.as_bytes(), &stored));
        stored[5] = Some(b"say hi");
        assert!(!agree(body.as_bytes(), &stored));
        stored[5] = None;
        assert!(!agree(body.as_bytes(), &stored));
    }

    #[test]
    fn a_body_without_the_fields_as_strings_gives_none() {
        assert_eq!(Columns::of_body(b"{\"tenant\":\"acme\"}"), None);
        assert_eq!(Columns::of_body(b"not json"), None);
        let numeric = br#"{"tenant":"a","id":"i","ts":"t","event":"e","decision":"d","tool":7,"agent_id":"g"}"#;
        assert_eq!(Columns::of_body(numeric), None);
        assert!(!agree(numeric, &[Some(b"a".as_slice()); 7]));
    }
}
