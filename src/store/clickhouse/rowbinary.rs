//! ClickHouse's RowBinary encoding of the span and content event rows, by hand: the spool keeps
//! rows in the exact bytes an insert sends, so delivering them is a copy instead of a JSON
//! decode and a serde encode. Field order is column order (that of `rows.rs`, which the
//! `clickhouse` crate's own inserts and selects use too).
//!
//! RowBinary: integers and floats little-endian; `String` a LEB128 length then the bytes;
//! `Nullable(T)` a byte 1 for NULL, or 0 followed by the value.

use super::rows::{ContentEventRow, SpanRow};
use super::terms::TermRow;
use crate::store::StoreError;

fn put_leb128(buffer: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            buffer.push(byte);
            return;
        }
        buffer.push(byte | 0x80);
    }
}

fn put_str(buffer: &mut Vec<u8>, value: &str) {
    put_bytes(buffer, value.as_bytes());
}

fn put_bytes(buffer: &mut Vec<u8>, value: &[u8]) {
    put_leb128(buffer, value.len() as u64);
    buffer.extend_from_slice(value);
}

fn put_opt_str(buffer: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => buffer.push(1),
        Some(value) => {
            buffer.push(0);
            put_str(buffer, value);
        }
    }
}

/// A `Nullable` of an 8-byte number (Int64, Float64), given its little-endian bytes.
fn put_opt_8(buffer: &mut Vec<u8>, value: Option<[u8; 8]>) {
    match value {
        None => buffer.push(1),
        Some(bytes) => {
            buffer.push(0);
            buffer.extend_from_slice(&bytes);
        }
    }
}

/// Reads RowBinary values from a slice.
pub struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

fn truncated() -> StoreError {
    StoreError::Corrupt("RowBinary row: truncated or malformed".into())
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    pub fn position(&self) -> usize {
        self.position
    }

    pub fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], StoreError> {
        let end = self.position.checked_add(count).ok_or_else(truncated)?;
        let slice = self.bytes.get(self.position..end).ok_or_else(truncated)?;
        self.position = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    pub fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    pub fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn leb128(&mut self) -> Result<u64, StoreError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(truncated())
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let length = usize::try_from(self.leb128()?).map_err(|_| truncated())?;
        self.take(length)
    }

    pub fn str(&mut self) -> Result<&'a str, StoreError> {
        let length = usize::try_from(self.leb128()?).map_err(|_| truncated())?;
        std::str::from_utf8(self.take(length)?).map_err(|_| truncated())
    }

    fn skip_str(&mut self) -> Result<(), StoreError> {
        let length = usize::try_from(self.leb128()?).map_err(|_| truncated())?;
        self.take(length).map(|_| ())
    }

    fn is_null(&mut self) -> Result<bool, StoreError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(truncated()),
        }
    }

    fn opt_string(&mut self) -> Result<Option<String>, StoreError> {
        Ok(if self.is_null()? {
            None
        } else {
            Some(self.str()?.to_owned())
        })
    }

    fn skip_opt_str(&mut self) -> Result<(), StoreError> {
        if !self.is_null()? {
            self.skip_str()?;
        }
        Ok(())
    }

    fn opt_i64(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(if self.is_null()? {
            None
        } else {
            Some(i64::from_le_bytes(self.array()?))
        })
    }

    fn opt_f64(&mut self) -> Result<Option<f64>, StoreError> {
        Ok(if self.is_null()? {
            None
        } else {
            Some(f64::from_le_bytes(self.array()?))
        })
    }

    fn skip_opt_8(&mut self) -> Result<(), StoreError> {
        if !self.is_null()? {
            self.take(8)?;
        }
        Ok(())
    }
}

