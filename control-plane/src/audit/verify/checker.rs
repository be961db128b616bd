//! Checking one stretch of a chain. The chain is cut into ranges of storage positions checked in
//! parallel, each by a worker that reads and hashes its rows inline (each link is independent given
//! the stored `prev_hash`); [`stitch`] then checks the links between ranges, so the earliest break
//! found is the one a single sequential walk would stop at.
//!
//! Each worker also hashes its events as Merkle leaves into compact ranges, split at `cut` (the
//! size of the signed tree head being checked), so the stitched ranges give both the root of the
//! whole tree and the root the signed head must match.
//!
//! A row's queryable columns must be what its body says ([`columns::agree`]): the database does not
//! derive them, so a row written around the control plane could otherwise show queries one event
//! while its hashed body records another.

use intentgate_core::audit::merkle::{CompactRange, Hash, leaf_hash};
use intentgate_core::audit::{GENESIS, link};

use crate::audit::columns::{self, Stored};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// A stored hash column is not 32 bytes, or the body is not text.
    Malformed,
    /// `prev_hash` is not the previous event's hash: an event was removed, inserted or moved.
    Link,
    /// The stored hash is not the hash of the stored body: the event was altered.
    Hash,
    /// `seq` does not follow the previous event's.
    Sequence,
    /// The queryable columns do not say what the body says.
    Columns,
}

impl BreakKind {
    pub fn describe(self) -> &'static str {
        match self {
            BreakKind::Malformed => "the event's stored hash columns are malformed",
            BreakKind::Link => {
                "prev_hash does not match the previous event's hash (events removed, inserted or reordered)"
            }
            BreakKind::Hash => {
                "the event's hash does not match its content (the event was altered)"
            }
            BreakKind::Sequence => {
                "the event's chain position does not follow the previous event's (events reordered)"
            }
            BreakKind::Columns => {
                "the event's queryable columns (tenant, id, ts, event, decision, tool, agent_id) \
                 do not match its body (written outside the control plane)"
            }
        }
    }
}

/// The first broken row, by storage position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Break {
    pub pos: i64,
    pub kind: BreakKind,
}

/// What a range looked like from outside: enough to link it to its neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub pos: i64,
    pub seq: i64,
    pub prev: [u8; 32],
    pub hash: [u8; 32],
}

/// Checks the rows of one range, in storage order.
#[derive(Debug, Default)]
pub struct Checker {
    count: u64,
    first: Option<Edge>,
    last: Option<Edge>,
    first_break: Option<Break>,
    leaves: Leaves,
}

/// The range's Merkle leaves, numbered from its first row's `seq` (a wrong `seq` is a chain break,
/// and then no root is reported): those before `cut` and those from it on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Leaves {
    cut: u64,
    next: Option<u64>,
    unusable: bool,
    pub below: Option<CompactRange>,
    pub above: Option<CompactRange>,
}

impl Leaves {
    fn push(&mut self, seq: i64, body: Option<&[u8]>) {
        let index = match self.next {
            Some(index) => index,
            None => match u64::try_from(seq - 1) {
                Ok(index) => index,
                Err(_) => {
                    self.unusable = true;
                    return;
                }
            },
        };
        self.next = index.checked_add(1);
        let Some(body) = body else {
            self.unusable = true;
            return;
        };
        let side = if index < self.cut {
            &mut self.below
        } else {
            &mut self.above
        };
        let range = side.get_or_insert_with(|| CompactRange::new(index));
        if range.append(leaf_hash(body), |_, _| {}).is_err() {
            self.unusable = true;
        }
    }
}

impl Checker {
    /// A checker whose Merkle leaves split at `cut`.
    pub fn new(cut: u64) -> Self {
        Checker {
            leaves: Leaves {
                cut,
                ..Leaves::default()
            },
            ..Checker::default()
        }
    }

