//! Queries over the index: `<column> <op> <value> [and ...]`, a sort column and a limit,
//! evaluated with Arrow compute kernels over the mapped base and the small delta batch; and the
//! Parquet export.
//!
//! Grammar (`--where`): clauses joined by `and` (any case); a clause is a column name, one of
//! `= != < <= > >=`, and a value, optionally quoted with `'` or `"`. Values are parsed by the
//! column's type: integers for sizes, counts and times (Unix milliseconds), a float for heat, a
//! name or number for `codec`, `none|direct|recursive|indirect` for `pin_type`, a tier name for
//! `tiers` (`=` holds it, `!=` does not), a CID for `cid` (`=`/`!=`). A null `last_access`
//! (never read) matches no comparison.

use super::schema::{self, PinType};
use super::{files, IndexError, IndexRow};
use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::types::UInt8Type;
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float32Array, RecordBatch, Scalar, StringArray,
    TimestampMillisecondArray, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_buffer::BooleanBuffer;
use arrow_ord::cmp;
use arrow_ord::sort::{sort_to_indices, SortOptions};
use arrow_schema::{DataType, Field, Schema};
use cid::Cid;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Bytes of a `--where` expression.
pub const WHERE_BYTES_MAX: usize = 4096;
/// Clauses in one `--where`.
pub const WHERE_CLAUSES_MAX: usize = 32;
/// Rows one query returns.
pub const QUERY_LIMIT_ROWS_MAX: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("--where of {bytes} bytes (max {max})")]
    TooLong { bytes: usize, max: usize },
    #[error("more than {max} clauses")]
    TooManyClauses { max: usize },
    #[error("unknown column {0:?} (columns: {cols})", cols = Column::NAMES.join(", "))]
    UnknownColumn(String),
    #[error("expected an operator (= != < <= > >=) after {column:?}, found {found:?}")]
    ExpectedOperator { column: String, found: String },
    #[error("missing value after {column} {op}")]
    MissingValue { column: String, op: String },
    #[error("expected \"and\" between clauses, found {0:?}")]
    ExpectedAnd(String),
    #[error("unterminated quote in --where")]
    UnterminatedQuote,
    #[error("empty clause in --where")]
    EmptyClause,
    #[error("bad value {value:?} for {column}: expected {expected}")]
    BadValue {
        column: String,
        value: String,
        expected: &'static str,
    },
    #[error("operator {op} is not supported on {column} (use = or !=)")]
    UnsupportedOperator { column: String, op: String },
    #[error("limit {limit} over the maximum {max}")]
    LimitTooLarge { limit: usize, max: usize },
}

/// The index's columns, as named in queries and in the Parquet files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Cid,
    Size,
    Codec,
    PinType,
    PinName,
    Tiers,
    FirstSeen,
    LastAccess,
    AccessCount,
    Heat,
    Replication,
}

impl Column {
    pub const NAMES: [&'static str; 11] = [
        "cid",
        "size",
        "codec",
        "pin_type",
        "pin_name",
        "tiers",
        "first_seen",
        "last_access",
        "access_count",
        "heat",
        "replication",
    ];
    const ALL: [Column; 11] = [
        Column::Cid,
        Column::Size,
        Column::Codec,
        Column::PinType,
        Column::PinName,
        Column::Tiers,
        Column::FirstSeen,
        Column::LastAccess,
        Column::AccessCount,
        Column::Heat,
        Column::Replication,
    ];

    pub fn parse(s: &str) -> Result<Column, QueryError> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| QueryError::UnknownColumn(s.to_string()))
    }
    pub fn name(self) -> &'static str {
        Self::NAMES[self.index()]
    }
    /// The column's position in the index schema.
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "=" | "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            _ => return None,
        })
    }
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// A typed comparison value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U64(u64),
    U16(u16),
    I64(i64),
    F32(f32),
    Pin(PinType),
    Text(String),
    Tier(String),
    Cid(Cid),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Predicate {
    pub column: Column,
    pub op: Op,
    pub value: Value,
}

/// A parsed query.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub filters: Vec<Predicate>,
    /// Sort column and whether descending.
    pub sort: Option<(Column, bool)>,
    pub limit: usize,
}

