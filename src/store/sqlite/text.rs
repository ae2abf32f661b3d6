//! A trace's input and output in its `traces` row. Text of [`COMPRESS_FROM`] bytes or more is
//! kept compressed, as a BLOB: a tag byte, the text's size and its zstd frame or LZ4 block (the
//! store's [`Compression`]); shorter text, and all text rows written before, as TEXT. Readers
//! take either ([`TraceText`]); SQL reads them through `sh_text()` ([`register_functions`]).
//!
//! Why: a trace row of LLM traffic holds a KiB or more of prompt and a KiB or more of answer;
//! plain, the row took a 4 KiB page of its own, and every trace the writer touched rewrote one.

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, Value, ValueRef};

use crate::store::codec::{Compression, lz4_behind, unlz4, unzstd, zstd_behind};

/// The BLOB's first byte: how the text is compressed.
const ZSTD_TEXT: u8 = 1;
const LZ4_TEXT: u8 = 2;

/// Shorter text is kept as it is: compressing it saves little, and costs a frame's header.
const COMPRESS_FROM: usize = 128;

/// A text as it is written: compressed when long enough (and zstd has a context; else as it
/// is). Compression is deterministic, so `input IS NOT ?` still tells a changed text (one
/// written with the other compression reads as changed once, and is written again).
pub(super) fn stored_text(text: Option<&str>, compression: Compression) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    match compressed(text, compression) {
        Some(blob) => Value::Blob(blob),
        None => Value::Text(text.to_owned()),
    }
}

fn compressed(text: &str, compression: Compression) -> Option<Vec<u8>> {
    if text.len() < COMPRESS_FROM {
        return None;
    }
    match compression {
        Compression::Lz4 => lz4_behind(LZ4_TEXT, text.as_bytes()),
        Compression::Zstd => zstd_behind(ZSTD_TEXT, text.as_bytes()),
    }
}

/// A text as read back: `None` for NULL.
pub(super) struct TraceText(pub Option<String>);

impl FromSql for TraceText {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let bytes = match value {
            ValueRef::Null => return Ok(Self(None)),
            ValueRef::Text(bytes) => bytes.to_vec(),
            ValueRef::Blob([LZ4_TEXT, rest @ ..]) => unlz4(rest).map_err(damaged)?,
            ValueRef::Blob([ZSTD_TEXT, rest @ ..]) => unzstd(rest).map_err(damaged)?,
            ValueRef::Blob(_) => return Err(damaged("an unknown tag")),
            _ => return Err(FromSqlError::InvalidType),
        };
        String::from_utf8(bytes)
            .map(|text| Self(Some(text)))
            .map_err(|error| FromSqlError::Other(Box::new(error)))
    }
}

fn damaged(reason: impl std::fmt::Display) -> FromSqlError {
    FromSqlError::Other(format!("trace text: {reason}").into())
}

/// `sh_text(column)`: the text of a trace's `input` or `output` column, as [`TraceText`]
/// reads it, for SQL that searches it.
pub(super) fn register_functions(connection: &Connection) -> rusqlite::Result<()> {
    connection.create_scalar_function(
        "sh_text",
        1,
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS,
        |context| Ok(context.get::<TraceText>(0)?.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [Compression; 2] = [Compression::Lz4, Compression::Zstd];

    fn round_trip(
        connection: &Connection,
        text: Option<&str>,
        compression: Compression,
    ) -> (String, Option<String>) {
        connection
            .query_row(
                "SELECT typeof(?1), sh_text(?1)",
                [stored_text(text, compression)],
                |row| Ok((row.get(0)?, row.get::<_, TraceText>(1)?.0)),
            )
            .unwrap()
    }

    #[test]
    fn long_texts_are_kept_compressed_and_read_back() {
        let connection = Connection::open_in_memory().unwrap();
        register_functions(&connection).unwrap();
        let long = "Summarise the retrieved passages for the user. ".repeat(20);
        for compression in BOTH {
            assert_eq!(
                round_trip(&connection, Some(&long), compression),
                ("blob".into(), Some(long.clone()))
            );
            assert_eq!(
                round_trip(&connection, Some("short"), compression),
                ("text".into(), Some("short".into()))
            );
            assert_eq!(
                round_trip(&connection, None, compression),
                ("null".into(), None)
            );
            // The same text compresses to the same bytes: an unchanged text is seen as
            // unchanged.
            let same: bool = connection
                .query_row(
                    "SELECT ?1 IS ?2",
                    [
                        stored_text(Some(&long), compression),
                        stored_text(Some(&long), compression),
                    ],
                    |row| row.get(0),
                )
                .unwrap();
            assert!(same);
        }
        let [Value::Blob(lz4), Value::Blob(zstd)] =
            BOTH.map(|compression| stored_text(Some(&long), compression))
        else {
            panic!("not compressed");
        };
        assert_eq!((lz4[0], zstd[0]), (LZ4_TEXT, ZSTD_TEXT));
        // Rows of earlier versions hold TEXT of any length.
        let plain: TraceText = connection
            .query_row("SELECT ?1", [&long], |row| row.get(0))
            .unwrap();
        assert_eq!(plain.0, Some(long.clone()));
    }

    #[test]
    fn a_damaged_text_is_an_error() {
        let connection = Connection::open_in_memory().unwrap();
        register_functions(&connection).unwrap();
        let long = "x".repeat(500);
        let [Value::Blob(lz4), Value::Blob(zstd)] =
            BOTH.map(|compression| stored_text(Some(&long), compression))
        else {
            panic!("not compressed");
        };
        let claiming =
            |blob: &[u8], size: u32| [&blob[..1], &size.to_le_bytes(), &blob[5..]].concat();
        for damaged in [
            zstd[..zstd.len() - 2].to_vec(),
            lz4[..lz4.len() - 2].to_vec(),
            claiming(&lz4, 499),
            claiming(&lz4, 501),
            claiming(&lz4, u32::MAX),
            vec![ZSTD_TEXT],
            vec![LZ4_TEXT, 1, 0],
            vec![9, 1, 2],
        ] {
            let read =
                connection.query_row("SELECT ?1", [&damaged], |row| row.get::<_, TraceText>(0));
            assert!(read.is_err(), "{damaged:?} read");
            let read = connection.query_row("SELECT sh_text(?1)", [&damaged], |row| {
                row.get::<_, Option<String>>(0)
            });
            assert!(read.is_err(), "{damaged:?} read by sh_text");
        }
    }
}
