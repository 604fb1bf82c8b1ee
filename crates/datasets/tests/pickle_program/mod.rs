//! Pickles built opcode by opcode for the pickle fuzz target (crates/datasets/tests/
//! fuzz_readers.rs): mostly well-formed programs that reach deep into the reader (PROTO, FRAME,
//! memo PUT/BINPUT/LONG_BINPUT/MEMOIZE and GET/BINGET/LONG_BINGET references, APPEND repeated
//! on one reference, APPENDS, SETITEM(S), empty and marked containers, short and long strings
//! and bytes, GLOBAL/STACK_GLOBAL of NumPy's reconstructors with random dtype codes, shapes
//! and BUILD states), with hostile sizes and stray opcodes mixed in. Random bytes alone rarely
//! get past the first opcodes.

use crate::mutate::Rng;

/// Most bytes one program holds (its strings and bytes included).
const MAX_BYTES: usize = 256 << 10;

/// dtype codes: NumPy's, zero-width ones, and ones no reader knows.
const DTYPES: &[&str] = &[
    "f8", "f4", "f2", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1", "U1", "U7", "S1", "S5",
    "O8", "O4", "U0", "S0", "V0", "V8", "c16", "M8[ns]", "U1048577", "S4194305", "f16", "", "U",
    "<f8", "|O",
];

/// Module and name pairs for GLOBAL / STACK_GLOBAL: NumPy's accepted four and ones refused.
const GLOBALS: &[(&str, &str)] = &[
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("builtins", "eval"),
    ("posix", "system"),
    ("numpy", "frombuffer"),
];

struct Program {
    out: Vec<u8>,
    /// Memo keys stored so far (some references name others, which must be refused).
    keys: Vec<u32>,
    /// MEMOIZE's next key (the memo's size, as the reader counts it).
    memoized: u32,
}

impl Program {
    fn room(&self) -> usize {
        MAX_BYTES.saturating_sub(self.out.len())
    }

    fn op(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn int(&mut self, rng: &mut Rng, v: i64) {
        match rng.below(4) {
            0 if (0..256).contains(&v) => self.op(&[b'K', v as u8]),
            1 if (0..65536).contains(&v) => {
                self.op(b"M");
                self.op(&(v as u16).to_le_bytes());
            }
            2 if i32::try_from(v).is_ok() => {
                self.op(b"J");
                self.op(&(v as i32).to_le_bytes());
            }
            _ => {
                self.op(&[0x8a, 8]);
                self.op(&v.to_le_bytes());
            }
        }
    }

    /// A str (`text`) or bytes of `len` bytes, by one of the opcodes that carry them; now and
    /// then a length that claims more than follows.
    fn blob(&mut self, rng: &mut Rng, text: bool, len: usize) {
        let len = len.min(self.room() / 2);
        let claimed = match rng.below(40) {
            0 => u64::MAX - rng.below(4) as u64,
            1 => len as u64 + 1 + rng.below(1 << 20) as u64,
            _ => len as u64,
        };
        let op: &[u8] = match (text, rng.below(3)) {
            (true, 0) if claimed < 256 => &[0x8c],
            (true, 1) if claimed <= u32::MAX as u64 => b"X",
            (true, _) => &[0x8d],
            (false, 0) if claimed < 256 => b"C",
            (false, 1) if claimed <= u32::MAX as u64 => b"B",
            (false, _) => &[0x8e],
        };
        self.op(op);
        match op[0] {
            0x8c | b'C' => self.op(&[claimed as u8]),
            b'X' | b'B' => self.op(&(claimed as u32).to_le_bytes()),
            _ => self.op(&claimed.to_le_bytes()),
        }
        let fill = if text {
            b'a' + rng.below(26) as u8
        } else {
            rng.next() as u8
        };
        self.out.extend(std::iter::repeat_n(fill, len));
    }

    fn str(&mut self, s: &str) {
        self.op(&[0x8c, s.len() as u8]);
        self.op(s.as_bytes());
    }

    /// Stores the top of the stack in the memo, by one of the four opcodes.
    fn put(&mut self, rng: &mut Rng) {
        let key = match rng.below(4) {
            0 => {
                let k = rng.below(256) as u32;
                self.op(&[b'q', k as u8]);
                k
            }
            1 => {
                let k = rng.next() as u32 % 100_000;
                self.op(b"r");
                self.op(&k.to_le_bytes());
                k
            }
            2 => {
                let k = rng.below(1000) as u32;
                self.op(format!("p{k}\n").as_bytes());
                k
            }
            _ => {
                let k = self.memoized;
                self.op(&[0x94]);
                k
            }
        };
        self.memoized += 1;
        self.keys.push(key);
    }

    /// Pushes a reference to a stored value (or, rarely, a key never stored).
    fn get(&mut self, rng: &mut Rng) {
        let key = match (self.keys.is_empty(), rng.below(20)) {
            (true, _) | (_, 0) => rng.next() as u32 % 300,
            _ => self.keys[rng.below(self.keys.len())],
        };
        match rng.below(3) {
            0 if key < 256 => self.op(&[b'h', key as u8]),
            1 => self.op(format!("g{key}\n").as_bytes()),
            _ => {
                self.op(b"j");
                self.op(&key.to_le_bytes());
            }
        }
    }

    fn global(&mut self, rng: &mut Rng, module: &str, name: &str) {
        match rng.below(2) {
            0 => self.op(format!("c{module}\n{name}\n").as_bytes()),
            _ => {
                self.str(module);
                self.str(name);
                self.op(&[0x93]);
            }
        }
    }

    /// `dtype(code, False, True)` and its BUILD state, on the stack.
    fn dtype(&mut self, rng: &mut Rng) -> &'static str {
        let code = DTYPES[rng.below(DTYPES.len())];
        self.global(rng, "numpy", "dtype");
        self.str(code);
        self.op(&[0x89, 0x88, 0x87, b'R']);
        if rng.below(8) != 0 {
            // (version, byte order, subarray, names, fields, elsize, alignment, flags)
            self.op(b"(");
            self.int(rng, 3);
            let order = ["<", ">", "|", "="][rng.below(4)];
            self.str(order);
            self.op(b"N");
            match rng.below(10) {
                0 => self.op(b")"),
                _ => self.op(b"N"),
            }
            for _ in 0..rng.below(5) {
                self.int(rng, -1);
            }
            self.op(b"tb");
        }
        if rng.below(4) == 0 {
            self.put(rng);
        }
        code
    }