impl Query {
    /// Parses `--where`, `--sort` and `--limit`.
    pub fn parse(
        where_: Option<&str>,
        sort: Option<&str>,
        descending: bool,
        limit: usize,
    ) -> Result<Query, QueryError> {
        if limit > QUERY_LIMIT_ROWS_MAX {
            return Err(QueryError::LimitTooLarge {
                limit,
                max: QUERY_LIMIT_ROWS_MAX,
            });
        }
        let filters = match where_ {
            Some(w) => parse_where(w)?,
            None => Vec::new(),
        };
        let sort = sort
            .map(Column::parse)
            .transpose()?
            .map(|c| (c, descending));
        Ok(Query {
            filters,
            sort,
            limit,
        })
    }
}

fn tokenize(s: &str) -> Result<Vec<String>, QueryError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut t = String::new();
            loop {
                match chars.next() {
                    Some(x) if x == c => break,
                    Some(x) => t.push(x),
                    None => return Err(QueryError::UnterminatedQuote),
                }
            }
            // Quoted text is a value even if it looks like an operator or "and".
            out.push(format!("\u{0}{t}"));
        } else if "=!<>".contains(c) {
            let mut t = String::new();
            while let Some(&x) = chars.peek() {
                if "=!<>".contains(x) {
                    t.push(x);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(t);
        } else {
            let mut t = String::new();
            while let Some(&x) = chars.peek() {
                if x.is_whitespace() || "=!<>'\"".contains(x) {
                    break;
                }
                t.push(x);
                chars.next();
            }
            out.push(t);
        }
    }
    Ok(out)
}

fn unquote(t: &str) -> &str {
    t.strip_prefix('\u{0}').unwrap_or(t)
}

/// Parses a `--where` expression.
pub fn parse_where(s: &str) -> Result<Vec<Predicate>, QueryError> {
    if s.len() > WHERE_BYTES_MAX {
        return Err(QueryError::TooLong {
            bytes: s.len(),
            max: WHERE_BYTES_MAX,
        });
    }
    let tokens = tokenize(s)?;
    let mut out = Vec::new();
    let mut it = tokens.iter().peekable();
    loop {
        let Some(col) = it.next() else {
            return Err(QueryError::EmptyClause);
        };
        let column = Column::parse(unquote(col))?;
        let op_tok = it.next().ok_or_else(|| QueryError::ExpectedOperator {
            column: column.name().into(),
            found: String::new(),
        })?;
        let op = Op::parse(op_tok).ok_or_else(|| QueryError::ExpectedOperator {
            column: column.name().into(),
            found: unquote(op_tok).into(),
        })?;
        let value = it.next().ok_or_else(|| QueryError::MissingValue {
            column: column.name().into(),
            op: op.as_str().into(),
        })?;
        out.push(parse_predicate(column, op, unquote(value))?);
        if out.len() > WHERE_CLAUSES_MAX {
            return Err(QueryError::TooManyClauses {
                max: WHERE_CLAUSES_MAX,
            });
        }
        match it.next() {
            None => return Ok(out),
            Some(t) if t.eq_ignore_ascii_case("and") => {}
            Some(t) => return Err(QueryError::ExpectedAnd(unquote(t).into())),
        }
    }
}

/// Multicodec names accepted for `codec`.
const CODECS: [(&str, u64); 8] = [
    ("raw", 0x55),
    ("dag-pb", 0x70),
    ("dag-cbor", 0x71),
    ("dag-json", 0x0129),
    ("libp2p-key", 0x72),
    ("dag-jose", 0x85),
    ("json", 0x0200),
    ("cbor", 0x51),
];

/// The multicodec name of a code, for display.
pub fn codec_name(code: u64) -> String {
    CODECS
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| format!("0x{code:x}"))
}

