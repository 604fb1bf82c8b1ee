//! Named trainable variables ([`Parameters`]) and their safetensors files.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};

use brainrecon_core::fs::write_bytes_atomic;

use crate::error::{ModelError, Result};

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/// Named trainable variables, in sorted name order.
#[derive(Clone, Debug)]
pub struct Parameters {
    pub(crate) vars: BTreeMap<String, Var>,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
}

impl Parameters {
    /// Parameters from existing variables (for instance those a
    /// [`crate::layers::trainable_var_builder`] registered). All must share one dtype and device.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, Var)>) -> Result<Self> {
        let vars: BTreeMap<String, Var> = vars.into_iter().collect();
        let (dtype, device) = match vars.values().next() {
            Some(v) => (v.dtype(), v.device().clone()),
            None => (DType::F32, Device::Cpu),
        };
        for (name, v) in &vars {
            if v.dtype() != dtype || !v.device().same_device(&device) {
                return Err(ModelError::Invalid(format!(
                    "parameter `{name}` is {:?} on {:?}, the others {dtype:?} on {:?}",
                    v.dtype(),
                    v.device().location(),
                    device.location()
                )));
            }
        }
        Ok(Parameters {
            vars,
            dtype,
            device,
        })
    }

    /// The variables of a [`VarMap`].
    pub fn from_varmap(varmap: &VarMap) -> Result<Self> {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| ModelError::Invalid("VarMap lock poisoned".into()))?;
        Self::from_vars(data.iter().map(|(n, v)| (n.clone(), v.clone())))
    }

    /// Name and variable of every parameter, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.vars
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }

    /// The variable named `name`.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.vars.keys().cloned().collect()
    }

    /// Name and shape of every parameter, sorted by name.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.vars
            .iter()
            .map(|(n, v)| (n.clone(), v.dims().to_vec()))
            .collect()
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// True when there is no parameter.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The parameters whose names start with `prefix`, named by the rest of their names: the
    /// same variables (a step on either changes both), e.g. one model's part of a joint run,
    /// saved under its checkpoint names.
    pub fn with_prefix(&self, prefix: &str) -> Parameters {
        Parameters {
            vars: self
                .vars
                .iter()
                .filter_map(|(n, v)| {
                    n.strip_prefix(prefix)
                        .map(|rest| (rest.to_string(), v.clone()))
                })
                .collect(),
            dtype: self.dtype,
            device: self.device.clone(),
        }
    }

    /// The number of scalar parameters.
    pub fn count_elements(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// The dtype of every parameter.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device of every parameter.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A snapshot of the current values: copies, detached from the graph, which later
    /// optimiser steps do not change.
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        self.vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().detach().copy()?)))
            .collect()
    }

    /// A [`VarBuilder`] over these variables (to build another module sharing them). Asking
    /// for a name that is not here, or with another shape or dtype, is an error.
    pub fn var_builder(&self) -> VarBuilder<'static> {
        let backend = VarsBackend {
            vars: self.vars.clone(),
        };
        VarBuilder::from_backend(Box::new(backend), self.dtype, self.device.clone())
    }

    /// Writes the parameters as a safetensors file under their names (the module's checkpoint
    /// names), in f32 (f64 parameters stay f64, so a save never rounds), atomically.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let tensors: Vec<(String, HostTensor)> = self
            .vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), HostTensor::from_tensor(v.as_tensor())?)))
            .collect::<Result<_>>()?;
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        let bytes = serialize_safetensors(&tensors, meta, path)?;
        Ok(write_bytes_atomic(path, &bytes)?)
    }

    /// Sets every parameter from a safetensors file written by
    /// [`Parameters::save_safetensors`] (or any file with exactly these names and shapes, in a
    /// floating-point dtype). Every name and shape is checked before anything changes: a
    /// missing, unexpected or misshapen tensor is an error naming the file and the tensor.
    pub fn load_safetensors(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        let st = parse_safetensors(&bytes, path)?;
        let mut stored: BTreeMap<String, safetensors::tensor::TensorView<'_>> =
            st.tensors().into_iter().collect();
        let mut values = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            let view = stored
                .remove(name)
                .ok_or_else(|| ModelError::MissingTensor {
                    path: path.to_path_buf(),
                    name: name.clone(),
                })?;
            let t = view_to_tensor(&view, name, path)?;
            if t.dims() != var.dims() {
                return Err(ModelError::Shape {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    expected: var.dims().to_vec(),
                    found: t.dims().to_vec(),
                });
            }
            values.push((var, t.to_dtype(var.dtype())?.to_device(var.device())?));
        }
        if let Some(extra) = stored.keys().next() {
            return Err(ModelError::Invalid(format!(
                "{}: tensor '{extra}' is not a parameter of this model ({} parameters expected, \
                 the file has {})",
                path.display(),
                self.vars.len(),
                self.vars.len() + stored.len()
            )));
        }
        for (var, t) in values {
            var.set(&t)?;
        }
        Ok(())
    }
}

