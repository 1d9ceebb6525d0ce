//! Operator limits on what one input may make a stage allocate, checked
//! before the input is decoded.
//!
//! A Parquet file says in its footer how many rows it holds, and each page
//! header says how large the page is once decompressed; readers size their
//! buffers from those numbers. A hostile file can claim 10^12 rows in a few
//! hundred bytes, and the reader then aborts the process on allocation (an
//! abort is not a panic: nothing catches it). So before polars sees a Parquet
//! file, [`check_parquet`] walks its footer and every page header with a
//! bounded Thrift reader of its own (no list is longer than the bytes left, no
//! offset points outside the file, nesting is shallow) and refuses the file
//! when a count or size is over a [`ReadLimits`] limit. CSV gets the same
//! limits from its header line and line count ([`check_csv`]).

use crate::error::DatasetError;

/// What one input may claim. Defaults fit a 2-core, 4 GiB stage. Errors
/// name the limits as the stages' settings do (`max_input_rows`,
/// `max_input_columns`, `max_decoded_bytes`; env `MAX_INPUT_ROWS`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Rows of one file.
    pub max_rows: u64,
    /// Columns of one file.
    pub max_columns: u64,
    /// Decoded bytes of one file: `rows x columns x 8`, and the sum of the
    /// decompressed sizes of its Parquet pages, each under this limit.
    pub max_decoded_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits { max_rows: 20_000_000, max_columns: 1_000, max_decoded_bytes: 1024 * 1024 * 1024 }
    }
}

impl ReadLimits {
    /// Limits that allow nothing more than `self` and `other` both allow.
    pub fn min(self, other: ReadLimits) -> ReadLimits {
        ReadLimits {
            max_rows: self.max_rows.min(other.max_rows),
            max_columns: self.max_columns.min(other.max_columns),
            max_decoded_bytes: self.max_decoded_bytes.min(other.max_decoded_bytes),
        }
    }

    fn over(&self, file: &str, what: String, limit: &'static str, value: u64) -> DatasetError {
        let max = match limit {
            "max_input_rows" => self.max_rows,
            "max_input_columns" => self.max_columns,
            _ => self.max_decoded_bytes,
        };
        DatasetError::OverLimit { file: file.into(), what, limit, max, value }
    }

    /// Rows, columns and their decoded size (8 bytes a cell) against the limits.
    pub fn check_shape(&self, file: &str, rows: u64, columns: u64) -> Result<(), DatasetError> {
        if rows > self.max_rows {
            return Err(self.over(file, format!("{rows} rows"), "max_input_rows", rows));
        }
        if columns > self.max_columns {
            return Err(self.over(file, format!("{columns} columns"), "max_input_columns", columns));
        }
        let bytes = rows.saturating_mul(columns).saturating_mul(8);
        if bytes > self.max_decoded_bytes {
            return Err(self.over(
                file,
                format!("{rows} rows x {columns} columns ({bytes} bytes decoded)"),
                "max_decoded_bytes",
                bytes,
            ));
        }
        Ok(())
    }
}

/// Refuse a CSV whose header or line count is over the limits, or whose
/// header names a column twice (before polars reads it).
pub fn check_csv(file: &str, header: &[String], bytes: &[u8], limits: &ReadLimits) -> Result<(), DatasetError> {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + u64::from(!bytes.ends_with(b"\n"));
    limits.check_shape(file, lines.saturating_sub(1), header.len() as u64)?;
    duplicate_names(file, header)
}

/// A column name given twice is refused: which one would be read is a guess.
pub(crate) fn duplicate_names(file: &str, names: &[String]) -> Result<(), DatasetError> {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    match sorted.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(DatasetError::DuplicateColumn { file: file.into(), column: w[0].escape_debug().to_string() }),
        None => Ok(()),
    }
}

/// Run a decoder on input bytes; a panic in it (polars on corrupt pages) is
/// an unreadable file, so the stage dead-letters the input instead of failing
/// as a task (the panic message still reaches stderr through the hook).
pub(crate) fn no_panic<T>(
    file: &str,
    format: &'static str,
    decode: impl FnOnce() -> Result<T, DatasetError>,
) -> Result<T, DatasetError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        Err(DatasetError::Read { file: file.into(), format, message: format!("the decoder failed: {why}") })
    })
}