    /// One row; `None` hash columns or body are malformed, a `None` queryable column disagrees with
    /// any body.
    pub fn push(
        &mut self,
        pos: i64,
        seq: i64,
        prev: Option<&[u8]>,
        hash: Option<&[u8]>,
        body: Option<&[u8]>,
        columns: Stored<'_>,
    ) {
        self.count += 1;
        if !self.leaves.unusable {
            self.leaves.push(seq, body);
        }
        let prev = prev.and_then(|b| <[u8; 32]>::try_from(b).ok());
        let hash = hash.and_then(|b| <[u8; 32]>::try_from(b).ok());
        let edge = Edge {
            pos,
            seq,
            prev: prev.unwrap_or_default(),
            hash: hash.unwrap_or_default(),
        };
        if self.first_break.is_none() {
            let kind = match (prev, hash, body) {
                (Some(prev), Some(hash), Some(body)) => self
                    .check(&prev, &hash, body, seq)
                    .or_else(|| (!columns::agree(body, &columns)).then_some(BreakKind::Columns)),
                _ => Some(BreakKind::Malformed),
            };
            self.first_break = kind.map(|kind| Break { pos, kind });
        }
        if self.first.is_none() {
            self.first = Some(edge);
        }
        self.last = Some(edge);
    }

    fn check(&self, prev: &[u8; 32], hash: &[u8; 32], body: &[u8], seq: i64) -> Option<BreakKind> {
        // The link to the previous range is checked by `stitch`.
        if self.last.is_some_and(|last| &last.hash != prev) {
            return Some(BreakKind::Link);
        }
        if &link(prev, body) != hash {
            return Some(BreakKind::Hash);
        }
        if self
            .last
            .is_some_and(|last| last.seq.checked_add(1) != Some(seq))
        {
            return Some(BreakKind::Sequence);
        }
        None
    }

    pub fn finish(self) -> Range {
        Range {
            count: self.count,
            first: self.first,
            last: self.last,
            first_break: self.first_break,
            leaves: (!self.leaves.unusable).then_some(self.leaves),
        }
    }
}

/// A checked range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub count: u64,
    pub first: Option<Edge>,
    pub last: Option<Edge>,
    pub first_break: Option<Break>,
    /// `None` when a row had no usable `seq` or body.
    pub leaves: Option<Leaves>,
}

/// The roots of an intact chain's tree: over every event, and over the first `cut` (`None` when
/// the chain has fewer events than `cut`). Ranges come in storage order.
pub fn tree_roots(ranges: &[Range], cut: u64) -> Option<(Hash, Option<Hash>)> {
    let mut below = CompactRange::new(0);
    for range in ranges {
        if let Some(part) = range.leaves.as_ref()?.below.clone() {
            below.merge(part).ok()?;
        }
    }
    let mut whole = below.clone();
    for range in ranges {
        if let Some(part) = range.leaves.as_ref()?.above.clone() {
            whole.merge(part).ok()?;
        }
    }
    let at_cut = if below.end() == cut {
        Some(below.root().ok()?)
    } else {
        None
    };
    Some((whole.root().ok()?, at_cut))
}

/// The whole chain from its ranges (in storage order): the earliest break, counting the links
/// between ranges and the chain's start (GENESIS, `seq` 1), the event count and the last event.
pub fn stitch(ranges: &[Range]) -> (Option<Break>, u64, Option<Edge>) {
    let mut earliest: Option<Break> = None;
    let mut previous: Option<Edge> = None;
    let mut count = 0;
    for range in ranges {
        count += range.count;
        let Some(first) = range.first else { continue };
        let (expected_prev, expected_seq) = match previous {
            Some(p) => (p.hash, p.seq.checked_add(1)),
            None => (GENESIS, Some(1)),
        };
        let boundary = if first.prev != expected_prev {
            Some(BreakKind::Link)
        } else if Some(first.seq) != expected_seq {
            Some(BreakKind::Sequence)
        } else {
            None
        };
        // A malformed first row has no stored hashes to link with; it is its range's own break.
        let boundary = boundary.filter(|_| {
            range
                .first_break
                .is_none_or(|b| b.pos != first.pos || b.kind != BreakKind::Malformed)
        });
        for found in [
            boundary.map(|kind| Break {
                pos: first.pos,
                kind,
            }),
            range.first_break,
        ] {
            if let Some(found) = found
                && earliest.is_none_or(|e| found.pos < e.pos)
            {
                earliest = Some(found);
            }
        }
        previous = range.last;
    }
    (earliest, count, previous)
}

