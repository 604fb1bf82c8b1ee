//! Differentiable building blocks on candle ops that all have backward passes.
//!
//! candle 0.11.1's fused `softmax_last_dim` and `layer_norm` kernels have no backward pass, so
//! softmax, layer norm and group norm are written here from elementary ops (exp, sum, max,
//! mean, sqrt), which candle can differentiate. Normalisations and softmax run internally in
//! f32 whatever the input dtype (as PyTorch does for half precision), and return the input
//! dtype.
//!
//! Every module is built from a [`VarBuilder`] using the checkpoint's parameter names
//! (`weight`, `bias`). Weights are fetched through [`weight`], which never initialises a
//! tensor at random: a tensor absent from the backend is a [`ModelError::MissingWeight`] naming
//! its full path, and a tensor of the wrong shape is a [`ModelError::ShapeMismatch`] giving both
//! shapes. To fine-tune a subset of the weights, build the model from
//! [`trainable_var_builder`], which registers the selected tensors as [`Var`]s in a
//! [`VarMap`] and loads the rest as constants.

mod activation;
mod attention;
mod conv;
mod linear;
mod norm;
#[cfg(test)]
mod tests;

pub use activation::{
    gelu, gelu_tanh, quick_gelu, silu, softmax_last_dim, softmax_last_dim_differentiable, GeGlu,
};
pub use attention::{causal_mask, multi_head_attention, scaled_dot_product_attention, Attention};
pub use conv::{upsample_nearest_2x, Conv2d};
pub use linear::Linear;
pub use norm::{normalize_last_dim, BatchNorm, GroupNorm, LayerNorm};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};

use crate::error::{ModelError, Result};

fn join_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Fetches parameter `name` under the builder's prefix, with shape `shape`, in the builder's
/// dtype. Missing tensors and shape mismatches are typed errors naming the full tensor path;
/// nothing is ever initialised at random.
pub fn weight<S: Into<Shape>>(vb: &VarBuilder, shape: S, name: &str) -> Result<Tensor> {
    let shape: Shape = shape.into();
    let full = join_path(&vb.prefix(), name);
    if !vb.contains_tensor(name) {
        return Err(ModelError::MissingWeight { name: full });
    }
    match vb.get(shape.clone(), name) {
        Ok(t) => {
            if t.shape() != &shape {
                return Err(ModelError::ShapeMismatch {
                    name: full,
                    expected: shape.dims().to_vec(),
                    got: t.dims().to_vec(),
                });
            }
            Ok(t)
        }
        Err(e) => {
            // Backends report a shape mismatch in different ways; probe the stored shape.
            if let Ok(t) = vb.get_unchecked(name) {
                if t.shape() != &shape {
                    return Err(ModelError::ShapeMismatch {
                        name: full,
                        expected: shape.dims().to_vec(),
                        got: t.dims().to_vec(),
                    });
                }
            }
            Err(ModelError::Tensor(e))
        }
    }
}

/// Opens safetensors files with memory maps as a [`VarBuilder`] in `dtype` on `device`.
pub fn mmaped_var_builder(
    files: &[PathBuf],
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    for f in files {
        if !f.exists() {
            return Err(ModelError::ReadFile {
                path: f.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
    }
    // SAFETY: the files are mapped read-only; they must not be modified while in use, as for
    // every memory-mapped checkpoint loader.
    let st = unsafe { MmapedSafetensors::multi(files) }.map_err(|e| match files {
        [one] => ModelError::Tensor(e).in_file(one),
        _ => ModelError::Tensor(e),
    })?;
    Ok(VarBuilder::from_backend(
        Box::new(st),
        dtype,
        device.clone(),
    ))
}

/// A backend that loads weights from memory-mapped safetensors and turns the tensors whose
/// full name satisfies a predicate into trainable [`Var`]s registered in a [`VarMap`] (under
/// the same name). The other tensors are loaded as constants, so backpropagation only
/// computes gradients for the selected parameters.
struct TrainableBackend {
    st: MmapedSafetensors,
    varmap: VarMap,
    trainable: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

impl SimpleBackend for TrainableBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if (self.trainable)(name) {
            let mut data = self.varmap.data().lock().unwrap();
            if let Some(v) = data.get(name) {
                if v.shape() != &s {
                    return Err(candle_core::Error::UnexpectedShape {
                        msg: format!("shape mismatch for {name}"),
                        expected: s,
                        got: v.shape().clone(),
                    });
                }
                return Ok(v.as_tensor().clone());
            }
            let t = self.st.load(name, dev)?.to_dtype(dtype)?;
            if t.shape() != &s {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("shape mismatch for {name}"),
                    expected: s,
                    got: t.shape().clone(),
                });
            }
            let var = Var::from_tensor(&t)?;
            let out = var.as_tensor().clone();
            data.insert(name.to_string(), var);
            Ok(out)
        } else {
            let t = self.st.load(name, dev)?.to_dtype(dtype)?;
            if t.shape() != &s {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("shape mismatch for {name}"),
                    expected: s,
                    got: t.shape().clone(),
                });
            }
            Ok(t)
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.st.load(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.st.get(name).is_ok()
    }
}

