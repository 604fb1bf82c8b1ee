//! Save/load: a directory with `weights.safetensors` and `model.json`.
//!
//! Tensors (row-major, little-endian): `weights` f32 [p, t], `intercept` f32 [t],
//! `x_mean` f32 [p], `x_scale` f32 [p], `alphas` f64 [t], `cv_scores` f32 [n_alphas, t].
//! A dual model (`model.json` has `"form": "dual"` and `n_samples`) holds `dual_coefficients`
//! f32 [n, t] and `train_x` f32 [n, p] instead of `weights`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use brainrecon_core::fs::{write_atomic, write_bytes_atomic};
use faer::Mat;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RidgeError};
use crate::model::{DualForm, ModelOptions, RidgeModel, TargetRange};

/// Version of the on-disk layout; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;
/// A model folder's tensors (see the module documentation for names and shapes).
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// A model folder's description: format version, shapes, alpha grid, options, target range,
/// metadata.
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
    /// `dual` for a [`crate::DualForm`] model; files without it are primal.
    #[serde(default, skip_serializing_if = "Form::is_primal")]
    form: Form,
    /// Training rows n of a dual model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n_samples: Option<usize>,
}

/// How a saved model holds its weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Form {
    #[default]
    Primal,
    Dual,
}

impl Form {
    fn is_primal(&self) -> bool {
        *self == Form::Primal
    }
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
    let entries: Vec<_> = tensors
        .iter()
        .map(|t| (t.name, t.dtype, t.shape.clone(), t.bytes))
        .collect();
    let (header, _) = safetensors_header(&entries);
    Ok(write_atomic(&dir.join(name), |out| {
        out.write_all(&header)?;
        tensors.iter().try_for_each(|tensor| (tensor.write)(out))
    })?)
}

/// A safetensors file's start for tensors (name, dtype, shape, bytes) stored in that order: the
/// 8-byte little-endian header length and the JSON header (each tensor's dtype, shape and byte
/// offsets, padded with spaces to 8 bytes); and where each tensor's data starts in the file.
fn safetensors_header(entries: &[(&str, &str, Vec<usize>, usize)]) -> (Vec<u8>, Vec<u64>) {
    let mut header = serde_json::Map::new();
    let (mut offset, mut starts) = (0usize, Vec::with_capacity(entries.len()));
    for (name, dtype, shape, bytes) in entries {
        header.insert(
            name.to_string(),
            serde_json::json!({
                "dtype": dtype,
                "shape": shape,
                "data_offsets": [offset, offset + bytes],
            }),
        );
        starts.push(offset);
        offset += bytes;
    }
    let mut json = serde_json::to_vec(&header).expect("a JSON map serializes");
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut start = (json.len() as u64).to_le_bytes().to_vec();
    start.extend_from_slice(&json);
    let base = start.len() as u64;
    (start, starts.into_iter().map(|o| base + o as u64).collect())
}

/// Writes a model of `n_targets` targets into a directory, a block of targets at a time (the
/// blocks [`crate::RidgeCv::fit_streamed`] hands over, in order), in the layout
/// [`RidgeModel::save`] writes: the weights are never whole in memory. The file grows as a
/// temporary one and is renamed by [`ModelWriter::finish`]; dropped unfinished, it is removed.
pub struct ModelWriter {
    dir: PathBuf,
    tmp: PathBuf,
    file: Option<fs::File>,
    n_features: usize,
    n_targets: usize,
    n_alphas: usize,
    /// Byte offsets of each tensor's data in the file, in `TENSOR_ORDER`.
    offsets: [u64; 6],
    /// Targets written so far (blocks arrive in order).
    filled: usize,
    /// The first block (without weights): what every block must agree on.
    first: Option<RidgeModel>,
}

const TENSOR_ORDER: [&str; 6] = [
    "weights",
    "intercept",
    "x_mean",
    "x_scale",
    "alphas",
    "cv_scores",
];

