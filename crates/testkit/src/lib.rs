//! Test helpers shared by brainrecon's crates. A dev-dependency only: nothing here ships.
//!
//! Each helper panics with a message naming what failed, as a test should.

#![warn(missing_docs)]

use std::path::Path;

/// Copies the folder `from` into `to` (created), recursing into sub-folders: a fixture made
/// writable for a test that edits or damages it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// Every file under `root`, recursing into sub-folders, as (path relative to `root`, bytes),
/// sorted by path: a folder's whole content, to compare two runs byte for byte.
pub fn files_with_bytes(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let name = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                out.push((name, bytes));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A music library at `to` that a retrieval must skip in part: `jazz/jazz.00000.wav` copied from
/// the simulated library `library`, `jazz/broken.wav` that does not decode, and `jazz/ghz.wav`,
/// a 48-byte WAV whose header claims 4.29 GHz (refused from its header, never resampled).
pub fn library_with_bad_wavs(library: &Path, to: &Path) {
    let jazz = to.join("jazz");
    std::fs::create_dir_all(&jazz).unwrap_or_else(|e| panic!("create {}: {e}", jazz.display()));
    let good = library.join("jazz/jazz.00000.wav");
    std::fs::copy(&good, jazz.join("jazz.00000.wav"))
        .unwrap_or_else(|e| panic!("copy {}: {e}", good.display()));
    std::fs::write(jazz.join("broken.wav"), b"RIFF not really").unwrap();
    let mut ghz = std::fs::read(&good).unwrap();
    ghz.truncate(48);
    ghz[4..8].copy_from_slice(&40u32.to_le_bytes());
    ghz[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
    ghz[40..44].copy_from_slice(&4u32.to_le_bytes());
    std::fs::write(jazz.join("ghz.wav"), ghz).unwrap();
}

/// Says that the test `what` cannot run here because `why`, in one of two ways: where the
/// environment promises everything (`CI` set, as `.ci/run` sets it, or
/// `BRAINRECON_TEST_REQUIRE_ALL=1`) the test fails, so a missing tool or privilege can never
/// pass as a green test; elsewhere it prints `SKIPPED: what (why)` to the test's output and the
/// caller returns.
pub fn cannot_run(what: &str, why: &str) {
    let required = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
        || std::env::var("BRAINRECON_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1");
    if required {
        panic!("{what} cannot run here ({why}), and this run requires every test (CI)");
    }
    println!("SKIPPED: {what} ({why})");
    eprintln!("SKIPPED: {what} ({why})");
}

/// Chromium from `BRAINRECON_CHROMIUM`, else `chromium`, `chromium-browser` or `google-chrome`
/// on PATH.
pub fn find_chromium() -> Result<std::path::PathBuf, String> {
    if let Some(value) = std::env::var_os("BRAINRECON_CHROMIUM").filter(|v| !v.is_empty()) {
        let given = std::path::PathBuf::from(&value);
        let found = if given.components().count() > 1 {
            is_executable(&given).then_some(given.clone())
        } else {
            search_path(&given.to_string_lossy())
        };
        return found.ok_or_else(|| {
            format!(
                "BRAINRECON_CHROMIUM={} is not an executable file",
                given.display()
            )
        });
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| search_path(name))
        .ok_or_else(|| {
            "Chromium not found (looked for BRAINRECON_CHROMIUM, then chromium, chromium-browser \
             and google-chrome on PATH): install Debian's `chromium` package \
             (`apt-get install chromium`; tools/test.sh installs it when missing)"
                .to_string()
        })
}

fn search_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A JSON file's value.
pub fn json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// The largest |a − b| over two slices of the same length (NaN anywhere gives NaN, so a
/// comparison against a tolerance fails).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).fold(0.0, |m, (x, y)| {
        let d = (x - y).abs();
        if d.is_nan() || m.is_nan() {
            f32::NAN
        } else {
            m.max(d)
        }
    })
}