/// A [`VarBuilder`] over memory-mapped safetensors in which the tensors whose full name
/// satisfies `trainable` become [`Var`]s stored in `varmap` (pass `varmap.all_vars()` to an
/// optimiser). Example: `|n| n.contains("attn2.to_k") || n.contains("attn2.to_v")`.
pub fn trainable_var_builder(
    files: &[PathBuf],
    varmap: &VarMap,
    trainable: impl Fn(&str) -> bool + Send + Sync + 'static,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    for f in files {
        if !f.exists() {
            return Err(ModelError::ReadFile {
                path: f.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
    }
    // SAFETY: see `mmaped_var_builder`.
    let st = unsafe { MmapedSafetensors::multi(files) }.map_err(ModelError::Tensor)?;
    let backend = TrainableBackend {
        st,
        varmap: varmap.clone(),
        trainable: Arc::new(trainable),
    };
    Ok(VarBuilder::from_backend(
        Box::new(backend),
        dtype,
        device.clone(),
    ))
}

/// The builder a model loads its weights through: on the CPU, half-precision weights are
/// widened to f32 as they load, since the CPU kernels (faer products, fused attention and
/// norms) are f32 and candle's f16 arithmetic there is several times slower, not more exact.
/// Models keep reporting (and returning) the requested dtype. GPU builders are unchanged.
pub fn widen_half_on_cpu(vb: VarBuilder<'_>) -> VarBuilder<'_> {
    match vb.dtype() {
        DType::F16 | DType::BF16 if vb.device().is_cpu() => vb.set_dtype(DType::F32),
        _ => vb,
    }
}

/// A [`VarBuilder`] over in-memory tensors (for weights produced by code rather than files).
pub fn tensors_var_builder(
    tensors: HashMap<String, Tensor>,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    VarBuilder::from_tensors(tensors, dtype, device)
}

/// Reads and parses a JSON configuration file.
pub fn read_json_config<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    parse_json_config(brainrecon_core::text::without_bom(&text), path)
}

/// Reads a JSON configuration file and refuses it when `problem` finds one, naming the file
/// ([`ModelError::InvalidConfig`]).
pub fn read_checked_config<T: serde::de::DeserializeOwned>(
    path: &Path,
    problem: impl FnOnce(&T) -> Option<String>,
) -> Result<T> {
    let config: T = read_json_config(path)?;
    match problem(&config) {
        Some(problem) => Err(ModelError::InvalidConfig(format!(
            "{}: {problem}",
            path.display()
        ))),
        None => Ok(config),
    }
}

/// Parses a config's JSON text; `origin` names it in errors (a file, or `<string>`).
pub fn parse_json_config<T: serde::de::DeserializeOwned>(text: &str, origin: &Path) -> Result<T> {
    crate::weights::parse_json_named(text).map_err(|source| ModelError::ConfigParse {
        path: origin.to_path_buf(),
        source,
    })
}

/// `x` in f32, unless it is f32 or f64 already.
fn upcast(x: &Tensor) -> Result<Tensor> {
    Ok(if x.dtype() == DType::F32 || x.dtype() == DType::F64 {
        x.clone()
    } else {
        x.to_dtype(DType::F32)?
    })
}