    /// `_reconstruct(ndarray, (0,), b'b')` and a BUILD state of random shape, dtype and data.
    fn array(&mut self, rng: &mut Rng, depth: usize) {
        let (module, name) = match rng.below(10) {
            0 => GLOBALS[rng.below(GLOBALS.len())],
            _ => GLOBALS[rng.below(2)],
        };
        self.global(rng, module, name);
        self.global(rng, "numpy", "ndarray");
        self.int(rng, 0);
        self.op(&[0x85]);
        self.op(&[b'C', 1, b'b', 0x87, b'R']);
        // (version, shape, dtype, is_fortran, data)
        self.op(b"(");
        self.int(rng, 1);
        let dims = match rng.below(12) {
            0 => 60 + rng.below(10),
            _ => rng.below(4),
        };
        let mut count: u64 = 1;
        self.op(b"(");
        for _ in 0..dims {
            let d: i64 = match rng.below(12) {
                0 => 1 << 62,
                1 => -1,
                2 => 0,
                3 => i64::MAX,
                _ => rng.below(6) as i64,
            };
            count = count.saturating_mul(d.max(0) as u64);
            self.int(rng, d);
        }
        self.op(b"t");
        let code = self.dtype(rng);
        self.op(if rng.below(4) == 0 { &[0x88] } else { &[0x89] });
        let size = match code.trim_start_matches(['<', '|']) {
            "f8" | "i8" | "u8" | "O8" => 8,
            "f4" | "i4" | "u4" | "O4" | "U1" => 4,
            "f2" | "i2" | "u2" => 2,
            "U7" => 28,
            "S5" => 5,
            _ => 1,
        };
        let objects = code.contains('O');
        match (objects, rng.below(6)) {
            (true, 0..=3) => {
                self.op(b"](");
                for _ in 0..count.min(64) {
                    self.value(rng, depth + 1);
                }
                self.op(b"e");
            }
            (_, 0) => self.value(rng, depth + 1),
            _ => {
                let len = match rng.below(4) {
                    // Zero-width dtypes match no bytes at all.
                    0 => [0, rng.below(64)][rng.below(2)],
                    _ => count.saturating_mul(size).min(64 << 10) as usize,
                };
                self.blob(rng, false, len);
            }
        }
        self.op(b"tb");
    }

    /// `scalar(dtype, bytes)`.
    fn scalar(&mut self, rng: &mut Rng) {
        let (module, name) = GLOBALS[2 + rng.below(2)];
        self.global(rng, module, name);
        self.dtype(rng);
        let len = [1, 2, 4, 8, 3][rng.below(5)];
        self.blob(rng, false, len);
        self.op(&[0x86, b'R']);
    }