impl ModelWriter {
    /// Starts `dir/weights.safetensors` (as a temporary file of its final size).
    pub fn create(
        dir: impl AsRef<Path>,
        n_features: usize,
        n_targets: usize,
        n_alphas: usize,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let (p, t, k) = (n_features, n_targets, n_alphas);
        let shapes = [vec![p, t], vec![t], vec![p], vec![p], vec![t], vec![k, t]];
        let entries: Vec<_> = TENSOR_ORDER
            .iter()
            .zip(shapes)
            .map(|(&name, shape)| {
                let (dtype, size) = if name == "alphas" {
                    ("F64", 8)
                } else {
                    ("F32", 4)
                };
                let bytes = shape.iter().product::<usize>() * size;
                (name, dtype, shape, bytes)
            })
            .collect();
        let (start, offsets) = safetensors_header(&entries);
        let end = offsets[5] + entries[5].3 as u64;
        let tmp = brainrecon_core::fs::temp_sibling(&dir.join(WEIGHTS_FILE));
        let mut file = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        let mut started = || -> std::io::Result<()> {
            file.write_all(&start)?;
            file.set_len(end)
        };
        started().map_err(io_err(&tmp))?;
        Ok(ModelWriter {
            dir,
            tmp,
            file: Some(file),
            n_features,
            n_targets,
            n_alphas,
            offsets: offsets.try_into().expect("six tensors"),
            filled: 0,
            first: None,
        })
    }

    /// Writes the next block: targets `filled..filled + block.n_targets()`.
    pub fn put(&mut self, block: &RidgeModel) -> Result<()> {
        if block.dual.is_some() {
            return Err(RidgeError::Merge(
                "a block in the dual form: the writer takes primal weights".into(),
            ));
        }
        let range = block.target_range;
        let (start, len) = (range.start, block.n_targets());
        if start != self.filled
            || range.total != self.n_targets
            || block.n_features() != self.n_features
            || block.alpha_grid.len() != self.n_alphas
        {
            return Err(RidgeError::Merge(format!(
                "a block of {len} targets from {start} of {} ({} features, {} alphas) does not \
                 continue a model of {} targets at {} ({} features, {} alphas)",
                range.total,
                block.n_features(),
                block.alpha_grid.len(),
                self.n_targets,
                self.filled,
                self.n_features,
                self.n_alphas
            )));
        }
        if let Some(first) = &self.first {
            crate::model::check_compatible(first, block, start)?;
        }
        let t = self.n_targets;
        let row_bytes = |m: &Mat<f32>, row: usize, out: &mut Vec<u8>| {
            out.clear();
            out.extend((0..m.ncols()).flat_map(|j| m[(row, j)].to_le_bytes()));
        };
        let (offsets, n_alphas) = (self.offsets, self.n_alphas);
        let file = self
            .file
            .as_mut()
            .expect("an unfinished writer has its file");
        let mut written = || -> std::io::Result<()> {
            let mut put_at = |at: u64, bytes: &[u8]| {
                file.seek(std::io::SeekFrom::Start(at))?;
                file.write_all(bytes)
            };
            // one row of the block at a time: no copy of the block's weights
            let mut buffer = Vec::with_capacity(len * 8);
            for i in 0..block.n_features() {
                row_bytes(&block.weights, i, &mut buffer);
                put_at(offsets[0] + ((i * t + start) * 4) as u64, &buffer)?;
            }
            for a in 0..n_alphas {
                row_bytes(&block.cv_scores, a, &mut buffer);
                put_at(offsets[5] + ((a * t + start) * 4) as u64, &buffer)?;
            }
            buffer.clear();
            buffer.extend(block.intercept.iter().flat_map(|x| x.to_le_bytes()));
            put_at(offsets[1] + (start * 4) as u64, &buffer)?;
            buffer.clear();
            buffer.extend(block.alphas.iter().flat_map(|x| x.to_le_bytes()));
            put_at(offsets[4] + (start * 8) as u64, &buffer)
        };
        written().map_err(io_err(&self.tmp))?;
        self.filled += len;
        if self.first.is_none() {
            self.first = Some(RidgeModel {
                weights: Mat::zeros(block.n_features(), 0),
                cv_scores: Mat::zeros(self.n_alphas, 0),
                ..block.clone()
            });
        }
        Ok(())
    }

