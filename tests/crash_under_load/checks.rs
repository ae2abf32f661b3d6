//! The checks and the ClickHouse of `crash_under_load.rs`: reading every acknowledged span back
//! (through the API and in the store's own rows), the report lines, and a ClickHouse of the
//! test's own that it may stop and start.

use super::*;

/// Through the API: every trace with an acknowledged span (or, with `sample`, the long traces
/// and every `sample`th other one) is found, lists each of its spans once, counts as many
/// spans as it lists, and holds every acknowledged span.
pub(super) async fn assert_read_back(
    http: SocketAddr,
    token: &str,
    acknowledged: &[Acknowledged],
    sample: Option<usize>,
) {
    let mut traces: BTreeMap<TraceId, HashSet<SpanId>> = BTreeMap::new();
    for request in acknowledged {
        for (trace, span) in &request.spans {
            traces.entry(*trace).or_default().insert(*span);
        }
    }
    if let Some(every) = sample {
        let mut others = 0;
        traces.retain(|trace, _| {
            others += 1;
            trace[0] == long_trace(0)[0] || others % every == 0
        });
    }
    let client = reqwest::Client::new();
    for (trace, spans) in &traces {
        let trace = hex_of(trace);
        let response = client
            .get(format!("http://{http}/api/v1/traces/{trace}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "trace {trace} lost");
        let body: serde_json::Value = response.json().await.unwrap();
        let listed: Vec<&str> = body["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|span| span["span_id"].as_str().unwrap())
            .collect();
        let unique: HashSet<&str> = listed.iter().copied().collect();
        assert_eq!(unique.len(), listed.len(), "a span listed twice in {trace}");
        assert_eq!(
            body["trace"]["span_count"],
            listed.len(),
            "the span count of {trace}"
        );
        for span in spans {
            assert!(
                unique.contains(hex_of(span).as_str()),
                "acknowledged span {} of trace {trace} lost",
                hex_of(span)
            );
        }
    }
}

/// From a store's own count of rows per span: every acknowledged span is there once, nothing
/// is there twice, and nothing is there that was not sent.
pub(super) fn assert_exactly_once(
    rows: &HashMap<(String, String), u64>,
    outcome: &Outcome,
) -> (usize, usize) {
    let sent: HashSet<(String, String)> = outcome
        .sent
        .iter()
        .map(|(trace, span)| (hex_of(trace), hex_of(span)))
        .collect();
    for (key, count) in rows {
        assert_eq!(*count, 1, "span {key:?} stored {count} times");
        assert!(sent.contains(key), "span {key:?} stored but never sent");
    }
    let mut acknowledged = 0;
    for request in &outcome.acknowledged {
        for (trace, span) in &request.spans {
            let key = (hex_of(trace), hex_of(span));
            assert_eq!(rows.get(&key), Some(&1), "acknowledged span {key:?}");
            acknowledged += 1;
        }
    }
    // Spans stored that were not acknowledged: sent by requests in flight at the kill.
    (acknowledged, rows.len() - acknowledged)
}

/// What became of one round of load.
pub(super) fn report(round: &str, outcome: &Outcome, in_flight: u64) {
    let spans: usize = outcome
        .acknowledged
        .iter()
        .map(|request| request.spans.len())
        .sum();
    let while_down = outcome
        .acknowledged
        .iter()
        .filter(|request| request.while_down)
        .count();
    let while_down = if while_down > 0 {
        format!("; {while_down} requests sent while ClickHouse was stopped")
    } else {
        String::new()
    };
    eprintln!(
        "{round}: {} requests acknowledged ({spans} spans{while_down}), {in_flight} in flight \
         at the kill, {} unanswered, {} refused",
        outcome.acknowledged.len(),
        outcome.unanswered,
        outcome.refused.len(),
    );
}

/// What the store holds, from `assert_exactly_once`.
pub(super) fn report_stored(backend: &str, (acknowledged, unanswered): (usize, usize)) {
    eprintln!(
        "{backend}: each of the {acknowledged} acknowledged spans stored once, and \
         {unanswered} spans of unanswered requests"
    );
}

/// Rows per (trace, span) in the embedded store's file, opened read-only.
pub(super) fn sqlite_rows(path: &Path) -> HashMap<(String, String), u64> {
    let database =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut statement = database
        .prepare(
            "SELECT lower(hex(trace_id)), lower(hex(span_id)), count(*) FROM spans \
             GROUP BY project_id, trace_id, span_id",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            Ok(((row.get(0)?, row.get(1)?), row.get::<_, i64>(2)? as u64))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A ClickHouse of the test's own (scripts/clickhouse.sh), stopped when dropped.
pub(super) struct OwnClickHouse {
    pub(super) directory: tempfile::TempDir,
    pub(super) http_port: u16,
    pub(super) tcp_port: u16,
}

impl OwnClickHouse {
    /// Starts one on free ports, or `None` (after `require`) when clickhouse-server is not
    /// installed or does not start.
    pub(super) fn start() -> Option<Self> {
        let installed = std::process::Command::new("sh")
            .args(["-c", "command -v clickhouse-server"])
            .output()
            .is_ok_and(|output| output.status.success());
        require(installed.then_some(()), "clickhouse-server")?;
        // Two free ports, held together so that they differ, and let go for ClickHouse.
        let listeners = [(); 2].map(|()| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let [http_port, tcp_port] = listeners.map(|listener| listener.local_addr().unwrap().port());
        let clickhouse = Self {
            directory: tempfile::tempdir().unwrap(),
            http_port,
            tcp_port,
        };
        let started = clickhouse.run_script("start");
        let failure = String::from_utf8_lossy(&started.stderr);
        require(
            started.status.success().then_some(clickhouse),
            &format!("a ClickHouse that starts (scripts/clickhouse.sh start: {failure})"),
        )
    }

    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Runs scripts/clickhouse.sh on this instance (`start`, `stop`, `resume`). Blocking.
    pub(super) fn script(&self, command: &str) {
        let output = self.run_script(command);
        assert!(
            output.status.success(),
            "scripts/clickhouse.sh {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub(super) fn run_script(&self, command: &str) -> std::process::Output {
        std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/clickhouse.sh"
            ))
            .arg(command)
            .env(
                "SPANHOUSE_TEST_CLICKHOUSE_HTTP_PORT",
                self.http_port.to_string(),
            )
            .env(
                "SPANHOUSE_TEST_CLICKHOUSE_TCP_PORT",
                self.tcp_port.to_string(),
            )
            .env("SPANHOUSE_TEST_CLICKHOUSE_DIR", self.directory.path())
            .output()
            .unwrap()
    }

    pub(super) async fn query(&self, sql: String) -> String {
        let response = reqwest::Client::new()
            .post(self.url())
            .body(sql)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// Rows per (trace, span) in a database's spans: as queries see them (`FINAL`), or every
    /// row inserted and not merged yet.
    pub(super) async fn rows(
        &self,
        database: &str,
        final_: bool,
    ) -> HashMap<(String, String), u64> {
        let table = if final_ { "spans FINAL" } else { "spans" };
        self.query(format!(
            "SELECT lower(trace_id), lower(span_id), count() FROM {database}.{table} \
             GROUP BY project_id, trace_id, span_id FORMAT TSV"
        ))
        .await
        .lines()
        .map(|line| {
            let mut fields = line.split('\t');
            let trace = fields.next().unwrap().to_owned();
            let span = fields.next().unwrap().to_owned();
            let count = fields.next().unwrap().parse().unwrap();
            ((trace, span), count)
        })
        .collect()
    }
}

impl Drop for OwnClickHouse {
    fn drop(&mut self) {
        // Also when the test failed: no assertion here.
        let _ = self.run_script("stop");
    }
}

/// Spool files in a data directory: what was acknowledged and not delivered yet.
pub(super) fn spool_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("spool"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".spool")
        })
        .count()
}

pub(super) async fn wait_until_drained(http: SocketAddr) {
    let started = Instant::now();
    while buffered(http).await > 0 {
        assert!(
            started.elapsed() < WAIT_AT_MOST,
            "gave up waiting for the spool to drain"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `buffered` count `/readyz` reports (also while it answers 503).
pub(super) async fn buffered(http: SocketAddr) -> u64 {
    let response = reqwest::get(format!("http://{http}/readyz")).await.unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    body["buffered"].as_u64().unwrap()
}