    /// One value on the stack (net effect: one more item), at nesting `depth`.
    fn value(&mut self, rng: &mut Rng, depth: usize) {
        if self.room() < 64 {
            self.op(b"N");
            return;
        }
        let choice = if depth > 6 {
            rng.below(6)
        } else {
            rng.below(17)
        };
        match choice {
            0 => self.op(b"N"),
            1 => self.op(&[0x88 + rng.below(2) as u8]),
            2 => {
                let v = rng.next() as i64 >> rng.below(64);
                self.int(rng, v);
            }
            3 => {
                self.op(b"G");
                self.op(&f64::from_bits(rng.next()).to_be_bytes());
            }
            4 => {
                let len = [0, 1, 5, 255, 256, 4000][rng.below(6)];
                self.blob(rng, true, len);
            }
            5 if !self.keys.is_empty() => self.get(rng),
            5 => {
                let len = rng.below(300);
                self.blob(rng, false, len);
            }
            6 | 7 => self.list(rng, depth),
            8 => {
                // A tuple: empty, TUPLE1..3 or marked.
                match rng.below(3) {
                    0 => self.op(b")"),
                    1 => {
                        let n = 1 + rng.below(3);
                        for _ in 0..n {
                            self.value(rng, depth + 1);
                        }
                        self.op(&[0x84 + n as u8]);
                    }
                    _ => {
                        self.op(b"(");
                        for _ in 0..rng.below(5) {
                            self.value(rng, depth + 1);
                        }
                        self.op(b"t");
                    }
                }
            }
            9 | 10 => self.dict(rng, depth),
            11 | 12 => self.array(rng, depth),
            13 => self.scalar(rng),
            14 => {
                self.dtype(rng);
            }
            15 => {
                // A stray opcode: DUP, POP, MARK or any byte.
                let stray = [b'2', b'0', b'(', b'1', rng.next() as u8][rng.below(5)];
                self.op(&[stray]);
                self.op(b"N");
            }
            _ => {
                self.op(&[0x95]);
                self.op(&(rng.next() >> rng.below(64)).to_le_bytes());
                self.value(rng, depth);
            }
        }
        if rng.below(3) == 0 {
            self.put(rng);
        }
    }

    /// A list filled by APPEND, by APPENDS, or by one reference appended many times.
    fn list(&mut self, rng: &mut Rng, depth: usize) {
        self.op(b"]");
        if rng.below(2) == 0 {
            self.put(rng);
        }
        match rng.below(3) {
            0 => {
                for _ in 0..rng.below(6) {
                    self.value(rng, depth + 1);
                    self.op(b"a");
                }
            }
            1 => {
                self.op(b"(");
                for _ in 0..rng.below(6) {
                    self.value(rng, depth + 1);
                }
                self.op(b"e");
            }
            _ => {
                // One stored value appended up to 5,000 times.
                self.value(rng, depth + 1);
                self.put(rng);
                self.op(b"a");
                let key = *self.keys.last().expect("put above");
                for _ in 0..rng.below(5000).min(self.room() / 8) {
                    match key {
                        k if k < 256 => self.op(&[b'h', k as u8, b'a']),
                        k => {
                            self.op(b"j");
                            self.op(&k.to_le_bytes());
                            self.op(b"a");
                        }
                    }
                }
            }
        }
    }

    /// A dict filled by SETITEM or SETITEMS, keys mostly strings.
    fn dict(&mut self, rng: &mut Rng, depth: usize) {
        self.op(b"}");
        if rng.below(2) == 0 {
            self.put(rng);
        }
        let keys = [
            "preprocessed_eeg_data",
            "ch_names",
            "times",
            "raw_eeg_data",
            "sfreq",
        ];
        let marked = rng.below(2) == 0;
        if marked {
            self.op(b"(");
        }
        for _ in 0..rng.below(5) {
            match rng.below(4) {
                0 => self.value(rng, depth + 1),
                _ => {
                    let k = keys[rng.below(keys.len())];
                    self.str(k);
                }
            }
            self.value(rng, depth + 1);
            if !marked {
                self.op(b"s");
            }
        }
        if marked {
            self.op(b"u");
        }
    }
}

/// One program: PROTO (and sometimes FRAME), a value, STOP.
pub fn program(rng: &mut Rng) -> Vec<u8> {
    let mut p = Program {
        out: Vec::new(),
        keys: Vec::new(),
        memoized: 0,
    };
    // Now and then a protocol the reader must refuse (over 5), or 0 (no PROTO needed).
    let protocol = match rng.below(32) {
        0 => 6 + rng.below(250) as u8,
        1 => 0,
        _ => 2 + rng.below(4) as u8,
    };
    p.op(&[0x80, protocol]);
    if rng.below(3) == 0 {
        p.op(&[0x95]);
        p.op(&(rng.below(1 << 16) as u64).to_le_bytes());
    }
    match rng.below(3) {
        0 => p.dict(rng, 0),
        _ => p.value(rng, 0),
    }
    p.op(b".");
    p.out
}
