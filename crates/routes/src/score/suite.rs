//! The field's eight reconstruction metrics (MindEye2's Table 1): PixCorr, SSIM, AlexNet(2),
//! AlexNet(5), InceptionV3, CLIP, EfficientNet-B1 and SwAV, computed as the published code
//! computes them, so that numbers can stand next to the papers'.
//!
//! Two protocols:
//! - `mindeye` (MedARC-AI/MindEyeV2 `src/final_evaluations.ipynb`): images as floats in [0, 1],
//!   resized to 256 × 256 bilinearly without antialiasing (torchvision 0.16's tensor `Resize`),
//!   then per metric: PixCorr and SSIM at 425 px (SSIM on `rgb2gray`, 2-D); AlexNet
//!   `features.4`/`features.11` at 256 px, InceptionV3 `avgpool` at 342 px, EfficientNet-B1
//!   (IMAGENET1K_V2) `avgpool` at 255 px, SwAV ResNet-50 `avgpool` at 224 px, all with ImageNet
//!   normalisation; CLIP ViT-L/14 image embeddings at 224 px with CLIP's normalisation.
//!   Two-way identification for AlexNet, Inception and CLIP; mean correlation distance for
//!   EfficientNet and SwAV.
//! - `brain-diffuser` (ozcelikfu/brain-diffuser `scripts/eval_extract_features.py`,
//!   `evaluate_reconstruction.py`): every network reads 224 px images resized by Pillow's bilinear
//!   filter from the 8-bit files, EfficientNet-B1 with its IMAGENET1K_V1 weights; PixCorr on the
//!   stimulus at its own size and the reconstruction resized to it with Pillow's bicubic filter;
//!   SSIM as scikit-image 0.17 computed it (column by column, see
//!   [`brainrecon_metrics::image::ssim_columns_legacy`]).
//!
//! Networks load from `--metric-weights DIR` (safetensors with torchvision's names, written by
//! `tools/convert_torchvision.py`); a network whose file is absent leaves its column empty,
//! with the command that would supply it.

use std::path::{Path, PathBuf};

use brainrecon_diffusion::clip_vision::ClipVisionModel;
use brainrecon_diffusion::pipeline::{DType, Device};
use brainrecon_formats::image::{Filter, RgbImage};
use brainrecon_metrics::{identification, image as pixel, vector};
use brainrecon_nn::weights::Weights;
use brainrecon_nn::ModelError;
use brainrecon_vision::preprocess::{
    normalize, resize_bilinear, CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD,
};
use brainrecon_vision::{AlexNet, EfficientNetB1, InceptionV3, ResNet50};
use candle_core::Tensor;
use serde::Serialize;

use crate::error::{Result, RouteError};

/// The columns, in MindEye2's order.
pub const COLUMNS: [&str; 8] = [
    "PixCorr",
    "SSIM",
    "AlexNet(2)",
    "AlexNet(5)",
    "InceptionV3",
    "CLIP",
    "EffNet-B",
    "SwAV",
];

/// Whether a higher value is better, per column (the last two are distances).
pub const HIGHER_IS_BETTER: [bool; 8] = [true, true, true, true, true, true, false, false];

/// Columns reported as percentages (two-way identification).
pub const PERCENT: [bool; 8] = [false, false, true, true, true, true, false, false];

/// How the suite preprocesses and which weights it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Protocol {
    /// MedARC-AI/MindEyeV2's `final_evaluations.ipynb`: float images resized to 256 px, per-network
    /// sizes, EfficientNet-B1 IMAGENET1K_V2.
    #[serde(rename = "mindeye")]
    MindEye,
    /// ozcelikfu/brain-diffuser's evaluation scripts: 224 px Pillow-bilinear inputs, EfficientNet-B1
    /// IMAGENET1K_V1, scikit-image 0.17's SSIM.
    #[serde(rename = "brain-diffuser")]
    BrainDiffuser,
}

impl Protocol {
    /// Parses `--protocol`: `mindeye` or `brain-diffuser`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "mindeye" => Some(Protocol::MindEye),
            "brain-diffuser" => Some(Protocol::BrainDiffuser),
            _ => None,
        }
    }

    /// The name [`Protocol::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::MindEye => "mindeye",
            Protocol::BrainDiffuser => "brain-diffuser",
        }
    }

    /// The EfficientNet-B1 weights file (IMAGENET1K_V2 for MindEye, V1 for brain-diffuser).
    fn efficientnet_file(self) -> &'static str {
        match self {
            Protocol::MindEye => "efficientnet_b1.safetensors",
            Protocol::BrainDiffuser => "efficientnet_b1_v1.safetensors",
        }
    }
}

