//! Chunkers: `size-N`, `rabin[-min-avg-max]`, `buzhash` with kubo (go-ipfs-chunker) parameters.
//!
//! The chunk boundaries decide the CIDs, so each splitter reproduces the one kubo v0.22 uses
//! (boxo v0.11.0 `chunker/`, which wraps `whyrusleeping/chunker` for rabin):
//!
//! - `size-N`: full reads of N bytes; the last chunk is short; an empty input gives no chunk.
//! - `rabin`: a Rabin fingerprint over a 16-byte window with kubo's fixed degree-53 polynomial;
//!   the first `min - 16` bytes of every chunk are skipped by the rolling hash, a cut happens
//!   where `digest & (2^floor(log2 avg) - 1) == 0` once a chunk holds `min` bytes, or at `max`.
//! - `buzhash`: a 32-byte cyclic-polynomial hash, chunks between 128 KiB and 512 KiB, a cut where
//!   the low 17 bits are zero; the rest of the input after the last cut is the last chunk (none
//!   when nothing is left, so an empty input gives no chunk).
//!
//! Chunks come out as [`Chunk`]s whose buffer has room before and after the data, so the file
//! importer can wrap a chunk in its dag-pb/UnixFS envelope in place, without copying the data.

use super::{ChunkerSpec, ImportError, CHUNK_SIZE_BYTES_DEFAULT};
use std::io::{self, Read};
use std::str::FromStr;
use std::sync::OnceLock;

/// The largest chunk any splitter may produce: boxo v0.11.0 `chunker.ChunkSizeLimit` (1 MiB),
/// the limit kubo v0.22 enforces on `size-N` and on rabin's maximum.
pub const CHUNK_SIZE_BYTES_MAX: usize = 1_048_576;
/// go-ipfs-chunker `ErrRabinMin`: a rabin minimum below 16 bytes is refused.
pub const RABIN_MIN_BYTES_MIN: usize = 16;
/// The Rabin window (whyrusleeping/chunker `windowSize`).
pub const RABIN_WINDOW_BYTES: usize = 16;
/// kubo's Rabin polynomial (boxo `IpfsRabinPoly`), irreducible of degree 53.
pub const RABIN_POLYNOMIAL: u64 = 17_437_180_132_763_653;
/// Smallest buzhash chunk (except the last one of a stream).
pub const BUZHASH_MIN_BYTES: usize = 128 << 10;
/// Largest buzhash chunk.
pub const BUZHASH_MAX_BYTES: usize = 512 << 10;
/// Buzhash cut mask: 17 low bits.
pub const BUZHASH_MASK: u32 = (1 << 17) - 1;
/// The buzhash window.
pub const BUZHASH_WINDOW_BYTES: usize = 32;
/// Free bytes kept in front of every chunk's data: enough for the dag-pb and UnixFS headers
/// of a leaf (`0a len 08 type 12 len`, at most 24 bytes).
pub const CHUNK_HEADROOM_BYTES: usize = 32;
/// Free bytes kept after every chunk's data: enough for the UnixFS `filesize` field.
pub const CHUNK_TAILROOM_BYTES: usize = 16;
/// Bytes read from the input at a time by the content-defined chunkers.
const READ_BUFFER_BYTES: usize = 256 << 10;

/// One chunk of file data, inside a buffer with [`CHUNK_HEADROOM_BYTES`] free before it and
/// [`CHUNK_TAILROOM_BYTES`] free after it.
#[derive(Debug)]
pub struct Chunk {
    buf: Vec<u8>,
    end: usize,
}

impl Chunk {
    /// A chunk holding a copy of `data`.
    pub fn copy_of(data: &[u8]) -> Chunk {
        let mut buf = vec![0u8; CHUNK_HEADROOM_BYTES + data.len() + CHUNK_TAILROOM_BYTES];
        buf[CHUNK_HEADROOM_BYTES..CHUNK_HEADROOM_BYTES + data.len()].copy_from_slice(data);
        Chunk {
            end: CHUNK_HEADROOM_BYTES + data.len(),
            buf,
        }
    }

