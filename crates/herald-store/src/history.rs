//! Finished history for benchmarks: delivered deliveries, their events, one attempt each and their
//! per-minute statistics, written straight into a store's tables as past traffic would have left them, so a
//! benchmark can measure how the engine's cost grows with the work it has already done.
//!
//! Both stores run the same statements, in chunks ([`HISTORY_CHUNK`] rows each, one transaction per chunk),
//! so a caller can show progress. Write only while no node runs on the store: the rows bypass the engine.

/// Rows written per chunk (one transaction).
pub const HISTORY_CHUNK: u64 = 250_000;

/// What to write: `count` delivered deliveries to one endpoint, spread evenly over `[from_ms, until_ms)`.
#[derive(Debug, Clone)]
pub struct History {
    /// The tenant the endpoint belongs to.
    pub tenant_id: String,
    /// The endpoint (and dispatch key) of every delivery.
    pub endpoint_id: String,
    /// The URL recorded on each delivery.
    pub url: String,
    /// Deliveries to write.
    pub count: u64,
    /// When the oldest delivery was made.
    pub from_ms: i64,
    /// Just after the newest delivery (keep it in the past, within retention).
    pub until_ms: i64,
}

impl History {
    /// The chunks to write, as `(first row, rows)`.
    pub fn chunks(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        (0..self.count.div_ceil(HISTORY_CHUNK)).map(|i| {
            let first = i * HISTORY_CHUNK;
            (first, HISTORY_CHUNK.min(self.count - first))
        })
    }

    /// Time between two rows, in millionths of a ms (the `$4` of every statement).
    pub fn step(&self) -> i64 {
        let span = (self.until_ms - self.from_ms).max(1) as i128;
        (span * 1_000_000 / self.count.max(1) as i128) as i64
    }

    /// When row `g` was made (ms), as the statements compute it.
    pub fn created_ms(&self, g: u64) -> i64 {
        self.from_ms + (g as i128 * self.step() as i128 / 1_000_000) as i64
    }
}

/// Row numbers `$1 ..= $2` of a chunk and the time of each, `$3` + g × `$4` / 1,000,000 ([`History::step`]).
/// The ids are the row number behind `00H`, so they keep their order and sort before every id
/// [`herald_core::ids`] makes for a time after 2005.
const SERIES: &str = "WITH RECURSIVE s(g) AS (SELECT CAST($1 AS BIGINT) UNION ALL SELECT g + 1 FROM s WHERE g < $2), \
     h AS (SELECT g, '00H' || CAST(1000000000000 + g AS TEXT) AS suffix, \
                  CAST($3 AS BIGINT) + g * CAST($4 AS BIGINT) / 1000000 AS at FROM s)";

/// The events of a chunk (`$5` tenant): [`SERIES`] then an insert.
pub fn insert_events() -> String {
    format!(
        "{SERIES} INSERT INTO events (id, tenant_id, kind, event_type, payload, correlation_id, created_ms) \
         SELECT 'evt_' || suffix, $5, 'event', 'bench.history', '{{\"n\":1}}', 'history-' || suffix, at FROM h"
    )
}

/// The deliveries of a chunk (`$5` tenant, `$6` endpoint, `$7` URL), delivered at their first attempt.
pub fn insert_deliveries() -> String {
    format!(
        "{SERIES} INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, dispatch_key, url, status, \
         attempt_count, cycle_started_ms, due_ms, last_status_code, correlation_id, created_ms, updated_ms) \
         SELECT 'dlv_' || suffix, $5, 'evt_' || suffix, $6, $6, $7, 'delivered', 1, at, NULL, 204, \
         'history-' || suffix, at, at + 2 FROM h"
    )
}

/// The attempts of a chunk: one 204 each, 2 ms long.
pub fn insert_attempts() -> String {
    format!(
        "{SERIES} INSERT INTO attempts (delivery_id, number, started_ms, duration_ms, status_code, response_body) \
         SELECT 'dlv_' || suffix, 1, at, 2, 204, '' FROM h"
    )
}

/// The per-minute statistics of a chunk (`$5` tenant, `$6` endpoint), added to what earlier chunks wrote for
/// the same minutes; every attempt took 2 ms, the first latency bucket.
pub fn insert_stats() -> String {
    format!(
        "{SERIES} INSERT INTO attempt_stats ({columns}) \
         SELECT $5, (at / 60000) * 60000, $6, COUNT(*), 0, 0, 2 * COUNT(*), COUNT(*), \
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 FROM h GROUP BY (at / 60000) * 60000 {add}",
        columns = crate::stats::STATS_COLUMNS,
        add = crate::stats::STATS_ADD,
    )
}

/// The statements of one chunk, in order, each with how many of [`History::params`] it takes.
pub fn chunk_statements() -> [(String, usize); 4] {
    [
        (insert_events(), 5),
        (insert_deliveries(), 7),
        (insert_attempts(), 4),
        (insert_stats(), 6),
    ]
}

/// The parameters of a chunk's statements, in order.
pub struct ChunkParams<'a> {
    /// First and last row number, `$1` and `$2`.
    pub rows: (i64, i64),
    /// `$3` and `$4`: the time of row 0 and [`History::step`].
    pub clock: (i64, i64),
    /// `$5`, `$6`, `$7`: tenant, endpoint, URL.
    pub target: (&'a str, &'a str, &'a str),
}

impl History {
    /// The parameters of the chunk that starts at row `first` and holds `rows` rows.
    pub fn params(&self, first: u64, rows: u64) -> ChunkParams<'_> {
        ChunkParams {
            rows: (first as i64, (first + rows) as i64 - 1),
            clock: (self.from_ms, self.step()),
            target: (&self.tenant_id, &self.endpoint_id, &self.url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_once() {
        let history = History {
            tenant_id: "t".into(),
            endpoint_id: "ep".into(),
            url: "http://127.0.0.1:9/".into(),
            count: 2 * HISTORY_CHUNK + 7,
            from_ms: 1_000,
            until_ms: 2_000,
        };
        let chunks: Vec<_> = history.chunks().collect();
        assert_eq!(
            chunks,
            vec![
                (0, HISTORY_CHUNK),
                (HISTORY_CHUNK, HISTORY_CHUNK),
                (2 * HISTORY_CHUNK, 7)
            ]
        );
        assert_eq!(history.created_ms(0), 1_000);
        assert!(history.created_ms(history.count - 1) < 2_000);
    }

    #[test]
    fn history_ids_sort_before_generated_ones() {
        let generated = herald_core::ids::encode_id("dlv", 1_130_000_000_000, 0);
        let history = format!("dlv_00H{}", 1_000_000_000_000u64 + 4_999_999);
        assert!(history < generated, "{history} < {generated}");
    }
}
