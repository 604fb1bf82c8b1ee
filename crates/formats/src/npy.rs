//! NumPy `.npy` files (format 1.0/2.0, little-endian, C order): read, memory-map, and stream-write.

use crate::error::{DataError, Result};
use brainrecon_core::fs::PendingFile;
use memmap2::Mmap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Element types this project stores.
pub trait Element: Copy + Default + 'static {
    /// The `.npy` header's `descr` for this type (`<f4`, `|u1`, ...).
    const DESCR: &'static str;
    /// Appends the element's little-endian bytes to `out`.
    fn to_le(self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($ty:ty, $descr:literal) => {
        impl Element for $ty {
            const DESCR: &'static str = $descr;
            fn to_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
element!(f32, "<f4");
element!(f64, "<f8");
element!(i64, "<i8");
element!(i32, "<i4");
element!(i16, "<i2");
element!(u8, "|u1");

/// The parsed header of a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The dtype as written (`<f4`, `|u1`, ...).
    pub descr: String,
    /// Size of each axis.
    pub shape: Vec<usize>,
    /// Byte offset of the data: the length of magic, version and header.
    pub data_offset: usize,
    /// Whether the data are stored first index fastest (`fortran_order: True`, what `np.save`
    /// writes for a transposed or Fortran-ordered array); the readers that copy the array
    /// return it in C order, and those that map it in place refuse it.
    pub fortran_order: bool,
}

impl Header {
    /// Elements: the product of the shape.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn header_text(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // Data starts on a 64-byte boundary so memory-mapped f32/i64 slices are aligned.
    let unpadded = 10 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    dict.push_str(&" ".repeat(padding));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Parses the header at the start of `bytes`.
pub fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header> {
    let bad = |detail: &str| DataError::format(path, "NumPy .npy", detail);
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(bad(&format!("unsupported format version {v}"))),
    };
    let end = start + len;
    if bytes.len() < end {
        return Err(bad("truncated header"));
    }
    let dict = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not text"))?;
    let field = |key: &str| -> Option<&str> {
        let at = dict.find(&format!("'{key}'"))?;
        let rest = &dict[at + key.len() + 2..];
        let colon = rest.find(':')?;
        Some(rest[colon + 1..].trim_start())
    };
    let descr = field("descr")
        .and_then(|s| s.strip_prefix('\''))
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| bad("header has no 'descr'"))?
        .to_string();
    let fortran_order = field("fortran_order").is_some_and(|s| s.starts_with("True"));
    let shape_text = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("header has no 'shape'"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad("shape is not a tuple of integers"))
        })
        .collect::<Result<Vec<_>>>()?;
    // Zero-width elements (`<U0`, `|S0`, `V0`) pass any size check (count × 0 = 0), while a
    // reader would still make one value per element of the claimed shape.
    let item = descr_item_size(&descr);
    if item == Some(0) {
        return Err(bad(&format!(
            "dtype '{descr}' has zero-width elements: refused (their count cannot be checked \
             against the data)"
        )));
    }
    // Sizes come from the file: the element count, and the bytes it takes, must fit before
    // anything is sized by them.
    if shape
        .iter()
        .try_fold(item.unwrap_or(1), |n, &d| n.checked_mul(d))
        .is_none()
    {
        return Err(bad(&format!(
            "shape {shape:?} of '{descr}' holds more elements than can be addressed"
        )));
    }
    Ok(Header {
        descr,
        shape,
        data_offset: end,
        fortran_order,
    })
}

/// Bytes per element of a descr (`<f4`, `<U10`, `|S0`, `|O`, `<M8[ns]`), when its kind is one
/// of NumPy's; `None` for anything else (structured types are refused later by every reader).
fn descr_item_size(descr: &str) -> Option<usize> {
    let code = descr.trim_start_matches(['<', '>', '|', '=']);
    let mut chars = code.chars();
    let kind = chars.next()?;
    let digits: String = chars.take_while(char::is_ascii_digit).collect();
    let n = digits.parse::<usize>().ok();
    match kind {
        'O' => Some(n.unwrap_or(8)),
        'U' => n?.checked_mul(4),
        'b' | 'i' | 'u' | 'f' | 'c' | 'm' | 'M' | 'S' | 'a' | 'V' => n,
        _ => None,
    }
}