/// What the footer says, as far as the limits care.
#[derive(Debug, Default)]
struct Footer {
    num_rows: i64,
    /// Schema elements, the root included.
    schema_elements: u64,
    /// Leaf columns (elements without children).
    leaves: u64,
    row_groups: Vec<RowGroup>,
}

#[derive(Debug, Default)]
struct RowGroup {
    num_rows: i64,
    chunks: Vec<Chunk>,
}

#[derive(Debug, Default)]
struct Chunk {
    num_values: i64,
    uncompressed: i64,
    compressed: i64,
    data_page_offset: i64,
    dictionary_page_offset: Option<i64>,
}

/// Check a Parquet file's footer and page headers against `limits` before
/// any decoding: the row count (the footer's and each row group's), the
/// column count, the decoded size, and each page's decompressed size and
/// value count. A footer or page header that cannot be walked safely is
/// refused as unreadable Parquet.
pub fn check_parquet(file: &str, bytes: &[u8], limits: &ReadLimits) -> Result<(), DatasetError> {
    let bad = |message: String| DatasetError::Read { file: file.into(), format: "Parquet", message };
    let n = bytes.len();
    if n < 12 || !bytes.starts_with(b"PAR1") || !bytes.ends_with(b"PAR1") {
        return Err(bad("not a Parquet file (no PAR1 magic at both ends)".into()));
    }
    let footer_len = u32::from_le_bytes([bytes[n - 8], bytes[n - 7], bytes[n - 6], bytes[n - 5]]) as usize;
    if footer_len > n - 12 {
        return Err(bad(format!("footer length {footer_len} is larger than the file ({n} bytes)")));
    }
    let footer_bytes = &bytes[n - 8 - footer_len..n - 8];
    let footer = read_footer(footer_bytes).map_err(|e| bad(format!("footer: {e}")))?;

    if footer.num_rows < 0 {
        return Err(bad(format!("footer claims {} rows", footer.num_rows)));
    }
    let rows = footer.num_rows as u64;
    let columns = footer.leaves.max(footer.schema_elements.saturating_sub(1));
    limits.check_shape(file, rows, columns)?;
    let mut sum: u64 = 0;
    for (i, rg) in footer.row_groups.iter().enumerate() {
        if rg.num_rows < 0 || rg.num_rows as u64 > limits.max_rows {
            return Err(limits.over(
                file,
                format!("row group {i} claiming {} rows", rg.num_rows),
                "max_input_rows",
                rg.num_rows.unsigned_abs(),
            ));
        }
        sum = sum.saturating_add(rg.num_rows as u64);
    }
    if sum != rows {
        return Err(bad(format!("the row groups hold {sum} rows but the footer claims {rows}")));
    }
    let data_end = (n - 8 - footer_len) as u64;
    let mut decoded: u64 = 0;
    for (i, rg) in footer.row_groups.iter().enumerate() {
        if rg.chunks.len() as u64 > limits.max_columns {
            return Err(limits.over(
                file,
                format!("row group {i} with {} column chunks", rg.chunks.len()),
                "max_input_columns",
                rg.chunks.len() as u64,
            ));
        }
        for (j, c) in rg.chunks.iter().enumerate() {
            let at = format!("row group {i}, column {j}");
            if c.num_values < 0 || c.num_values as u64 > limits.max_rows {
                return Err(limits.over(
                    file,
                    format!("{at} claiming {} values", c.num_values),
                    "max_input_rows",
                    c.num_values.unsigned_abs(),
                ));
            }
            if c.uncompressed < 0 || c.uncompressed as u64 > limits.max_decoded_bytes {
                return Err(limits.over(
                    file,
                    format!("{at} claiming {} bytes decompressed", c.uncompressed),
                    "max_decoded_bytes",
                    c.uncompressed.unsigned_abs(),
                ));
            }
            let start = c.dictionary_page_offset.unwrap_or(c.data_page_offset);
            let end = start.checked_add(c.compressed);
            let Some(end) = end.filter(|e| start >= 4 && c.compressed >= 0 && (*e as u64) <= data_end) else {
                return Err(bad(format!(
                    "{at}: pages at offset {start}, {} bytes, are outside the file's data ({data_end} bytes)",
                    c.compressed
                )));
            };
            decoded = decoded.saturating_add(check_pages(&bytes[start as usize..end as usize], limits, file, &at)?);
            if decoded > limits.max_decoded_bytes {
                return Err(limits.over(
                    file,
                    format!("pages of {decoded} bytes decompressed (up to {at})"),
                    "max_decoded_bytes",
                    decoded,
                ));
            }
        }
    }
    Ok(())
}

