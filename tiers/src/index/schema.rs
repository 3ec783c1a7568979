//! The index's columns, its row type and conversions between rows and Arrow record batches.
//!
//! One row per stored block, keyed by the block's multihash (the blockstore's key, so CIDv0 and
//! CIDv1 of the same bytes are one row). Rows are kept sorted by that key, which is what makes a
//! CID lookup a binary search over the mapped `cid` column.

use super::IndexError;
use arrow_array::builder::ArrayBuilder;
use arrow_array::builder::{
    BinaryBuilder, Float32Builder, StringBuilder, TimestampMillisecondBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, TimestampMillisecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, BinaryArray, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use cid::Cid;
use std::cmp::Ordering;
use std::sync::{Arc, OnceLock};

/// Bytes of a pin name the index stores (the repository's own bound).
pub const PIN_NAME_BYTES_MAX: usize = 1024;
/// Bytes of a CID the index stores (bitswap's bound on CIDs).
pub const CID_BYTES_MAX: usize = 168;

pub const COL_CID: usize = 0;
pub const COL_SIZE: usize = 1;
pub const COL_CODEC: usize = 2;
pub const COL_PIN_TYPE: usize = 3;
pub const COL_PIN_NAME: usize = 4;
pub const COL_TIERS: usize = 5;
pub const COL_FIRST_SEEN: usize = 6;
pub const COL_LAST_ACCESS: usize = 7;
pub const COL_ACCESS_COUNT: usize = 8;
pub const COL_HEAT: usize = 9;
pub const COL_REPLICATION: usize = 10;
/// Delta segments only: the row is a tombstone.
pub const COL_DELETED: usize = 11;

/// How a block is pinned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum PinType {
    #[default]
    None = 0,
    Direct = 1,
    Recursive = 2,
    Indirect = 3,
}

impl PinType {
    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => Self::None,
            1 => Self::Direct,
            2 => Self::Recursive,
            3 => Self::Indirect,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Direct => "direct",
            Self::Recursive => "recursive",
            Self::Indirect => "indirect",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "direct" => Self::Direct,
            "recursive" => Self::Recursive,
            "indirect" => Self::Indirect,
            _ => return None,
        })
    }
}

/// One block's metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexRow {
    pub cid: Cid,
    pub size: u64,
    /// Multicodec of the CID as first recorded (`raw` when only the blockstore knew it).
    pub codec: u64,
    pub pin: PinType,
    pub pin_name: Option<String>,
    /// Bitmask over the index's tier table (bit i = the i-th registered tier holds the block).
    pub tiers: u32,
    pub first_seen_ms: i64,
    pub last_access_ms: Option<i64>,
    pub access_count: u64,
    pub heat: f32,
    pub replication: u16,
}

impl IndexRow {
    /// A freshly seen block.
    pub fn new(cid: Cid, size: u64, now_ms: i64) -> Self {
        Self {
            codec: cid.codec(),
            cid,
            size,
            pin: PinType::None,
            pin_name: None,
            tiers: 0,
            first_seen_ms: now_ms,
            last_access_ms: None,
            access_count: 0,
            heat: 0.0,
            replication: 0,
        }
    }

    /// The sort key: the multihash bytes.
    pub fn key(&self) -> Vec<u8> {
        self.cid.hash().to_bytes()
    }
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The schema of base segments and snapshots.
pub fn schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| Arc::new(Schema::new(fields(false))))
        .clone()
}

/// The schema of delta segments: the base schema plus a `deleted` flag.
pub fn delta_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| Arc::new(Schema::new(fields(true))))
        .clone()
}

fn fields(with_deleted: bool) -> Vec<Field> {
    let mut f = vec![
        Field::new("cid", DataType::Binary, false),
        Field::new("size", DataType::UInt64, false),
        Field::new("codec", DataType::UInt64, false),
        Field::new("pin_type", DataType::UInt8, false),
        Field::new("pin_name", DataType::Utf8, true),
        Field::new("tiers", DataType::UInt32, false),
        Field::new("first_seen", ts_type(), false),
        Field::new("last_access", ts_type(), true),
        Field::new("access_count", DataType::UInt64, false),
        Field::new("heat", DataType::Float32, false),
        Field::new("replication", DataType::UInt16, false),
    ];
    if with_deleted {
        f.push(Field::new("deleted", DataType::Boolean, false));
    }
    f
}

/// Column builders for rows appended in order.
pub struct RowsBuilder {
    cid: BinaryBuilder,
    size: UInt64Builder,
    codec: UInt64Builder,
    pin_type: UInt8Builder,
    pin_name: StringBuilder,
    tiers: UInt32Builder,
    first_seen: TimestampMillisecondBuilder,
    last_access: TimestampMillisecondBuilder,
    access_count: UInt64Builder,
    heat: Float32Builder,
    replication: UInt16Builder,
    deleted: Vec<bool>,
}