/// The command that writes the network weights (where torchvision can download them).
pub const CONVERT_COMMAND: &str =
    "python tools/convert_torchvision.py --out DIR   # then: brainrecon eval --metric-weights DIR";

/// A metric without its network, and how to supply it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Absent {
    /// The column left empty (e.g. "AlexNet(2)", "CLIP").
    pub metric: String,
    /// Why its network is absent (no weights folder, a missing file, no cached CLIP).
    pub reason: String,
    /// The command that supplies the network.
    pub supply: String,
}

/// The networks of the suite that could be loaded.
pub struct Networks {
    /// The protocol the networks were loaded for.
    pub protocol: Protocol,
    alexnet: Option<AlexNet>,
    inception: Option<InceptionV3>,
    efficientnet: Option<EfficientNetB1>,
    swav: Option<ResNet50>,
    clip: Option<ClipVisionModel>,
    /// The CLIP vision model loaded, when there is one.
    pub clip_name: Option<String>,
    /// The metrics whose networks could not be loaded.
    pub absent: Vec<Absent>,
    device: Device,
    /// Images per forward pass.
    pub batch: usize,
}

/// Builds a network from `dir/file`, or records why it is absent.
fn load_network<T>(
    dir: Option<&Path>,
    file: &str,
    metric: &str,
    device: &Device,
    build: impl FnOnce(candle_nn::VarBuilder<'static>) -> brainrecon_nn::Result<T>,
    absent: &mut Vec<Absent>,
) -> Result<Option<T>> {
    let Some(dir) = dir else {
        absent.push(Absent {
            metric: metric.into(),
            reason: "no --metric-weights folder".into(),
            supply: CONVERT_COMMAND.into(),
        });
        return Ok(None);
    };
    let path = dir.join(file);
    if !path.is_file() {
        absent.push(Absent {
            metric: metric.into(),
            reason: format!("{} is missing", path.display()),
            supply: CONVERT_COMMAND.into(),
        });
        return Ok(None);
    }
    let weights = Weights::from_files(std::slice::from_ref(&path), DType::F32, device)?;
    let network = build(weights.var_builder()).map_err(|e| RouteError::from(e.in_file(&path)))?;
    Ok(Some(network))
}

impl Networks {
    /// Loads what `dir` holds for `protocol`; `clip` is the CLIP vision tower (ViT-L/14 for
    /// the published numbers) and its name, when there is one.
    pub fn load(
        dir: Option<&Path>,
        clip: Option<(String, ClipVisionModel)>,
        protocol: Protocol,
        device: &Device,
    ) -> Result<Self> {
        let mut absent = Vec::new();
        let alexnet = load_network(
            dir,
            "alexnet.safetensors",
            "AlexNet(2), AlexNet(5)",
            device,
            AlexNet::new,
            &mut absent,
        )?;
        let inception = load_network(
            dir,
            "inception_v3.safetensors",
            "InceptionV3",
            device,
            InceptionV3::new,
            &mut absent,
        )?;
        let efficientnet = load_network(
            dir,
            protocol.efficientnet_file(),
            "EffNet-B",
            device,
            EfficientNetB1::new,
            &mut absent,
        )?;
        let swav = load_network(
            dir,
            "swav_resnet50.safetensors",
            "SwAV",
            device,
            ResNet50::new,
            &mut absent,
        )?;
        let (clip_name, clip) = match clip {
            Some((name, model)) => (Some(name), Some(model)),
            None => {
                absent.push(Absent {
                    metric: "CLIP".into(),
                    reason: "no CLIP vision model (openai/clip-vit-large-patch14 is not in the Hugging Face cache)".into(),
                    supply: "huggingface-cli download openai/clip-vit-large-patch14 --exclude '*.bin' '*.msgpack' '*.h5'   # or --clip FOLDER".into(),
                });
                (None, None)
            }
        };
        Ok(Networks {
            protocol,
            alexnet,
            inception,
            efficientnet,
            swav,
            clip,
            clip_name,
            absent,
            device: device.clone(),
            batch: 16,
        })
    }

    /// How many network passes [`Networks::features`] runs per image (for progress bars).
    pub fn passes(&self) -> usize {
        [
            self.alexnet.is_some(),
            self.inception.is_some(),
            self.efficientnet.is_some(),
            self.swav.is_some(),
            self.clip.is_some(),
        ]
        .iter()
        .filter(|&&p| p)
        .count()
    }
}

/// The features of one image set: rows of `n` images, `None` for absent networks.
#[derive(Default)]
pub struct Features {
    n: usize,
    /// Columns 2..=7: AlexNet(2), AlexNet(5), InceptionV3, CLIP, EffNet-B, SwAV.
    columns: [Option<(Vec<f32>, usize)>; 6],
}

/// The images of one set as the protocol first reads them.
pub struct Prepared {
    /// MindEye: [3, 256, 256] in [0, 1] per image. brain-diffuser: the 8-bit images as they are.
    base: Vec<Vec<f32>>,
    original: Vec<RgbImage>,
}

/// MindEye's base: [0, 1] floats, CHW, resized to 256 × 256 without antialiasing.
fn chw_unit(image: &RgbImage) -> Vec<f32> {
    let (h, w) = (image.height, image.width);
    let mut chw = vec![0f32; 3 * h * w];
    for (k, p) in image.pixels.iter().enumerate() {
        chw[(k % 3) * h * w + k / 3] = *p as f32 / 255.0;
    }
    chw
}

const BASE: usize = 256;

/// Reads a set of images for `protocol`.
pub fn prepare(images: &[RgbImage], protocol: Protocol) -> Prepared {
    let base = match protocol {
        Protocol::MindEye => images
            .iter()
            .map(|im| resize_bilinear(&chw_unit(im), 3, (im.height, im.width), (BASE, BASE)))
            .collect(),
        Protocol::BrainDiffuser => Vec::new(),
    };
    Prepared {
        base,
        original: images.to_vec(),
    }
}

/// Network input for `size` px with `mean`/`std`: [n, 3, size, size].
fn network_input(
    set: &Prepared,
    range: std::ops::Range<usize>,
    size: usize,
    protocol: Protocol,
    (mean, std): ([f32; 3], [f32; 3]),
) -> Vec<f32> {
    let mut batch = Vec::with_capacity(range.len() * 3 * size * size);
    for i in range {
        let mut x = match protocol {
            Protocol::MindEye => resize_bilinear(&set.base[i], 3, (BASE, BASE), (size, size)),
            Protocol::BrainDiffuser => {
                chw_unit(&set.original[i].resize_with(size, size, Filter::Bilinear))
            }
        };
        normalize(&mut x, size * size, mean, std);
        batch.extend(x);
    }
    batch
}

/// Input size of each network under `protocol` (brain-diffuser feeds 224 px everywhere).
fn input_size(protocol: Protocol, mindeye: usize) -> usize {
    match protocol {
        Protocol::MindEye => mindeye,
        Protocol::BrainDiffuser => 224,
    }
}

impl Networks {
    /// Runs every loaded network over `set`; `progress` is told each finished batch.
    pub fn features(&self, set: &Prepared, progress: &dyn Fn(u64)) -> Result<Features> {
        let n = set.original.len();
        let mut out = Features {
            n,
            ..Features::default()
        };
        let p = self.protocol;
        let imagenet = (IMAGENET_MEAN, IMAGENET_STD);
        if let Some(net) = &self.alexnet {
            let (f2, f5) = self.batched(set, input_size(p, 256), imagenet, progress, |x| {
                let f = net.forward(x)?;
                Ok(vec![f.features_4, f.features_11])
            })?;
            out.columns[0] = Some(f2);
            out.columns[1] = f5;
        }
        if let Some(net) = &self.inception {
            out.columns[2] = Some(
                self.batched(set, input_size(p, 342), imagenet, progress, |x| {
                    Ok(vec![net.forward(x)?])
                })?
                .0,
            );
        }
        if let Some(net) = &self.clip {
            // ViT-L/14 reads 224 px, as MindEye's Resize(224); another model its own size
            let (clip, size) = ((CLIP_MEAN, CLIP_STD), net.config.image_size);
            out.columns[3] = Some(
                self.batched(set, size, clip, progress, |x| Ok(vec![net.forward(x)?]))?
                    .0,
            );
        }
        if let Some(net) = &self.efficientnet {
            out.columns[4] = Some(
                self.batched(set, input_size(p, 255), imagenet, progress, |x| {
                    Ok(vec![net.forward(x)?])
                })?
                .0,
            );
        }
        if let Some(net) = &self.swav {
            out.columns[5] = Some(
                self.batched(set, input_size(p, 224), imagenet, progress, |x| {
                    Ok(vec![net.forward(x)?])
                })?
                .0,
            );
        }
        Ok(out)
    }

    /// Runs `forward` over `set` in batches; returns the first node (rows, width) and the second
    /// when there is one.
    #[allow(clippy::type_complexity)]
    fn batched(
        &self,
        set: &Prepared,
        size: usize,
        norm: ([f32; 3], [f32; 3]),
        progress: &dyn Fn(u64),
        forward: impl Fn(&Tensor) -> std::result::Result<Vec<Tensor>, ModelError>,
    ) -> Result<((Vec<f32>, usize), Option<(Vec<f32>, usize)>)> {
        let n = set.original.len();
        let mut nodes: Vec<(Vec<f32>, usize)> = Vec::new();
        let mut start = 0;
        while start < n {
            let end = (start + self.batch.max(1)).min(n);
            let input = network_input(set, start..end, size, self.protocol, norm);
            let x = Tensor::from_vec(input, (end - start, 3, size, size), &Device::Cpu)?
                .to_device(&self.device)?;
            let outputs = forward(&x)?;
            for (k, node) in outputs.iter().enumerate() {
                let rows = node.flatten_from(1)?.to_dtype(DType::F32)?;
                let width = rows.dim(1)?;
                if nodes.len() <= k {
                    nodes.push((Vec::with_capacity(n * width), width));
                }
                nodes[k].0.extend(rows.flatten_all()?.to_vec1::<f32>()?);
            }
            progress((end - start) as u64);
            start = end;
        }
        let mut nodes = nodes.into_iter();
        let first = nodes
            .next()
            .ok_or_else(|| RouteError::Usage("a network returned no output".into()))?;
        Ok((first, nodes.next()))
    }
}

/// One image set's scores: the eight columns (two-way as fractions) and per-image values.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteRow {
    /// The image set scored.
    pub name: String,
    /// Test images scored.
    pub n_images: usize,
    /// The eight metrics in [`COLUMNS`] order (`None` where the network is absent).
    pub values: [Option<f64>; 8],
    /// Per image and column (NaN where absent): written as an .npy for significance tests.
    #[serde(skip)]
    pub per_image: Vec<[f64; 8]>,
}

