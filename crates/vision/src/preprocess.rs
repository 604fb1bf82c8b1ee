//! Image preprocessing as the metric code runs it: bilinear resizing without antialiasing
//! (torchvision 0.16's `Resize` on tensors, which MindEye2 used: `F.interpolate(...,
//! mode="bilinear", align_corners=False, antialias=False)`) and channel normalisation.
//!
//! Images are batches [B, C, H, W] of f32 in a flat row-major buffer.
//!
//! [`ImageProcessor`]: transformers' image processors (ViT, VideoMAE) as their Pillow backend
//! computes them on 8-bit RGB, read from `preprocessor_config.json`.

use brainrecon_formats::image::{Filter, RgbImage};
use brainrecon_nn::{ModelError, Result};
use serde_json::Value;
use std::path::Path;

/// ImageNet's channel means (torchvision's weights), RGB.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's channel standard deviations (torchvision's weights), RGB.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// OpenAI CLIP's channel means, RGB.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's channel standard deviations, RGB.
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Source taps of one output index along one axis: torch's `area_pixel_compute_source_index`
/// with `align_corners=False` (`(i + 0.5)·scale − 0.5`, clamped at 0) and the neighbour index
/// clamped at the edge.
fn taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = n_in as f32 / n_out as f32;
    (0..n_out)
        .map(|i| {
            let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src as usize).min(n_in - 1);
            let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
            (i0, i1, src - i0 as f32)
        })
        .collect()
}

/// Resizes every plane of `images` ([B·C, H, W] as `planes` planes) to `out_h` × `out_w`.
/// Shapes are asserted: `images.len() == planes · h · w`.
pub fn resize_bilinear(
    images: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    assert_eq!(
        images.len(),
        planes * h * w,
        "images of {planes} planes of {h}×{w}"
    );
    assert!(h > 0 && w > 0 && out_h > 0 && out_w > 0, "empty image");
    if (h, w) == (out_h, out_w) {
        return images.to_vec();
    }
    let (ys, xs) = (taps(h, out_h), taps(w, out_w));
    let mut out = vec![0f32; planes * out_h * out_w];
    use rayon::prelude::*;
    out.par_chunks_mut(out_h * out_w)
        .enumerate()
        .for_each(|(p, dst)| {
            let src = &images[p * h * w..(p + 1) * h * w];
            for (oy, &(y0, y1, ly)) in ys.iter().enumerate() {
                let (r0, r1) = (&src[y0 * w..(y0 + 1) * w], &src[y1 * w..(y1 + 1) * w]);
                for (ox, &(x0, x1, lx)) in xs.iter().enumerate() {
                    let top = (1.0 - lx) * r0[x0] + lx * r0[x1];
                    let bottom = (1.0 - lx) * r1[x0] + lx * r1[x1];
                    dst[oy * out_w + ox] = (1.0 - ly) * top + ly * bottom;
                }
            }
        });
    out
}

/// `(x − mean[c]) / std[c]` in place over [B, 3, H, W] with `plane = H·W`.
pub fn normalize(images: &mut [f32], plane: usize, mean: [f32; 3], std: [f32; 3]) {
    for (k, chunk) in images.chunks_mut(plane).enumerate() {
        let c = k % 3;
        for v in chunk {
            *v = (*v - mean[c]) / std[c];
        }
    }
}

/// BLIP's image input as the published caption route feeds it: `images` resized to `size` ×
/// `size` with Pillow's Lanczos, in [0, 1], or with `normalize` in CLIP's mean/std (BLIP's
/// processor): a tensor [B, 3, size, size].
pub fn blip_pixels(
    images: &[RgbImage],
    size: usize,
    normalize: bool,
    device: &candle_core::Device,
) -> Result<candle_core::Tensor> {
    let mut values = Vec::with_capacity(images.len() * 3 * size * size);
    for image in images {
        let resized = image.resize_with(size, size, Filter::Lanczos);
        for c in 0..3 {
            let (mean, std) = if normalize {
                (CLIP_MEAN[c], CLIP_STD[c])
            } else {
                (0.0, 1.0)
            };
            values.extend(
                (0..size * size).map(|p| (resized.pixels[p * 3 + c] as f32 / 255.0 - mean) / std),
            );
        }
    }
    Ok(candle_core::Tensor::from_vec(
        values,
        (images.len(), 3, size, size),
        device,
    )?)
}

