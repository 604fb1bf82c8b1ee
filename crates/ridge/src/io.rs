//! Save/load: a directory with `weights.safetensors` and `model.json`.
//!
//! Tensors (row-major, little-endian): `weights` f32 [p, t], `intercept` f32 [t],
//! `x_mean` f32 [p], `x_scale` f32 [p], `alphas` f64 [t], `cv_scores` f32 [n_alphas, t].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use faer::Mat;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RidgeError};
use crate::model::{ModelOptions, RidgeModel, TargetRange};

/// Version of the on-disk layout; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;
pub const WEIGHTS_FILE: &str = "weights.safetensors";
pub const MODEL_FILE: &str = "model.json";

/// Contents of `model.json`.
#[derive(Debug, Serialize, Deserialize)]
struct ModelJson {
    format_version: u32,
    n_features: usize,
    n_targets: usize,
    alpha_grid: Vec<f64>,
    options: ModelOptions,
    target_range: TargetRange,
    metadata: BTreeMap<String, serde_json::Value>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RidgeError + '_ {
    move |source| RidgeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn format_err(file: &Path, field: &str, message: impl Into<String>) -> RidgeError {
    RidgeError::Format {
        file: file.to_path_buf(),
        field: field.into(),
        message: message.into(),
    }
}

/// Writes `bytes` to `dir/name` via a temp file in the same directory + rename,
/// so readers never see a half-written file.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    write_atomic_with(dir, name, |out| out.write_all(bytes))
}

/// [`write_atomic`] for contents produced by `write` into a buffered file.
fn write_atomic_with(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut std::io::BufWriter<fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = || -> std::io::Result<()> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(&tmp)?);
        write(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    written().map_err(io_err(&tmp))?;
    let target = dir.join(name);
    fs::rename(&tmp, &target).map_err(io_err(&target))
}

/// Writes a tensor's little-endian bytes.
type WriteBytes<'a> = Box<dyn Fn(&mut dyn Write) -> std::io::Result<()> + 'a>;

/// One tensor of a safetensors file, written by [`write_safetensors_atomic`] straight from
/// its source (no byte copy of a p×t weight matrix).
struct TensorSource<'a> {
    name: &'static str,
    dtype: &'static str,
    shape: Vec<usize>,
    bytes: usize,
    write: WriteBytes<'a>,
}

impl<'a> TensorSource<'a> {
    fn f32_values(name: &'static str, values: &'a [f32]) -> Self {
        TensorSource {
            name,
            dtype: "F32",
            shape: vec![values.len()],
            bytes: values.len() * 4,
            write: Box::new(move |out| {
                values
                    .iter()
                    .try_for_each(|v| out.write_all(&v.to_le_bytes()))
            }),
        }
    }

    fn f64_values(name: &'static str, values: &'a [f64]) -> Self {
        TensorSource {
            name,
            dtype: "F64",
            shape: vec![values.len()],
            bytes: values.len() * 8,
            write: Box::new(move |out| {
                values
                    .iter()
                    .try_for_each(|v| out.write_all(&v.to_le_bytes()))
            }),
        }
    }

    /// `m` in row-major order, gathered a block of rows at a time (faer is column-major).
    fn f32_matrix(name: &'static str, m: &'a Mat<f32>) -> Self {
        TensorSource {
            name,
            dtype: "F32",
            shape: vec![m.nrows(), m.ncols()],
            bytes: m.nrows() * m.ncols() * 4,
            write: Box::new(move |out| {
                const ROWS: usize = 64;
                let mut buffer = Vec::with_capacity(ROWS * m.ncols() * 4);
                for start in (0..m.nrows()).step_by(ROWS) {
                    let rows = ROWS.min(m.nrows() - start);
                    buffer.clear();
                    buffer.resize(rows * m.ncols() * 4, 0);
                    for j in 0..m.ncols() {
                        let column = m.col(j);
                        for r in 0..rows {
                            let at = (r * m.ncols() + j) * 4;
                            buffer[at..at + 4].copy_from_slice(&column[start + r].to_le_bytes());
                        }
                    }
                    out.write_all(&buffer)?;
                }
                Ok(())
            }),
        }
    }
}

/// Writes a safetensors file (8-byte little-endian header length, JSON header with each
/// tensor's dtype, shape and byte offsets, padded with spaces to 8 bytes, then the data) to
/// `dir/name` via a temp file + rename, streaming each tensor from its source.
fn write_safetensors_atomic(dir: &Path, name: &str, tensors: &[TensorSource<'_>]) -> Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for tensor in tensors {
        header.insert(
            tensor.name.into(),
            serde_json::json!({
                "dtype": tensor.dtype,
                "shape": tensor.shape,
                "data_offsets": [offset, offset + tensor.bytes],
            }),
        );
        offset += tensor.bytes;
    }
    let mut header = serde_json::to_vec(&header).expect("a JSON map serializes");
    header.resize(header.len().next_multiple_of(8), b' ');
    write_atomic_with(dir, name, |out| {
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(&header)?;
        tensors.iter().try_for_each(|tensor| (tensor.write)(out))
    })
}

