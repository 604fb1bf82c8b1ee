//! A restricted reader of Python pickles, for data that ships pickled: NumPy `.npy` files that
//! hold a dict (`np.save(path, {...})`, as THINGS-EEG2 ships its EEG), raw pickle streams
//! (`pickle.dump`, as NICE's and ATM's re-preprocessed THINGS-EEG2 ships) and the arrays inside.
//!
//! It executes nothing. It builds values from the opcodes that plain data needs (numbers,
//! strings, bytes, lists, tuples, dicts, memo references) and accepts exactly four globals,
//! NumPy's array and scalar reconstructors, `ndarray` and `dtype`, which it interprets itself;
//! any other global, and any opcode that builds objects from classes (`INST`, `OBJ`, `NEWOBJ`,
//! persistent ids, extensions), is refused with its name and byte offset.
//!
//! Every length read from the file is checked against the bytes that remain before anything
//! is allocated. A memo reference is one more reference to the same value (values are shared
//! through `Arc`), never a copy, and what the reader allocates is counted in bytes against
//! [`crate::limits::ARRAY_BYTES`]; a container that contains itself is refused. Consumers that
//! flatten a value ([`Value::to_strings`], [`NdArray::to_f64`]) size the result before they
//! allocate it, against the same limit.

use crate::limits::ARRAY_BYTES;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A value read from a pickle. Strings, bytes, containers and arrays are shared: cloning a
/// value, or a pickle referring to one value many times, costs one reference each. `Debug` and
/// `==` walk every path through shared values (2^40 for 40 nested pairs of references): walk a
/// value from an untrusted file level by level, never print or compare it whole.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Python's `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An integer (longer than 8 bytes is refused).
    Int(i64),
    /// A float.
    Float(f64),
    /// A `str`.
    Str(Arc<str>),
    /// A `bytes` value.
    Bytes(Arc<Vec<u8>>),
    /// A `list`, in order.
    List(Arc<Vec<Value>>),
    /// A `tuple`, in order.
    Tuple(Arc<Vec<Value>>),
    /// Key–value pairs in the pickle's order.
    Dict(Arc<Vec<(Value, Value)>>),
    /// A NumPy array.
    Array(Arc<NdArray>),
}

/// Bytes one `String` takes besides its text, counted when a value is flattened into strings.
const STRING_SLOT: u64 = std::mem::size_of::<String>() as u64;

/// Refuses `bytes` (what flattening or materialising `what` would allocate, `None` when it
/// overflows) above [`ARRAY_BYTES`], with the variable that raises the limit.
fn within_limit(bytes: Option<u64>, what: &str) -> std::result::Result<(), String> {
    let limit = ARRAY_BYTES.value();
    match bytes {
        Some(b) if b <= limit => Ok(()),
        _ => Err(format!(
            "{what} would take {} bytes in memory, above {limit} ({}: brainrecon's limit; set \
             {} to raise it)",
            bytes.map_or("more than 2^64".to_string(), |b| b.to_string()),
            ARRAY_BYTES.what,
            ARRAY_BYTES.variable
        )),
    }
}

impl Value {
    /// A list of `items`.
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    /// A tuple of `items`.
    pub fn tuple(items: Vec<Value>) -> Value {
        Value::Tuple(Arc::new(items))
    }