/// Walk the page headers of one column chunk; the sum of their decompressed sizes.
fn check_pages(chunk: &[u8], limits: &ReadLimits, file: &str, at: &str) -> Result<u64, DatasetError> {
    let bad = |message: String| DatasetError::Read { file: file.into(), format: "Parquet", message };
    let mut r = Reader { b: chunk, pos: 0, structs: 0, items: 0 };
    let mut total: u64 = 0;
    let mut pages = 0usize;
    while r.pos < chunk.len() {
        let mut h = PageHeader::default();
        r.read_struct(0, &mut |r, id, ty| match (id, ty) {
            (2, _) => r.int(ty).map(|v| h.uncompressed = Some(v)).map(|_| true),
            (3, _) => r.int(ty).map(|v| h.compressed = Some(v)).map(|_| true),
            // Data page, dictionary page, data page v2: every integer in them
            // is a count, a length or an enum, so none may be negative (a
            // negative count becomes a huge usize in the decoder); fields 1-3
            // are counts of values, nulls or rows.
            (5 | 7 | 8, STRUCT) => r
                .read_struct(1, &mut |r, id, ty| {
                    if !matches!(ty, I32 | I64) {
                        return Ok(false);
                    }
                    let v = r.int(ty)?;
                    h.least = h.least.min(v);
                    if matches!(id, 1..=3) {
                        h.num_values = h.num_values.max(v);
                    }
                    Ok(true)
                })
                .map(|_| true),
            _ => Ok(false),
        })
        .map_err(|e| bad(format!("{at}, page {pages}: header: {e}")))?;
        let (Some(unc), Some(comp)) = (h.uncompressed, h.compressed) else {
            return Err(bad(format!("{at}, page {pages}: header without page sizes")));
        };
        if unc < 0 || unc as u64 > limits.max_decoded_bytes {
            return Err(limits.over(
                file,
                format!("{at}, page {pages} claiming {unc} bytes decompressed"),
                "max_decoded_bytes",
                unc.unsigned_abs(),
            ));
        }
        if h.least < 0 {
            return Err(bad(format!("{at}, page {pages}: header holds the negative count or length {}", h.least)));
        }
        if h.num_values as u64 > limits.max_rows {
            return Err(limits.over(
                file,
                format!("{at}, page {pages} claiming {} values", h.num_values),
                "max_input_rows",
                h.num_values.unsigned_abs(),
            ));
        }
        if comp < 0 || comp as u64 > (chunk.len() - r.pos) as u64 {
            return Err(bad(format!("{at}, page {pages}: {comp} bytes do not fit in the column chunk")));
        }
        r.pos += comp as usize;
        total = total.saturating_add(unc as u64);
        pages += 1;
    }
    Ok(total)
}

#[derive(Default)]
struct PageHeader {
    uncompressed: Option<i64>,
    compressed: Option<i64>,
    /// The largest count of values, nulls or rows in the page-kind header.
    num_values: i64,
    /// The least integer in the page-kind header.
    least: i64,
}