// ---------------------------------------------------------------------------------------------
// transformers' image processors (the Pillow backend)
// ---------------------------------------------------------------------------------------------

/// transformers' `IMAGENET_STANDARD_MEAN` (the ViT and VideoMAE defaults).
pub const IMAGENET_STANDARD_MEAN: [f32; 3] = [0.5, 0.5, 0.5];
/// transformers' `IMAGENET_STANDARD_STD`.
pub const IMAGENET_STANDARD_STD: [f32; 3] = [0.5, 0.5, 0.5];

/// How a processor resizes before cropping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeTarget {
    /// The shorter side to this length, the longer one to `int(n · long / short)`.
    ShortestEdge(usize),
    /// Exactly this height and width.
    Exact {
        /// Output height (pixels).
        height: usize,
        /// Output width (pixels).
        width: usize,
    },
}

/// The size an image of `height` × `width` becomes under transformers' shortest-edge resize
/// (`get_resize_output_image_size(..., default_to_square=False)`).
pub fn shortest_edge_size(height: usize, width: usize, n: usize) -> (usize, usize) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = (n as f64 * long as f64 / short.max(1) as f64) as usize;
    if width <= height {
        (new_long, n)
    } else {
        (n, new_long)
    }
}

/// A transformers image processor as its Pillow backend (`ViTImageProcessorPil`,
/// `VideoMAEImageProcessorPil`; the only backend of transformers 4.x, which MinD-Video ran)
/// computes it on 8-bit RGB: resize with Pillow's filter on the 8-bit pixels (Pillow-exact, see
/// [`RgbImage::resize_with`]), centre crop, `pixel · rescale_factor` in f64 stored as f32, then
/// `(x − mean) / std` in f32.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageProcessor {
    /// `None` when `do_resize` is false.
    pub resize: Option<ResizeTarget>,
    /// Pillow's resampling filter of the resize.
    pub filter: Filter,
    /// (height, width); `None` when `do_center_crop` is false.
    pub crop: Option<(usize, usize)>,
    /// `None` when `do_rescale` is false.
    pub rescale_factor: Option<f64>,
    /// (mean, std); `None` when `do_normalize` is false.
    pub normalize: Option<([f32; 3], [f32; 3])>,
}

/// What a processor class assumes for keys absent from `preprocessor_config.json`.
#[derive(Clone, Copy, Debug)]
pub struct ProcessorDefaults {
    /// What the config is called in error messages.
    pub name: &'static str,
    /// `size` when absent.
    pub size: ResizeTarget,
    /// How a bare integer `size` reads: a square (`default_to_square=True`, ViT) or the
    /// shortest edge (VideoMAE).
    pub integer_size_is_square: bool,
    /// `do_center_crop` when absent.
    pub do_center_crop: bool,
    /// `crop_size` (height, width) when absent.
    pub crop: (usize, usize),
    /// `image_mean` (RGB) when absent.
    pub mean: [f32; 3],
    /// `image_std` (RGB) when absent.
    pub std: [f32; 3],
    /// The resampling filter when `resample` is absent.
    pub filter: Filter,
    /// The `resample` codes (Pillow's) the class accepts, with their names, in the order its
    /// error lists them.
    pub filters: &'static [(u64, Filter, &'static str)],
}

/// Pillow's Lanczos, bilinear and bicubic codes.
const PILLOW_FILTERS: &[(u64, Filter, &str)] = &[
    (1, Filter::Lanczos, "lanczos"),
    (2, Filter::Bilinear, "bilinear"),
    (3, Filter::Bicubic, "bicubic"),
];

impl ProcessorDefaults {
    /// `ViTImageProcessor`: 224 × 224, bilinear, no crop, mean and std 0.5.
    pub const VIT: ProcessorDefaults = ProcessorDefaults {
        name: "ViT image processor config",
        size: ResizeTarget::Exact {
            height: 224,
            width: 224,
        },
        integer_size_is_square: true,
        do_center_crop: false,
        crop: (224, 224),
        mean: IMAGENET_STANDARD_MEAN,
        std: IMAGENET_STANDARD_STD,
        filter: Filter::Bilinear,
        filters: PILLOW_FILTERS,
    };

