//! Helpers shared by the integration tests: fixture paths and reference arrays.
#![allow(dead_code)]

use std::path::PathBuf;

/// `crates/stream/tests/fixtures/<name>` (written by tools/fixtures/stream_fixtures.py).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// A reference `.npy` of floats (f4 or f8) as f64, with its shape.
pub fn reference(name: &str) -> (Vec<usize>, Vec<f64>) {
    let path = fixture(name);
    let bytes = std::fs::read(&path).unwrap();
    let header = brainrecon_formats::npy::parse_header(&path, &bytes).unwrap();
    let body = &bytes[header.data_offset..];
    let data: Vec<f64> = match header.descr.as_str() {
        "<f8" => body
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        "<f4" => body
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        "<i2" => body
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("unexpected reference dtype {other}"),
    };
    assert_eq!(data.len(), header.shape.iter().product::<usize>());
    (header.shape, data)
}

/// Copies fixture `name` into `dir`, transformed by `edit`, and returns the new path.
pub fn edited_copy(dir: &std::path::Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(fixture(name)).unwrap();
    edit(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}