// Thrift compact protocol types.
const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;
/// Deeper nesting than any Parquet footer has.
const MAX_DEPTH: usize = 16;
/// List elements one footer (or page header) may hold in all. A reader keeps
/// each struct element (row group, column chunk, schema element, key-value)
/// in a few hundred bytes, so a footer of a million one-byte structs would
/// cost far more memory than its size; 200,000 structs cover 1,000 columns in
/// 100 row groups, 4,000,000 other elements their encodings and paths.
const MAX_FOOTER_STRUCTS: u64 = 200_000;
const MAX_FOOTER_ITEMS: u64 = 4_000_000;

type Walk<T> = Result<T, String>;
/// Called per struct field with its id and type; `Ok(true)` when it read the value.
type OnField<'f, 'a> = dyn FnMut(&mut Reader<'a>, i16, u8) -> Walk<bool> + 'f;

/// A bounded Thrift compact-protocol reader over a byte slice.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    /// List elements walked so far: structs, and everything else.
    structs: u64,
    items: u64,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.b.len() - self.pos
    }

    fn byte(&mut self) -> Walk<u8> {
        let v = *self.b.get(self.pos).ok_or("ends early")?;
        self.pos += 1;
        Ok(v)
    }

    fn skip(&mut self, n: u64) -> Walk<()> {
        if n > self.left() as u64 {
            return Err(format!("a value of {n} bytes does not fit in the {} bytes left", self.left()));
        }
        self.pos += n as usize;
        Ok(())
    }

    fn varint(&mut self) -> Walk<u64> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn zigzag(&mut self) -> Walk<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// An integer field of any integer type.
    fn int(&mut self, ty: u8) -> Walk<i64> {
        match ty {
            BYTE => Ok(i64::from(self.byte()? as i8)),
            I16 | I32 | I64 => self.zigzag(),
            other => Err(format!("expected an integer, found type {other}")),
        }
    }

    /// A list or set header: element type and a count that fits in the bytes left.
    fn list_header(&mut self) -> Walk<(u8, u64)> {
        let h = self.byte()?;
        let size = match h >> 4 {
            15 => self.varint()?,
            s => u64::from(s),
        };
        if size > self.left() as u64 {
            return Err(format!("a list of {size} elements does not fit in the {} bytes left", self.left()));
        }
        self.count(h & 0x0f, size)?;
        Ok((h & 0x0f, size))
    }

    /// Count `size` list elements of type `ty` against the footer's budget.
    fn count(&mut self, ty: u8, size: u64) -> Walk<()> {
        let (total, max, what) = if ty == STRUCT {
            self.structs += size;
            (self.structs, MAX_FOOTER_STRUCTS, "structs")
        } else {
            self.items += size;
            (self.items, MAX_FOOTER_ITEMS, "list elements")
        };
        if total > max {
            return Err(format!("more than {max} {what} in lists"));
        }
        Ok(())
    }

    fn read_struct(&mut self, depth: usize, on_field: &mut OnField<'_, 'a>) -> Walk<()> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        let mut last: i16 = 0;
        loop {
            let h = self.byte()?;
            if h == 0 {
                return Ok(());
            }
            let ty = h & 0x0f;
            let id = match h >> 4 {
                0 => i16::try_from(self.zigzag()?).map_err(|_| "field id out of range")?,
                d => last.checked_add(i16::from(d)).ok_or("field id out of range")?,
            };
            last = id;
            if !on_field(self, id, ty)? {
                self.skip_value(ty, depth + 1, false)?;
            }
        }
    }

    fn skip_value(&mut self, ty: u8, depth: usize, in_list: bool) -> Walk<()> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        match ty {
            BOOL_TRUE | BOOL_FALSE if in_list => self.skip(1),
            BOOL_TRUE | BOOL_FALSE => Ok(()),
            BYTE => self.skip(1),
            I16 | I32 | I64 => self.varint().map(|_| ()),
            DOUBLE => self.skip(8),
            BINARY => {
                let n = self.varint()?;
                self.skip(n)
            }
            LIST | SET => {
                let (et, size) = self.list_header()?;
                for _ in 0..size {
                    self.skip_value(et, depth + 1, true)?;
                }
                Ok(())
            }
            MAP => {
                let size = self.varint()?;
                if size == 0 {
                    return Ok(());
                }
                if size.saturating_mul(2) > self.left() as u64 {
                    return Err(format!("a map of {size} entries does not fit in the {} bytes left", self.left()));
                }
                let kv = self.byte()?;
                self.count(kv >> 4, size)?;
                self.count(kv & 0x0f, size)?;
                for _ in 0..size {
                    self.skip_value(kv >> 4, depth + 1, true)?;
                    self.skip_value(kv & 0x0f, depth + 1, true)?;
                }
                Ok(())
            }
            STRUCT => self.read_struct(depth, &mut |_, _, _| Ok(false)),
            other => Err(format!("unknown Thrift type {other}")),
        }
    }

    /// Walk a list of structs, handing each to `each`.
    fn struct_list(&mut self, ty: u8, each: &mut dyn FnMut(&mut Reader<'a>) -> Walk<()>) -> Walk<()> {
        if ty != LIST {
            return Err(format!("expected a list, found type {ty}"));
        }
        let (et, size) = self.list_header()?;
        if et != STRUCT && size > 0 {
            return Err(format!("expected a list of structs, found elements of type {et}"));
        }
        for _ in 0..size {
            each(self)?;
        }
        Ok(())
    }
}