/// Cuts positions `first..=last` into at most `parts` contiguous ranges.
pub fn split(first: i64, last: i64, parts: usize) -> Vec<(i64, i64)> {
    let parts = i64::try_from(parts.max(1)).unwrap_or(1);
    let span = (last - first + 1).max(0);
    let step = (span + parts - 1) / parts;
    if step == 0 {
        return Vec::new();
    }
    (0..parts)
        .map(|k| (first + k * step, (first + (k + 1) * step - 1).min(last)))
        .filter(|(lo, hi)| lo <= hi)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::columns::Columns;

    /// `seq`, `prev_hash`, `hash`, body, and the body whose fields the row's columns hold.
    type Row = (i64, [u8; 32], [u8; 32], Vec<u8>, Vec<u8>);

    fn body(n: i64) -> Vec<u8> {
        format!(
            r#"{{"agent_id":"a","decision":"allow","event":"e","id":"{n}","tenant":"t","tool":"x","ts":"s"}}"#
        )
        .into_bytes()
    }

    /// Rows with pos = seq = 1..=n.
    fn chain(n: usize) -> Vec<Row> {
        let mut prev = GENESIS;
        (1..=n as i64)
            .map(|seq| {
                let body = body(seq);
                let hash = link(&prev, &body);
                let row = (seq, prev, hash, body.clone(), body);
                prev = hash;
                row
            })
            .collect()
    }

    /// Checks `rows` in `parts` ranges.
    fn check(rows: &[Row], parts: usize) -> (Option<Break>, u64) {
        let ranges: Vec<Range> = split(1, rows.len() as i64, parts)
            .into_iter()
            .map(|(lo, hi)| {
                let mut checker = Checker::default();
                for (i, (seq, prev, hash, body, columns)) in rows.iter().enumerate() {
                    let pos = i as i64 + 1;
                    if (lo..=hi).contains(&pos) {
                        let columns = Columns::of_body(columns);
                        let stored = match &columns {
                            Some(c) => [
                                &c.tenant,
                                &c.id,
                                &c.ts,
                                &c.event,
                                &c.decision,
                                &c.tool,
                                &c.agent_id,
                            ]
                            .map(|f| Some(f.as_bytes())),
                            None => [None; 7],
                        };
                        checker.push(pos, *seq, Some(prev), Some(hash), Some(body), stored);
                    }
                }
                checker.finish()
            })
            .collect();
        let (found, count, _) = stitch(&ranges);
        (found, count)
    }

    #[test]
    fn every_tamper_is_found_where_a_sequential_walk_would_stop() {
        for parts in [1, 2, 3, 7] {
            let rows = chain(12);
            assert_eq!(check(&rows, parts), (None, 12));

            let mut altered = rows.clone();
            altered[4].3 = body(99);
            altered[9].3 = b"{}".to_vec();
            assert_eq!(
                check(&altered, parts).0,
                Some(Break {
                    pos: 5,
                    kind: BreakKind::Hash
                })
            );

            let mut removed = rows.clone();
            removed.remove(6);
            assert_eq!(
                check(&removed, parts).0,
                Some(Break {
                    pos: 7,
                    kind: BreakKind::Link
                })
            );

            let mut first_gone = rows.clone();
            first_gone.remove(0);
            assert_eq!(
                check(&first_gone, parts).0,
                Some(Break {
                    pos: 1,
                    kind: BreakKind::Link
                })
            );

            let mut renumbered = rows.clone();
            renumbered[8].0 = 42;
            assert_eq!(
                check(&renumbered, parts).0,
                Some(Break {
                    pos: 9,
                    kind: BreakKind::Sequence
                })
            );

            let mut relabelled = rows.clone();
            relabelled[7].4 = body(3);
            relabelled[10].4 = b"{}".to_vec();
            assert_eq!(
                check(&relabelled, parts),
                (
                    Some(Break {
                        pos: 8,
                        kind: BreakKind::Columns
                    }),
                    12
                )
            );
        }
    }

    #[test]
    fn malformed_rows_break() {
        let mut checker = Checker::default();
        checker.push(1, 1, Some(&[0; 31]), Some(&[0; 32]), Some(b"{}"), [None; 7]);
        assert_eq!(
            checker.finish().first_break,
            Some(Break {
                pos: 1,
                kind: BreakKind::Malformed
            })
        );
    }

    #[test]
    fn ranges_cover_every_position_once() {
        assert_eq!(split(1, 10, 3), vec![(1, 4), (5, 8), (9, 10)]);
        assert_eq!(split(5, 5, 4), vec![(5, 5)]);
        assert!(split(1, 0, 2).is_empty());
    }
}