fn element_size(descr: &str) -> Option<usize> {
    Some(match descr {
        "<f4" | "<i4" | "<u4" => 4,
        "<f8" | "<i8" | "<u8" => 8,
        "<i2" | "<u2" => 2,
        "|u1" | "|i1" | "|b1" => 1,
        _ => return None,
    })
}

/// An array read from disk, converted to `T`.
#[derive(Debug, Clone, PartialEq)]
pub struct Array<T> {
    /// Size of each axis.
    pub shape: Vec<usize>,
    /// The elements in C order (last axis fastest).
    pub data: Vec<T>,
}

impl<T> Array<T> {
    /// Rows and columns of a 2-D array; a 1-D array is one column.
    pub fn as_matrix(&self, path: &Path) -> Result<(usize, usize)> {
        match self.shape.as_slice() {
            [n] => Ok((*n, 1)),
            [n, m] => Ok((*n, *m)),
            other => Err(DataError::invalid(
                path,
                "shape",
                "a 1-D or 2-D array",
                format!("{other:?}"),
            )),
        }
    }
}

/// Maps the file for reading its data in place: a Fortran-ordered array is refused (its
/// rows are not contiguous).
fn open_map(path: &Path) -> Result<(Mmap, Header)> {
    let (map, header) = open_map_any_order(path)?;
    if header.fortran_order {
        return Err(DataError::format(
            path,
            "NumPy .npy",
            "a Fortran-ordered array cannot be read in place (memory-mapped or in parts); \
             save it in C order (np.ascontiguousarray)",
        ));
    }
    Ok((map, header))
}