impl SuiteRow {
    /// The mean of rows (the samples of one route), per column.
    pub fn mean(name: &str, rows: &[SuiteRow]) -> SuiteRow {
        let mut values = [None; 8];
        for (c, value) in values.iter_mut().enumerate() {
            let v: Option<Vec<f64>> = rows.iter().map(|r| r.values[c]).collect();
            *value = v
                .filter(|v| !v.is_empty())
                .map(|v| v.iter().sum::<f64>() / v.len() as f64);
        }
        let n = rows.first().map_or(0, |r| r.n_images);
        let per_image = (0..n)
            .map(|i| {
                std::array::from_fn(|c| {
                    rows.iter().map(|r| r.per_image[i][c]).sum::<f64>() / rows.len() as f64
                })
            })
            .collect();
        SuiteRow {
            name: name.into(),
            n_images: n,
            values,
            per_image,
        }
    }
}

/// Scores the set `recon` (features `recon_features`) against the stimuli `truth`.
pub fn score(
    name: &str,
    truth: &Prepared,
    truth_features: &Features,
    recon: &Prepared,
    recon_features: &Features,
    protocol: Protocol,
) -> Result<SuiteRow> {
    let n = truth.original.len();
    if recon.original.len() != n || n < 2 {
        return Err(RouteError::Usage(format!(
            "the metric suite needs the same number (≥ 2) of stimuli and reconstructions, found {n} and {}",
            recon.original.len()
        )));
    }
    assert_eq!(
        (truth_features.n, recon_features.n),
        (n, n),
        "features of both sets"
    );
    let mut per_image = vec![[f64::NAN; 8]; n];
    let mut present = [true, true, false, false, false, false, false, false];
    let (pixcorr, ssim) = pixel_scores(truth, recon, protocol)?;
    for i in 0..n {
        per_image[i][0] = pixcorr[i];
        per_image[i][1] = ssim[i];
    }
    for column in 0..6 {
        let (Some((t, d)), Some((r, _))) = (
            &truth_features.columns[column],
            &recon_features.columns[column],
        ) else {
            continue;
        };
        present[column + 2] = true;
        let values = if column < 4 {
            identification::two_way_identification_per_prediction(r, t, n, *d)?
        } else {
            (0..n)
                .map(|i| {
                    vector::correlation_distance(&t[i * d..(i + 1) * d], &r[i * d..(i + 1) * d])
                })
                .collect::<std::result::Result<Vec<_>, _>>()?
        };
        for (i, v) in values.into_iter().enumerate() {
            per_image[i][column + 2] = v;
        }
    }
    let values = std::array::from_fn(|c| {
        present[c].then(|| per_image.iter().map(|row| row[c]).sum::<f64>() / n as f64)
    });
    Ok(SuiteRow {
        name: name.into(),
        n_images: n,
        values,
        per_image,
    })
}