fn parse_predicate(column: Column, op: Op, v: &str) -> Result<Predicate, QueryError> {
    let bad = |expected: &'static str| QueryError::BadValue {
        column: column.name().into(),
        value: v.into(),
        expected,
    };
    let eq_only = |column: Column| {
        if matches!(op, Op::Eq | Op::Ne) {
            Ok(())
        } else {
            Err(QueryError::UnsupportedOperator {
                column: column.name().into(),
                op: op.as_str().into(),
            })
        }
    };
    let value = match column {
        Column::Size | Column::AccessCount => {
            Value::U64(v.parse().map_err(|_| bad("an unsigned integer"))?)
        }
        Column::Codec => match CODECS.iter().find(|(n, _)| *n == v) {
            Some((_, c)) => Value::U64(*c),
            None => {
                let n = match v.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16).ok(),
                    None => v.parse().ok(),
                };
                Value::U64(n.ok_or_else(|| bad("a multicodec name (raw, dag-pb, ...) or number"))?)
            }
        },
        Column::Replication => Value::U16(v.parse().map_err(|_| bad("an integer 0..=65535"))?),
        Column::FirstSeen | Column::LastAccess => {
            Value::I64(v.parse().map_err(|_| bad("Unix time in milliseconds"))?)
        }
        Column::Heat => {
            let f: f32 = v.parse().map_err(|_| bad("a number"))?;
            if !f.is_finite() {
                return Err(bad("a finite number"));
            }
            Value::F32(f)
        }
        Column::PinType => {
            eq_only(column)?;
            Value::Pin(PinType::parse(v).ok_or_else(|| bad("none, direct, recursive or indirect"))?)
        }
        Column::PinName => Value::Text(v.to_string()),
        Column::Tiers => {
            eq_only(column)?;
            if v.is_empty() {
                return Err(bad("a tier name"));
            }
            Value::Tier(v.to_string())
        }
        Column::Cid => {
            eq_only(column)?;
            Value::Cid(v.parse().map_err(|_| bad("a CID"))?)
        }
    };
    Ok(Predicate { column, op, value })
}

/// What a query returns: at most `limit` rows (in a batch of the index schema) and how many
/// rows matched in all.
#[derive(Debug)]
pub struct QueryResult {
    pub batch: RecordBatch,
    pub matched: u64,
}

impl QueryResult {
    pub fn rows(&self) -> Result<Vec<IndexRow>, IndexError> {
        (0..self.batch.num_rows())
            .map(|i| schema::row_at(&self.batch, i))
            .collect()
    }
}

fn compare(
    col: &dyn Array,
    op: Op,
    scalar: &dyn arrow_array::Datum,
) -> Result<BooleanArray, IndexError> {
    Ok(match op {
        Op::Eq => cmp::eq(&col, scalar)?,
        Op::Ne => cmp::neq(&col, scalar)?,
        Op::Lt => cmp::lt(&col, scalar)?,
        Op::Le => cmp::lt_eq(&col, scalar)?,
        Op::Gt => cmp::gt(&col, scalar)?,
        Op::Ge => cmp::gt_eq(&col, scalar)?,
    })
}

/// Null comparisons (a never-read `last_access`) count as false.
fn to_mask(a: &BooleanArray) -> BooleanBuffer {
    match a.nulls() {
        Some(n) => a.values() & n.inner(),
        None => a.values().clone(),
    }
}

fn predicate_mask(
    batch: &RecordBatch,
    tiers: &[String],
    p: &Predicate,
) -> Result<BooleanBuffer, IndexError> {
    let col = batch.column(p.column.index()).as_ref();
    let n = batch.num_rows();
    let r = match &p.value {
        Value::U64(v) => compare(col, p.op, &Scalar::new(UInt64Array::from(vec![*v])))?,
        Value::U16(v) => compare(col, p.op, &Scalar::new(UInt16Array::from(vec![*v])))?,
        Value::F32(v) => compare(col, p.op, &Scalar::new(Float32Array::from(vec![*v])))?,
        Value::I64(v) => compare(
            col,
            p.op,
            &Scalar::new(TimestampMillisecondArray::from(vec![*v]).with_timezone("UTC")),
        )?,
        Value::Text(v) => compare(col, p.op, &Scalar::new(StringArray::from(vec![v.as_str()])))?,
        Value::Pin(pin) => compare(
            col,
            p.op,
            &Scalar::new(arrow_array::UInt8Array::from(vec![*pin as u8])),
        )?,
        Value::Tier(name) => {
            let bit = tiers
                .iter()
                .position(|t| t == name)
                .map(|i| 1u32 << i)
                .unwrap_or(0);
            let vals = col.as_primitive::<UInt32Type>().values();
            let want = p.op == Op::Eq;
            BooleanArray::from(BooleanBuffer::collect_bool(n, |i| {
                (vals[i] & bit != 0) == want
            }))
        }
        Value::Cid(c) => {
            let key = c.hash().to_bytes();
            let cids = col.as_binary::<i32>();
            let want = p.op == Op::Eq;
            BooleanArray::from(BooleanBuffer::collect_bool(n, |i| {
                (schema::key_of(cids.value(i)) == key.as_slice()) == want
            }))
        }
    };
    Ok(to_mask(&r))
}