    /// A dict of `pairs`, in their order.
    pub fn dict(pairs: Vec<(Value, Value)>) -> Value {
        Value::Dict(Arc::new(pairs))
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "a bool".into(),
            Value::Int(_) => "an int".into(),
            Value::Float(_) => "a float".into(),
            Value::Str(_) => "a str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::List(v) => format!("a list of {}", v.len()),
            Value::Tuple(v) => format!("a tuple of {}", v.len()),
            Value::Dict(v) => format!("a dict of {} keys", v.len()),
            Value::Array(a) => format!("an array of dtype {} and shape {:?}", a.dtype, a.shape),
        }
    }

    /// The entry of a dict under a string key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(pairs) => pairs
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if &**s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string keys of a dict, in order.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Value::Dict(pairs) => pairs
                .iter()
                .filter_map(|(k, _)| match k {
                    Value::Str(s) => Some(s.to_string()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The strings of a list or tuple of `str`, or of a 1-D string array, as owned strings.
    ///
    /// Errors (a message saying what was found): an item that is not a `str`, another kind of
    /// value, or strings whose copies would pass [`ARRAY_BYTES`] (a list of 300,000 references
    /// to one 4 MB `str` is 1.2 TB once copied), checked before anything is allocated.
    pub fn to_strings(&self) -> std::result::Result<Vec<String>, String> {
        match self {
            Value::List(items) | Value::Tuple(items) => str_items(items, "a list"),
            Value::Array(a) if a.shape.len() <= 1 => a.to_strings(),
            other => Err(format!("{}, expected a list of strings", other.kind())),
        }
    }
}

/// `items` as owned strings, sized first (see [`Value::to_strings`]); `what` names the container.
fn str_items(items: &[Value], what: &str) -> std::result::Result<Vec<String>, String> {
    let mut bytes = Some(0u64);
    for item in items {
        match item {
            Value::Str(s) => {
                bytes = bytes.and_then(|b| b.checked_add(s.len() as u64 + STRING_SLOT));
            }
            other => return Err(format!("{what} holding {}, expected str", other.kind())),
        }
    }
    within_limit(bytes, &format!("{} strings", items.len()))?;
    Ok(items
        .iter()
        .map(|v| match v {
            Value::Str(s) => s.to_string(),
            _ => unreachable!("checked above"),
        })
        .collect())
}

/// The element type of an array, as NumPy's `dtype.str` without the byte order.
#[derive(Clone, Debug, PartialEq)]
pub enum Dtype {
    /// IEEE floats (`f2`, `f4`, `f8`).
    Float {
        /// Bytes per element: 2, 4 or 8.
        bytes: usize,
    },
    /// Signed integers (`i1` .. `i8`).
    Int {
        /// Bytes per element: 1, 2, 4 or 8.
        bytes: usize,
    },
    /// Unsigned integers (`u1` .. `u8`).
    Uint {
        /// Bytes per element: 1, 2, 4 or 8.
        bytes: usize,
    },
    /// Booleans, one byte each (`b1`).
    Bool,
    /// UTF-32 strings of this many characters (at least one).
    Unicode {
        /// Characters per string (4 bytes each).
        chars: usize,
    },
    /// Byte strings of this many bytes (at least one).
    ByteStr {
        /// Bytes per string.
        bytes: usize,
    },
    /// Python objects (the data is a list of values).
    Object,
}

/// Why a dtype code is refused: zero-width elements, or not a type this reader knows.
fn dtype_refusal(code: &str) -> String {
    let digits = code.trim_start_matches(|c: char| !c.is_ascii_digit());
    match digits.parse::<u64>() {
        // count × 0 bytes passes any size check, and a consumer would still make one value per
        // element of a shape as large as the file claims.
        Ok(0) => format!(
            "dtype '{code}' has zero-width elements: refused (their count cannot be checked \
             against the data)"
        ),
        _ => format!("dtype '{code}' is not a plain numeric, string or object type"),
    }
}

impl Dtype {
    /// NumPy's type code (`f8`, `U12`, `S3`, `O8`, with or without a byte order), or `None`
    /// for codes not read here (including zero-width `U0`/`S0`/`V0`).
    pub fn parse(code: &str) -> Option<Dtype> {
        let code = code.trim_start_matches(['<', '>', '|', '=']);
        let (kind, size) = code.split_at(code.find(|c: char| c.is_ascii_digit())?);
        let n: usize = size.parse().ok()?;
        Some(match (kind, n) {
            ("f", 2 | 4 | 8) => Dtype::Float { bytes: n },
            ("i", 1 | 2 | 4 | 8) => Dtype::Int { bytes: n },
            ("u", 1 | 2 | 4 | 8) => Dtype::Uint { bytes: n },
            ("b", 1) => Dtype::Bool,
            ("U", n) if (1..=1 << 20).contains(&n) => Dtype::Unicode { chars: n },
            ("S", n) if (1..=1 << 22).contains(&n) => Dtype::ByteStr { bytes: n },
            ("O", 4 | 8) => Dtype::Object,
            _ => return None,
        })
    }

    /// Bytes per element (none for objects); never zero.
    pub fn item_size(&self) -> Option<usize> {
        match *self {
            Dtype::Float { bytes } | Dtype::Int { bytes } | Dtype::Uint { bytes } => Some(bytes),
            Dtype::Bool => Some(1),
            Dtype::Unicode { chars } => Some(4 * chars),
            Dtype::ByteStr { bytes } => Some(bytes),
            Dtype::Object => None,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Dtype::Float { bytes } => write!(f, "float{}", 8 * bytes),
            Dtype::Int { bytes } => write!(f, "int{}", 8 * bytes),
            Dtype::Uint { bytes } => write!(f, "uint{}", 8 * bytes),
            Dtype::Bool => write!(f, "bool"),
            Dtype::Unicode { chars } => write!(f, "<U{chars}"),
            Dtype::ByteStr { bytes } => write!(f, "|S{bytes}"),
            Dtype::Object => write!(f, "object"),
        }
    }
}

/// A NumPy array: C or Fortran order, elements as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    /// Size of each axis (at most [`MAX_DIMS`] axes; empty for a scalar).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: Dtype,
    /// Whether multi-byte elements are stored big-endian (`>` in the dtype).
    pub big_endian: bool,
    /// Whether the first axis varies fastest (Fortran order) rather than the last (C order).
    pub fortran_order: bool,
    /// The elements, in the order `fortran_order` gives.
    pub data: ArrayData,
}

/// The elements: raw bytes, or values for object arrays; both shared, so that materialising
/// or cloning an array does not copy them.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData {
    /// Bytes of every non-object dtype: `len() · item_size` of them.
    Raw(Arc<Vec<u8>>),
    /// One value per element of an object array.
    Objects(Arc<Vec<Value>>),
}

/// Most axes an array may have (NumPy's own limit, `NPY_MAXDIMS`).
pub const MAX_DIMS: usize = 64;