    pub fn data(&self) -> &[u8] {
        &self.buf[CHUNK_HEADROOM_BYTES..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - CHUNK_HEADROOM_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole buffer and the data's range in it (`CHUNK_HEADROOM_BYTES..end`).
    pub(crate) fn into_parts(self) -> (Vec<u8>, usize, usize) {
        (self.buf, CHUNK_HEADROOM_BYTES, self.end)
    }
}

fn bad(spec: &str, reason: impl Into<String>) -> ImportError {
    ImportError::BadChunker {
        spec: spec.to_owned(),
        reason: reason.into(),
    }
}

/// Go's `strconv.Atoi` for the numbers in a chunker string (an optional sign, then digits).
fn atoi(spec: &str, s: &str) -> Result<i64, ImportError> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(spec, format!("invalid number {s:?}")));
    }
    s.parse::<i64>()
        .map_err(|_| bad(spec, format!("number out of range {s:?}")))
}

/// A labelled rabin parameter, `N` or `label:N` (go-ipfs-chunker `parseRabinString`).
fn rabin_part(spec: &str, part: &str, label: &str) -> Result<i64, ImportError> {
    let sub: Vec<&str> = part.split(':').collect();
    if sub.len() > 1 && sub[0] != label {
        return Err(bad(spec, format!("label must be {label}")));
    }
    atoi(spec, sub[sub.len() - 1])
}

fn max_error(spec: &str) -> ImportError {
    bad(
        spec,
        format!(
            "chunker parameters may not exceed the maximum chunk size of {CHUNK_SIZE_BYTES_MAX}"
        ),
    )
}

impl FromStr for ChunkerSpec {
    type Err = ImportError;

    /// kubo's syntax and checks (boxo v0.11.0 `chunker/parse.go`).
    fn from_str(spec: &str) -> Result<Self, ImportError> {
        if spec.is_empty() || spec == "default" {
            return Ok(ChunkerSpec::Size(CHUNK_SIZE_BYTES_DEFAULT));
        }
        if spec.starts_with("size-") {
            // Go takes the second `-`-separated field and ignores the rest.
            let size = atoi(spec, spec.split('-').nth(1).unwrap_or(""))?;
            if size <= 0 {
                return Err(bad(spec, "chunker size must be greater than 0"));
            }
            if size > CHUNK_SIZE_BYTES_MAX as i64 {
                return Err(max_error(spec));
            }
            return Ok(ChunkerSpec::Size(size as usize));
        }
        if spec.starts_with("rabin") {
            let parts: Vec<&str> = spec.split('-').collect();
            return match parts.len() {
                1 => Ok(rabin_for_avg(CHUNK_SIZE_BYTES_DEFAULT)),
                2 => {
                    let avg = atoi(spec, parts[1])?;
                    if (avg as f32 * 1.5) as i64 > CHUNK_SIZE_BYTES_MAX as i64 {
                        return Err(max_error(spec));
                    }
                    // kubo would underflow `min - 16` (and take log2 of 0) below this; refuse.
                    if avg < (3 * RABIN_MIN_BYTES_MIN) as i64 {
                        return Err(bad(
                            spec,
                            format!("rabin average must be at least {}", 3 * RABIN_MIN_BYTES_MIN),
                        ));
                    }
                    Ok(rabin_for_avg(avg as usize))
                }
                4 => {
                    let min = rabin_part(spec, parts[1], "min")?;
                    if min < RABIN_MIN_BYTES_MIN as i64 {
                        return Err(bad(spec, "rabin min must be greater than 16"));
                    }
                    let avg = rabin_part(spec, parts[2], "avg")?;
                    let max = rabin_part(spec, parts[3], "max")?;
                    if min >= avg {
                        return Err(bad(
                            spec,
                            "incorrect format: rabin-min must be smaller than rabin-avg",
                        ));
                    }
                    if avg >= max {
                        return Err(bad(
                            spec,
                            "incorrect format: rabin-avg must be smaller than rabin-max",
                        ));
                    }
                    if max > CHUNK_SIZE_BYTES_MAX as i64 {
                        return Err(max_error(spec));
                    }
                    Ok(ChunkerSpec::Rabin {
                        min: min as usize,
                        avg: avg as usize,
                        max: max as usize,
                    })
                }
                _ => Err(bad(
                    spec,
                    "incorrect format (expected 'rabin' 'rabin-[avg]' or 'rabin-[min]-[avg]-[max]'",
                )),
            };
        }
        if spec == "buzhash" {
            return Ok(ChunkerSpec::Buzhash);
        }
        Err(bad(spec, format!("unrecognized chunker option: {spec}")))
    }
}