/// PixCorr and SSIM per image under `protocol`.
fn pixel_scores(
    truth: &Prepared,
    recon: &Prepared,
    protocol: Protocol,
) -> Result<(Vec<f64>, Vec<f64>)> {
    const SIZE: usize = 425;
    let n = truth.original.len();
    let mut pixcorr = Vec::with_capacity(n);
    let mut ssim = Vec::with_capacity(n);
    for i in 0..n {
        match protocol {
            Protocol::MindEye => {
                let t = resize_bilinear(&truth.base[i], 3, (BASE, BASE), (SIZE, SIZE));
                let r = resize_bilinear(&recon.base[i], 3, (BASE, BASE), (SIZE, SIZE));
                pixcorr.push(pixel::pixcorr(&t, &r)?);
                ssim.push(pixel::ssim_f64(
                    &gray_chw(&t, SIZE * SIZE),
                    &gray_chw(&r, SIZE * SIZE),
                    SIZE,
                    SIZE,
                )?);
            }
            Protocol::BrainDiffuser => {
                let t = &truth.original[i];
                let r = recon.original[i].resize_with(t.height, t.width, Filter::Bicubic);
                let (tu, ru) = (t.to_unit_f32(), r.to_unit_f32());
                pixcorr.push(pixel::pixcorr(&tu, &ru)?);
                let (tg, rg) = (
                    pixel::to_grayscale(&tu, t.height, t.width)?,
                    pixel::to_grayscale(&ru, t.height, t.width)?,
                );
                ssim.push(pixel::ssim_columns_legacy(&tg, &rg, t.height, t.width)?);
            }
        }
    }
    Ok((pixcorr, ssim))
}

