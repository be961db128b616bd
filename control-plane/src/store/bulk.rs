//! Many rows in one statement: a batch is written, or looked up, in a round trip or a few rather
//! than one per row. Batches are cut into chunks whose sizes are powers of two (at most
//! [`MAX_ROWS`]), so that each connection prepares only a handful of statement shapes whatever the
//! batch sizes, and no statement comes near either database's limit on bound values.
//!
//! The placeholders of these statements are each database's own ([`Marks`]): SQLite looks a
//! numbered parameter's name up in a list, once per value bound, which would make binding a
//! statement of thousands of values quadratic; its positional `?` costs nothing to find.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection};

use crate::error::Result;

/// Rows per statement at most: with eleven values a row (an audit event's), 11,264 bound values,
/// below SQLite's 32,766 and Postgres' 65,535.
pub const MAX_ROWS: usize = 1024;

/// A statement being bound.
pub type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// The chunks `len` items are written in: powers of two, largest first, none above [`MAX_ROWS`].
pub fn chunks(len: usize) -> impl Iterator<Item = usize> {
    let mut left = len;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let size = if left >= MAX_ROWS {
            MAX_ROWS
        } else {
            1 << left.ilog2()
        };
        left -= size;
        Some(size)
    })
}

/// The placeholders a statement's values are bound to, in the order they are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marks {
    /// `$1, $2, ...` (Postgres).
    Numbered,
    /// `?, ?, ...` (SQLite).
    Positional,
}

impl Marks {
    pub fn of(conn: &AnyConnection) -> Self {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Marks::Positional
        } else {
            Marks::Numbered
        }
    }

    /// `count` placeholders, the first for the `first`-th value bound: `$first, $first+1, ...`.
    pub fn list(self, first: usize, count: usize) -> String {
        (first..first + count)
            .map(|i| match self {
                Marks::Numbered => format!("${i}"),
                Marks::Positional => "?".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `($1, $2), ($3, $4), ...`: `rows` tuples of `columns` placeholders.
    fn tuples(self, rows: usize, columns: usize) -> String {
        (0..rows)
            .map(|row| format!("({})", self.list(row * columns + 1, columns)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How the rows of an [`insert`] are written: `INSERT INTO table (a, b) VALUES`, the tuples, then
/// `conflict` (an `ON CONFLICT` clause, or nothing).
pub struct Insert<'s> {
    pub into: &'s str,
    pub columns: usize,
    pub conflict: &'s str,
}

/// Inserts `rows` as `statement` says, each row's values bound by `bind` in order; returns how
/// many rows were written.
pub async fn insert<T>(
    conn: &mut AnyConnection,
    statement: &Insert<'_>,
    rows: &[T],
    bind: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
) -> Result<u64> {
    let marks = Marks::of(conn);
    let mut rest = rows;
    let mut written = 0;
    for size in chunks(rows.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let sql = format!(
            "{} {} {}",
            statement.into,
            marks.tuples(size, statement.columns),
            statement.conflict
        );
        let query = chunk.iter().fold(sqlx::query(&sql), &bind);
        written += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_that_add_up() {
        for len in [0, 1, 2, 3, 255, 256, 257, 1000, 1024, 1025, 5000] {
            let sizes: Vec<usize> = chunks(len).collect();
            assert_eq!(sizes.iter().sum::<usize>(), len, "{len}");
            assert!(
                sizes.iter().all(|s| s.is_power_of_two() && *s <= MAX_ROWS),
                "{len}: {sizes:?}"
            );
            assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{len}: {sizes:?}");
        }
        assert_eq!(chunks(256).collect::<Vec<_>>(), vec![256]);
    }

    #[test]
    fn tuples_mark_every_value_once() {
        assert_eq!(Marks::Numbered.tuples(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(Marks::Numbered.list(2, 3), "$2, $3, $4");
        assert_eq!(Marks::Positional.tuples(2, 2), "(?, ?), (?, ?)");
    }
}