/// `n` values in [-scale, scale) from a xorshift stream seeded by `seed`: inputs that need no
/// generator crate and are the same on every machine.
pub fn seeded_uniform(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// The largest |x| of a slice.
pub fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Max |actual − reference| relative to the largest |reference| (at least 1e-12), over two
/// slices of the same length.
pub fn max_rel_err(actual: &[f64], reference: &[f64]) -> f64 {
    assert_eq!(actual.len(), reference.len(), "lengths differ");
    let scale = reference
        .iter()
        .fold(0f64, |m, v| m.max(v.abs()))
        .max(1e-12);
    actual
        .iter()
        .zip(reference)
        .map(|(a, r)| (a - r).abs())
        .fold(0.0, f64::max)
        / scale
}

/// A JSON fixture of named arrays, each flattened row-major with its shape under `shapes`, beside
/// the settings and answers of a reference run: the layout of the ridge fixtures
/// (tools/fixtures/ridge_fixtures.py: `x`, `y`, `x_test`, `alphas`, `cv`, `best_alphas`,
/// `predictions`, …).
pub struct ArrayFixture {
    /// The file's name without `.json`.
    pub name: String,
    /// The whole file.
    pub json: serde_json::Value,
}

impl ArrayFixture {
    /// Reads a fixture file.
    pub fn open(path: &Path) -> ArrayFixture {
        ArrayFixture {
            name: path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
            json: json(path),
        }
    }

    /// Reads the ridge fixture `crates/ridge/tests/fixtures/<name>.json` (scikit-learn's and
    /// himalaya's fits, which the ridge library, `brainrecon ridge` and its route are checked
    /// against).
    pub fn ridge(name: &str) -> ArrayFixture {
        ArrayFixture::open(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../ridge/tests/fixtures")
                .join(format!("{name}.json")),
        )
    }

    /// The numbers of array (or list) `key`, flattened row-major.
    pub fn values(&self, key: &str) -> Vec<f64> {
        self.json[key]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no {key}", self.name))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    }

    /// Array `key` as float32: the inputs are stored exactly as float32 values.
    pub fn f32_values(&self, key: &str) -> Vec<f32> {
        self.values(key).iter().map(|&v| v as f32).collect()
    }

    /// The shape of array `key` (`shapes.<key>`).
    pub fn shape(&self, key: &str) -> Vec<usize> {
        self.json["shapes"][key]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no shapes.{key}", self.name))
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    }

    /// The true-or-false setting `key` (`fit_intercept`, `standardize`).
    pub fn flag(&self, key: &str) -> bool {
        self.json[key]
            .as_bool()
            .unwrap_or_else(|| panic!("{}: {key} is not true or false", self.name))
    }
}

/// Candle tensors, compared as f32.
#[cfg(feature = "candle")]
pub mod tensor {
    use candle_core::{DType, Tensor};

    /// A tensor's values, flattened, as f32.
    pub fn values(t: &Tensor) -> Vec<f32> {
        t.to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .expect("tensor to f32 values")
    }

    /// The largest |a − b| over two tensors of the same shape.
    pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims(), "shape mismatch");
        super::max_abs_diff(&values(a), &values(b))
    }

    /// The largest |x| of a tensor.
    pub fn max_abs(t: &Tensor) -> f32 {
        super::max_abs(&values(t))
    }

    /// Writes `tensors` as a safetensors file at `path` (a test's scratch folder: candle's
    /// writer, whose temporary file a kill would leave, is kept out of the project's outputs).
    #[allow(clippy::disallowed_methods)]
    pub fn save_safetensors<K>(
        tensors: &std::collections::HashMap<K, Tensor>,
        path: impl AsRef<std::path::Path>,
    ) where
        K: AsRef<str> + Ord + std::fmt::Display,
    {
        let path = path.as_ref();
        candle_core::safetensors::save(tensors, path)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// `max |got − want| <= rtol · max |want|`, the reference's largest value above `min_scale`
    /// (so two near-zero tensors never pass as equal). Prints and returns the largest
    /// difference.
    pub fn assert_close_scaled(
        what: &str,
        got: &Tensor,
        want: &Tensor,
        rtol: f32,
        min_scale: f32,
    ) -> f32 {
        let scale = max_abs(want);
        let diff = max_abs_diff(got, want);
        assert!(
            scale > min_scale,
            "{what}: reference max |value| {scale} is not above {min_scale}"
        );
        assert!(
            diff <= rtol * scale,
            "{what}: max |diff| {diff:e} > {rtol:e} × {scale}"
        );
        eprintln!("{what}: max |diff| {diff:.2e} (max |want| {scale:.3})");
        diff
    }

    /// Element-wise `|got − want| <= rel·|want| + abs` (NaN never passes), naming the worst
    /// element in the panic message.
    pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, rel: f64, abs: f64) {
        assert_eq!(got.dims(), want.dims(), "{what}: shapes differ");
        let (g, w) = (values(got), values(want));
        let mut worst = (0.0f64, 0usize);
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            let excess = (*a as f64 - *b as f64).abs() - (rel * (*b as f64).abs() + abs);
            if excess.is_nan() || excess > worst.0 {
                worst = (
                    if excess.is_nan() {
                        f64::INFINITY
                    } else {
                        excess
                    },
                    i,
                );
            }
        }
        assert!(
            worst.0 <= 0.0,
            "{what}: element {} is {}, reference {}",
            worst.1,
            g[worst.1],
            w[worst.1]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_is_never_close() {
        assert!(max_abs_diff(&[1.0, f32::NAN], &[1.0, 2.0]).is_nan());
        assert_eq!(max_abs_diff(&[1.0, -2.0], &[1.5, 2.0]), 4.0);
    }

    #[test]
    fn copy_dir_recurses() {
        let dir = std::env::temp_dir().join(format!("brainrecon-testkit-{}", std::process::id()));
        let from = dir.join("a");
        std::fs::create_dir_all(from.join("b")).unwrap();
        std::fs::write(from.join("b/c.txt"), "c").unwrap();
        copy_dir(&from, &dir.join("copy"));
        assert_eq!(
            std::fs::read_to_string(dir.join("copy/b/c.txt")).unwrap(),
            "c"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