/// Serves existing variables by name: the module's tensors are the variables themselves.
struct VarsBackend {
    vars: BTreeMap<String, Var>,
}

impl SimpleBackend for VarsBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let var = self.vars.get(name).ok_or_else(|| {
            candle_core::Error::Msg(format!("parameter `{name}` is not among the variables"))
        })?;
        if var.shape() != &s {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: var.shape().clone(),
            });
        }
        if var.dtype() != dtype {
            return Err(candle_core::Error::Msg(format!(
                "parameter `{name}` is {:?}, the module asks for {dtype:?}; a converted copy \
                 would not follow optimiser updates",
                var.dtype()
            )));
        }
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.vars
            .get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| {
                candle_core::Error::Msg(format!("parameter `{name}` is not among the variables"))
            })
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }
}

/// A tensor's values on the host, as safetensors stores them (f32, or f64 for f64 tensors).
pub(crate) struct HostTensor {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl HostTensor {
    pub(crate) fn from_tensor(t: &Tensor) -> Result<Self> {
        let flat = t.detach().to_device(&Device::Cpu)?.flatten_all()?;
        let (dtype, bytes) = if t.dtype() == DType::F64 {
            let v: Vec<f64> = flat.to_vec1()?;
            (
                safetensors::Dtype::F64,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        } else {
            let v: Vec<f32> = flat.to_dtype(DType::F32)?.to_vec1()?;
            (
                safetensors::Dtype::F32,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        };
        Ok(HostTensor {
            dtype,
            shape: t.dims().to_vec(),
            bytes,
        })
    }
}

pub(crate) fn serialize_safetensors(
    tensors: &[(String, HostTensor)],
    metadata: HashMap<String, String>,
    path: &Path,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(n, h)| {
            safetensors::tensor::TensorView::new(h.dtype, h.shape.clone(), &h.bytes)
                .map(|v| (n.as_str(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| ModelError::Safetensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

pub(crate) fn parse_safetensors<'a>(
    bytes: &'a [u8],
    path: &Path,
) -> Result<safetensors::SafeTensors<'a>> {
    safetensors::SafeTensors::deserialize(bytes).map_err(|e| ModelError::Safetensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

pub(crate) fn safetensors_metadata(bytes: &[u8], path: &Path) -> Result<HashMap<String, String>> {
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// A stored floating-point tensor as a CPU tensor in its stored dtype.
pub(crate) fn view_to_tensor(
    view: &safetensors::tensor::TensorView<'_>,
    name: &str,
    path: &Path,
) -> Result<Tensor> {
    use safetensors::Dtype as S;
    let dtype = match view.dtype() {
        S::F32 => DType::F32,
        S::F64 => DType::F64,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        other => {
            return Err(ModelError::Dtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: format!("{other:?} (a floating-point tensor was expected)"),
            })
        }
    };
    Ok(Tensor::from_raw_buffer(
        view.data(),
        dtype,
        view.shape(),
        &Device::Cpu,
    )?)
}