/// boxo `NewRabin`: min = avg / 3, max = avg + avg / 2.
fn rabin_for_avg(avg: usize) -> ChunkerSpec {
    ChunkerSpec::Rabin {
        min: avg / 3,
        avg,
        max: avg + avg / 2,
    }
}

impl ChunkerSpec {
    /// The largest chunk this spec can produce.
    pub fn chunk_bytes_max(&self) -> usize {
        match *self {
            ChunkerSpec::Size(n) => n,
            ChunkerSpec::Rabin { max, .. } => max,
            ChunkerSpec::Buzhash => BUZHASH_MAX_BYTES,
        }
    }

    /// Checks a spec built in code (the parser already enforces these).
    pub fn validate(&self) -> Result<(), ImportError> {
        let spec = format!("{self:?}");
        match *self {
            ChunkerSpec::Size(0) => Err(bad(&spec, "chunker size must be greater than 0")),
            ChunkerSpec::Size(n) if n > CHUNK_SIZE_BYTES_MAX => Err(max_error(&spec)),
            ChunkerSpec::Rabin { min, avg, max }
                if min < RABIN_MIN_BYTES_MIN || min >= avg || avg >= max =>
            {
                Err(bad(&spec, "rabin needs 16 <= min < avg < max"))
            }
            ChunkerSpec::Rabin { max, .. } if max > CHUNK_SIZE_BYTES_MAX => Err(max_error(&spec)),
            _ => Ok(()),
        }
    }
}

/// `io::ReadFull`: reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A streaming splitter of any kind.
pub enum Chunker<R> {
    Size(SizeChunker<R>),
    Rabin(Box<RabinChunker<R>>),
    Buzhash(BuzhashChunker<R>),
}

impl<R: Read> Chunker<R> {
    pub fn new(spec: ChunkerSpec, reader: R) -> Result<Self, ImportError> {
        spec.validate()?;
        Ok(match spec {
            ChunkerSpec::Size(n) => Chunker::Size(SizeChunker::new(reader, n)),
            ChunkerSpec::Rabin { min, avg, max } => {
                Chunker::Rabin(Box::new(RabinChunker::new(reader, min, avg, max)))
            }
            ChunkerSpec::Buzhash => Chunker::Buzhash(BuzhashChunker::new(reader)),
        })
    }

    /// The next chunk, or `None` at the end of the input.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        match self {
            Chunker::Size(c) => c.next_chunk(),
            Chunker::Rabin(c) => c.next_chunk(),
            Chunker::Buzhash(c) => c.next_chunk(),
        }
    }
}

/// `size-N`: boxo `sizeSplitterv2`.
pub struct SizeChunker<R> {
    reader: R,
    size: usize,
    done: bool,
}

impl<R: Read> SizeChunker<R> {
    pub fn new(reader: R, size: usize) -> Self {
        Self {
            reader,
            size,
            done: false,
        }
    }

    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        let mut buf = Vec::with_capacity(CHUNK_HEADROOM_BYTES + self.size + CHUNK_TAILROOM_BYTES);
        buf.resize(CHUNK_HEADROOM_BYTES, 0);
        // `read_to_end` fills the spare capacity without zeroing it first when the reader
        // supports that (files do); `take` makes it a full read of at most `size` bytes.
        let n = read_full_into(&mut self.reader, &mut buf, self.size)?;
        if n < self.size {
            self.done = true;
            if n == 0 {
                return Ok(None);
            }
            // A short chunk gets a right-sized buffer, so a stored block does not pin `size`.
            return Ok(Some(Chunk::copy_of(
                &buf[CHUNK_HEADROOM_BYTES..CHUNK_HEADROOM_BYTES + n],
            )));
        }
        let end = buf.len();
        buf.resize(end + CHUNK_TAILROOM_BYTES, 0);
        Ok(Some(Chunk { buf, end }))
    }
}

