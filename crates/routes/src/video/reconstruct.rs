//! `reconstruct --method video`: a clip per test sample from `video fit`'s decoded context
//! (and first-frame latent), with the motion U-Net. Guidance against the decoded context of the
//! mean training window (MinD-Video's negative condition). With a decoded latent and
//! `strength` < 1 the clip starts, img2img-style, from that latent on every frame noised to the
//! strength's step; otherwise from seeded noise. When `video fit` decoded the clip's velocity,
//! every frame's noise is the first frame's moved by it (`diffusion::warp`), so the content
//! moves as decoded. Each sample's noise comes from its own seeded stream, so a resumed run
//! (samples already written are kept) gives the same clips.
//!
//! ```text
//! <out>/video_reconstruct.json          ReconstructSummary
//! <out>/clips/<segment>-<tr>.mp4, .gif   the clip (frames_per_tr frames at the stimulus rate;
//!                                       H.264 Baseline, OpenH264)
//! <out>/clips/<segment>-<tr>/           its PNG frames + frames.json
//! ```

use super::fit::{VideoFitSummary, SUMMARY_FILE};
use super::motion::read_decoded as read_decoded_motion;
use crate::decode::features::stream_seed;
use crate::error::{Result, RouteError};
use brainrecon_core::fs::{read_json, write_json_atomic};
use brainrecon_diffusion::pipeline::{Conditioning, Progress, SampleOptions, VideoDiffusion};
use brainrecon_diffusion::warp::moving_noise;
use brainrecon_formats::image::RgbImage;
use brainrecon_formats::npy;
use brainrecon_formats::video::{write_clip, ClipFormat};
use brainrecon_nn::rng::{NoiseSource, SeededNoise};
use candle_core::{DType, Tensor};
use std::path::{Path, PathBuf};

/// The run's summary in its folder, [`ReconstructSummary`].
pub const SUMMARY: &str = "video_reconstruct.json";

/// What `brainrecon reconstruct --method video` is asked.
#[derive(Debug, Clone)]
pub struct VideoReconstructOptions {
    /// `video fit`'s folder.
    pub decoded: PathBuf,
    /// The folder to write (see the module documentation).
    pub out: PathBuf,
    /// Denoising steps, guidance scale and sampler.
    pub sample: SampleOptions,
    /// img2img strength from the decoded latent (1 = from noise).
    pub strength: f64,
    /// Guide against the mean window's context (else the empty prompt's).
    pub mean_negative: bool,
    /// Move the initial noise by the decoded velocity (when `video fit` decoded motion).
    pub motion: bool,
    /// Seed of the noise; each sample draws its own stream from it.
    pub seed: u64,
    /// Reconstruct only the first `limit` test samples.
    pub limit: Option<usize>,
    /// Draw progress bars.
    pub progress: bool,
}

/// `video_reconstruct.json`: what a video reconstruction made, with its settings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReconstructSummary {
    /// Always `brainrecon-video-reconstruct`.
    pub format: String,
    /// `video fit`'s folder.
    pub decoded: PathBuf,
    /// The diffusion model as named.
    pub model: String,
    /// The motion adapter as named.
    pub adapter: String,
    /// Denoising steps.
    pub steps: usize,
    /// Classifier-free guidance scale.
    pub guidance: f64,
    /// img2img strength from the decoded latent (1 = from noise).
    pub strength: f64,
    /// Whether guidance was against the mean window's context (else the empty prompt's).
    pub mean_negative: bool,
    /// Whether the initial noise moved by the decoded velocity.
    #[serde(default)]
    pub moving_noise: bool,
    /// Seed of the noise.
    pub seed: u64,
    /// Frames per clip.
    pub frames: usize,
    /// Frame rate of the clips (frames per TR over the TR), Hz.
    pub fps: f64,
    /// (segment, TR) of each clip, in test order.
    pub clips: Vec<(usize, usize)>,
    /// Clips made in this run.
    pub made: usize,
    /// Clips already there from an earlier run, kept.
    pub reused: usize,
    /// Wall time, in seconds.
    pub seconds: f64,
}

/// The clip files' stem of a sample.
pub fn clip_stem(out: &Path, segment: usize, tr: usize) -> PathBuf {
    out.join("clips").join(format!("{segment}-{tr}"))
}

