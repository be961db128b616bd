//! Reading a range of a Postgres chain for verify on a dedicated native connection, in the verify's
//! snapshot, borrowing each row's bytes (the `Any` driver would copy every value).

use futures::TryStreamExt;
use sqlx::{Column, Connection, PgConnection, Postgres, Row, Type};

use super::checker::{Checker, Range};
use crate::audit::columns;
use crate::error::Result;
use crate::store::snapshot;

/// Checks `tenant`'s events stored at positions `first..=last` as the exported `snapshot` sees them,
/// their Merkle leaves split at `cut`.
pub async fn check_range(
    url: &str,
    snapshot: &str,
    tenant: &str,
    first: i64,
    last: i64,
    cut: u64,
) -> Result<Range> {
    let mut conn = PgConnection::connect(url).await?;
    snapshot::import(&mut conn, snapshot).await?;
    let mut checker = Checker::new(cut);
    {
        let sql = format!(
            "SELECT pos, seq, prev_hash, hash, body, {} FROM audit_events \
             WHERE tenant = $1 AND pos BETWEEN $2 AND $3 ORDER BY pos",
            columns::READ_BACK
        );
        let mut rows = sqlx::query(&sql)
            .bind(tenant)
            .bind(first)
            .bind(last)
            .fetch(&mut conn);
        // The body's and the read-back columns' types are the statement's, the same in every row:
        // checked once, their values are then taken as bytes without the per-value type check and
        // UTF-8 decoding (the body is hashed as bytes; the columns are compared with fields decoded
        // strictly from it).
        let mut text_columns = None;
        while let Some(row) = rows.try_next().await? {
            let is_text = *text_columns.get_or_insert_with(|| {
                std::array::from_fn::<bool, 7, _>(|k| {
                    row.try_column(4 + k)
                        .is_ok_and(|c| <&str as Type<Postgres>>::compatible(c.type_info()))
                })
            });
            let text = |i: usize| {
                (is_text.get(i.wrapping_sub(4)) == Some(&true))
                    .then(|| row.try_get_unchecked::<&[u8], _>(i).ok())
                    .flatten()
            };
            let [id, ts, event, decision, tool, agent_id] = std::array::from_fn(|k| text(5 + k));
            checker.push(
                row.try_get(0)?,
                row.try_get(1).unwrap_or(-1),
                row.try_get(2).ok(),
                row.try_get(3).ok(),
                text(4),
                [
                    Some(tenant.as_bytes()),
                    id,
                    ts,
                    event,
                    decision,
                    tool,
                    agent_id,
                ],
            );
        }
    }
    conn.close().await?;
    Ok(checker.finish())
}