impl NdArray {
    /// Elements (the product of the shape; 0 when an axis is 0, `usize::MAX` when the
    /// product overflows, which the reader never lets through).
    pub fn len(&self) -> usize {
        if self.shape.contains(&0) {
            return 0;
        }
        self.shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .unwrap_or(usize::MAX)
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as f64 in C order (numbers and bools), or why not; sized against
    /// [`ARRAY_BYTES`] before it is allocated (a uint8 array takes 8 times its bytes).
    pub fn to_f64(&self) -> std::result::Result<Vec<f64>, String> {
        self.numbers(|x| x)
    }

    /// The elements as f32 in C order (f64 values rounded), as [`NdArray::to_f64`] without
    /// the f64 copy: half the memory for THINGS-EEG2's float64 epochs.
    pub fn to_f32(&self) -> std::result::Result<Vec<f32>, String> {
        self.numbers(|x| x as f32)
    }

    fn numbers<T: Copy>(&self, convert: impl Fn(f64) -> T) -> std::result::Result<Vec<T>, String> {
        let ArrayData::Raw(raw) = &self.data else {
            return Err(format!("an array of {}, expected numbers", self.dtype));
        };
        match self.dtype {
            Dtype::Float { .. } | Dtype::Int { .. } | Dtype::Uint { .. } | Dtype::Bool => {}
            _ => return Err(format!("an array of {}, expected numbers", self.dtype)),
        }
        let size = self.dtype.item_size().unwrap_or(1);
        let count = raw.len() / size;
        // Fortran order needs a second copy while it is reordered.
        let copies: u64 = if self.fortran_order { 2 } else { 1 };
        within_limit(
            (count as u64).checked_mul(std::mem::size_of::<T>() as u64 * copies),
            &format!("the {count} values of an array of {}", self.dtype),
        )?;
        let word = |chunk: &[u8]| -> [u8; 8] {
            let mut b = [0u8; 8];
            match self.big_endian {
                true => chunk
                    .iter()
                    .rev()
                    .zip(b.iter_mut())
                    .for_each(|(s, d)| *d = *s),
                false => b[..chunk.len()].copy_from_slice(chunk),
            }
            b
        };
        let value = |chunk: &[u8]| -> f64 {
            let b = word(chunk);
            let sign_extend =
                |bits: u32| ((u64::from_le_bytes(b) << (64 - bits)) as i64 >> (64 - bits)) as f64;
            match self.dtype {
                Dtype::Float { bytes: 8 } => f64::from_le_bytes(b),
                Dtype::Float { bytes: 4 } => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                Dtype::Float { .. } => half_to_f64(u16::from_le_bytes([b[0], b[1]])),
                Dtype::Int { bytes } => sign_extend(8 * bytes as u32),
                Dtype::Uint { .. } | Dtype::Bool => u64::from_le_bytes(b) as f64,
                _ => f64::NAN,
            }
        };
        let values: Vec<T> = raw.chunks_exact(size).map(|c| convert(value(c))).collect();
        Ok(self.c_order(values))
    }

    /// The elements as strings in C order (unicode, byte-string and object arrays of str),
    /// sized against [`ARRAY_BYTES`] before anything is allocated.
    pub fn to_strings(&self) -> std::result::Result<Vec<String>, String> {
        let count = self.len();
        if let (Some(size), ArrayData::Raw(raw)) = (self.dtype.item_size(), &self.data) {
            // The reader never makes such an array; one built by hand must not make
            // `count` strings out of nothing.
            if size == 0 || count.checked_mul(size) != Some(raw.len()) {
                return Err(format!(
                    "an array of shape {:?} and dtype {} over {} bytes",
                    self.shape,
                    self.dtype,
                    raw.len()
                ));
            }
            // A char of UTF-32 is at most 4 bytes of UTF-8: each string at most its width.
            within_limit(
                (count as u64).checked_mul(size as u64 + STRING_SLOT),
                &format!("{count} strings of an array of {}", self.dtype),
            )?;
        }
        let values = match (&self.dtype, &self.data) {
            (Dtype::Unicode { chars }, ArrayData::Raw(raw)) => raw
                .chunks_exact(4 * chars)
                .map(|c| {
                    c.chunks_exact(4)
                        .map(|w| {
                            let w = [w[0], w[1], w[2], w[3]];
                            match self.big_endian {
                                true => u32::from_be_bytes(w),
                                false => u32::from_le_bytes(w),
                            }
                        })
                        .take_while(|&u| u != 0)
                        .map(|u| char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER))
                        .collect()
                })
                .collect(),
            (Dtype::ByteStr { bytes }, ArrayData::Raw(raw)) => raw
                .chunks_exact(*bytes)
                .map(|c| {
                    let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                    String::from_utf8_lossy(&c[..end]).into_owned()
                })
                .collect(),
            (Dtype::Object, ArrayData::Objects(items)) => str_items(items, "an object array")?,
            _ => return Err(format!("an array of {}, expected strings", self.dtype)),
        };
        Ok(self.c_order(values))
    }

    /// Reorders Fortran-ordered elements into C order.
    fn c_order<T: Clone>(&self, values: Vec<T>) -> Vec<T> {
        if !self.fortran_order || self.shape.len() < 2 || values.len() != self.len() {
            return values;
        }
        let n = self.shape.len();
        let mut out = Vec::with_capacity(values.len());
        let mut index = vec![0usize; n];
        for _ in 0..values.len() {
            // Fortran offset of the C-order index.
            let (mut offset, mut stride) = (0, 1);
            for (i, &d) in index.iter().zip(&self.shape) {
                offset += i * stride;
                stride *= d;
            }
            out.push(values[offset].clone());
            for axis in (0..n).rev() {
                index[axis] += 1;
                if index[axis] < self.shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        out
    }
}

fn half_to_f64(h: u16) -> f64 {
    let sign = if h >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Why a pickle was refused: what, and at which byte.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    /// Byte offset in the pickle stream of the opcode refused.
    pub offset: usize,
    /// What was refused, and why.
    pub message: String,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pickle byte {}: {}", self.offset, self.message)
    }
}

/// The globals a pickle may name: NumPy's, read by this module, never imported.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Global {
    /// `numpy.core.multiarray._reconstruct` (`numpy._core` in NumPy 2).
    Reconstruct,
    /// `numpy.core.multiarray.scalar`.
    Scalar,
    Ndarray,
    Dtype,
}

