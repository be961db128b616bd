//! Checking a chain in batches. Each link is independent given the stored `prev_hash`, so batches
//! are hashed in parallel while the reader decodes the next ones; a batch carries the previous
//! row's stored hash so that the link between batches is checked too.

use std::sync::{Arc, Mutex};

use intentgate_core::audit::{GENESIS, link};
use tokio::sync::mpsc;

/// Rows per batch: large enough to amortise the hand-off, small enough to keep memory flat.
pub const ROWS: usize = 8192;

/// Rows `start..start + len` of a chain walked in `seq` order, bodies packed into one buffer.
#[derive(Debug)]
pub struct Batch {
    /// 0-based position of the first row in the walk.
    pub start: u64,
    /// The stored hash of the row before the first one (GENESIS before the first row).
    pub prev_of_first: [u8; 32],
    pub seqs: Vec<i64>,
    pub prevs: Vec<[u8; 32]>,
    pub hashes: Vec<[u8; 32]>,
    pub bodies: Vec<u8>,
    /// End offset of each row's body in `bodies`.
    pub ends: Vec<usize>,
    /// Rows whose stored columns could not be read as a chain row (wrong type or length).
    pub malformed: Vec<usize>,
}

impl Batch {
    pub fn new(start: u64, prev_of_first: [u8; 32]) -> Self {
        Batch {
            start,
            prev_of_first,
            seqs: Vec::with_capacity(ROWS),
            prevs: Vec::with_capacity(ROWS),
            hashes: Vec::with_capacity(ROWS),
            bodies: Vec::with_capacity(ROWS * 768),
            ends: Vec::with_capacity(ROWS),
            malformed: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    pub fn is_full(&self) -> bool {
        self.len() >= ROWS
    }

    /// Adds a row; `None` columns mark it malformed.
    pub fn push(
        &mut self,
        seq: i64,
        prev: Option<&[u8]>,
        hash: Option<&[u8]>,
        body: Option<&[u8]>,
    ) {
        let prev = prev.and_then(|b| <[u8; 32]>::try_from(b).ok());
        let hash = hash.and_then(|b| <[u8; 32]>::try_from(b).ok());
        if prev.is_none() || hash.is_none() || body.is_none() {
            self.malformed.push(self.len());
        }
        self.seqs.push(seq);
        self.prevs.push(prev.unwrap_or_default());
        self.hashes.push(hash.unwrap_or_default());
        self.bodies.extend_from_slice(body.unwrap_or_default());
        self.ends.push(self.bodies.len());
    }

    pub fn last_hash(&self) -> Option<[u8; 32]> {
        self.hashes.last().copied()
    }

    /// The first row that breaks the chain, if any.
    fn first_break(&self) -> Option<Break> {
        let mut begin = 0usize;
        let mut expected_prev = &self.prev_of_first;
        for (i, ((seq, prev), (hash, end))) in self
            .seqs
            .iter()
            .zip(&self.prevs)
            .zip(self.hashes.iter().zip(&self.ends))
            .enumerate()
        {
            let position = self.start + i as u64;
            let body = self.bodies.get(begin..*end).unwrap_or_default();
            begin = *end;
            let kind = if self.malformed.contains(&i) {
                Some(BreakKind::Malformed)
            } else if prev != expected_prev {
                Some(BreakKind::Link)
            } else if &link(prev, body) != hash {
                Some(BreakKind::Hash)
            } else if u64::try_from(*seq).ok() != Some(position + 1) {
                Some(BreakKind::Sequence)
            } else {
                None
            };
            if let Some(kind) = kind {
                return Some(Break {
                    position,
                    seq: *seq,
                    kind,
                });
            }
            expected_prev = hash;
        }
        None
    }
}

/// Cuts a walk in `seq` order into batches and remembers where it ended.
#[derive(Debug)]
pub struct Walker {
    batch: Batch,
    count: u64,
    last_seq: Option<i64>,
}

/// Where a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkEnd {
    pub count: u64,
    pub last_seq: Option<i64>,
    pub last_hash: [u8; 32],
}

impl Default for Walker {
    fn default() -> Self {
        Walker {
            batch: Batch::new(0, GENESIS),
            count: 0,
            last_seq: None,
        }
    }
}

impl Walker {
    /// Adds a row; returns a full batch to hand to the checkers.
    pub fn push(
        &mut self,
        seq: i64,
        prev: Option<&[u8]>,
        hash: Option<&[u8]>,
        body: Option<&[u8]>,
    ) -> Option<Batch> {
        self.batch.push(seq, prev, hash, body);
        self.count += 1;
        self.last_seq = Some(seq);
        if !self.batch.is_full() {
            return None;
        }
        let next = Batch::new(self.count, self.batch.last_hash().unwrap_or(GENESIS));
        Some(std::mem::replace(&mut self.batch, next))
    }