/// `data` stored first index fastest with `shape`, reordered last index fastest.
fn to_c_order<T: Copy>(data: Vec<T>, shape: &[usize]) -> Vec<T> {
    if shape.len() < 2 || data.is_empty() {
        return data;
    }
    // C-order strides of the output; the input walks the same elements with the first index
    // fastest.
    let mut out = Vec::with_capacity(data.len());
    let mut index = vec![0usize; shape.len()];
    let mut fortran_strides = vec![1usize; shape.len()];
    for d in 1..shape.len() {
        fortran_strides[d] = fortran_strides[d - 1] * shape[d - 1];
    }
    for _ in 0..data.len() {
        let at: usize = index.iter().zip(&fortran_strides).map(|(i, s)| i * s).sum();
        out.push(data[at]);
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

fn open_map_any_order(path: &Path) -> Result<(Mmap, Header)> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    // SAFETY: the file is opened read-only; like numpy's mmap_mode='r', later outside changes are the user's concern.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))?;
    let header = parse_header(path, &map)?;
    let size = element_size(&header.descr).ok_or_else(|| {
        DataError::invalid(
            path,
            "dtype",
            "a numeric little-endian dtype",
            &header.descr,
        )
    })?;
    let need = header
        .len()
        .checked_mul(size)
        .and_then(|bytes| bytes.checked_add(header.data_offset));
    if need.is_none_or(|need| map.len() < need) {
        return Err(DataError::invalid(
            path,
            "data",
            format!(
                "{} bytes for shape {:?}",
                need.map_or("more".to_string(), |n| n.to_string()),
                header.shape
            ),
            format!("{} bytes (file truncated)", map.len()),
        ));
    }
    Ok((map, header))
}

/// Maps the file and refuses an array whose copy in memory (`element` bytes a value) would
/// pass [`crate::limits::ARRAY_BYTES`]; the map itself is bounded by the file's length.
fn open_for_reading(path: &Path, element: u64) -> Result<(Mmap, Header)> {
    let (map, header) = open_map_any_order(path)?;
    let shape: Vec<u64> = header.shape.iter().map(|&d| d as u64).collect();
    crate::limits::array_bytes(path, "shape", &shape, element)?;
    Ok((map, header))
}

macro_rules! convert_from {
    ($bytes:expr, $src:ty, $dst:ty) => {
        $bytes
            .chunks_exact(std::mem::size_of::<$src>())
            .map(|c| <$src>::from_le_bytes(c.try_into().unwrap()) as $dst)
            .collect::<Vec<$dst>>()
    };
}

/// Reads a float array (f4 or f8 on disk) as f32.
pub fn read_f32(path: &Path) -> Result<Array<f32>> {
    let (map, header) = open_for_reading(path, 4)?;
    let size = element_size(&header.descr).unwrap();
    let bytes = &map[header.data_offset..header.data_offset + header.len() * size];
    let data = match header.descr.as_str() {
        "<f4" => convert_from!(bytes, f32, f32),
        "<f8" => convert_from!(bytes, f64, f32),
        other => {
            return Err(DataError::invalid(
                path,
                "dtype",
                "float32 or float64",
                other,
            ));
        }
    };
    let data = match header.fortran_order {
        true => to_c_order(data, &header.shape),
        false => data,
    };
    Ok(Array {
        shape: header.shape,
        data,
    })
}

/// Reads an integer array (i1..i8, u1..u4 on disk) as i64.
pub fn read_i64(path: &Path) -> Result<Array<i64>> {
    let (map, header) = open_for_reading(path, 8)?;
    let size = element_size(&header.descr).unwrap();
    let bytes = &map[header.data_offset..header.data_offset + header.len() * size];
    let data = match header.descr.as_str() {
        "<i8" => convert_from!(bytes, i64, i64),
        "<i4" => convert_from!(bytes, i32, i64),
        "<i2" => convert_from!(bytes, i16, i64),
        "<u4" => convert_from!(bytes, u32, i64),
        "<u2" => convert_from!(bytes, u16, i64),
        "|u1" => bytes.iter().map(|&b| b as i64).collect(),
        "|i1" => bytes.iter().map(|&b| b as i8 as i64).collect(),
        other => return Err(DataError::invalid(path, "dtype", "an integer dtype", other)),
    };
    let data = match header.fortran_order {
        true => to_c_order(data, &header.shape),
        false => data,
    };
    Ok(Array {
        shape: header.shape,
        data,
    })
}

/// Reads a uint8 array.
pub fn read_u8(path: &Path) -> Result<Array<u8>> {
    let (map, header) = open_for_reading(path, 1)?;
    if header.descr != "|u1" {
        return Err(DataError::invalid(path, "dtype", "uint8", &header.descr));
    }
    let data = map[header.data_offset..header.data_offset + header.len()].to_vec();
    let data = match header.fortran_order {
        true => to_c_order(data, &header.shape),
        false => data,
    };
    Ok(Array {
        shape: header.shape,
        data,
    })
}

/// A memory-mapped float32 array: large betas stay on disk until touched.
pub struct MappedF32 {
    map: Mmap,
    header: Header,
    path: PathBuf,
}

impl MappedF32 {
    /// Maps a float32 (`<f4`) C-order `.npy` file. Errors: a missing or malformed file, another
    /// dtype, Fortran order, or data not 4-byte aligned, each naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        let (map, header) = open_map(path)?;
        if header.descr != "<f4" {
            return Err(DataError::invalid(
                path,
                "dtype",
                "float32 ('<f4')",
                &header.descr,
            ));
        }
        if header.data_offset % std::mem::align_of::<f32>() != 0 {
            return Err(DataError::invalid(
                path,
                "header length",
                "data starting at a multiple of 4 bytes (numpy pads the header to 64)",
                format!(
                    "data at byte {}: re-save the array with numpy.save",
                    header.data_offset
                ),
            ));
        }
        Ok(MappedF32 {
            map,
            header,
            path: path.to_path_buf(),
        })
    }

    /// Size of each axis.
    pub fn shape(&self) -> &[usize] {
        &self.header.shape
    }

    /// The file mapped.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All elements in C order.
    pub fn as_slice(&self) -> &[f32] {
        let bytes = &self.map[self.header.data_offset..];
        // SAFETY: the data offset is a multiple of 16 in every numpy-written file and of 64 in ours,
        // the map is page-aligned, and `open_map` checked that `len` elements are present.
        let (prefix, floats, _) = unsafe { bytes.align_to::<f32>() };
        debug_assert!(prefix.is_empty(), "`open` checked the alignment");
        &floats[..self.header.len()]
    }

    /// Row `i` of a 2-D array.
    pub fn row(&self, i: usize) -> &[f32] {
        let cols = self.header.shape.get(1).copied().unwrap_or(1);
        &self.as_slice()[i * cols..(i + 1) * cols]
    }
}

/// A memory-mapped uint8 array (stimulus images, video clips).
pub struct MappedU8 {
    map: Mmap,
    header: Header,
    path: PathBuf,
}