    /// `VideoMAEImageProcessor`: shortest edge 224, centre crop 224 × 224, bilinear, mean and
    /// std 0.5 (the Kinetics checkpoints set ImageNet's in their config).
    pub const VIDEOMAE: ProcessorDefaults = ProcessorDefaults {
        name: "VideoMAE image processor config",
        size: ResizeTarget::ShortestEdge(224),
        integer_size_is_square: false,
        do_center_crop: true,
        crop: (224, 224),
        mean: IMAGENET_STANDARD_MEAN,
        std: IMAGENET_STANDARD_STD,
        filter: Filter::Bilinear,
        filters: PILLOW_FILTERS,
    };
}

/// The largest resize or crop side a processor config may ask for.
pub const MAX_PROCESSOR_SIDE: usize = 8192;

impl ImageProcessor {
    /// The processor a class builds with no config at all.
    pub fn from_defaults(d: &ProcessorDefaults) -> Self {
        ImageProcessor {
            resize: Some(d.size),
            filter: d.filter,
            crop: d.do_center_crop.then_some(d.crop),
            rescale_factor: Some(1.0 / 255.0),
            normalize: Some((d.mean, d.std)),
        }
    }

    /// `preprocessor_config.json`; absent keys take the class's defaults.
    pub fn from_file(path: &Path, defaults: &ProcessorDefaults) -> Result<Self> {
        let value: Value = brainrecon_nn::weights::read_json(path, defaults.name)?;
        Self::from_value(&value, path, defaults)
    }

    /// `dir/preprocessor_config.json` when present, else the class's defaults.
    pub fn from_dir(dir: &Path, defaults: &ProcessorDefaults) -> Result<Self> {
        let path = dir.join("preprocessor_config.json");
        if path.is_file() {
            Self::from_file(&path, defaults)
        } else {
            Ok(Self::from_defaults(defaults))
        }
    }