    /// The last, partial batch (if any rows remain) and where the walk ended.
    pub fn finish(self) -> (Option<Batch>, WalkEnd) {
        let end = WalkEnd {
            count: self.count,
            last_seq: self.last_seq,
            last_hash: self.batch.last_hash().unwrap_or(self.batch.prev_of_first),
        };
        let rest = (self.batch.len() > 0).then_some(self.batch);
        (rest, end)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    Malformed,
    /// `prev_hash` is not the previous event's hash: an event was removed, inserted or moved.
    Link,
    /// The stored hash is not the hash of the stored body: the event was altered.
    Hash,
    /// The position number skips or repeats.
    Sequence,
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
            BreakKind::Sequence => "the event's position in the chain is out of sequence",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Break {
    pub position: u64,
    /// The stored `seq` of the breaking row, to look its id up.
    pub seq: i64,
    pub kind: BreakKind,
}

/// Checks every batch from `batches` on `threads` threads and returns the earliest break.
/// Blocking: run it on a blocking thread.
pub fn check_all(batches: mpsc::Receiver<Batch>, threads: usize) -> Option<Break> {
    let batches = Arc::new(Mutex::new(batches));
    let worker = || {
        let mut first: Option<Break> = None;
        loop {
            let next = match batches.lock() {
                Ok(mut rx) => rx.blocking_recv(),
                Err(_) => None,
            };
            let Some(batch) = next else { break };
            // A batch that starts after a known break cannot hold the earliest one.
            if first.is_some_and(|b| b.position < batch.start) {
                continue;
            }
            if let Some(found) = batch.first_break() {
                first = earliest(first, Some(found));
            }
        }
        first
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads.max(1)).map(|_| scope.spawn(worker)).collect();
        let mut first = worker();
        for helper in helpers {
            first = earliest(first, helper.join().ok().flatten());
        }
        first
    })
}

fn earliest(a: Option<Break>, b: Option<Break>) -> Option<Break> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.position < a.position { b } else { a }),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Row = (i64, [u8; 32], [u8; 32], Vec<u8>);

    fn chain(n: usize) -> Vec<Row> {
        let mut prev = GENESIS;
        (0..n)
            .map(|i| {
                let body = format!("{{\"n\":{i}}}").into_bytes();
                let hash = link(&prev, &body);
                let row = (i as i64 + 1, prev, hash, body);
                prev = hash;
                row
            })
            .collect()
    }

    fn batch_of(rows: &[Row]) -> Batch {
        let mut batch = Batch::new(0, GENESIS);
        for (seq, prev, hash, body) in rows {
            batch.push(*seq, Some(prev), Some(hash), Some(body));
        }
        batch
    }

    #[test]
    fn intact_chain_has_no_break_and_each_tamper_is_found() {
        let rows = chain(5);
        assert_eq!(batch_of(&rows).first_break(), None);

        let mut altered = rows.clone();
        altered[2].3 = b"{\"n\":99}".to_vec();
        assert_eq!(
            batch_of(&altered).first_break().unwrap().kind,
            BreakKind::Hash
        );
        assert_eq!(batch_of(&altered).first_break().unwrap().position, 2);

        let mut removed = rows.clone();
        removed.remove(1);
        let found = batch_of(&removed).first_break().unwrap();
        assert_eq!((found.position, found.kind), (1, BreakKind::Link));

        let mut short = batch_of(&rows);
        short.prevs[3] = [0; 32];
        short.malformed.push(4);
        assert_eq!(short.first_break().unwrap().position, 3);
    }

    #[test]
    fn parallel_check_reports_the_earliest_break() {
        let rows = chain(40);
        let (tx, rx) = mpsc::channel(16);
        let mut prev = GENESIS;
        for (n, part) in rows.chunks(10).enumerate() {
            let mut batch = Batch::new(n as u64 * 10, prev);
            for (seq, p, h, body) in part {
                let body = if *seq == 35 || *seq == 17 {
                    b"x".to_vec()
                } else {
                    body.clone()
                };
                batch.push(*seq, Some(p), Some(h), Some(&body));
            }
            prev = batch.last_hash().unwrap();
            tx.try_send(batch).unwrap();
        }
        drop(tx);
        let found = check_all(rx, 3).unwrap();
        assert_eq!((found.seq, found.kind), (17, BreakKind::Hash));
    }
}
