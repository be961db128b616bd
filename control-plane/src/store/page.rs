//! Opaque, tamper-safe page cursors. A cursor carries the position after which the next page
//! starts, authenticated with an HMAC keyed from the master key (so every replica accepts it) over
//! the list it belongs to and the tenant scope it was issued for: a forged cursor, or one replayed
//! against another list or tenant, is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use serde::Serialize;
use sqlx::Any;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;

use crate::error::{Error, Result};
use crate::store::Db;

const MAC_BYTES: usize = 16;
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

#[derive(Clone)]
pub struct Cursors {
    key: [u8; 32],
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cursors(..)")
    }
}

impl Cursors {
    pub fn new(key: [u8; 32]) -> Self {
        Cursors { key }
    }

    fn mac(&self, list: &str, scope: &str, after: i64) -> Result<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .map_err(|e| Error::Internal(format!("cursor key: {e}")))?;
        mac.update(list.as_bytes());
        mac.update(&[0]);
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(&after.to_be_bytes());
        Ok(mac)
    }

    pub fn encode(&self, list: &str, scope: &str, after: i64) -> Result<String> {
        let tag = self.mac(list, scope, after)?.finalize().into_bytes();
        let mut bytes = after.to_be_bytes().to_vec();
        bytes.extend_from_slice(tag.get(..MAC_BYTES).unwrap_or_default());
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn decode(&self, list: &str, scope: &str, text: &str) -> Result<i64> {
        let invalid =
            || Error::bad_request("cursor is invalid (use next_cursor from a prior page)");
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| invalid())?;
        if bytes.len() != 8 + MAC_BYTES {
            return Err(invalid());
        }
        let (position, tag) = bytes.split_at(8);
        let after = i64::from_be_bytes(position.try_into().map_err(|_| invalid())?);
        self.mac(list, scope, after)?
            .verify_truncated_left(tag)
            .map_err(|_| invalid())?;
        Ok(after)
    }
}

/// A page of one list, requested within one scope (a tenant, `*`, or a finer key): `limit` 1 to
/// 1000 (default 100) and the position the page starts before, taken from a cursor this list and
/// scope issued.
#[derive(Debug, Clone)]
pub struct Page {
    limit: i64,
    /// Rows strictly before this position (lists run newest first); an offset for [`Page::slice`].
    before: Option<i64>,
    list: &'static str,
    scope: String,
    cursors: Cursors,
}

/// One page of a list, as every list endpoint answers it.
#[derive(Debug, Clone, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl Page {
    pub fn parse(
        cursors: &Cursors,
        list: &'static str,
        scope: &str,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Self> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    Error::bad_request(format!("limit must be an integer from 1 to {MAX_LIMIT}"))
                })?,
        };
        let before = cursor
            .map(|text| cursors.decode(list, scope, text))
            .transpose()?;
        Ok(Page {
            limit,
            before,
            list,
            scope: scope.to_owned(),
            cursors: cursors.clone(),
        })
    }

    pub fn limit(&self) -> i64 {
        self.limit
    }

    /// Runs a list query whose last two placeholders are the position to start before and the
    /// row limit, maps each row to `(position, item)`, and returns the page with the next cursor.
    pub async fn run<'q, T>(
        self,
        db: &Db,
        query: Query<'q, Any, AnyArguments<'q>>,
        row: impl Fn(&AnyRow) -> Result<(i64, T)>,
    ) -> Result<Paged<T>> {
        let rows = query
            .bind(self.before.unwrap_or(i64::MAX))
            .bind(self.limit + 1)
            .fetch_all(db.pool())
            .await?;
        let mut items = rows.iter().map(row).collect::<Result<Vec<_>>>()?;
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items
                .last()
                .map(|(position, _)| self.cursors.encode(self.list, &self.scope, *position))
                .transpose()?
        } else {
            None
        };
        Ok(Paged {
            items: items.into_iter().map(|(_, item)| item).collect(),
            next_cursor,
        })
    }

    /// The page of a list computed whole (not a table): its cursor is an offset into it.
    pub fn slice<T>(self, all: Vec<T>) -> Result<Paged<T>> {
        let total = all.len();
        let offset = usize::try_from(self.before.unwrap_or(0).max(0)).unwrap_or(usize::MAX);
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let end = offset.saturating_add(limit).min(total);
        let items: Vec<T> = all.into_iter().take(end).skip(offset).collect();
        let next_cursor = if end < total {
            let position = i64::try_from(end).unwrap_or(i64::MAX);
            Some(self.cursors.encode(self.list, &self.scope, position)?)
        } else {
            None
        };
        Ok(Paged { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let cursors = Cursors::new([7; 32]);
        let text = cursors.encode("audit", "acme", 42).unwrap();
        assert_eq!(cursors.decode("audit", "acme", &text).unwrap(), 42);
        assert!(cursors.decode("audit", "globex", &text).is_err());
        assert!(cursors.decode("approvals", "acme", &text).is_err());
        assert!(
            Cursors::new([8; 32])
                .decode("audit", "acme", &text)
                .is_err()
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
        bytes[7] ^= 1;
        assert!(
            cursors
                .decode("audit", "acme", &URL_SAFE_NO_PAD.encode(bytes))
                .is_err()
        );
        assert!(cursors.decode("audit", "acme", "!!").is_err());
    }

    #[test]
    fn limits_are_bounded() {
        let cursors = Cursors::new([7; 32]);
        for bad in ["0", "1001", "-1", "ten", ""] {
            assert!(
                Page::parse(&cursors, "l", "s", Some(bad), None).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            Page::parse(&cursors, "l", "s", None, None).unwrap().limit(),
            DEFAULT_LIMIT
        );
        assert_eq!(
            Page::parse(&cursors, "l", "s", Some("1000"), None)
                .unwrap()
                .limit(),
            1000
        );
    }

    #[test]
    fn a_computed_list_pages_by_offset_to_its_end() {
        let cursors = Cursors::new([7; 32]);
        let all: Vec<u32> = (0..5).collect();
        let first = Page::parse(&cursors, "l", "s", Some("2"), None)
            .unwrap()
            .slice(all.clone())
            .unwrap();
        assert_eq!(first.items, [0, 1]);
        let mut seen = first.items;
        let mut next = first.next_cursor;
        while let Some(cursor) = next {
            let page = Page::parse(&cursors, "l", "s", Some("2"), Some(&cursor))
                .unwrap()
                .slice(all.clone())
                .unwrap();
            seen.extend(page.items);
            next = page.next_cursor;
        }
        assert_eq!(seen, all);
        let text = cursors.encode("l", "s", 99).unwrap();
        let past = Page::parse(&cursors, "l", "s", None, Some(&text)).unwrap();
        assert!(past.slice(all).unwrap().items.is_empty());
        assert!(Page::parse(&cursors, "l", "other", None, Some(&text)).is_err());
    }
}