    /// Writes the per-feature tensors and `model.json` (with `metadata`) once every target is
    /// in, and renames the file into place.
    pub fn finish(mut self, metadata: BTreeMap<String, serde_json::Value>) -> Result<()> {
        let first = match (&self.first, self.filled == self.n_targets) {
            (Some(first), true) => first.clone(),
            _ => {
                return Err(RidgeError::Merge(format!(
                    "{} of {} targets were written",
                    self.filled, self.n_targets
                )))
            }
        };
        let bytes32 = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut file = self.file.take().expect("an unfinished writer has its file");
        let mut written = || -> std::io::Result<()> {
            file.seek(std::io::SeekFrom::Start(self.offsets[2]))?;
            file.write_all(&bytes32(&first.x_mean))?;
            file.seek(std::io::SeekFrom::Start(self.offsets[3]))?;
            file.write_all(&bytes32(&first.x_scale))?;
            file.sync_all()
        };
        written().map_err(io_err(&self.tmp))?;
        let target = self.dir.join(WEIGHTS_FILE);
        fs::rename(&self.tmp, &target).map_err(io_err(&target))?;
        let json = ModelJson {
            format_version: FORMAT_VERSION,
            n_features: self.n_features,
            n_targets: self.n_targets,
            alpha_grid: first.alpha_grid.clone(),
            options: first.options.clone(),
            target_range: TargetRange {
                start: 0,
                end: self.n_targets,
                total: self.n_targets,
            },
            metadata,
            form: Form::Primal,
            n_samples: None,
        };
        let text = serde_json::to_vec_pretty(&json)
            .map_err(|e| format_err(&self.dir.join(MODEL_FILE), "*", e.to_string()))?;
        Ok(write_bytes_atomic(&self.dir.join(MODEL_FILE), &text)?)
    }
}

/// Joins target shards saved in `dirs` (any order) into one model in `out`, one shard in memory
/// at a time: the file [`RidgeModel::merge`] and [`RidgeModel::save`] would write, without the
/// whole weights ever in memory. Returns (features, targets).
pub fn merge_saved(dirs: &[PathBuf], out: impl AsRef<Path>) -> Result<(usize, usize)> {
    let mut shards = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let json_path = dir.join(MODEL_FILE);
        let text = fs::read(&json_path).map_err(io_err(&json_path))?;
        let json: ModelJson =
            serde_json::from_slice(brainrecon_core::text::bytes_without_bom(&text))
                .map_err(|e| format_err(&json_path, "*", e.to_string()))?;
        shards.push((dir, json));
    }
    shards.sort_by_key(|(_, json)| json.target_range.start);
    // Every shard's model.json is checked before anything is written.
    let summaries: Vec<crate::model::ShardSummary> = shards
        .iter()
        .map(|(dir, json)| crate::model::ShardSummary {
            name: dir.join(MODEL_FILE).display().to_string(),
            n_features: json.n_features,
            alpha_grid: &json.alpha_grid,
            options: &json.options,
            dual: json.form != Form::Primal,
            range: json.target_range,
        })
        .collect();
    crate::model::check_shards(&summaries)?;
    let first = &shards[0].1;
    let (p, total, k) = (
        first.n_features,
        first.target_range.total,
        first.alpha_grid.len(),
    );
    let metadata = crate::model::merged_metadata(shards.iter().map(|(_, json)| &json.metadata));
    // Every shard's model.json was checked above; the weights are checked as they are read,
    // into `<out>.partial`, so a refused merge leaves no `out` behind.
    brainrecon_core::fs::write_folder_atomic(out.as_ref(), |staging| -> Result<()> {
        let mut writer = ModelWriter::create(staging, p, total, k)?;
        for (dir, _) in &shards {
            writer.put(&RidgeModel::load(dir)?).map_err(|e| match e {
                RidgeError::Merge(m) => RidgeError::Merge(format!("{}: {m}", dir.display())),
                e => e,
            })?;
        }
        writer.finish(metadata)
    })?;
    Ok((p, total))
}