impl Global {
    fn named(module: &str, name: &str) -> Option<Global> {
        let multiarray = matches!(module, "numpy.core.multiarray" | "numpy._core.multiarray");
        match (module, name) {
            (_, "_reconstruct") if multiarray => Some(Global::Reconstruct),
            (_, "scalar") if multiarray => Some(Global::Scalar),
            ("numpy", "ndarray") => Some(Global::Ndarray),
            ("numpy", "dtype") => Some(Global::Dtype),
            _ => None,
        }
    }
}

/// What the machine's stack and memo hold: values, and the NumPy objects under construction.
#[derive(Clone, Debug)]
enum Object {
    Value(Value),
    Global(Global),
    /// A dtype made by `dtype(code, align, copy)`; its state (byte order) comes with BUILD.
    Dtype {
        dtype: Dtype,
        big_endian: bool,
    },
    /// `_reconstruct(ndarray, ...)`, before its state.
    EmptyArray,
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
}

/// Deepest nesting materialised (deeper is refused, never recursed into).
const MAX_DEPTH: usize = 64;

struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Every object made; the stack and the memo hold indices, so that BUILD, APPEND and
    /// SETITEM change the object every reference sees, as Python does.
    objects: Vec<Object>,
    stack: Vec<Option<usize>>,
    memo: HashMap<u64, usize>,
    /// Where the current opcode started, for errors.
    op_at: usize,
    /// Bytes allocated for what the pickle holds so far (objects, copies of strings and
    /// bytes, container slots, memo entries), and the most it may take.
    charged: u64,
    budget: u64,
    /// Containers already materialised: every later reference shares the value. Emptied when
    /// a container changes (APPEND, SETITEM), since the value was a snapshot of it.
    done: HashMap<usize, Value>,
    /// Containers being materialised: meeting one again means it contains itself.
    busy: Vec<usize>,
}

/// Bytes one memo entry takes (key, index and the table's overhead), for the budget.
const MEMO_ENTRY: u64 = 32;

/// Reads the pickle in `bytes` (protocols 0–5 for the opcodes plain data uses) into a value,
/// allocating at most [`ARRAY_BYTES`] for it.
pub fn read(bytes: &[u8]) -> Result<Value, PickleError> {
    read_within(bytes, ARRAY_BYTES.value())
}

/// [`read`] allocating at most `budget` bytes for what the pickle holds (its strings, bytes
/// and arrays, and the slots of its containers; a value referred to many times counts once).
/// Beyond it the pickle is refused, naming the byte where the budget ran out.
pub fn read_within(bytes: &[u8], budget: u64) -> Result<Value, PickleError> {
    let mut m = Machine {
        bytes,
        at: 0,
        objects: Vec::new(),
        stack: Vec::new(),
        memo: HashMap::new(),
        op_at: 0,
        charged: 0,
        budget,
        done: HashMap::new(),
        busy: Vec::new(),
    };
    let root = m.run()?;
    m.op_at = m.at;
    m.materialise(root, 0)
}

impl<'a> Machine<'a> {
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, PickleError> {
        Err(self.err(message.into()))
    }

    fn err(&self, message: String) -> PickleError {
        PickleError {
            offset: self.op_at,
            message,
        }
    }