/// Appends one span row.
pub fn put_span(buffer: &mut Vec<u8>, row: &SpanRow) {
    put_str(buffer, &row.project_id);
    put_str(buffer, &row.trace_id);
    put_str(buffer, &row.span_id);
    put_str(buffer, &row.parent_span_id);
    put_str(buffer, &row.name);
    buffer.push(row.kind as u8);
    buffer.extend_from_slice(&row.start_ns.to_le_bytes());
    buffer.extend_from_slice(&row.end_ns.to_le_bytes());
    buffer.push(row.status_code as u8);
    put_opt_str(buffer, row.service_name.as_deref());
    put_bytes(buffer, &row.body);
    put_opt_str(buffer, row.input.as_deref());
    put_opt_str(buffer, row.output.as_deref());
    put_opt_str(buffer, row.session_id.as_deref());
    put_opt_str(buffer, row.user_id.as_deref());
    put_opt_str(buffer, row.pipeline_id.as_deref());
    buffer.push(row.is_llm);
    put_opt_str(buffer, row.llm.as_deref());
    put_opt_str(buffer, row.model.as_deref());
    put_opt_8(buffer, row.prompt_tokens.map(i64::to_le_bytes));
    put_opt_8(buffer, row.completion_tokens.map(i64::to_le_bytes));
    put_opt_8(buffer, row.total_tokens.map(i64::to_le_bytes));
    put_opt_8(buffer, row.prompt_cost.map(f64::to_le_bytes));
    put_opt_8(buffer, row.completion_cost.map(f64::to_le_bytes));
    put_opt_8(buffer, row.total_cost.map(f64::to_le_bytes));
    put_opt_str(buffer, row.tool.as_deref());
    put_opt_str(buffer, row.tool_name.as_deref());
    buffer.extend_from_slice(&row.version.to_le_bytes());
}

/// Reads one span row.
pub fn read_span(reader: &mut Reader<'_>) -> Result<SpanRow, StoreError> {
    Ok(SpanRow {
        project_id: reader.str()?.to_owned(),
        trace_id: reader.str()?.to_owned(),
        span_id: reader.str()?.to_owned(),
        parent_span_id: reader.str()?.to_owned(),
        name: reader.str()?.to_owned(),
        kind: reader.u8()? as i8,
        start_ns: reader.u64()?,
        end_ns: reader.u64()?,
        status_code: reader.u8()? as i8,
        service_name: reader.opt_string()?,
        body: reader.bytes()?.to_vec(),
        input: reader.opt_string()?,
        output: reader.opt_string()?,
        session_id: reader.opt_string()?,
        user_id: reader.opt_string()?,
        pipeline_id: reader.opt_string()?,
        is_llm: reader.u8()?,
        llm: reader.opt_string()?,
        model: reader.opt_string()?,
        prompt_tokens: reader.opt_i64()?,
        completion_tokens: reader.opt_i64()?,
        total_tokens: reader.opt_i64()?,
        prompt_cost: reader.opt_f64()?,
        completion_cost: reader.opt_f64()?,
        total_cost: reader.opt_f64()?,
        tool: reader.opt_string()?,
        tool_name: reader.opt_string()?,
        version: reader.u64()?,
    })
}

/// What delivery needs of a span row without decoding it: its key, its day and where it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpanKey<'a> {
    pub project_id: &'a str,
    pub trace_id: &'a str,
    pub span_id: &'a str,
    pub start_ns: u64,
    /// Byte range of the whole row in the slice read.
    pub start: usize,
    pub end: usize,
}