/// The structs of a Parquet footer that readers decode field by field.
#[derive(Debug, Clone, Copy)]
enum Kind {
    File,
    Schema,
    RowGroup,
    Chunk,
    ColumnMeta,
    Statistics,
    KeyValue,
    Sorting,
    ColumnOrder,
    Logical,
    Decimal,
    Time,
    TimeUnit,
    Integer,
    Empty,
}

/// The wire type a known field must have.
#[derive(Debug, Clone, Copy)]
enum Want {
    Int,
    Byte,
    Bool,
    Binary,
    IntList,
    BinaryList,
    StructList(Kind),
    Struct(Kind),
}

/// What field `id` of `kind` is in parquet.thrift (as polars' footer decoder
/// reads it); `None` for fields a reader skips by their wire type.
fn want(kind: Kind, id: i16) -> Option<Want> {
    use Kind::*;
    use Want::*;
    Some(match (kind, id) {
        (File, 1 | 3) => Int,
        (File, 2) => StructList(Schema),
        (File, 4) => StructList(RowGroup),
        (File, 5) => StructList(KeyValue),
        (File, 6) => Binary,
        (File, 7) => StructList(ColumnOrder),
        (Schema, 1..=3 | 5..=9) => Int,
        (Schema, 4) => Binary,
        (Schema, 10) => Struct(Logical),
        (RowGroup, 1) => StructList(Chunk),
        (RowGroup, 2 | 3 | 5..=7) => Int,
        (RowGroup, 4) => StructList(Sorting),
        (Chunk, 1) => Binary,
        (Chunk, 2 | 4..=7) => Int,
        (Chunk, 3) => Struct(ColumnMeta),
        (ColumnMeta, 1 | 4..=7 | 9..=11 | 14 | 15) => Int,
        (ColumnMeta, 2) => IntList,
        (ColumnMeta, 3) => BinaryList,
        (ColumnMeta, 12) => Struct(Statistics),
        (Statistics, 1 | 2 | 5 | 6) => Binary,
        (Statistics, 3 | 4) => Int,
        (Statistics, 7 | 8) | (Sorting, 2 | 3) | (Time, 1) | (Integer, 2) => Bool,
        (KeyValue, 1 | 2) => Binary,
        (Sorting, 1) | (Decimal, 1 | 2) => Int,
        (ColumnOrder, 1 | 2) | (TimeUnit, 1..=3) | (Logical, 1..=4 | 6 | 11..=15) => Struct(Empty),
        (Logical, 5) => Struct(Decimal),
        (Logical, 7 | 8) => Struct(Time),
        (Logical, 10) => Struct(Integer),
        (Time, 2) => Struct(TimeUnit),
        (Integer, 1) => Byte,
        _ => return None,
    })
}