impl Drop for ModelWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl RidgeModel {
    /// Saves into directory `dir`. A new `dir` is written whole into `<dir>.partial` and renamed
    /// (a full disk or a kill leaves no half-written model, and no empty folder); the files of
    /// an existing one are replaced one by one, each atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        if dir.exists() {
            return self.save_into(dir);
        }
        brainrecon_core::fs::write_folder_atomic(dir, |staging| self.save_into(staging))
    }

    fn save_into(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let (p, t) = (self.n_features(), self.n_targets());
        let mut tensors = match &self.dual {
            None => vec![TensorSource::f32_matrix("weights", &self.weights)],
            Some(dual) => vec![
                TensorSource::f32_matrix("dual_coefficients", &dual.coefficients),
                TensorSource::f32_matrix("train_x", &dual.train_x),
            ],
        };
        tensors.extend([
            TensorSource::f32_values("intercept", &self.intercept),
            TensorSource::f32_values("x_mean", &self.x_mean),
            TensorSource::f32_values("x_scale", &self.x_scale),
            TensorSource::f64_values("alphas", &self.alphas),
            TensorSource::f32_matrix("cv_scores", &self.cv_scores),
        ]);
        write_safetensors_atomic(dir, WEIGHTS_FILE, &tensors)?;
        let json = ModelJson {
            format_version: FORMAT_VERSION,
            n_features: p,
            n_targets: t,
            alpha_grid: self.alpha_grid.clone(),
            options: self.options.clone(),
            target_range: self.target_range,
            metadata: self.metadata.clone(),
            form: if self.dual.is_some() {
                Form::Dual
            } else {
                Form::Primal
            },
            n_samples: self.dual.as_ref().map(|dual| dual.train_x.nrows()),
        };
        let text = serde_json::to_vec_pretty(&json)
            .map_err(|e| format_err(&dir.join(MODEL_FILE), "*", e.to_string()))?;
        Ok(write_bytes_atomic(&dir.join(MODEL_FILE), &text)?)
    }

    /// Loads a model saved by [`RidgeModel::save`], validating every shape.
    pub fn load(dir: impl AsRef<Path>) -> Result<RidgeModel> {
        let dir = dir.as_ref();
        let json_path = dir.join(MODEL_FILE);
        let text = fs::read(&json_path).map_err(io_err(&json_path))?;
        let json: ModelJson =
            serde_json::from_slice(brainrecon_core::text::bytes_without_bom(&text))
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
        let (weights, dual) = match (json.form, json.n_samples) {
            (Form::Primal, _) => (reader.matrix("weights", p, t)?, None),
            (Form::Dual, Some(n)) => {
                let dual = DualForm {
                    coefficients: reader.matrix("dual_coefficients", n, t)?,
                    train_x: reader.matrix("train_x", n, p)?,
                };
                (Mat::zeros(p, 0), Some(dual))
            }
            (Form::Dual, None) => {
                return Err(format_err(
                    &json_path,
                    "n_samples",
                    "missing: a dual model records its training rows",
                ))
            }
        };
        Ok(RidgeModel {
            weights,
            dual,
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
        let view = crate::fit::row_major_view(name, &values, (rows, cols))?;
        Ok(crate::linalg::to_owned_tiled(view))
    }
}