/// Row `r` of a (n, width) npy as a tensor of `shape`.
fn row_tensor(
    m: &npy::Array<f32>,
    r: usize,
    shape: &[usize],
    vd: &VideoDiffusion,
) -> Result<Tensor> {
    let width: usize = shape.iter().product();
    let row = m.data[r * width..(r + 1) * width].to_vec();
    Ok(Tensor::from_vec(row, shape, &vd.sd.device)?)
}

/// Sample `i`'s decoded latents as a clip [1, C, frames, h, w]: every frame's, or the first
/// frame's on every frame.
fn decoded_clip(
    z: &npy::Array<f32>,
    i: usize,
    [c, h, w]: [usize; 3],
    fit: &VideoFitSummary,
    vd: &VideoDiffusion,
) -> Result<Tensor> {
    let frames = fit.frames_per_tr;
    if fit.latent_frames == frames {
        return row_tensor(z, i, &[1, c, frames, h, w], vd);
    }
    Ok(row_tensor(z, i, &[1, c, 1, h, w], vd)?.repeat((1, 1, frames, 1, 1))?)
}

/// The clip's starting noise [1, C, f, h, w]: independent per frame, or one frame's noise
/// moving at `velocity` (frame widths per frame).
fn initial_noise(
    vd: &VideoDiffusion,
    shape: [usize; 5],
    velocity: Option<[f32; 2]>,
    noise: &mut SeededNoise,
) -> Result<Tensor> {
    Ok(match velocity {
        Some(v) => moving_noise(noise, shape, &[v], &vd.sd.device)?,
        None => noise.gaussian(&shape, &vd.sd.device, DType::F32)?,
    })
}

/// Denoises one clip: from `init` [1, C, f, h, w] noised to `strength`'s step, or from noise;
/// the noise moves at `velocity` when given.
fn denoise_clip(
    vd: &VideoDiffusion,
    init: Option<&Tensor>,
    (shape, velocity): ([usize; 5], Option<[f32; 2]>),
    context: &Conditioning,
    opts: &VideoReconstructOptions,
    noise: &mut SeededNoise,
) -> Result<Tensor> {
    let (sample, none) = (&opts.sample, &mut |_| {});
    Ok(match init {
        Some(init) if opts.strength < 1.0 => {
            let eps = initial_noise(vd, shape, velocity, noise)?;
            vd.img2img_clip_from_noise(init, &eps, context, opts.strength, sample, noise, none)?
        }
        _ => {
            let x_t = initial_noise(vd, shape, velocity, noise)?;
            vd.generate_clip_from_latent(&x_t, context, sample, noise, none)?
        }
    })
}

/// Frames [1, f, 3, H, W] in [0, 1] → RGB images.
fn to_images(frames: &Tensor) -> Result<Vec<RgbImage>> {
    let (_, f, _, h, w) = frames.dims5()?;
    (0..f)
        .map(|k| {
            let hwc = frames
                .get(0)?
                .get(k)?
                .permute((1, 2, 0))?
                .flatten_all()?
                .to_vec1::<f32>()?;
            Ok(RgbImage::from_unit_f32(h, w, &hwc))
        })
        .collect()
}

