//! The seeded mutations shared by the reader fuzz targets (crates/datasets/tests/fuzz_readers.rs)
//! and the command fuzz targets (crates/cli/tests/fuzz_commands.rs).

/// A whole number from the environment variable `name`, else `default` (case counts, seeds).
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The seed both fuzz runs start from: `BRAINRECON_FUZZ_SEED`, default 0.
pub fn seed() -> u64 {
    env_number("BRAINRECON_FUZZ_SEED", 0)
}

/// SplitMix64: small, seeded, ours.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Offsets where header fields live get most of the mutations: the first 512 bytes.
fn offset(rng: &mut Rng, len: usize) -> usize {
    if rng.below(4) > 0 {
        rng.below(len.min(512))
    } else {
        rng.below(len)
    }
}

/// One mutation of `bytes`, and what it was.
pub fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) -> String {
    let len = bytes.len().max(1);
    match rng.below(8) {
        0 => {
            let at = offset(rng, len);
            let bit = rng.below(8);
            if let Some(b) = bytes.get_mut(at) {
                *b ^= 1 << bit;
            }
            format!("flip bit {bit} at {at}")
        }
        1 => {
            let at = rng.below(len);
            bytes.truncate(at);
            format!("truncate to {at}")
        }
        2 | 3 => {
            let (at, run) = (offset(rng, len), 1 + rng.below(16));
            let fill = if rng.below(2) == 0 { 0x00 } else { 0xFF };
            let end = (at + run).min(bytes.len());
            bytes[at.min(end)..end].fill(fill);
            format!("{run} bytes of {fill:#04x} at {at}")
        }
        4 => {
            let at = offset(rng, len);
            let huge: [u64; 6] = [
                u32::MAX as u64,
                u64::MAX,
                1 << 31,
                1 << 40,
                i64::MAX as u64,
                0,
            ];
            let value = huge[rng.below(huge.len())];
            let width = [2, 4, 8][rng.below(3)];
            let le = value.to_le_bytes();
            let end = (at + width).min(bytes.len());
            let n = end.saturating_sub(at);
            bytes[at.min(end)..end].copy_from_slice(&le[..n]);
            format!("{value:#x} as {width} bytes at {at}")
        }
        5 => {
            let at = offset(rng, len) & !3;
            let value = [f32::NAN, f32::INFINITY, -f32::INFINITY, 1e38, -0.0][rng.below(5)];
            let end = (at + 4).min(bytes.len());
            let n = end.saturating_sub(at);
            bytes[at.min(end)..end].copy_from_slice(&value.to_le_bytes()[..n]);
            format!("{value} as f32 at {at}")
        }
        6 => {
            let (from, to) = (rng.below(len), offset(rng, len));
            let run = 1 + rng.below(64);
            let chunk: Vec<u8> = bytes.iter().skip(from).take(run).copied().collect();
            let at = to.min(bytes.len());
            bytes.splice(at..at, chunk);
            format!("{run} bytes from {from} inserted at {to}")
        }
        _ => {
            let at = offset(rng, len);
            let text = [
                "-1",
                "1e999",
                "nan",
                "99999999999999999999",
                "\"",
                "\n",
                "\t",
            ][rng.below(7)];
            let end = (at + text.len()).min(bytes.len());
            bytes.splice(at.min(end)..end, text.bytes());
            format!("text {text:?} at {at}")
        }
    }
}

/// Replaces one number of a text file (JSON, TSV, CSV) with a hostile value: zero, negative,
/// 2^31, 2^63, 1e308, a string, null or an array. `None` when the text has no number.
pub fn mutate_number(rng: &mut Rng, bytes: &mut Vec<u8>) -> Option<String> {
    let numbers = number_spans(bytes);
    if numbers.is_empty() {
        return None;
    }
    let (start, end) = numbers[rng.below(numbers.len())];
    let value = [
        "0",
        "-1",
        "2147483648",
        "4294967296",
        "9223372036854775807",
        "1e308",
        "-1e308",
        "0.0",
        "1e-300",
        "\"x\"",
        "null",
        "[]",
    ][rng.below(12)];
    let was = String::from_utf8_lossy(&bytes[start..end]).into_owned();
    bytes.splice(start..end, value.bytes());
    Some(format!("number {was} at {start} → {value}"))
}

/// Byte ranges of the decimal numbers in `bytes` (an optional minus, digits, a fraction and an
/// exponent), not counting digits inside words such as `segment3`.
fn number_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i].is_ascii_digit()
            || (bytes[i] == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit));
        let in_word = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if !starts || in_word {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || b".eE+-".contains(&bytes[i])) {
            i += 1;
        }
        if i >= bytes.len() || !(bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
            spans.push((start, i));
        }
    }
    spans
}