impl MappedU8 {
    /// Maps a uint8 (`|u1`) C-order `.npy` file. Errors: a missing or malformed file, another
    /// dtype or Fortran order, each naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        let (map, header) = open_map(path)?;
        if header.descr != "|u1" {
            return Err(DataError::invalid(
                path,
                "dtype",
                "uint8 ('|u1')",
                &header.descr,
            ));
        }
        Ok(MappedU8 {
            map,
            header,
            path: path.to_path_buf(),
        })
    }

    /// The file mapped.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of each axis.
    pub fn shape(&self) -> &[usize] {
        &self.header.shape
    }

    /// Entry `i` along axis 0, all trailing axes in C order.
    pub fn entry(&self, i: usize) -> &[u8] {
        let size: usize = self.header.shape[1..].iter().product();
        let start = self.header.data_offset + i * size;
        &self.map[start..start + size]
    }

    /// The sub-array at the leading indices `prefix` (C order), e.g. `[seg, tr]` of a
    /// (segments, trs, frames, h, w, 3) array; only those bytes are touched. An index out of
    /// range is an error naming the file.
    pub fn sub(&self, prefix: &[usize]) -> Result<&[u8]> {
        let offset = sub_offset(&self.path, &self.header.shape, prefix)?;
        let size: usize = self.header.shape[prefix.len()..].iter().product();
        let start = self.header.data_offset + offset * size;
        Ok(&self.map[start..start + size])
    }
}

/// The element offset / trailing size of the sub-array at `prefix`, checked against `shape`.
fn sub_offset(path: &Path, shape: &[usize], prefix: &[usize]) -> Result<usize> {
    if prefix.len() > shape.len() {
        return Err(DataError::invalid(
            path,
            "shape",
            format!("at least {} axes", prefix.len()),
            format!("{shape:?}"),
        ));
    }
    let mut offset = 0;
    for (axis, (&i, &n)) in prefix.iter().zip(shape).enumerate() {
        if i >= n {
            return Err(DataError::invalid(
                path,
                format!("index on axis {axis}"),
                format!("below {n} (shape {shape:?})"),
                i.to_string(),
            ));
        }
        offset = offset * n + i;
    }
    Ok(offset)
}

/// The float sub-array (f4 or f8 on disk, as f32) at the leading indices `prefix`, read through
/// a memory map so that only its bytes are touched; returns it with its shape.
pub fn read_f32_sub(path: &Path, prefix: &[usize]) -> Result<Array<f32>> {
    let (map, header) = open_map(path)?;
    let offset = sub_offset(path, &header.shape, prefix)?;
    let shape = header.shape[prefix.len()..].to_vec();
    let extents: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    crate::limits::array_bytes(path, "shape", &extents, 4)?;
    let count: usize = shape.iter().product();
    let size = element_size(&header.descr).unwrap();
    let start = header.data_offset + offset * count * size;
    let bytes = &map[start..start + count * size];
    let data = match header.descr.as_str() {
        "<f4" => convert_from!(bytes, f32, f32),
        "<f8" => convert_from!(bytes, f64, f32),
        other => {
            return Err(DataError::invalid(
                path,
                "dtype",
                "float32 or float64",
                other,
            ))
        }
    };
    Ok(Array { shape, data })
}

/// The header of a `.npy` file (only its first bytes are read).
pub fn read_header(path: &Path) -> Result<Header> {
    let (_, header) = open_map_any_order(path)?;
    Ok(header)
}

/// Writes a whole array atomically.
pub fn write<T: Element>(path: &Path, shape: &[usize], data: &[T]) -> Result<()> {
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(DataError::invalid(
            path,
            "shape",
            format!("{expected} elements for shape {shape:?}"),
            format!("{} elements", data.len()),
        ));
    }
    let mut writer = Writer::<T>::create(path, shape)?;
    writer.write(data)?;
    writer.finish()
}

/// Streams rows into a `.npy` file; it appears under its name only once complete.
pub struct Writer<T: Element> {
    file: PendingFile,
    expected: usize,
    written: usize,
    scratch: Vec<u8>,
    _element: std::marker::PhantomData<T>,
}

