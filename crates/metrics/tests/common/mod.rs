//! Loading of the JSON fixtures written by tools/fixtures/metrics_fixtures.py.

use std::path::PathBuf;

use serde::de::DeserializeOwned;

/// Parses `tests/fixtures/<name>`.
pub fn load<T: DeserializeOwned>(name: &str) -> T {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad fixture {}: {e}", path.display()))
}

/// The fixture convention for 8-bit pixels: f32(u8) / f32(255), exactly as
/// numpy's `u8.astype(np.float32) / np.float32(255)`.
#[allow(dead_code)]
pub fn u8_to_f32(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&p| f32::from(p) / 255.0f32).collect()
}

#[allow(dead_code)]
/// Asserts `|actual - expected| <= tol`, naming the case.
pub fn assert_close(what: &str, actual: f64, expected: f64, tol: f64) {
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual:.17}, reference {expected:.17}, diff {:e} > {tol:e}",
        (actual - expected).abs()
    );
}