/// Reads the key of one span row and skips the rest of it.
pub fn scan_span<'a>(reader: &mut Reader<'a>) -> Result<SpanKey<'a>, StoreError> {
    let start = reader.position();
    let project_id = reader.str()?;
    let trace_id = reader.str()?;
    let span_id = reader.str()?;
    reader.skip_str()?; // parent_span_id
    reader.skip_str()?; // name
    reader.u8()?; // kind
    let start_ns = reader.u64()?;
    reader.u64()?; // end_ns
    reader.u8()?; // status_code
    reader.skip_opt_str()?; // service_name
    reader.skip_str()?; // body
    for _ in 0..5 {
        reader.skip_opt_str()?; // input, output, session_id, user_id, pipeline_id
    }
    reader.u8()?; // is_llm
    reader.skip_opt_str()?; // llm
    reader.skip_opt_str()?; // model
    for _ in 0..6 {
        reader.skip_opt_8()?; // three token counts, three costs
    }
    reader.skip_opt_str()?; // tool
    reader.skip_opt_str()?; // tool_name
    reader.u64()?; // version
    Ok(SpanKey {
        project_id,
        trace_id,
        span_id,
        start_ns,
        start,
        end: reader.position(),
    })
}

/// Appends one content event row.
pub fn put_content_event(buffer: &mut Vec<u8>, row: &ContentEventRow) {
    put_str(buffer, &row.project_id);
    put_str(buffer, &row.trace_id);
    put_str(buffer, &row.span_id);
    buffer.extend_from_slice(&row.time_ns.to_le_bytes());
    put_str(buffer, &row.name);
    put_str(buffer, &row.attributes);
    put_str(buffer, &row.fingerprint);
}

/// Reads one content event row.
pub fn read_content_event(reader: &mut Reader<'_>) -> Result<ContentEventRow, StoreError> {
    Ok(ContentEventRow {
        project_id: reader.str()?.to_owned(),
        trace_id: reader.str()?.to_owned(),
        span_id: reader.str()?.to_owned(),
        time_ns: reader.u64()?,
        name: reader.str()?.to_owned(),
        attributes: reader.str()?.to_owned(),
        fingerprint: reader.str()?.to_owned(),
    })
}

/// Appends one term row (`span_terms`).
pub fn put_term(buffer: &mut Vec<u8>, row: &TermRow) {
    put_str(buffer, &row.project_id);
    buffer.push(row.kind);
    put_str(buffer, &row.key);
    put_str(buffer, &row.value);
    buffer.push(row.value_type);
    buffer.extend_from_slice(&row.number.to_le_bytes());
    put_str(buffer, &row.trace_id);
    put_str(buffer, &row.span_id);
    buffer.extend_from_slice(&row.start_ns.to_le_bytes());
}

/// Reads one term row.
pub fn read_term(reader: &mut Reader<'_>) -> Result<TermRow, StoreError> {
    Ok(TermRow {
        project_id: reader.str()?.to_owned(),
        kind: reader.u8()?,
        key: reader.str()?.to_owned(),
        value: reader.str()?.to_owned(),
        value_type: reader.u8()?,
        number: f64::from_le_bytes(reader.array()?),
        trace_id: reader.str()?.to_owned(),
        span_id: reader.str()?.to_owned(),
        start_ns: reader.u64()?,
    })
}

