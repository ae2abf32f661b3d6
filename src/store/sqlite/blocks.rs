//! Blocks of spans compressed together (`store::codec::blocks`) in the `span_blocks` table: the
//! writer inserts each block once, in the transaction that stores the spans pointing into it;
//! readers find a span's block by the id in its body and keep the last few
//! decompressed, since the spans of a trace are read together.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::store::StoreError;
use crate::store::StoreResult;
use crate::store::codec::{BlockPart, StoredBody, decode_stored_body, decompress_packed};

/// Gives the blocks of a transaction's spans their ids, and inserts each once a span pointing
/// into it is stored: a block whose spans were all stored before (a client's retry) is not
/// written. Only the writer holding the write lock allocates ids, so they cannot collide.
pub(super) struct BlockWriter<'t> {
    transaction: &'t Transaction<'t>,
    next_id: Option<i64>,
    /// Block ids by the address of their bytes (the spans sharing a block hold one `Arc`, alive
    /// for the whole transaction), and whether the block is written.
    ids: HashMap<*const Vec<u8>, (i64, bool)>,
}

impl<'t> BlockWriter<'t> {
    pub(super) fn new(transaction: &'t Transaction<'t>) -> Self {
        Self {
            transaction,
            next_id: None,
            ids: HashMap::new(),
        }
    }

    /// The body of a span `len` bytes from `start` in `block`.
    pub(super) fn body(
        &mut self,
        block: &Arc<Vec<u8>>,
        start: u32,
        len: u32,
    ) -> StoreResult<Vec<u8>> {
        let id = match self.ids.get(&Arc::as_ptr(block)) {
            Some((id, _)) => *id,
            None => {
                let id = match self.next_id {
                    Some(id) => id,
                    None => self
                        .transaction
                        .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM span_blocks")?
                        .query_row([], |row| row.get(0))?,
                };
                self.next_id = Some(id + 1);
                self.ids.insert(Arc::as_ptr(block), (id, false));
                id
            }
        };
        Ok(BlockPart {
            block: id,
            start,
            len,
        }
        .encode())
    }

    /// Writes `block`, given its id by [`BlockWriter::body`], unless written already: a span
    /// pointing into it was stored.
    pub(super) fn stored(&mut self, block: &Arc<Vec<u8>>) -> StoreResult<()> {
        let Some((id, written)) = self.ids.get_mut(&Arc::as_ptr(block)) else {
            return Err(StoreError::Corrupt("a block without an id".into()));
        };
        if !*written {
            self.transaction
                .prepare_cached("INSERT INTO span_blocks (id, data) VALUES (?1, ?2)")?
                .execute(params![*id, block.as_slice()])?;
            *written = true;
        }
        Ok(())
    }
}

/// How many decompressed blocks a reader keeps: a trace's spans are read in time order, which
/// can alternate between the blocks of the requests that brought them.
const KEPT_BLOCKS: usize = 4;

/// Reads stored bodies, finding the blocks of those that are parts of one.
pub(super) struct BodyReader<'c> {
    connection: &'c Connection,
    /// The last blocks read, decompressed, in the order they were read.
    kept: Vec<(i64, Vec<u8>)>,
}

impl<'c> BodyReader<'c> {
    pub(super) fn new(connection: &'c Connection) -> Self {
        Self {
            connection,
            kept: Vec::new(),
        }
    }

    /// The body stored as `bytes`.
    pub(super) fn read(&mut self, bytes: &[u8]) -> StoreResult<StoredBody> {
        let Some(part) = BlockPart::of_body(bytes) else {
            return decode_stored_body(bytes);
        };
        let part = part?;
        let position = match self.kept.iter().position(|(id, _)| *id == part.block) {
            Some(position) => position,
            None => {
                let data: Option<Vec<u8>> = self
                    .connection
                    .prepare_cached("SELECT data FROM span_blocks WHERE id = ?1")?
                    .query_row([part.block], |row| row.get(0))
                    .optional()?;
                let data = data.ok_or_else(|| {
                    StoreError::Corrupt(format!("span body: block {} is missing", part.block))
                })?;
                if self.kept.len() == KEPT_BLOCKS {
                    self.kept.remove(0);
                }
                self.kept.push((part.block, decompress_packed(&data)?));
                self.kept.len() - 1
            }
        };
        part.body(&self.kept[position].1)
    }
}