impl RidgeModel {
    /// Saves into directory `dir` (created if needed).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let (p, t) = (self.n_features(), self.n_targets());
        let tensors = [
            TensorSource::f32_matrix("weights", &self.weights),
            TensorSource::f32_values("intercept", &self.intercept),
            TensorSource::f32_values("x_mean", &self.x_mean),
            TensorSource::f32_values("x_scale", &self.x_scale),
            TensorSource::f64_values("alphas", &self.alphas),
            TensorSource::f32_matrix("cv_scores", &self.cv_scores),
        ];
        write_safetensors_atomic(dir, WEIGHTS_FILE, &tensors)?;
        let json = ModelJson {
            format_version: FORMAT_VERSION,
            n_features: p,
            n_targets: t,
            alpha_grid: self.alpha_grid.clone(),
            options: self.options.clone(),
            target_range: self.target_range,
            metadata: self.metadata.clone(),
        };
        let text = serde_json::to_vec_pretty(&json)
            .map_err(|e| format_err(&dir.join(MODEL_FILE), "*", e.to_string()))?;
        write_atomic(dir, MODEL_FILE, &text)
    }

    /// Loads a model saved by [`RidgeModel::save`], validating every shape.
    pub fn load(dir: impl AsRef<Path>) -> Result<RidgeModel> {
        let dir = dir.as_ref();
        let json_path = dir.join(MODEL_FILE);
        let text = fs::read(&json_path).map_err(io_err(&json_path))?;
        let json: ModelJson = serde_json::from_slice(&text)
            .map_err(|e| format_err(&json_path, "*", e.to_string()))?;
        if json.format_version != FORMAT_VERSION {
            return Err(format_err(
                &json_path,
                "format_version",
                format!(
                    "{} is not supported (expected {FORMAT_VERSION})",
                    json.format_version
                ),
            ));
        }
        let range = json.target_range;
        if range.end < range.start
            || range.end - range.start != json.n_targets
            || range.end > range.total
        {
            return Err(format_err(
                &json_path,
                "target_range",
                format!("{range:?} does not hold n_targets = {}", json.n_targets),
            ));
        }
        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes = fs::read(&weights_path).map_err(io_err(&weights_path))?;
        let tensors = SafeTensors::deserialize(&bytes)
            .map_err(|e| format_err(&weights_path, "*", e.to_string()))?;
        let reader = TensorReader {
            file: weights_path.clone(),
            tensors,
        };
        let (p, t, k) = (json.n_features, json.n_targets, json.alpha_grid.len());
        let alphas = reader.f64s("alphas", &[t])?;
        if let Some(bad) = alphas.iter().find(|a| !json.alpha_grid.contains(a)) {
            return Err(format_err(
                &weights_path,
                "alphas",
                format!("chosen alpha {bad} is not in the alpha grid"),
            ));
        }
        Ok(RidgeModel {
            weights: reader.matrix("weights", p, t)?,
            intercept: reader.f32s("intercept", &[t])?,
            x_mean: reader.f32s("x_mean", &[p])?,
            x_scale: reader.f32s("x_scale", &[p])?,
            alphas,
            cv_scores: reader.matrix("cv_scores", k, t)?,
            alpha_grid: json.alpha_grid,
            options: json.options,
            target_range: range,
            metadata: json.metadata,
        })
    }
}

/// Typed, shape-checked access to the tensors of one safetensors file.
struct TensorReader<'a> {
    file: PathBuf,
    tensors: SafeTensors<'a>,
}

impl TensorReader<'_> {
    fn raw(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<&[u8]> {
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| format_err(&self.file, name, "missing tensor"))?;
        if view.dtype() != dtype {
            return Err(format_err(
                &self.file,
                name,
                format!("dtype {:?}, expected {dtype:?}", view.dtype()),
            ));
        }
        if view.shape() != shape {
            return Err(format_err(
                &self.file,
                name,
                format!(
                    "shape {:?}, expected {shape:?} (from model.json)",
                    view.shape()
                ),
            ));
        }
        Ok(view.data())
    }

    fn f32s(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let data = self.raw(name, Dtype::F32, shape)?;
        Ok(data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn f64s(&self, name: &str, shape: &[usize]) -> Result<Vec<f64>> {
        let data = self.raw(name, Dtype::F64, shape)?;
        Ok(data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect())
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Mat<f32>> {
        let values = self.f32s(name, &[rows, cols])?;
        Ok(Mat::from_fn(rows, cols, |i, j| values[i * cols + j]))
    }
}
