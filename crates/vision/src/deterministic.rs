//! Deterministic stand-in weights: every value a function of the tensor's name and flat index.
//!
//! The golden tests compare the networks with torchvision on weights that both sides compute
//! from this rule (`tools/fixtures/metric_networks.py` has the same code), so no weights are
//! stored; the CLI's tests write them as safetensors folders to exercise the loading path.
//! Rule: `u_i = splitmix64(fnv1a64(name) ^ i·0xD1B54A32D192ED03) >> 11 · 2⁻⁵³` in [0, 1),
//! `v = 2u − 1`; running variances `0.5 + u`, running means and biases `0.1·v`, other 1-D
//! tensors (batch-norm scales) `1 + 0.1·v`, weights `v·√(6 / fan_in)` (He-uniform).

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;

fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

fn splitmix64(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The values of tensor `name` of `shape` under the rule above.
pub fn deterministic_values(name: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let h = fnv1a64(name);
    let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
    let he = (6.0 / fan_in as f64).sqrt();
    (0..n as u64)
        .map(|i| {
            let z = splitmix64(h ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03));
            let u = (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            let v = 2.0 * u - 1.0;
            let x = if name.ends_with("running_var") {
                0.5 + u
            } else if name.ends_with("running_mean") || name.ends_with("bias") {
                0.1 * v
            } else if shape.len() == 1 {
                1.0 + 0.1 * v
            } else {
                v * he
            };
            x as f32
        })
        .collect()
}

/// A candle backend that serves [`deterministic_values`] for whatever the model asks.
pub struct DeterministicWeights;

impl SimpleBackend for DeterministicWeights {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        Tensor::from_vec(
            deterministic_values(name, shape.dims()),
            shape,
            &Device::Cpu,
        )?
        .to_dtype(dtype)?
        .to_device(device)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("deterministic weights need the shape of `{name}`")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// A [`candle_nn::VarBuilder`] over [`DeterministicWeights`] (f32, `device`).
pub fn deterministic_var_builder(device: &Device) -> candle_nn::VarBuilder<'static> {
    candle_nn::VarBuilder::from_backend(Box::new(DeterministicWeights), DType::F32, device.clone())
}

/// The name and shape of every tensor `build` reads (to write stand-in weight files with exactly
/// the tensors a network loads), in the order it reads them.
pub fn tensors_read_by<T, E>(
    build: impl FnOnce(candle_nn::VarBuilder<'static>) -> Result<T, E>,
) -> Result<Vec<(String, Vec<usize>)>, E> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let backend = Recorder(seen.clone());
    build(candle_nn::VarBuilder::from_backend(
        Box::new(backend),
        DType::F32,
        Device::Cpu,
    ))?;
    let list = seen.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(list)
}

/// Writes a safetensors file at `path` with the tensors `build` reads, holding
/// [`deterministic_values`]: a stand-in weights file for tests and timing runs.
pub fn write_deterministic_weights<T, E: std::fmt::Debug>(
    path: &std::path::Path,
    build: impl FnOnce(candle_nn::VarBuilder<'static>) -> Result<T, E>,
) -> std::io::Result<()> {
    let tensors = tensors_read_by(build).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape)| {
            let bytes = deterministic_values(&name, &shape)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(name, shape, bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map_err(|e| std::io::Error::other(format!("{name}: {e}")))?;
            Ok((name.clone(), view))
        })
        .collect::<std::io::Result<_>>()?;
    let bytes =
        safetensors::serialize(views, None).map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::write(path, bytes)
}

type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<usize>)>>>;

struct Recorder(Seen);

impl SimpleBackend for Recorder {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut seen) = self.0.lock() {
            seen.push((name.to_string(), shape.dims().to_vec()));
        }
        DeterministicWeights.get(shape, name, init, dtype, device)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        DeterministicWeights.get_unchecked(name, dtype, device)
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_the_rule_and_depend_on_name_and_index() {
        let w = deterministic_values("features.0.weight", &[4, 3, 2, 2]);
        let bound = (6.0f64 / 12.0).sqrt() as f32;
        assert!(w.iter().all(|v| v.abs() <= bound));
        assert_ne!(w, deterministic_values("features.3.weight", &[4, 3, 2, 2]));
        let var = deterministic_values("bn1.running_var", &[64]);
        assert!(var.iter().all(|v| (0.5..1.5).contains(v)));
        let scale = deterministic_values("bn1.weight", &[64]);
        assert!(scale.iter().all(|v| (0.9..=1.1).contains(v)));
        // the first value is reproducible to the bit (the Python fixture script computes it too)
        assert_eq!(
            deterministic_values("x.bias", &[1])[0],
            deterministic_values("x.bias", &[3])[0]
        );
    }
}