/// Appends up to `limit` bytes from `r` to `buf` (fewer only at the end of the input); returns
/// how many.
fn read_full_into<R: Read>(r: &mut R, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
    let before = buf.len();
    loop {
        let got = buf.len() - before;
        if got >= limit {
            return Ok(got);
        }
        match r.take((limit - got) as u64).read_to_end(buf) {
            Ok(0) => return Ok(buf.len() - before),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rabin

/// Degree of a GF(2) polynomial; -1 for zero.
fn pol_deg(p: u64) -> i32 {
    63 - p.leading_zeros() as i32
}

/// `x mod d` over GF(2).
fn pol_mod(mut x: u64, d: u64) -> u64 {
    let dd = pol_deg(d);
    while x != 0 && pol_deg(x) >= dd {
        x ^= d << (pol_deg(x) - dd);
    }
    x
}

/// The two lookup tables of the rolling fingerprint for [`RABIN_POLYNOMIAL`]: `out[b]` removes
/// byte `b` leaving the window, `modt[b]` reduces after a shift.
struct RabinTables {
    out: [u64; 256],
    modt: [u64; 256],
    shift: u32,
}

impl RabinTables {
    fn new(pol: u64) -> RabinTables {
        let k = pol_deg(pol) as u32;
        let mut out = [0u64; 256];
        let mut modt = [0u64; 256];
        for b in 0..256u64 {
            // b followed by windowSize - 1 zero bytes, reduced.
            let mut h = pol_mod(b, pol);
            for _ in 0..RABIN_WINDOW_BYTES - 1 {
                h = pol_mod(h << 8, pol);
            }
            out[b as usize] = h;
            modt[b as usize] = pol_mod(b << k, pol) | (b << k);
        }
        RabinTables {
            out,
            modt,
            shift: k - 8,
        }
    }
}

/// The tables for kubo's [`RABIN_POLYNOMIAL`], computed once.
fn rabin_tables() -> &'static RabinTables {
    static TABLES: OnceLock<RabinTables> = OnceLock::new();
    TABLES.get_or_init(|| RabinTables::new(RABIN_POLYNOMIAL))
}

/// Rabin content-defined chunking, as whyrusleeping/chunker does it for kubo.
pub struct RabinChunker<R> {
    reader: R,
    tables: &'static RabinTables,
    min: usize,
    max: usize,
    mask: u64,
    window: [u8; RABIN_WINDOW_BYTES],
    wpos: usize,
    digest: u64,
    /// The fingerprint at the last cut (whyrusleeping/chunker `Chunk.Cut`).
    last_cut: u64,
    /// Bytes still to take before the rolling hash starts (`min - window`).
    pre: usize,
    /// The chunk being assembled (with headroom in front).
    cur: Vec<u8>,
    input: Vec<u8>,
    ipos: usize,
    ilen: usize,
    eof: bool,
}

impl<R: Read> RabinChunker<R> {
    /// `min >= 16`, `min < avg < max` (checked by [`ChunkerSpec::validate`]).
    pub fn new(reader: R, min: usize, avg: usize, max: usize) -> Self {
        Self::with_tables(reader, rabin_tables(), min, avg, max)
    }

    fn with_tables(
        reader: R,
        tables: &'static RabinTables,
        min: usize,
        avg: usize,
        max: usize,
    ) -> Self {
        // uint(math.Log2(avg)): floor(log2) for the sizes allowed here.
        let bits = 63 - (avg.max(1) as u64).leading_zeros();
        let mut c = Self {
            reader,
            tables,
            min,
            max,
            mask: (1u64 << bits) - 1,
            window: [0; RABIN_WINDOW_BYTES],
            wpos: 0,
            digest: 0,
            last_cut: 0,
            pre: 0,
            cur: Vec::new(),
            input: vec![0u8; READ_BUFFER_BYTES],
            ipos: 0,
            ilen: 0,
            eof: false,
        };
        c.reset();
        c
    }

    fn reset(&mut self) {
        self.window = [0; RABIN_WINDOW_BYTES];
        self.wpos = 0;
        self.digest = 0;
        self.slide(1);
        self.pre = self.min - RABIN_WINDOW_BYTES;
        self.cur = Vec::with_capacity(CHUNK_HEADROOM_BYTES + self.max + CHUNK_TAILROOM_BYTES);
        self.cur.resize(CHUNK_HEADROOM_BYTES, 0);
    }

    #[inline]
    fn slide(&mut self, b: u8) {
        let t = self.tables;
        let out = self.window[self.wpos];
        self.window[self.wpos] = b;
        self.digest ^= t.out[out as usize];
        self.wpos = (self.wpos + 1) % RABIN_WINDOW_BYTES;
        let index = (self.digest >> t.shift) as usize;
        self.digest = (self.digest << 8) | u64::from(b);
        self.digest ^= t.modt[index & 0xff];
    }

    fn finish_chunk(&mut self) -> Chunk {
        let mut buf = std::mem::take(&mut self.cur);
        let end = buf.len();
        buf.resize(end + CHUNK_TAILROOM_BYTES, 0);
        self.last_cut = self.digest;
        self.reset();
        Chunk { buf, end }
    }

    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        loop {
            if self.ipos >= self.ilen {
                if self.eof {
                    return Ok(None);
                }
                let n = read_full(&mut self.reader, &mut self.input)?;
                self.ipos = 0;
                self.ilen = n;
                if n == 0 {
                    self.eof = true;
                    if self.cur.len() > CHUNK_HEADROOM_BYTES {
                        return Ok(Some(self.finish_chunk()));
                    }
                    return Ok(None);
                }
            }
            // The first `pre` bytes of a chunk bypass the rolling hash.
            if self.pre > 0 {
                let take = self.pre.min(self.ilen - self.ipos);
                self.cur
                    .extend_from_slice(&self.input[self.ipos..self.ipos + take]);
                self.ipos += take;
                self.pre -= take;
                continue;
            }
            let start = self.ipos;
            let mut count = self.cur.len() - CHUNK_HEADROOM_BYTES;
            let mut cut = None;
            for i in start..self.ilen {
                let b = self.input[i];
                self.slide(b);
                count += 1;
                if count >= self.min && ((self.digest & self.mask) == 0 || count >= self.max) {
                    cut = Some(i + 1);
                    break;
                }
            }
            let stop = cut.unwrap_or(self.ilen);
            self.cur.extend_from_slice(&self.input[start..stop]);
            self.ipos = stop;
            if cut.is_some() {
                return Ok(Some(self.finish_chunk()));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Buzhash

/// The buzhash byte table: boxo v0.11.0 `chunker/buzhash.go` `bytehash` (a format constant).
#[rustfmt::skip]
static BUZHASH_TABLE: [u32; 256] = [
    0x6236e7d5, 0x10279b0b, 0x72818182, 0xdc526514, 0x2fd41e3d, 0x777ef8c8,
    0x83ee5285, 0x2c8f3637, 0x2f049c1a, 0x57df9791, 0x9207151f, 0x9b544818,
    0x74eef658, 0x2028ca60, 0x0271d91a, 0x27ae587e, 0xecf9fa5f, 0x236e71cd,
    0xf43a8a2e, 0x0bb13380, 0x9e57912c, 0x89a26cdb, 0x9fcf3d71, 0xa86da6f1,
    0x9c49f376, 0x346aecc7, 0xf094a9ee, 0xea99e9cb, 0xb01713c6, 0x088acffb,
    0x2960a0fb, 0x344a626c, 0x7ff22a46, 0x6d7a1aa5, 0x6a714916, 0x41d454ca,
    0x8325b830, 0x0b65f563, 0x447fecca, 0xf9d0ea5e, 0xc1d9d3d4, 0xcb5ec574,
    0x55aae902, 0x86edc0e7, 0x0d3a9e33, 0xe70dc1e1, 0xe3c5f639, 0x9b43140a,
    0xc6490ac5, 0x5e4030fb, 0x8e976dd5, 0xa87468ea, 0xf830ef6f, 0xcc1ed5a5,
    0x611f4e78, 0xddd11905, 0xf2613904, 0x566c67b9, 0x905a5ccc, 0x7b37b3a4,
    0x4b53898a, 0x6b8fd29d, 0xaad81575, 0x511be414, 0x3cfac1e7, 0x8029a179,
    0xd40efeda, 0x07380e02, 0xdc9beffd, 0x2d049082, 0x99bc7831, 0xff5002a8,
    0x21ce7646, 0x01cd049b, 0x0f43994f, 0xc3c6c5a5, 0xbbda5f50, 0x0ec15ec7,
    0x9adb19b6, 0x0c1e80b9, 0xb9b52968, 0xae162419, 0x2542b405, 0x91a42e9d,
    0x6be0f668, 0x6ed7a6b9, 0xbc2777b4, 0xe162ce56, 0x4266aad5, 0x60fdb704,
    0x66f832a5, 0x9595f6ca, 0xfee83ced, 0x55228d99, 0x12bf0e28, 0x66896459,
    0x0789afda, 0x0282baa8, 0x2367a343, 0x591491b0, 0x2ff1a4b1, 0x410739b6,
    0x9b7055a0, 0x2e0eb229, 0x24fc8252, 0x3327d3df, 0xb0782669, 0x1c62e069,
    0x7f503101, 0xf50593ae, 0xd9eb275d, 0xe00eb678, 0x5917ccde, 0x97b9660a,
    0xdd06202d, 0xed229e22, 0xa9c735bf, 0xd6316fe6, 0x6fc72e4c, 0x0206dfa2,
    0xd6b15c5a, 0x69d87b49, 0x09c97745, 0x13445d61, 0x35a975aa, 0x859aa9b9,
    0x65380013, 0xd1fb6391, 0xc29255fd, 0x784a3b91, 0xb9e74c26, 0x63ce4d40,
    0xc07cbe9e, 0xe6e4529e, 0x0fb3632f, 0x9438d9c9, 0x682f94a8, 0xf8fd4611,
    0x257ec1ed, 0x475ce3d6, 0x60ee2db1, 0x2afab002, 0x2b9e4878, 0x86b340de,
    0x1482fdca, 0xfe41b3bf, 0xd4a412b0, 0xe09db98c, 0xc1af5d53, 0x7e55e25f,
    0xd3346b38, 0xb7a12cbd, 0x9c6827ba, 0x71f78bee, 0x8c3a0f52, 0x150491b0,
    0xf26de912, 0x233e3a4e, 0xd309ebba, 0xa0a9e0ff, 0xca2b5921, 0xeeb9893c,
    0x33829e88, 0x9870cc2a, 0x23c4b9d0, 0xeba32ea3, 0xbdac4d22, 0x3bc8c44c,
    0x1e8d0397, 0xf9327735, 0x783b009f, 0x0eb83742, 0x2621dc71, 0xed017d03,
    0x5c760aa1, 0x5a69814b, 0x96e3047f, 0xa93c9cde, 0x615c86f5, 0xb4322aa5,
    0x4225534d, 0x0d2e2de3, 0xccfccc4b, 0x0bac2a57, 0xf0a06d04, 0xbc78d737,
    0xf2d1f766, 0xf5a7953c, 0xbcdfda85, 0x5213b7d5, 0xbce8a328, 0xd38f5f18,
    0xdb094244, 0xfe571253, 0x317fa7ee, 0x4a324f43, 0x3ffc39d9, 0x51b3fa8e,
    0x7a4bee9f, 0x78bbc682, 0x9f5c0350, 0x02fe286c, 0x245ab686, 0xed6bf7d7,
    0x0ac4988a, 0x3fe010fa, 0xc65fe369, 0xa45749cb, 0x2b84e537, 0xde9ff363,
    0x20540f9a, 0xaa8c9b34, 0x5bc476b3, 0x1d574bd7, 0x929100ad, 0x4721de4d,
    0x27df1b05, 0x58b18546, 0xb7e76764, 0xdf904e58, 0x97af57a1, 0xbd4dc433,
    0xa6256dfd, 0xf63998f3, 0xf1e05833, 0xe20acf26, 0xf57fd9d6, 0x90300b4d,
    0x89df4290, 0x68d01cbc, 0xcf893ee3, 0xcc42a046, 0x778e181b, 0x67265c76,
    0xe981a4c4, 0x82991da1, 0x708f7294, 0xe6e2ae62, 0xfc441870, 0x95e1b0b6,
    0x0445f825, 0x5a93b47f, 0x5e9cf4be, 0x84da71e7, 0x9d9582b0, 0x9bf835ef,
    0x591f61e2, 0x43325985, 0x5d2de32e, 0x8d8fbf0f, 0x95b30f38, 0x07ad5b6e,
    0x4e934edf, 0x3cd4990e, 0x9053e259, 0x5c41857d,
];

/// Buzhash content-defined chunking (boxo `Buzhash`).
pub struct BuzhashChunker<R> {
    reader: R,
    buf: Vec<u8>,
    /// Bytes carried over from the previous call at the front of `buf`.
    held: usize,
    done: bool,
}

impl<R: Read> BuzhashChunker<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buf: vec![0u8; BUZHASH_MAX_BYTES],
            held: 0,
            done: false,
        }
    }

    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        let n = read_full(&mut self.reader, &mut self.buf[self.held..])?;
        let total = self.held + n;
        if total < BUZHASH_MIN_BYTES {
            // The input ended: everything left is the last chunk, if anything is left (boxo
            // 679311d "don't return an empty block at the end", in v0.11.0).
            self.done = true;
            if total == 0 {
                self.buf = Vec::new();
                return Ok(None);
            }
            let chunk = Chunk::copy_of(&self.buf[..total]);
            self.buf = Vec::new();
            return Ok(Some(chunk));
        }
        let t = &BUZHASH_TABLE;
        let w = BUZHASH_WINDOW_BYTES;
        let mut state: u32 = 0;
        for &b in &self.buf[BUZHASH_MIN_BYTES - w..BUZHASH_MIN_BYTES] {
            state = state.rotate_left(1) ^ t[b as usize];
        }
        // Scan cut points from BUZHASH_MIN_BYTES on; `i` is the window's first byte.
        let mut i = BUZHASH_MIN_BYTES - w;
        let last = total - w - 1;
        while i <= last {
            if state & BUZHASH_MASK == 0 {
                break;
            }
            state = state.rotate_left(1) ^ t[self.buf[i] as usize] ^ t[self.buf[i + w] as usize];
            i += 1;
        }
        let cut = i + w;
        let chunk = Chunk::copy_of(&self.buf[..cut]);
        self.buf.copy_within(cut..total, 0);
        self.held = total - cut;
        Ok(Some(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(spec: ChunkerSpec, data: &[u8]) -> Vec<Vec<u8>> {
        let mut c = Chunker::new(spec, data).unwrap();
        let mut out = Vec::new();
        while let Some(ch) = c.next_chunk().unwrap() {
            out.push(ch.data().to_vec());
        }
        out
    }

    fn pseudo(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn parse_kubo_syntax() {
        assert_eq!(
            "size-262144".parse::<ChunkerSpec>().unwrap(),
            ChunkerSpec::Size(262144)
        );
        assert_eq!(
            "".parse::<ChunkerSpec>().unwrap(),
            ChunkerSpec::Size(262144)
        );
        assert_eq!(
            "default".parse::<ChunkerSpec>().unwrap(),
            ChunkerSpec::Size(262144)
        );
        assert_eq!(
            "size-64".parse::<ChunkerSpec>().unwrap(),
            ChunkerSpec::Size(64)
        );
        assert_eq!(
            "rabin".parse::<ChunkerSpec>().unwrap(),
            ChunkerSpec::Rabin {
                min: 87381,
                avg: 262144,
                max: 393216
            }
        );
        assert_eq!(
            "rabin-36-512-1024".parse::<ChunkerSpec>().unwrap(),
            ChunkerSpec::Rabin {
                min: 36,
                avg: 512,
                max: 1024
            }
        );
        assert_eq!(
            "rabin-min:36-avg:512-max:1024"
                .parse::<ChunkerSpec>()
                .unwrap(),
            ChunkerSpec::Rabin {
                min: 36,
                avg: 512,
                max: 1024
            }
        );
        assert_eq!(
            "buzhash".parse::<ChunkerSpec>().unwrap(),
            ChunkerSpec::Buzhash
        );
        // t0040-add-and-cat.sh: size-0 and rabin-12-512-1024 fail.
        for bad in [
            "size-0",
            "size--1",
            "size-x",
            "size-1048577",
            "rabin-12-512-1024",
            "rabin-36-36-1024",
            "rabin-36-512-512",
            "rabin-36-512-1048577",
            "rabin-699052",
            "rabin-1-2",
            "rabin-avg:36-512-1024",
            "buzhash-1",
            "fixed",
        ] {
            assert!(bad.parse::<ChunkerSpec>().is_err(), "{bad} should fail");
        }
        assert!("size-1048576".parse::<ChunkerSpec>().is_ok());
        assert!("rabin-699051".parse::<ChunkerSpec>().is_ok());
    }

    #[test]
    fn size_splitter_boundaries() {
        assert!(chunks(ChunkerSpec::Size(4), b"").is_empty());
        assert_eq!(
            chunks(ChunkerSpec::Size(4), b"abcd"),
            vec![b"abcd".to_vec()]
        );
        assert_eq!(
            chunks(ChunkerSpec::Size(4), b"abcdefghij"),
            vec![b"abcd".to_vec(), b"efgh".to_vec(), b"ij".to_vec()]
        );
    }

    #[test]
    fn buzhash_bounds_and_trailing_chunk() {
        assert!(chunks(ChunkerSpec::Buzhash, b"").is_empty());
        let data = pseudo(3 << 20, 7);
        let cs = chunks(ChunkerSpec::Buzhash, &data);
        assert_eq!(cs.concat(), data);
        let (last, body) = cs.split_last().unwrap();
        assert!(!last.is_empty());
        for c in body {
            assert!(c.len() >= BUZHASH_MIN_BYTES && c.len() <= BUZHASH_MAX_BYTES);
        }
        assert!(
            body.iter().any(|c| c.len() < BUZHASH_MAX_BYTES),
            "no content cut found"
        );
    }

    #[test]
    fn rabin_bounds_and_determinism() {
        let data = pseudo(2 << 20, 3);
        let spec: ChunkerSpec = "rabin-2048-8192-16384".parse().unwrap();
        let cs = chunks(spec, &data);
        assert_eq!(cs.concat(), data);
        let (_, body) = cs.split_last().unwrap();
        for c in body {
            assert!(c.len() >= 2048 && c.len() <= 16384, "{}", c.len());
        }
        // Content-defined: inserting a prefix re-synchronises on the same later boundaries.
        let mut shifted = pseudo(1000, 9);
        shifted.extend_from_slice(&data);
        let cs2 = chunks(spec, &shifted);
        let tail: std::collections::HashSet<_> = cs.iter().skip(3).collect();
        assert!(cs2.iter().filter(|c| tail.contains(c)).count() > tail.len() / 2);
        // Reads of any size give the same chunks.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(777);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut c = Chunker::new(spec, Dribble(&data)).unwrap();
        let mut cs3 = Vec::new();
        while let Some(ch) = c.next_chunk().unwrap() {
            cs3.push(ch.data().to_vec());
        }
        assert_eq!(cs, cs3);
    }

    /// whyrusleeping/chunker's own vectors (chunker_test.go `TestChunker`, `chunks1`): 32 MiB
    /// of math/rand seeded 23, polynomial 0x3DA3358B4DC173, min 512 KiB, avg 1 MiB, max
    /// 8 MiB: every chunk length and cut fingerprint.
    #[test]
    fn rabin_matches_whyrusleeping_chunker_vectors() {
        const EXPECTED: [(usize, u64); 22] = [
            (1579758, 0x001d06f777d00000),
            (1089328, 0x001c99190f500000),
            (614316, 0x0002e95018f00000),
            (1183251, 0x00187291a9d00000),
            (2079238, 0x00150d9af0e00000),
            (1282082, 0x0001d7df88a00000),
            (1656779, 0x001881427eb00000),
            (1053264, 0x0006e8249a400000),
            (1028060, 0x00179e806ee00000),
            (896166, 0x001a90cfa7900000),
            (1633016, 0x001c77ba2dc00000),
            (1051769, 0x001c7ee3e8900000),
            (5719810, 0x00004e5c0ca00000),
            (2490321, 0x0014eedcd5900000),
            (544210, 0x00063fcba2b00000),
            (892726, 0x000b6da997300000),
            (1147747, 0x000745edc1700000),
            (1964963, 0x000a609a0f900000),
            (798928, 0x000ed5aa9e200000),
            (2585098, 0x00108d5fd0500000),
            (975521, 0x000603e82f500000),
            (1288081, 0x00097e6e5e2e0920),
        ];
        let data = crate::unixfs::file::gorand::go_random(32 << 20, 23);
        let tables: &'static RabinTables = Box::leak(Box::new(RabinTables::new(0x3DA3358B4DC173)));
        let mut c = RabinChunker::with_tables(&data[..], tables, 512 << 10, 1 << 20, 8 << 20);
        let mut got = Vec::new();
        while let Some(ch) = c.next_chunk().unwrap() {
            got.push((ch.len(), c.last_cut));
        }
        assert_eq!(got, EXPECTED);
        // Zeros: cut at every MinSize (chunks2).
        let zeros = vec![0u8; 4 * (512 << 10)];
        let mut c = RabinChunker::with_tables(&zeros[..], tables, 512 << 10, 1 << 20, 8 << 20);
        let mut got = Vec::new();
        while let Some(ch) = c.next_chunk().unwrap() {
            got.push((ch.len(), c.last_cut));
        }
        assert_eq!(got, vec![(512 << 10, 0); 4]);
    }

    #[test]
    fn rabin_tables_match_polynomial_degree() {
        let t = rabin_tables();
        assert_eq!(pol_deg(RABIN_POLYNOMIAL), 53);
        assert_eq!(t.shift, 45);
        assert_eq!(t.out[0], 0);
        for b in 0..256 {
            assert!(t.out[b] < 1 << 53);
        }
    }
}