/// `rgb2gray` of a [3, H, W] image, f64 [H, W].
fn gray_chw(chw: &[f32], plane: usize) -> Vec<f64> {
    let w = pixel::GRAY_WEIGHTS;
    (0..plane)
        .map(|k| {
            w[0] * chw[k] as f64 + w[1] * chw[plane + k] as f64 + w[2] * chw[2 * plane + k] as f64
        })
        .collect()
}

/// Published rows for comparison: (label, source, the eight values with two-way as fractions).
pub const PUBLISHED: [(&str, &str, [f64; 8]); 4] = [
    (
        "Takagi & Nishimoto 2023",
        "MindEye2 (Scotti et al. 2024) Table 1, mean of subjects 1, 2, 5, 7",
        [0.246, 0.410, 0.789, 0.856, 0.838, 0.821, 0.811, 0.504],
    ),
    (
        "Takagi & Nishimoto (decoded text), subj01",
        "MindEye2 repository, src/make_figure.ipynb outputs (40 sessions)",
        [
            0.311577, 0.410076, 0.836887, 0.884077, 0.849709, 0.834730, 0.799610, 0.492270,
        ],
    ),
    (
        "Brain-Diffuser, subj01",
        "MindEye2 repository, src/make_figure.ipynb outputs (40 sessions)",
        [
            0.328000, 0.385529, 0.972324, 0.979611, 0.925952, 0.922882, 0.715047, 0.408079,
        ],
    ),
    (
        "MindEye2 (pretrained), subj01",
        "MindEye2 repository, src/make_figure.ipynb outputs (40 sessions)",
        [
            0.374027, 0.439456, 0.978237, 0.991027, 0.961485, 0.935636, 0.608602, 0.338450,
        ],
    ),
];

/// The values as printed: two-way columns in percent.
pub fn display_values(values: &[Option<f64>; 8]) -> Vec<Option<f64>> {
    values
        .iter()
        .zip(PERCENT)
        .map(|(v, percent)| v.map(|v| if percent { 100.0 * v } else { v }))
        .collect()
}

/// Column headers with units and direction.
pub fn column_headers() -> Vec<String> {
    COLUMNS
        .iter()
        .zip(PERCENT.iter().zip(HIGHER_IS_BETTER))
        .map(|(c, (&percent, higher))| {
            format!(
                "{c}{} {}",
                if percent { " %" } else { "" },
                if higher { "↑" } else { "↓" }
            )
        })
        .collect()
}

/// Writes the per-image values of `row` as `dir/<slug>.npy` (n × 8, f64; NaN where absent).
pub fn write_per_image(dir: &Path, row: &SuiteRow) -> Result<PathBuf> {
    let slug: String = row
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{}.npy", slug.trim_matches('_')));
    let flat: Vec<f64> = row.per_image.iter().flatten().copied().collect();
    brainrecon_formats::npy::write(&path, &[row.n_images, 8], &flat)?;
    Ok(path)
}