fn filter_mask(
    batch: &RecordBatch,
    tiers: &[String],
    filters: &[Predicate],
) -> Result<BooleanBuffer, IndexError> {
    let mut mask = BooleanBuffer::new_set(batch.num_rows());
    for p in filters {
        mask = &mask & &predicate_mask(batch, tiers, p)?;
    }
    Ok(mask)
}

/// Base rows that the delta overrides (changed or deleted) are not live in the base.
fn base_live_mask(
    base: &RecordBatch,
    delta: &BTreeMap<Vec<u8>, Option<IndexRow>>,
) -> Option<BooleanBuffer> {
    if delta.is_empty() {
        return None;
    }
    let cids = base.column(schema::COL_CID).as_binary::<i32>();
    let mut live = arrow_buffer::BooleanBufferBuilder::new(base.num_rows());
    live.append_n(base.num_rows(), true);
    for key in delta.keys() {
        if let Ok(i) = schema::search(cids, key) {
            live.set_bit(i, false);
        }
    }
    Some(live.finish())
}

fn delta_batch(delta: &BTreeMap<Vec<u8>, Option<IndexRow>>) -> Result<RecordBatch, IndexError> {
    let mut b = schema::RowsBuilder::with_capacity(delta.len());
    for r in delta.values().flatten() {
        b.push(r);
    }
    b.finish()
}

fn sort_options(descending: bool) -> SortOptions {
    SortOptions {
        descending,
        nulls_first: false,
    }
}

/// Up to `limit` row indices of `batch` selected by `mask`, ordered by `sort` if given.
fn select(
    batch: &RecordBatch,
    mask: &BooleanBuffer,
    sort: Option<(Column, bool)>,
    limit: usize,
) -> Result<RecordBatch, IndexError> {
    let indices = match sort {
        None => UInt32Array::from_iter_values(mask.set_indices().take(limit).map(|i| i as u32)),
        Some((col, desc)) => {
            let all = UInt32Array::from_iter_values(mask.set_indices().map(|i| i as u32));
            let values = arrow_select::take::take(batch.column(col.index()), &all, None)?;
            let order = sort_to_indices(&values, Some(sort_options(desc)), Some(limit))?;
            arrow_select::take::take(&all, &order, None)?
                .as_primitive::<UInt32Type>()
                .clone()
        }
    };
    Ok(arrow_select::take::take_record_batch(batch, &indices)?)
}

pub(super) fn run(
    base: &RecordBatch,
    delta: &BTreeMap<Vec<u8>, Option<IndexRow>>,
    tiers: &[String],
    q: &Query,
) -> Result<QueryResult, IndexError> {
    let mut mask = filter_mask(base, tiers, &q.filters)?;
    if let Some(live) = base_live_mask(base, delta) {
        mask = &mask & &live;
    }
    let d = delta_batch(delta)?;
    let dmask = filter_mask(&d, tiers, &q.filters)?;
    let matched = (mask.count_set_bits() + dmask.count_set_bits()) as u64;
    let from_base = select(base, &mask, q.sort, q.limit)?;
    let from_delta = select(&d, &dmask, q.sort, q.limit)?;
    let both = arrow_select::concat::concat_batches(&schema::schema(), [&from_base, &from_delta])?;
    let all = BooleanBuffer::new_set(both.num_rows());
    let batch = select(&both, &all, q.sort, q.limit)?;
    Ok(QueryResult { batch, matched })
}