impl<T: Element> Writer<T> {
    /// Starts `path` (as a temporary file beside it) with the header of a C-order array of
    /// `shape`; the elements follow through [`Writer::write`].
    pub fn create(path: &Path, shape: &[usize]) -> Result<Self> {
        let mut file = PendingFile::create(path)?;
        file.write_all(&header_text(T::DESCR, shape))
            .map_err(|e| DataError::io(file.temp_path(), e))?;
        Ok(Writer {
            file,
            expected: shape.iter().product(),
            written: 0,
            scratch: Vec::new(),
            _element: std::marker::PhantomData,
        })
    }

    /// Appends `values` in C order; they may come in any number of calls.
    pub fn write(&mut self, values: &[T]) -> Result<()> {
        self.scratch.clear();
        for &v in values {
            v.to_le(&mut self.scratch);
        }
        self.file
            .write_all(&self.scratch)
            .map_err(|e| DataError::io(self.file.temp_path(), e))?;
        self.written += values.len();
        Ok(())
    }

    /// Checks that every element was written and moves the file into place (an unfinished
    /// writer, dropped, leaves nothing behind).
    pub fn finish(self) -> Result<()> {
        if self.written != self.expected {
            return Err(DataError::invalid(
                self.file.path(),
                "data",
                format!("{} elements", self.expected),
                format!("{} written", self.written),
            ));
        }
        self.file.commit()
    }
}

/// Refuses a NaN or infinite value of the (rows, `columns`) array `values` read from `path`,
/// naming its row and column: downstream (ridge, metrics) it would surface without the file.
/// `expected` says what the values are ("finite betas").
pub fn require_finite(path: &Path, values: &[f32], columns: usize, expected: &str) -> Result<()> {
    let Some(at) = values.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let columns = columns.max(1);
    Err(DataError::invalid(
        path,
        format!("row {}, column {}", at / columns, at % columns),
        expected,
        values[at].to_string(),
    ))
}

/// Whether `bytes` start as a raw pickle stream of protocol 2 or later (`pickle.dump`: PROTO
/// 0x80 and the protocol), which `np.load(path, allow_pickle=True)` reads as one: NICE's and
/// ATM's re-preprocessed THINGS-EEG2 ships such files under a `.npy` name.
pub fn is_pickle_stream(bytes: &[u8]) -> bool {
    matches!(bytes, [0x80, 2..=5, ..])
}

/// A pickled `.npy` file, as `np.load(path, allow_pickle=True)` reads it: with a NumPy header
/// of dtype `|O` (`np.save(path, obj)` of a dict or a list), the stored object array; without
/// one, a raw pickle stream (see [`is_pickle_stream`]), the object it holds. Read by the
/// restricted reader of [`crate::pickle`] (nothing is imported or executed), allocating at
/// most [`crate::limits::ARRAY_BYTES`].
pub fn read_pickled(path: &Path) -> Result<crate::pickle::Value> {
    read_pickled_within(path, crate::limits::ARRAY_BYTES.value())
}

/// [`read_pickled`] allocating at most `budget` bytes for the pickle's values (see
/// [`crate::pickle::read_within`]); errors name the file.
pub fn read_pickled_within(path: &Path, budget: u64) -> Result<crate::pickle::Value> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    // SAFETY: the map is read-only and dropped before this function returns; a file changed
    // underneath gives wrong values or a format error, not undefined behaviour we rely on.
    let bytes = unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))?;
    if is_pickle_stream(&bytes) {
        return crate::pickle::read_within(&bytes, budget)
            .map_err(|e| DataError::format(path, "pickle stream (pickle.dump)", e));
    }
    if !bytes.starts_with(b"\x93NUMPY") {
        return Err(DataError::format(
            path,
            "NumPy .npy",
            "neither the \\x93NUMPY magic of np.save nor a pickle stream (0x80 and a \
             protocol of 2 to 5, as pickle.dump writes)",
        ));
    }
    let header = parse_header(path, &bytes)?;
    if header.descr != "|O" {
        return Err(DataError::invalid(
            path,
            "dtype",
            "|O (a pickled object)",
            &header.descr,
        ));
    }
    crate::pickle::read_within(&bytes[header.data_offset..], budget)
        .map_err(|e| DataError::format(path, "pickled NumPy .npy", e))
}