    /// Counts `bytes` more against the budget, or refuses the pickle.
    fn charge(&mut self, bytes: u64) -> Result<(), PickleError> {
        match self.charged.checked_add(bytes) {
            Some(total) if total <= self.budget => {
                self.charged = total;
                Ok(())
            }
            _ => self.fail(format!(
                "the pickle's values take more than {} bytes in memory ({}: brainrecon's \
                 limit; set {} to raise it)",
                self.budget, ARRAY_BYTES.what, ARRAY_BYTES.variable
            )),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        match self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
        {
            Some(end) => {
                let s = &self.bytes[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => self.fail(format!(
                "needs {n} bytes, {} remain (truncated or a size that does not fit)",
                self.bytes.len() - self.at
            )),
        }
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A length that must fit in the remaining bytes; what is taken is counted against the
    /// budget, since the caller copies it.
    fn sized(&mut self, len: u64) -> Result<&'a [u8], PickleError> {
        match usize::try_from(len) {
            Ok(n) => {
                let raw = self.take(n)?;
                self.charge(len)?;
                Ok(raw)
            }
            Err(_) => self.fail(format!("length {len} does not fit in memory")),
        }
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.bytes[self.at..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.fail("a text argument without its newline");
        };
        self.at += end + 1;
        std::str::from_utf8(&rest[..end])
            .or_else(|_| self.fail("a text argument that is not UTF-8"))
    }

    fn text(&self, raw: &[u8]) -> Result<Value, PickleError> {
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(Value::Str(s.into())),
            Err(_) => self.fail("a string that is not UTF-8"),
        }
    }

    fn push(&mut self, object: Object) -> Result<(), PickleError> {
        self.charge(std::mem::size_of::<Object>() as u64)?;
        self.objects.push(object);
        self.stack.push(Some(self.objects.len() - 1));
        Ok(())
    }

    fn push_value(&mut self, value: Value) -> Result<(), PickleError> {
        self.push(Object::Value(value))
    }

    fn pop(&mut self) -> Result<usize, PickleError> {
        match self.stack.pop() {
            Some(Some(i)) => Ok(i),
            Some(None) => self.fail("a mark where an object was expected"),
            None => self.fail("the stack is empty"),
        }
    }

    fn top(&self) -> Result<usize, PickleError> {
        match self.stack.last() {
            Some(Some(i)) => Ok(*i),
            _ => self.fail("no object on the stack"),
        }
    }

    /// Pops everything above the topmost mark, and the mark.
    fn pop_mark(&mut self) -> Result<Vec<usize>, PickleError> {
        let Some(mark) = self.stack.iter().rposition(Option::is_none) else {
            return self.fail("no mark on the stack");
        };
        let items = self.stack.split_off(mark);
        Ok(items
            .into_iter()
            .skip(1)
            .map(|i| i.expect("above the mark"))
            .collect())
    }

    /// A container made of `n` indices: its slots count against the budget.
    fn charge_slots(&mut self, n: usize) -> Result<(), PickleError> {
        self.charge((n as u64).saturating_mul(std::mem::size_of::<(usize, usize)>() as u64))
    }

    fn memoize(&mut self, key: u64) -> Result<(), PickleError> {
        let top = self.top()?;
        if self.memo.insert(key, top).is_none() {
            self.charge(MEMO_ENTRY)?;
        }
        Ok(())
    }

    fn run(&mut self) -> Result<usize, PickleError> {
        loop {
            self.op_at = self.at;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let protocol = self.u8()?;
                    if protocol > 5 {
                        return self.fail(format!("protocol {protocol}, expected at most 5"));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint, the opcodes follow as usual
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(None),
                b'0' => {
                    self.stack.pop();
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?;
                    self.stack.push(Some(top));
                }
                b'N' => self.push_value(Value::None)?,
                0x88 => self.push_value(Value::Bool(true))?,
                0x89 => self.push_value(Value::Bool(false))?,
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push_value(Value::Int(v as i64))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push_value(Value::Int(v as i64))?;
                }
                b'M' => {
                    let b = self.take(2)?;
                    self.push_value(Value::Int(u16::from_le_bytes([b[0], b[1]]) as i64))?;
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    if n > 8 {
                        return self.fail(format!("an integer of {n} bytes, expected at most 8"));
                    }
                    let mut v: i64 = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        -1
                    } else {
                        0
                    };
                    for &byte in b.iter().rev() {
                        v = (v << 8) | byte as i64;
                    }
                    self.push_value(Value::Int(v))?;
                }
                b'I' => {
                    let line = self.line()?;
                    let value = match line {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => match s.parse::<i64>() {
                            Ok(v) => Value::Int(v),
                            Err(_) => return self.fail(format!("INT '{s}' is not an integer")),
                        },
                    };
                    self.push_value(value)?;
                }
                b'G' => {
                    let b = self.take(8)?;
                    self.push_value(Value::Float(f64::from_be_bytes(b.try_into().expect("8"))))?;
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as u64,
                        0x8c => self.u8()? as u64,
                        _ => self.u64()?,
                    };
                    let raw = self.sized(n)?;
                    let s = self.text(raw)?;
                    self.push_value(s)?;
                }
                b'B' | b'T' | b'C' | b'U' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' | b'T' => self.u32()? as u64,
                        b'C' | b'U' => self.u8()? as u64,
                        _ => self.u64()?,
                    };
                    let raw = self.sized(n)?;
                    let value = match op {
                        // Python 2's str: text where it decodes, as NumPy reads it.
                        b'T' | b'U' => Value::Str(String::from_utf8_lossy(raw).into()),
                        _ => Value::Bytes(Arc::new(raw.to_vec())),
                    };
                    self.push_value(value)?;
                }
                b']' => self.push(Object::List(Vec::new()))?,
                b')' => self.push(Object::Tuple(Vec::new()))?,
                b'}' => self.push(Object::Dict(Vec::new()))?,
                b'l' | b't' => {
                    let items = self.pop_mark()?;
                    self.charge_slots(items.len())?;
                    match op {
                        b'l' => self.push(Object::List(items))?,
                        _ => self.push(Object::Tuple(items))?,
                    }
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.charge_slots(pairs.len())?;
                    self.push(Object::Dict(pairs))?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return self.fail("a tuple of more items than the stack holds");
                    }
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.charge_slots(n)?;
                    self.push(Object::Tuple(items))?;
                }
                b'a' => {
                    let item = self.pop()?;
                    self.extend_list(vec![item])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend_list(items)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.extend_dict(vec![(key, value)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.extend_dict(pairs)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (module, name) = match (&self.objects[module], &self.objects[name]) {
                        (Object::Value(Value::Str(m)), Object::Value(Value::Str(n))) => {
                            (m.clone(), n.clone())
                        }
                        _ => return self.fail("STACK_GLOBAL without two strings"),
                    };
                    self.global(&module, &name)?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let made = self.reduce(callable, args)?;
                    self.push(made)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    self.build(target, state)?;
                }
                b'p' => {
                    let key = self.line()?.parse::<u64>();
                    let Ok(key) = key else {
                        return self.fail("PUT with a key that is not a number");
                    };
                    self.memoize(key)?;
                }
                b'q' | b'r' | 0x94 => {
                    let key = match op {
                        b'q' => self.u8()? as u64,
                        b'r' => self.u32()? as u64,
                        _ => self.memo.len() as u64,
                    };
                    self.memoize(key)?;
                }
                b'g' | b'h' | b'j' => {
                    let key = match op {
                        b'g' => match self.line()?.parse::<u64>() {
                            Ok(k) => k,
                            Err(_) => return self.fail("GET with a key that is not a number"),
                        },
                        b'h' => self.u8()? as u64,
                        _ => self.u32()? as u64,
                    };
                    // Another reference to the same object: shared, never copied.
                    match self.memo.get(&key) {
                        Some(&i) => self.stack.push(Some(i)),
                        None => return self.fail(format!("memo key {key} was never stored")),
                    }
                }
                other => {
                    let name = match other {
                        b'i' => "INST",
                        b'o' => "OBJ",
                        0x81 => "NEWOBJ",
                        0x92 => "NEWOBJ_EX",
                        b'P' | b'Q' => "a persistent id",
                        0x82..=0x84 => "an extension code",
                        _ => "",
                    };
                    return match name {
                        "" => self.fail(format!("opcode 0x{other:02x} is not accepted")),
                        n => self.fail(format!("{n} builds an object from a class: refused")),
                    };
                }
            }
        }
    }

    fn pairs(&self, items: Vec<usize>) -> Result<Vec<(usize, usize)>, PickleError> {
        if items.len() % 2 != 0 {
            return self.fail("a dict with an odd number of keys and values");
        }
        Ok(items.chunks_exact(2).map(|p| (p[0], p[1])).collect())
    }

    fn extend_list(&mut self, items: Vec<usize>) -> Result<(), PickleError> {
        let target = self.top()?;
        if !matches!(self.objects[target], Object::List(_)) {
            return self.fail("APPEND to something that is not a list");
        }
        self.charge_slots(items.len())?;
        self.done.clear();
        if let Object::List(list) = &mut self.objects[target] {
            list.extend(items);
        }
        Ok(())
    }

    fn extend_dict(&mut self, pairs: Vec<(usize, usize)>) -> Result<(), PickleError> {
        let target = self.top()?;
        if !matches!(self.objects[target], Object::Dict(_)) {
            return self.fail("SETITEM on something that is not a dict");
        }
        self.charge_slots(pairs.len())?;
        self.done.clear();
        if let Object::Dict(dict) = &mut self.objects[target] {
            dict.extend(pairs);
        }
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        match Global::named(module, name) {
            Some(g) => self.push(Object::Global(g)),
            None => self.fail(format!(
                "global {module}.{name} refused (only NumPy's array, dtype and scalar \
                 reconstructors are read; nothing is imported or executed)"
            )),
        }
    }

    /// The items of the tuple at `i` (borrowed: a tuple referred to many times is not
    /// copied each time).
    fn tuple(&self, i: usize, what: &str) -> Result<&[usize], PickleError> {
        match &self.objects[i] {
            Object::Tuple(items) => Ok(items),
            _ => self.fail(format!("{what}: expected a tuple")),
        }
    }

    fn string(&self, i: usize, what: &str) -> Result<Arc<str>, PickleError> {
        match &self.objects[i] {
            Object::Value(Value::Str(s)) => Ok(s.clone()),
            _ => self.fail(format!("{what}: expected a str")),
        }
    }

    fn reduce(&mut self, callable: usize, args: usize) -> Result<Object, PickleError> {
        let args = self.tuple(args, "arguments")?;
        let (first, second) = (args.first().copied(), args.get(1).copied());
        match self.objects[callable] {
            Object::Global(Global::Reconstruct) => match first.map(|a| &self.objects[a]) {
                Some(Object::Global(Global::Ndarray)) => Ok(Object::EmptyArray),
                _ => self.fail("_reconstruct of something other than numpy.ndarray"),
            },
            Object::Global(Global::Dtype) => {
                let Some(code) = first else {
                    return self.fail("dtype() without a type code");
                };
                let code = self.string(code, "dtype code")?;
                match Dtype::parse(&code) {
                    Some(dtype) => Ok(Object::Dtype {
                        dtype,
                        big_endian: false,
                    }),
                    None => self.fail(dtype_refusal(&code)),
                }
            }
            Object::Global(Global::Scalar) => {
                let (Some(dtype), Some(data)) = (first, second) else {
                    return self.fail("scalar() without a dtype and its bytes");
                };
                let Object::Dtype { dtype, big_endian } = self.objects[dtype].clone() else {
                    return self.fail("scalar() of something that is not a dtype");
                };
                let Object::Value(Value::Bytes(raw)) = &self.objects[data] else {
                    return self.fail("scalar() without its bytes");
                };
                if dtype.item_size() != Some(raw.len()) {
                    return self.fail(format!("a {dtype} scalar of {} bytes", raw.len()));
                }
                let array = NdArray {
                    shape: vec![],
                    dtype: dtype.clone(),
                    big_endian,
                    fortran_order: false,
                    data: ArrayData::Raw(raw.clone()),
                };
                let value = match dtype {
                    Dtype::Float { .. } => {
                        Value::Float(array.to_f64().map_err(|m| self.err(m))?[0])
                    }
                    Dtype::Bool => Value::Bool(raw[0] != 0),
                    Dtype::Int { .. } | Dtype::Uint { .. } => {
                        Value::Int(array.to_f64().map_err(|m| self.err(m))?[0] as i64)
                    }
                    _ => Value::Array(Arc::new(array)),
                };
                Ok(Object::Value(value))
            }
            _ => self.fail("REDUCE of something that is not an accepted NumPy global"),
        }
    }

    fn build(&mut self, target: usize, state: usize) -> Result<(), PickleError> {
        match self.objects[target] {
            Object::Dtype { ref dtype, .. } => {
                let dtype = dtype.clone();
                // (version, byte order, subarray, names, fields, elsize, alignment, flags)
                let state = self.tuple(state, "dtype state")?;
                let (order, names) = (state.get(1).copied(), state.get(3).copied());
                let order = match order {
                    Some(i) => self.string(i, "dtype byte order")?,
                    None => return self.fail("dtype state without a byte order"),
                };
                let structured =
                    names.is_some_and(|i| !matches!(self.objects[i], Object::Value(Value::None)));
                if structured {
                    return self.fail("structured dtypes (named fields) are not read");
                }
                self.objects[target] = Object::Dtype {
                    dtype,
                    big_endian: &*order == ">",
                };
                Ok(())
            }
            Object::EmptyArray => {
                // (version, shape, dtype, is_fortran, data)
                let state = self.tuple(state, "array state")?;
                let [_, shape, dtype, fortran, data] = state[..] else {
                    return self.fail(format!("array state of {} items, expected 5", state.len()));
                };
                let dims = self.tuple(shape, "array shape")?;
                if dims.len() > MAX_DIMS {
                    return self.fail(format!(
                        "an array of {} axes, NumPy's limit is {MAX_DIMS}",
                        dims.len()
                    ));
                }
                let shape = dims
                    .iter()
                    .map(|&i| match self.objects[i] {
                        Object::Value(Value::Int(d)) if d >= 0 => usize::try_from(d)
                            .or_else(|_| self.fail("array shape: a dimension over usize")),
                        _ => self.fail("array shape: expected non-negative integers"),
                    })
                    .collect::<Result<Vec<usize>, _>>()?;
                let Object::Dtype { dtype, big_endian } = self.objects[dtype].clone() else {
                    return self.fail("array state without a dtype");
                };
                let fortran_order =
                    matches!(self.objects[fortran], Object::Value(Value::Bool(true)));
                let Some(count) = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) else {
                    return self.fail(format!("array shape {shape:?} does not fit in memory"));
                };
                let data = if dtype == Dtype::Object {
                    if !matches!(&self.objects[data], Object::List(items) if items.len() == count) {
                        return self.fail(format!(
                            "an object array of {count} elements without as many values"
                        ));
                    }
                    // The list's materialised value is shared with the array.
                    match self.materialise(data, 1)? {
                        Value::List(items) => ArrayData::Objects(items),
                        _ => unreachable!("a list materialises as a list"),
                    }
                } else {
                    let Object::Value(Value::Bytes(raw)) = &self.objects[data] else {
                        return self.fail("array state without its data bytes");
                    };
                    // Never zero (Dtype::parse refuses zero-width types), so the element
                    // count is bounded by the bytes the pickle holds.
                    let size = dtype.item_size().unwrap_or(1);
                    if count.checked_mul(size) != Some(raw.len()) {
                        return self.fail(format!(
                            "an array of shape {shape:?} and dtype {dtype} needs {} bytes, the \
                             pickle holds {}",
                            count.saturating_mul(size),
                            raw.len()
                        ));
                    }
                    // Shared with the bytes object, not copied.
                    ArrayData::Raw(raw.clone())
                };
                self.objects[target] = Object::Value(Value::Array(Arc::new(NdArray {
                    shape,
                    dtype,
                    big_endian,
                    fortran_order,
                    data,
                })));
                Ok(())
            }
            _ => self.fail("BUILD on something other than a NumPy array or dtype"),
        }
    }

    /// The value of object `i`, containers resolved recursively. Each container is
    /// materialised once and shared by every reference to it; its slots count against the
    /// budget; one that contains itself, or nesting past [`MAX_DEPTH`], is refused.
    fn materialise(&mut self, i: usize, depth: usize) -> Result<Value, PickleError> {
        if let Object::Value(v) = &self.objects[i] {
            return Ok(v.clone());
        }
        if let Some(v) = self.done.get(&i) {
            return Ok(v.clone());
        }
        if self.busy.contains(&i) {
            return self.fail(
                "a list, tuple or dict nesting itself (a pickle that contains itself) is not read",
            );
        }
        if depth > MAX_DEPTH {
            return self.fail(format!("nesting deeper than {MAX_DEPTH}"));
        }
        let slot = std::mem::size_of::<Value>() as u64;
        self.busy.push(i);
        let value = match self.objects[i].clone() {
            Object::List(items) | Object::Tuple(items) => {
                self.charge((items.len() as u64).saturating_mul(slot))?;
                let values = items
                    .iter()
                    .map(|&j| self.materialise(j, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                match self.objects[i] {
                    Object::List(_) => Value::List(Arc::new(values)),
                    _ => Value::Tuple(Arc::new(values)),
                }
            }
            Object::Dict(pairs) => {
                self.charge((pairs.len() as u64).saturating_mul(2 * slot))?;
                let values = pairs
                    .iter()
                    .map(|&(k, v)| {
                        Ok((
                            self.materialise(k, depth + 1)?,
                            self.materialise(v, depth + 1)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, PickleError>>()?;
                Value::Dict(Arc::new(values))
            }
            Object::Value(_) | Object::Global(_) | Object::Dtype { .. } | Object::EmptyArray => {
                return self.fail("a NumPy type or an unfinished array where data was expected")
            }
        };
        self.busy.pop();
        self.done.insert(i, value.clone());
        Ok(value)
    }
}

/// Writes `value` as NumPy 1.x's `np.save` pickled it (protocol 3, arrays through
/// `numpy.core.multiarray._reconstruct`), so that `np.load(..., allow_pickle=True)` and this
/// module's [`read`] both read it. Arrays must hold `shape`'s product of elements.
pub fn write(value: &Value) -> Result<Vec<u8>, String> {
    let mut out = vec![0x80, 3];
    write_value(value, &mut out)?;
    out.push(b'.');
    Ok(out)
}

fn write_str(s: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let n = u32::try_from(s.len()).map_err(|_| "a string over 4 GB".to_string())?;
    out.push(b'X');
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn write_int(v: i64, out: &mut Vec<u8>) {
    match i32::try_from(v) {
        Ok(small) => {
            out.push(b'J');
            out.extend_from_slice(&small.to_le_bytes());
        }
        Err(_) => {
            out.extend_from_slice(&[0x8a, 8]);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        Value::None => out.push(b'N'),
        Value::Bool(b) => out.push(if *b { 0x88 } else { 0x89 }),
        Value::Int(v) => write_int(*v, out),
        Value::Float(x) => {
            out.push(b'G');
            out.extend_from_slice(&x.to_be_bytes());
        }
        Value::Str(s) => write_str(s, out)?,
        Value::Bytes(b) => {
            let n =
                u32::try_from(b.len()).map_err(|_| "bytes over 4 GB (protocol 3)".to_string())?;
            out.push(b'B');
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(b);
        }
        Value::List(items) => {
            out.extend_from_slice(b"](");
            for item in items.iter() {
                write_value(item, out)?;
            }
            out.push(b'e');
        }
        Value::Tuple(items) => {
            out.push(b'(');
            for item in items.iter() {
                write_value(item, out)?;
            }
            out.push(b't');
        }
        Value::Dict(pairs) => {
            out.extend_from_slice(b"}(");
            for (k, v) in pairs.iter() {
                write_value(k, out)?;
                write_value(v, out)?;
            }
            out.push(b'u');
        }
        Value::Array(a) => write_array(a, out)?,
    }
    Ok(())
}

fn write_array(a: &NdArray, out: &mut Vec<u8>) -> Result<(), String> {
    let (code, order, elsize, alignment, flags) = match &a.dtype {
        Dtype::Float { bytes } => (format!("f{bytes}"), '<', -1, -1, 0),
        Dtype::Int { bytes: 1 } => ("i1".into(), '|', -1, -1, 0),
        Dtype::Int { bytes } => (format!("i{bytes}"), '<', -1, -1, 0),
        Dtype::Uint { bytes: 1 } => ("u1".into(), '|', -1, -1, 0),
        Dtype::Uint { bytes } => (format!("u{bytes}"), '<', -1, -1, 0),
        Dtype::Bool => ("b1".into(), '|', -1, -1, 0),
        Dtype::Unicode { chars } => (format!("U{chars}"), '<', 4 * *chars as i64, 4, 8),
        Dtype::ByteStr { bytes } => (format!("S{bytes}"), '|', *bytes as i64, 1, 0),
        Dtype::Object => ("O8".into(), '|', -1, -1, 63),
    };
    let order = match (a.big_endian, order) {
        (true, '<') => '>',
        (_, o) => o,
    };
    out.extend_from_slice(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n");
    write_int(0, out);
    out.push(0x85); // TUPLE1: shape (0,)
    out.extend_from_slice(&[b'C', 1, b'b', 0x87, b'R', b'(']);
    write_int(1, out);
    out.push(b'(');
    for &d in &a.shape {
        write_int(
            i64::try_from(d).map_err(|_| "an array dimension over 2^63")?,
            out,
        );
    }
    out.push(b't');
    out.extend_from_slice(b"cnumpy\ndtype\n");
    write_str(&code, out)?;
    out.extend_from_slice(&[0x89, 0x88, 0x87, b'R', b'(']);
    write_int(3, out);
    write_str(&order.to_string(), out)?;
    out.extend_from_slice(b"NNN");
    write_int(elsize, out);
    write_int(alignment, out);
    write_int(flags, out);
    out.extend_from_slice(b"tb");
    out.push(if a.fortran_order { 0x88 } else { 0x89 });
    let count = a.len();
    match &a.data {
        ArrayData::Raw(raw) => {
            if a.dtype.item_size().and_then(|s| s.checked_mul(count)) != Some(raw.len()) {
                return Err(format!(
                    "an array of shape {:?} and dtype {} with {} bytes",
                    a.shape,
                    a.dtype,
                    raw.len()
                ));
            }
            write_value(&Value::Bytes(raw.clone()), out)?;
        }
        ArrayData::Objects(items) if items.len() == count => {
            write_value(&Value::List(items.clone()), out)?
        }
        ArrayData::Objects(items) => {
            return Err(format!(
                "an object array of shape {:?} with {} values",
                a.shape,
                items.len()
            ))
        }
    }
    out.extend_from_slice(b"tb");
    Ok(())
}

impl NdArray {
    /// A float64 array in C order.
    pub fn from_f64(shape: Vec<usize>, values: &[f64]) -> NdArray {
        assert_eq!(
            shape.iter().product::<usize>(),
            values.len(),
            "shape and values"
        );
        NdArray {
            shape,
            dtype: Dtype::Float { bytes: 8 },
            big_endian: false,
            fortran_order: false,
            data: ArrayData::Raw(Arc::new(
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )),
        }
    }

    /// A 0-d object array holding `value` (what `np.save(path, value)` stores for a dict).
    pub fn holding(value: Value) -> NdArray {
        NdArray {
            shape: vec![],
            dtype: Dtype::Object,
            big_endian: false,
            fortran_order: false,
            data: ArrayData::Objects(Arc::new(vec![value])),
        }
    }
}