fn export_schema() -> Arc<Schema> {
    let base = schema::schema();
    let fields: Vec<Field> = base
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match i {
            schema::COL_PIN_TYPE => Field::new("pin_type", DataType::Utf8, false),
            schema::COL_TIERS => Field::new(
                "tiers",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                false,
            ),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn to_export(batch: &RecordBatch, tiers: &[String]) -> Result<RecordBatch, IndexError> {
    // Both derived columns take few distinct values: build each distinct value once and
    // gather it per row with the `take` kernel (no per-row string building).
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    let pins = batch
        .column(schema::COL_PIN_TYPE)
        .as_primitive::<UInt8Type>();
    const PIN_NAMES: [&str; 5] = ["none", "direct", "recursive", "indirect", "unknown"];
    let pin_texts: StringArray = (0..PIN_NAMES.len())
        .map(|c| {
            Some(
                PinType::from_code(c as u8)
                    .map(PinType::name)
                    .unwrap_or(PIN_NAMES[4]),
            )
        })
        .collect();
    let pin_idx = UInt32Array::from_iter_values(
        pins.values()
            .iter()
            .map(|c| u32::from(*c).min(PIN_NAMES.len() as u32 - 1)),
    );
    cols[schema::COL_PIN_TYPE] = arrow_select::take::take(&pin_texts, &pin_idx, None)?;
    let masks = batch.column(schema::COL_TIERS).as_primitive::<UInt32Type>();
    // A short list scanned in order (a handful of tier combinations in practice), with a map
    // once there are many.
    let mut distinct: Vec<u32> = Vec::new();
    let mut seen: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    let mut idx = Vec::with_capacity(masks.len());
    for m in masks.values().iter() {
        let found = if distinct.len() <= 16 {
            distinct.iter().position(|d| d == m).map(|i| i as u32)
        } else {
            seen.get(m).copied()
        };
        let i = match found {
            Some(i) => i,
            None => {
                distinct.push(*m);
                let i = (distinct.len() - 1) as u32;
                if distinct.len() > 16 {
                    seen.extend(distinct.iter().enumerate().map(|(j, d)| (*d, j as u32)));
                }
                i
            }
        };
        idx.push(i);
    }
    let mut lb = ListBuilder::new(StringBuilder::new());
    for m in &distinct {
        let mut m = *m;
        while m != 0 {
            let bit = m.trailing_zeros() as usize;
            match tiers.get(bit) {
                Some(t) => lb.values().append_value(t),
                None => lb.values().append_value(format!("tier{bit}")),
            }
            m &= m - 1;
        }
        lb.append(true);
    }
    let lists = lb.finish();
    cols[schema::COL_TIERS] = arrow_select::take::take(&lists, &UInt32Array::from(idx), None)?;
    Ok(RecordBatch::try_new(export_schema(), cols)?)
}

/// Rows per batch written by the export.
const EXPORT_BATCH_ROWS: usize = 1 << 20;

pub(super) fn export(
    base: &RecordBatch,
    delta: &BTreeMap<Vec<u8>, Option<IndexRow>>,
    tiers: &[String],
    path: &Path,
) -> Result<u64, IndexError> {
    let live = base_live_mask(base, delta);
    let d = delta_batch(delta)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| IndexError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        })?
        .to_string();
    let mut rows = 0u64;
    files::write_atomic(&dir, &name, |f| {
        let mut w =
            parquet::arrow::ArrowWriter::try_new(f, export_schema(), Some(files::parquet_props()))?;
        let mut start = 0;
        while start < base.num_rows() {
            let len = EXPORT_BATCH_ROWS.min(base.num_rows() - start);
            let mut chunk = base.slice(start, len);
            if let Some(live) = &live {
                let m = BooleanArray::from(live.slice(start, len));
                chunk = arrow_select::filter::filter_record_batch(&chunk, &m)?;
            }
            rows += chunk.num_rows() as u64;
            w.write(&to_export(&chunk, tiers)?)?;
            start += len;
        }
        if d.num_rows() > 0 {
            rows += d.num_rows() as u64;
            w.write(&to_export(&d, tiers)?)?;
        }
        Ok(w.into_inner()?)
    })?;
    Ok(rows)
}

/// The `cid` column of a result batch.
pub fn cids(batch: &RecordBatch) -> &BinaryArray {
    batch.column(schema::COL_CID).as_binary::<i32>()
}