impl Reader<'_> {
    /// Walk a struct of `kind`, refusing a known field of another wire type.
    /// Readers decode known fields by id whatever their wire type says, so a
    /// mistyped field would make them read other bytes than this walk checked
    /// (a string's bytes taken for a list header of 2^31 elements).
    fn typed_struct(&mut self, kind: Kind, depth: usize) -> Walk<()> {
        self.read_struct(depth, &mut |r, id, ty| {
            let Some(w) = want(kind, id) else { return Ok(false) };
            let int = |t: u8| matches!(t, I16 | I32 | I64);
            let ok = match w {
                Want::Int => int(ty),
                Want::Byte => ty == BYTE,
                Want::Bool => matches!(ty, BOOL_TRUE | BOOL_FALSE),
                Want::Binary => ty == BINARY,
                Want::IntList | Want::BinaryList | Want::StructList(_) => matches!(ty, LIST | SET),
                Want::Struct(_) => ty == STRUCT,
            };
            if !ok {
                return Err(format!("{kind:?} field {id} has wire type {ty}, not {w:?}"));
            }
            match w {
                Want::Struct(k) => r.typed_struct(k, depth + 1).map(|_| true),
                Want::IntList | Want::BinaryList | Want::StructList(_) => {
                    let (et, size) = r.list_header()?;
                    let elem_ok = match w {
                        Want::IntList => int(et),
                        Want::BinaryList => et == BINARY,
                        _ => et == STRUCT,
                    };
                    if !elem_ok && size > 0 {
                        return Err(format!("{kind:?} field {id} is a list of wire type {et}, not {w:?}"));
                    }
                    for _ in 0..size {
                        match w {
                            Want::StructList(k) => r.typed_struct(k, depth + 1)?,
                            _ => r.skip_value(et, depth + 1, true)?,
                        }
                    }
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }
}

/// Walk the whole FileMetaData, keeping what the limits need.
fn read_footer(bytes: &[u8]) -> Walk<Footer> {
    Reader { b: bytes, pos: 0, structs: 0, items: 0 }.typed_struct(Kind::File, 0)?;
    let mut r = Reader { b: bytes, pos: 0, structs: 0, items: 0 };
    let mut f = Footer::default();
    r.read_struct(0, &mut |r, id, ty| match id {
        2 => r
            .struct_list(ty, &mut |r| {
                f.schema_elements += 1;
                let mut children = 0i64;
                r.read_struct(2, &mut |r, id, ty| match id {
                    5 => r.int(ty).map(|v| children = v).map(|_| true),
                    _ => Ok(false),
                })?;
                if children <= 0 {
                    f.leaves += 1;
                }
                Ok(())
            })
            .map(|_| true),
        3 => r.int(ty).map(|v| f.num_rows = v).map(|_| true),
        4 => r
            .struct_list(ty, &mut |r| {
                let mut rg = RowGroup::default();
                r.read_struct(2, &mut |r, id, ty| match id {
                    1 => r
                        .struct_list(ty, &mut |r| {
                            let mut c = Chunk::default();
                            r.read_struct(4, &mut |r, id, ty| match (id, ty) {
                                (3, STRUCT) => r
                                    .read_struct(5, &mut |r, id, ty| match id {
                                        5 => r.int(ty).map(|v| c.num_values = v).map(|_| true),
                                        6 => r.int(ty).map(|v| c.uncompressed = v).map(|_| true),
                                        7 => r.int(ty).map(|v| c.compressed = v).map(|_| true),
                                        9 => r.int(ty).map(|v| c.data_page_offset = v).map(|_| true),
                                        11 => r.int(ty).map(|v| c.dictionary_page_offset = Some(v)).map(|_| true),
                                        _ => Ok(false),
                                    })
                                    .map(|_| true),
                                _ => Ok(false),
                            })?;
                            rg.chunks.push(c);
                            Ok(())
                        })
                        .map(|_| true),
                    3 => r.int(ty).map(|v| rg.num_rows = v).map(|_| true),
                    _ => Ok(false),
                })?;
                f.row_groups.push(rg);
                Ok(())
            })
            .map(|_| true),
        _ => Ok(false),
    })?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{Spec, traffic};

    fn parquet(rows: usize) -> Vec<u8> {
        crate::raw::write_raw_parquet(&traffic(&Spec { rows, ..Default::default() }), "time").unwrap()
    }

    /// Thrift compact writer for hand-made footers.
    fn field(out: &mut Vec<u8>, last: &mut i16, id: i16, ty: u8) {
        let d = id - *last;
        assert!((1..=15).contains(&d));
        out.push(((d as u8) << 4) | ty);
        *last = id;
    }
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn zz(out: &mut Vec<u8>, v: i64) {
        varint(out, ((v << 1) ^ (v >> 63)) as u64);
    }

    /// A file of the magic, `footer` and the trailer.
    fn file(body: &[u8], footer: &[u8]) -> Vec<u8> {
        let mut f = b"PAR1".to_vec();
        f.extend_from_slice(body);
        f.extend_from_slice(footer);
        f.extend_from_slice(&(footer.len() as u32).to_le_bytes());
        f.extend_from_slice(b"PAR1");
        f
    }

    /// FileMetaData: a root and one INT64 leaf, `rows` rows, no row groups.
    fn footer_claiming(rows: i64, row_groups: &[i64]) -> Vec<u8> {
        let mut o = Vec::new();
        let mut last = 0;
        field(&mut o, &mut last, 1, I32);
        zz(&mut o, 1);
        field(&mut o, &mut last, 2, LIST);
        o.push((2 << 4) | STRUCT);
        for (name, children) in [("schema", Some(1)), ("ts", None)] {
            let mut l = 0;
            if children.is_none() {
                field(&mut o, &mut l, 1, I32);
                zz(&mut o, 2); // INT64
            }
            field(&mut o, &mut l, 4, BINARY);
            varint(&mut o, name.len() as u64);
            o.extend_from_slice(name.as_bytes());
            if let Some(c) = children {
                field(&mut o, &mut l, 5, I32);
                zz(&mut o, c);
            }
            o.push(0);
        }
        field(&mut o, &mut last, 3, I64);
        zz(&mut o, rows);
        field(&mut o, &mut last, 4, LIST);
        o.push(((row_groups.len() as u8) << 4) | STRUCT);
        for &rg in row_groups {
            let mut l = 0;
            field(&mut o, &mut l, 1, LIST);
            o.push(STRUCT); // no column chunks
            field(&mut o, &mut l, 2, I64);
            zz(&mut o, 0);
            field(&mut o, &mut l, 3, I64);
            zz(&mut o, rg);
            o.push(0);
        }
        o.push(0);
        o
    }

    #[test]
    fn real_files_pass_and_their_shape_is_checked() {
        let bytes = parquet(3_000);
        check_parquet("f", &bytes, &ReadLimits::default()).unwrap();
        let tight = ReadLimits { max_rows: 2_999, ..Default::default() };
        let e = check_parquet("f", &bytes, &tight).unwrap_err();
        assert_eq!(e.to_string(), "f: 3000 rows is over the limit max_input_rows = 2999");
        let narrow = ReadLimits { max_columns: 11, ..Default::default() };
        assert!(check_parquet("f", &bytes, &narrow).unwrap_err().to_string().contains("12 columns"));
        let small = ReadLimits { max_decoded_bytes: 100_000, ..Default::default() };
        assert!(check_parquet("f", &bytes, &small).unwrap_err().to_string().contains("max_decoded_bytes"));
    }

    #[test]
    fn a_footer_claiming_a_trillion_rows_is_refused_before_decoding() {
        let f = file(b"", &footer_claiming(1_000_000_000_000, &[1_000_000_000_000]));
        let e = check_parquet("huge.parquet", &f, &ReadLimits::default()).unwrap_err();
        assert_eq!(e.to_string(), "huge.parquet: 1000000000000 rows is over the limit max_input_rows = 20000000");
        assert!(matches!(e, DatasetError::OverLimit { .. }));
        // Row groups that disagree with the footer, and a negative count.
        let f = file(b"", &footer_claiming(10, &[1_000_000_000_000]));
        assert!(check_parquet("x", &f, &ReadLimits::default()).unwrap_err().to_string().contains("row group 0"));
        let f = file(b"", &footer_claiming(10, &[4]));
        assert!(check_parquet("x", &f, &ReadLimits::default()).unwrap_err().to_string().contains("hold 4 rows"));
        let f = file(b"", &footer_claiming(-1, &[]));
        assert!(check_parquet("x", &f, &ReadLimits::default()).is_err());
    }

    #[test]
    fn thrift_lists_and_lengths_longer_than_the_footer_are_refused() {
        // A list header claiming 2^31 row groups in a 30-byte footer.
        let mut o = Vec::new();
        let mut last = 0;
        field(&mut o, &mut last, 4, LIST);
        o.push(0xF0 | STRUCT);
        varint(&mut o, 1 << 31);
        let e = check_parquet("x", &file(b"", &o), &ReadLimits::default()).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
        // A footer length beyond the file, a string longer than the footer.
        let mut f = parquet(10);
        let n = f.len();
        f[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check_parquet("x", &f, &ReadLimits::default()).unwrap_err().to_string().contains("footer length"));
        let mut o = Vec::new();
        let mut last = 0;
        field(&mut o, &mut last, 6, BINARY);
        varint(&mut o, 1 << 40);
        assert!(check_parquet("x", &file(b"", &o), &ReadLimits::default()).is_err());
        // 300,000 empty key-value structs, one byte each: they fit in the
        // footer, but a reader would keep each in far more than a byte.
        let mut o = Vec::new();
        let mut last = 0;
        field(&mut o, &mut last, 5, LIST);
        o.push(0xF0 | STRUCT);
        varint(&mut o, 300_000);
        o.extend(std::iter::repeat_n(0u8, 300_000));
        o.push(0);
        let e = check_parquet("x", &file(b"", &o), &ReadLimits::default()).unwrap_err();
        assert!(e.to_string().contains("more than 200000 structs in lists"), "{e}");
    }

    #[test]
    fn a_known_field_of_another_wire_type_is_refused() {
        // key_value_metadata (field 5) sent as a string: a reader decoding by
        // field id would take the string's bytes for a list header.
        let mut o = Vec::new();
        let mut last = 0;
        field(&mut o, &mut last, 5, BINARY);
        varint(&mut o, 6);
        o.extend_from_slice(&[0xFC, 0xFF, 0xFF, 0xFF, 0xFF, 0x07]);
        o.push(0);
        let e = check_parquet("x", &file(b"", &o), &ReadLimits::default()).unwrap_err();
        assert!(e.to_string().contains("File field 5 has wire type 8, not StructList(KeyValue)"), "{e}");
    }

    #[test]
    fn every_truncation_and_byte_flip_of_a_real_file_is_checked_without_panic() {
        let bytes = parquet(200);
        for cut in (0..bytes.len()).step_by(7) {
            let _ = check_parquet("x", &bytes[..cut], &ReadLimits::default());
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            let _ = check_parquet("x", &b, &ReadLimits::default());
        }
    }

    #[test]
    fn csv_shape_and_duplicate_names() {
        let header: Vec<String> = ["time", "a", "b"].map(String::from).to_vec();
        check_csv("c", &header, b"time,a,b\n1,2,3\n4,5,6\n", &ReadLimits::default()).unwrap();
        let tight = ReadLimits { max_rows: 1, ..Default::default() };
        let e = check_csv("c", &header, b"time,a,b\n1,2,3\n4,5,6", &tight).unwrap_err();
        assert_eq!(e.to_string(), "c: 2 rows is over the limit max_input_rows = 1");
        let dup: Vec<String> = ["time", "a", "a"].map(String::from).to_vec();
        let e = check_csv("c", &dup, b"time,a,a\n1,2,3\n", &ReadLimits::default()).unwrap_err();
        assert_eq!(e.to_string(), "c: column `a` appears more than once in the header");
    }
}