    /// Parses a processor config; `path` names it in errors.
    pub fn from_value(value: &Value, path: &Path, defaults: &ProcessorDefaults) -> Result<Self> {
        let bad = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            what: defaults.name.into(),
            message,
        };
        let object = value
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        let flag = |key: &str, default: bool| -> Result<bool> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(other) => Err(bad(format!("{key} is {other}, expected true or false"))),
            }
        };
        // Resize and crop targets size the image buffers: bound them (hostile files).
        let whole = |key: &str, v: &Value| -> Result<usize> {
            v.as_u64()
                .filter(|&n| n > 0 && n <= MAX_PROCESSOR_SIDE as u64)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    bad(format!(
                        "{key}: expected an integer in 1..={MAX_PROCESSOR_SIDE}, found {v}"
                    ))
                })
        };
        let field = |size: &Value, key: &str, name: &str| -> Result<Option<usize>> {
            match size.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => whole(&format!("{key}.{name}"), v).map(Some),
            }
        };
        let resize = if flag("do_resize", true)? {
            Some(match object.get("size") {
                None | Some(Value::Null) => defaults.size,
                Some(v @ Value::Number(_)) => {
                    let n = whole("size", v)?;
                    if defaults.integer_size_is_square {
                        ResizeTarget::Exact {
                            height: n,
                            width: n,
                        }
                    } else {
                        ResizeTarget::ShortestEdge(n)
                    }
                }
                Some(size) => {
                    if let Some(n) = field(size, "size", "shortest_edge")? {
                        ResizeTarget::ShortestEdge(n)
                    } else if let (Some(height), Some(width)) = (
                        field(size, "size", "height")?,
                        field(size, "size", "width")?,
                    ) {
                        ResizeTarget::Exact { height, width }
                    } else {
                        return Err(bad(format!(
                            "size {size} has neither shortest_edge nor height and width"
                        )));
                    }
                }
            })
        } else {
            None
        };
        let filter = match object.get("resample") {
            None | Some(Value::Null) => defaults.filter,
            Some(v) => {
                let code = v.as_u64();
                match defaults.filters.iter().find(|(c, ..)| Some(*c) == code) {
                    Some(&(_, filter, _)) => filter,
                    None => {
                        let known: Vec<String> = defaults
                            .filters
                            .iter()
                            .map(|(c, _, name)| format!("{c} = {name}"))
                            .collect();
                        return Err(bad(format!(
                            "resample {v} is not supported ({})",
                            known.join(", ")
                        )));
                    }
                }
            }
        };
        let crop = if flag("do_center_crop", defaults.do_center_crop)? {
            Some(match object.get("crop_size") {
                None | Some(Value::Null) => defaults.crop,
                Some(v @ Value::Number(_)) => {
                    let n = whole("crop_size", v)?;
                    (n, n)
                }
                Some(size) => match (
                    field(size, "crop_size", "height")?,
                    field(size, "crop_size", "width")?,
                ) {
                    (Some(h), Some(w)) => (h, w),
                    _ => return Err(bad(format!("crop_size {size} needs height and width"))),
                },
            })
        } else {
            None
        };
        let rescale_factor = if flag("do_rescale", true)? {
            Some(match object.get("rescale_factor") {
                None | Some(Value::Null) => 1.0 / 255.0,
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| bad(format!("rescale_factor {v} is not a number")))?,
            })
        } else {
            None
        };
        let triple = |key: &str, default: [f32; 3]| -> Result<[f32; 3]> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v @ Value::Number(_)) => Ok([v.as_f64().unwrap_or(0.0) as f32; 3]),
                Some(v) => {
                    let values: Vec<f64> = serde_json::from_value(v.clone())
                        .map_err(|_| bad(format!("{key} {v} is not a list of numbers")))?;
                    <[f64; 3]>::try_from(values.as_slice())
                        .map(|a| a.map(|x| x as f32))
                        .map_err(|_| bad(format!("{key} has {} values, expected 3", values.len())))
                }
            }
        };
        let normalize = if flag("do_normalize", true)? {
            let (mean, std) = (
                triple("image_mean", defaults.mean)?,
                triple("image_std", defaults.std)?,
            );
            if std.contains(&0.0) {
                return Err(bad("image_std has a zero".into()));
            }
            Some((mean, std))
        } else {
            None
        };
        Ok(ImageProcessor {
            resize,
            filter,
            crop,
            rescale_factor,
            normalize,
        })
    }

    /// The size an image of `height` × `width` comes out at.
    pub fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        let resized = match self.resize {
            None => (height, width),
            Some(ResizeTarget::Exact { height, width }) => (height, width),
            Some(ResizeTarget::ShortestEdge(n)) => shortest_edge_size(height, width, n),
        };
        self.crop.unwrap_or(resized)
    }

    /// Resized and cropped 8-bit pixels, what the model sees before rescaling.
    pub fn prepare(&self, image: &RgbImage) -> RgbImage {
        let resized = match self.resize {
            None => image.clone(),
            Some(target) => {
                let (h, w) = match target {
                    ResizeTarget::Exact { height, width } => (height, width),
                    ResizeTarget::ShortestEdge(n) => {
                        shortest_edge_size(image.height, image.width, n)
                    }
                };
                if (h, w) == (image.height, image.width) {
                    image.clone()
                } else {
                    image.resize_with(h, w, self.filter)
                }
            }
        };
        match self.crop {
            Some((h, w)) => resized.center_crop_to(h, w),
            None => resized,
        }
    }

    /// Rescaled and normalised planes of prepared pixels, [3, H, W] appended to `out`.
    fn push_planes(&self, image: &RgbImage, out: &mut Vec<f32>) {
        let (mean, std) = self.normalize.unwrap_or(([0.0; 3], [1.0; 3]));
        let plane = image.height * image.width;
        let start = out.len();
        out.resize(start + 3 * plane, 0.0);
        for (i, px) in image.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                let x = match self.rescale_factor {
                    Some(s) => (f64::from(px[c]) * s) as f32,
                    None => f32::from(px[c]),
                };
                out[start + c * plane + i] = (x - mean[c]) / std[c];
            }
        }
    }

    /// `pixel_values` of a batch of images, [N, 3, H, W] row-major, and (H, W). Images must come
    /// out one size (cropping or an exact resize ensures it).
    pub fn pixel_values(&self, images: &[RgbImage]) -> Result<(Vec<f32>, (usize, usize))> {
        let first = images
            .first()
            .ok_or_else(|| ModelError::Invalid("no images to preprocess".into()))?;
        let size = self.output_size(first.height, first.width);
        let mut out = Vec::with_capacity(images.len() * 3 * size.0 * size.1);
        for image in images {
            if image.height == 0 || image.width == 0 {
                return Err(ModelError::Invalid(
                    "an image of size 0 cannot be processed".into(),
                ));
            }
            let prepared = self.prepare(image);
            if (prepared.height, prepared.width) != size {
                return Err(ModelError::Invalid(format!(
                    "images preprocess to {}×{} and {}×{}: a batch needs one size",
                    size.0, size.1, prepared.height, prepared.width
                )));
            }
            self.push_planes(&prepared, &mut out);
        }
        Ok((out, size))
    }
}