/// Writes `value` as `np.save(path, value)` of NumPy 1.x does (format 1.0, a 0-d object array,
/// pickle protocol 3), atomically: THINGS-EEG2's dicts.
pub fn write_pickled(path: &Path, value: crate::pickle::Value) -> Result<()> {
    use crate::pickle::{write, NdArray, Value};
    let payload = write(&Value::Array(NdArray::holding(value).into()))
        .map_err(|e| DataError::invalid(path, "pickled value", "an array of its shape", e))?;
    let mut bytes = header_text("|O", &[]);
    bytes.extend_from_slice(&payload);
    brainrecon_core::fs::write_bytes_atomic(path, &bytes)
}

/// The single object of a pickled `.npy` file (what `np.load(path, allow_pickle=True).item()`
/// returns for `np.save`'s files, and `np.load` itself for a raw pickle stream of anything
/// but an array): THINGS-EEG2's dicts, as shipped or as NICE and ATM ship them.
pub fn read_pickled_item(path: &Path) -> Result<crate::pickle::Value> {
    read_item(path, read_pickled(path)?)
}

/// [`read_pickled_item`] allocating at most `budget` bytes (see [`read_pickled_within`]).
pub fn read_pickled_item_within(path: &Path, budget: u64) -> Result<crate::pickle::Value> {
    read_item(path, read_pickled_within(path, budget)?)
}

fn read_item(path: &Path, value: crate::pickle::Value) -> Result<crate::pickle::Value> {
    use crate::pickle::{ArrayData, Value};
    match value {
        Value::Array(a) if a.len() == 1 => match &a.data {
            ArrayData::Objects(items) if items.len() == 1 => Ok(items[0].clone()),
            _ => Err(DataError::invalid(
                path,
                "array",
                "an object array",
                a.dtype.to_string(),
            )),
        },
        // A raw pickle stream holds the object itself.
        Value::Dict(_) | Value::List(_) | Value::Tuple(_) => Ok(value),
        other => Err(DataError::invalid(
            path,
            "array",
            "one pickled object",
            other.kind(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        write(&path, &[3, 4], &data).unwrap();
        let back = read_f32(&path).unwrap();
        assert_eq!(back.shape, vec![3, 4]);
        assert_eq!(back.data, data);
        let mapped = MappedF32::open(&path).unwrap();
        assert_eq!(mapped.row(2), &data[8..12]);
    }

    #[test]
    fn header_is_numpy_compatible() {
        let text = header_text("<f4", &[5]);
        assert_eq!(text.len() % 64, 0);
        let header = parse_header(Path::new("x"), &text).unwrap();
        assert_eq!(header.shape, vec![5]);
        assert_eq!(header.descr, "<f4");
    }

    #[test]
    fn an_array_above_the_memory_limit_is_refused_before_it_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.npy");
        // 2^34 float32 values (64 GiB) in a sparse file: mapped, never read.
        let header = header_text("<f4", &[1 << 34]);
        std::fs::write(&path, &header).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(header.len() as u64 + (4 << 34)).unwrap();
        let err = read_f32(&path).unwrap_err().to_string();
        assert!(
            err.contains("huge.npy") && err.contains("BRAINRECON_MAX_ARRAY_BYTES"),
            "{err}"
        );
        assert_eq!(MappedF32::open(&path).unwrap().shape(), [1 << 34]);
    }

    #[test]
    fn fortran_ordered_arrays_are_read_in_c_order_and_refused_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.npy");
        // np.save of np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)): the data
        // first index fastest, 0 3 1 4 2 5.
        let mut bytes = header_text("<f4", &[2, 3]);
        let flag = b"'fortran_order': False";
        let at = bytes.windows(flag.len()).position(|w| w == flag).unwrap();
        bytes[at..at + flag.len()].copy_from_slice(b"'fortran_order': True ");
        for v in [0f32, 3.0, 1.0, 4.0, 2.0, 5.0] {
            bytes.extend(v.to_le_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let a = read_f32(&path).unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.data, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(read_header(&path).unwrap().shape, [2, 3]);
        let err = read_f32_sub(&path, &[1]).err().unwrap().to_string();
        assert!(err.contains("f.npy") && err.contains("Fortran"), "{err}");
        assert_eq!(
            to_c_order((0..24).collect(), &[2, 3, 4])[..5],
            [0, 6, 12, 18, 2]
        );
    }

    #[test]
    fn truncated_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.npy");
        write(&path, &[100], &vec![1.0f32; 100]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 8]).unwrap();
        let err = read_f32(&path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