impl RowsBuilder {
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            cid: BinaryBuilder::with_capacity(rows, rows * 36),
            size: UInt64Builder::with_capacity(rows),
            codec: UInt64Builder::with_capacity(rows),
            pin_type: UInt8Builder::with_capacity(rows),
            pin_name: StringBuilder::new(),
            tiers: UInt32Builder::with_capacity(rows),
            first_seen: TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC"),
            last_access: TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC"),
            access_count: UInt64Builder::with_capacity(rows),
            heat: Float32Builder::with_capacity(rows),
            replication: UInt16Builder::with_capacity(rows),
            deleted: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.size.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, r: &IndexRow) {
        self.cid.append_value(r.cid.to_bytes());
        self.size.append_value(r.size);
        self.codec.append_value(r.codec);
        self.pin_type.append_value(r.pin as u8);
        self.pin_name.append_option(r.pin_name.as_deref());
        self.tiers.append_value(r.tiers);
        self.first_seen.append_value(r.first_seen_ms);
        self.last_access.append_option(r.last_access_ms);
        self.access_count.append_value(r.access_count);
        self.heat.append_value(r.heat);
        self.replication.append_value(r.replication);
    }

    /// A delta-segment entry: a row, or a tombstone for `cid`.
    pub fn push_delta(&mut self, cid: &Cid, row: Option<&IndexRow>) {
        match row {
            Some(r) => self.push(r),
            None => self.push(&IndexRow::new(*cid, 0, 0)),
        }
        self.deleted.push(row.is_none());
    }

    fn columns(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.cid.finish()),
            Arc::new(self.size.finish()),
            Arc::new(self.codec.finish()),
            Arc::new(self.pin_type.finish()),
            Arc::new(self.pin_name.finish()),
            Arc::new(self.tiers.finish()),
            Arc::new(self.first_seen.finish()),
            Arc::new(self.last_access.finish()),
            Arc::new(self.access_count.finish()),
            Arc::new(self.heat.finish()),
            Arc::new(self.replication.finish()),
        ]
    }

    pub fn finish(mut self) -> Result<RecordBatch, IndexError> {
        Ok(RecordBatch::try_new(schema(), self.columns())?)
    }

    pub fn finish_delta(mut self) -> Result<RecordBatch, IndexError> {
        let mut cols = self.columns();
        cols.push(Arc::new(BooleanArray::from(std::mem::take(
            &mut self.deleted,
        ))));
        Ok(RecordBatch::try_new(delta_schema(), cols)?)
    }
}

/// Checks that a batch read from disk has the index's columns (by name and type).
pub fn check_schema(batch: &RecordBatch, delta: bool) -> Result<(), IndexError> {
    let want = if delta { delta_schema() } else { schema() };
    let got = batch.schema();
    let same = got.fields().len() == want.fields().len()
        && got
            .fields()
            .iter()
            .zip(want.fields().iter())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if same {
        Ok(())
    } else {
        Err(IndexError::Corrupt(format!(
            "unexpected columns {:?}",
            got.fields().iter().map(|f| f.name()).collect::<Vec<_>>()
        )))
    }
}

/// Reads row `i` of a batch with the index's schema (checked by [`check_schema`]).
pub fn row_at(batch: &RecordBatch, i: usize) -> Result<IndexRow, IndexError> {
    let c = batch.columns();
    let cid_bytes = c[COL_CID].as_binary::<i32>().value(i);
    let cid = Cid::try_from(cid_bytes)
        .map_err(|e| IndexError::Corrupt(format!("row {i}: bad CID bytes: {e}")))?;
    let pin_code = c[COL_PIN_TYPE].as_primitive::<UInt8Type>().value(i);
    let pin = PinType::from_code(pin_code)
        .ok_or_else(|| IndexError::Corrupt(format!("row {i}: pin type {pin_code}")))?;
    let pin_name = c[COL_PIN_NAME].as_string::<i32>();
    let last = c[COL_LAST_ACCESS].as_primitive::<TimestampMillisecondType>();
    Ok(IndexRow {
        cid,
        size: c[COL_SIZE].as_primitive::<UInt64Type>().value(i),
        codec: c[COL_CODEC].as_primitive::<UInt64Type>().value(i),
        pin,
        pin_name: pin_name.is_valid(i).then(|| pin_name.value(i).to_string()),
        tiers: c[COL_TIERS].as_primitive::<UInt32Type>().value(i),
        first_seen_ms: c[COL_FIRST_SEEN]
            .as_primitive::<TimestampMillisecondType>()
            .value(i),
        last_access_ms: last.is_valid(i).then(|| last.value(i)),
        access_count: c[COL_ACCESS_COUNT].as_primitive::<UInt64Type>().value(i),
        heat: c[COL_HEAT].as_primitive::<Float32Type>().value(i),
        replication: c[COL_REPLICATION].as_primitive::<UInt16Type>().value(i),
    })
}

/// The multihash part of CID bytes: the whole of a CIDv0, what follows the version and codec
/// varints of a CIDv1. Malformed bytes compare as themselves (they sort, never panic).
pub fn key_of(cid_bytes: &[u8]) -> &[u8] {
    if cid_bytes.len() == 34 && cid_bytes[0] == 0x12 && cid_bytes[1] == 0x20 {
        return cid_bytes;
    }
    let mut pos = 0;
    for _ in 0..2 {
        match skip_varint(&cid_bytes[pos..]) {
            Some(n) => pos += n,
            None => return cid_bytes,
        }
    }
    &cid_bytes[pos..]
}

fn skip_varint(b: &[u8]) -> Option<usize> {
    b.iter().take(10).position(|x| x & 0x80 == 0).map(|p| p + 1)
}

/// Binary search of `key` in a `cid` column sorted by [`key_of`].
pub fn search(cids: &BinaryArray, key: &[u8]) -> Result<usize, usize> {
    let (mut lo, mut hi) = (0usize, cids.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match key_of(cids.value(mid)).cmp(key) {
            Ordering::Less => lo = mid + 1,
            Ordering::Greater => hi = mid,
            Ordering::Equal => return Ok(mid),
        }
    }
    Err(lo)
}

/// Whether a `cid` column is strictly increasing by key (checked on rebuilt data in tests).
pub fn is_sorted(cids: &BinaryArray) -> bool {
    (1..cids.len()).all(|i| key_of(cids.value(i - 1)) < key_of(cids.value(i)))
}