/// Writes a clip per test sample (see the module documentation).
pub fn reconstruct(
    vd: &VideoDiffusion,
    names: (&str, &str),
    opts: &VideoReconstructOptions,
    progress: &mut dyn FnMut(usize, usize, Progress),
) -> Result<ReconstructSummary> {
    let started = std::time::Instant::now();
    let fit: VideoFitSummary = read_json(&opts.decoded.join(SUMMARY_FILE))?;
    let frames = fit.frames_per_tr;
    if frames > vd.unet.max_frames() {
        return Err(RouteError::Usage(format!(
            "the clips have {frames} frames per TR; the motion adapter covers at most {}",
            vd.unet.max_frames()
        )));
    }
    let decoded_c = npy::read_f32(&opts.decoded.join("decoded_c.npy"))?;
    let negative_c = npy::read_f32(&opts.decoded.join("negative_c.npy"))?;
    let decoded_z = match fit.latent_shape {
        Some(_) => Some(npy::read_f32(&opts.decoded.join("decoded_z.npy"))?),
        None => None,
    };
    let index = npy::read_i64(&opts.decoded.join("test_index.npy"))?;
    let velocities = match opts.motion {
        true => read_decoded_motion(&opts.decoded, fit.n_test)?,
        false => None,
    };
    let [t, d] = fit.context_shape;
    let uncond = if opts.mean_negative {
        row_tensor(&negative_c, 0, &[1, t, d], vd)?
    } else {
        vd.sd.encode_text(&[""])?
    };
    let size = vd.sd.default_size() / vd.sd.vae_scale_factor();
    let shape = [1, vd.unet.unet.config.in_channels, frames, size, size];
    let fps = frames as f64 / fit.tr_seconds;
    let n = opts.limit.unwrap_or(fit.n_test).min(fit.n_test);
    let (mut made, mut reused, mut clips) = (0, 0, Vec::with_capacity(n));
    for i in 0..n {
        let (segment, tr) = (index.data[2 * i] as usize, index.data[2 * i + 1] as usize);
        clips.push((segment, tr));
        let stem = clip_stem(&opts.out, segment, tr);
        if stem.with_extension("gif").is_file() && stem.join("frames.json").is_file() {
            reused += 1;
            continue;
        }
        let context = Conditioning {
            cond: row_tensor(&decoded_c, i, &[1, t, d], vd)?,
            uncond: Some(uncond.clone()),
        };
        let init = match (&decoded_z, fit.latent_shape) {
            (Some(z), Some([c, h, w])) => Some(decoded_clip(z, i, [c, h, w], &fit, vd)?),
            _ => None,
        };
        let mut noise = SeededNoise::new(stream_seed(opts.seed, segment as u64, tr as u64));
        let velocity = velocities.as_ref().and_then(|v| v.get(i).copied());
        let latents = denoise_clip(
            vd,
            init.as_ref(),
            (shape, velocity),
            &context,
            opts,
            &mut noise,
        )?;
        let images = to_images(&vd.decode_clip(&latents)?)?;
        write_clip(
            &stem,
            &images,
            fps,
            &[ClipFormat::Mp4, ClipFormat::Gif, ClipFormat::PngFrames],
        )?;
        made += 1;
        progress(
            i + 1,
            n,
            Progress {
                step: 0,
                total: 0,
                timestep: 0.0,
            },
        );
    }
    let summary = ReconstructSummary {
        format: "brainrecon-video-reconstruct".into(),
        decoded: opts.decoded.clone(),
        model: names.0.to_string(),
        adapter: names.1.to_string(),
        steps: opts.sample.steps,
        guidance: opts.sample.guidance,
        strength: opts.strength,
        mean_negative: opts.mean_negative,
        moving_noise: velocities.is_some(),
        seed: opts.seed,
        frames,
        fps,
        clips,
        made,
        reused,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_json_atomic(&opts.out.join(SUMMARY), &summary)?;
    Ok(summary)
}

impl ReconstructSummary {
    /// The summary line `video reconstruct` prints; `out` is its folder.
    pub fn text(&self, out: &Path) -> String {
        format!(
            "{} clips of {} frames ({} made, {} kept) in {:.1} s → {}\n",
            self.clips.len(),
            self.frames,
            self.made,
            self.reused,
            self.seconds,
            out.join("clips").display()
        )
    }
}

/// `video reconstruct` whole: `opts.strength` checked, the image model `model` (in `dtype`)
/// and the motion adapter `adapter` (see [`super::adapter_dir`]) loaded on `device`, then
/// [`reconstruct`].
pub fn reconstruct_with(
    model: &str,
    adapter: &str,
    dtype: DType,
    device: &candle_core::Device,
    opts: &VideoReconstructOptions,
    progress: &mut dyn FnMut(usize, usize, Progress),
) -> Result<ReconstructSummary> {
    if !(opts.strength > 0.0 && opts.strength <= 1.0) {
        return Err(RouteError::Usage(format!(
            "--strength: expected (0, 1], found {}",
            opts.strength
        )));
    }
    let sd = brainrecon_diffusion::pipeline::StableDiffusion::load(model, dtype, device)?;
    let vd = VideoDiffusion::with_adapter(sd, &super::adapter_dir(adapter)?)?;
    reconstruct(&vd, (model, adapter), opts, progress)
}