/// `INSERT INTO table(columns) FORMAT RowBinary`, as the `clickhouse` crate writes it.
pub fn insert_statement<T: clickhouse::Row>(table: &str) -> String {
    let columns: Vec<String> = T::COLUMN_NAMES
        .iter()
        .map(|name| format!("`{name}`"))
        .collect();
    format!(
        "INSERT INTO {table}({}) FORMAT RowBinary",
        columns.join(",")
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn span_row(span_id: &str, full: bool) -> SpanRow {
        let some = |text: &str| full.then(|| text.to_owned());
        SpanRow {
            project_id: "p".into(),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: span_id.into(),
            parent_span_id: String::new(),
            name: "chat ünïcode".into(),
            kind: -1,
            start_ns: 1_700_000_000_000_000_000,
            end_ns: 1_700_000_000_500_000_000,
            status_code: 2,
            service_name: some("svc"),
            body: "{\"attributes\":{\"a\":\"x\".repeat(200)}}"
                .repeat(if full { 20 } else { 1 })
                .into_bytes(),
            input: some("in"),
            output: some("out"),
            session_id: some("s"),
            user_id: some("u"),
            pipeline_id: some("pl"),
            is_llm: u8::from(full),
            llm: some("{}"),
            model: some("gpt"),
            prompt_tokens: full.then_some(-3),
            completion_tokens: full.then_some(4),
            total_tokens: full.then_some(i64::MAX),
            prompt_cost: full.then_some(0.25),
            completion_cost: full.then_some(-1.5),
            total_cost: full.then_some(f64::MIN_POSITIVE),
            tool: some("{\"name\":\"t\"}"),
            tool_name: some("t"),
            version: u64::MAX - 1,
        }
    }

    #[test]
    fn span_rows_round_trip_and_scan_to_their_end() {
        let rows = [span_row("a", true), span_row("b", false)];
        let mut bytes = Vec::new();
        for row in &rows {
            put_span(&mut bytes, row);
        }
        let mut reader = Reader::new(&bytes);
        for row in &rows {
            assert_eq!(&read_span(&mut reader).unwrap(), row);
        }
        assert!(reader.is_empty());

        let mut reader = Reader::new(&bytes);
        let first = scan_span(&mut reader).unwrap();
        let second = scan_span(&mut reader).unwrap();
        assert!(reader.is_empty());
        assert_eq!(
            (first.project_id, first.span_id, first.start_ns, first.start),
            ("p", "a", rows[0].start_ns, 0)
        );
        assert_eq!((second.start, second.end), (first.end, bytes.len()));
        let mut alone = Vec::new();
        put_span(&mut alone, &rows[1]);
        assert_eq!(&bytes[second.start..second.end], &alone[..]);

        assert!(read_span(&mut Reader::new(&bytes[..bytes.len() - 1])).is_ok());
        assert!(scan_span(&mut Reader::new(&alone[..alone.len() - 1])).is_err());
    }

    #[test]
    fn leb128_lengths_past_one_byte() {
        let mut row = span_row("a", false);
        row.body = "x".repeat(300_000).into_bytes();
        let mut bytes = Vec::new();
        put_span(&mut bytes, &row);
        assert_eq!(read_span(&mut Reader::new(&bytes)).unwrap(), row);
    }

    #[test]
    fn term_rows_round_trip_in_column_order() {
        let row = TermRow {
            project_id: "p".into(),
            kind: 1,
            key: "tenant".into(),
            value: "0.75".into(),
            value_type: 3,
            number: 0.75,
            trace_id: "t".into(),
            span_id: "s".into(),
            start_ns: 9,
        };
        let mut bytes = Vec::new();
        put_term(&mut bytes, &row);
        let mut reader = Reader::new(&bytes);
        assert_eq!(read_term(&mut reader).unwrap(), row);
        assert!(reader.is_empty());
        assert_eq!(
            insert_statement::<TermRow>("span_terms"),
            "INSERT INTO span_terms(`project_id`,`kind`,`key`,`value`,`value_type`,`number`,\
             `trace_id`,`span_id`,`start_ns`) FORMAT RowBinary"
        );
    }

    #[test]
    fn content_event_rows_round_trip() {
        let row = ContentEventRow {
            project_id: "p".into(),
            trace_id: "t".into(),
            span_id: "s".into(),
            time_ns: 7,
            name: "gen_ai.user.message".into(),
            attributes: "{\"content\":\"hi\"}".into(),
            fingerprint: "f".into(),
        };
        let mut bytes = Vec::new();
        put_content_event(&mut bytes, &row);
        let mut reader = Reader::new(&bytes);
        assert_eq!(read_content_event(&mut reader).unwrap(), row);
        assert!(reader.is_empty());
    }

    #[test]
    fn insert_statement_names_the_columns_in_order() {
        let statement = insert_statement::<ContentEventRow>("span_content_events");
        assert_eq!(
            statement,
            "INSERT INTO span_content_events(`project_id`,`trace_id`,`span_id`,`time_ns`,\
             `name`,`attributes`,`fingerprint`) FORMAT RowBinary"
        );
    }
}
