//! The real-time route: the linear route (Takagi & Nishimoto 2023) applied to one volume at a
//! time as a session is acquired.
//!
//! Per volume, the preprocessed z-scores at the subject's voxels (see `brainrecon-realtime`)
//! are averaged over the last `k` volumes ([`PatternWindow`]) and standardised per voxel with
//! the running mean and variance of the patterns so far (the online counterpart of the betas'
//! per-session z-scoring the decoders were fit on). The ridge decoders turn the pattern into z
//! and c ([`LiveDecoders`]); [`LiveDrawer`] VAE-decodes z and runs img2img from that picture
//! conditioned on c, as the linear route does, with one sample and a short schedule.

use crate::decoders::Decoder;
use crate::error::{Result, RouteError};
use crate::linear::{sample_latents, tensor_to_image, Manifest, Method, ReconstructOptions};
use brainrecon_data::image::{read_png, write_png, RgbImage};
use brainrecon_data::npy;
use brainrecon_data::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::{Conditioning, StableDiffusion, Tensor};
use std::collections::VecDeque;
use std::path::Path;

/// The fitted z and c decoders with the subject voxels they read.
pub struct LiveDecoders {
    pub z: Decoder,
    pub c: Decoder,
    /// Flat indices (x fastest) into the subject's volume: the z decoder's voxels, then the
    /// c decoder's.
    pub voxels: Vec<usize>,
    /// Where the c decoder's voxels start in `voxels`.
    split: usize,
}

impl LiveDecoders {
    /// Loads `decoders/z` and `decoders/c` and resolves their ROIs to voxels of `subject`.
    pub fn load(subject: &PreparedSubject, decoders: &Path) -> Result<LiveDecoders> {
        let z = Decoder::load(&decoders.join("z"))?;
        let c = Decoder::load(&decoders.join("c"))?;
        let mut voxels = roi_voxels(subject, &z)?;
        let split = voxels.len();
        voxels.extend(roi_voxels(subject, &c)?);
        Ok(LiveDecoders {
            z,
            c,
            voxels,
            split,
        })
    }

    /// How many of `voxels` are the z decoder's (they come first).
    pub fn z_voxels(&self) -> usize {
        self.split
    }

    /// Decoded (z, c) of one standardised pattern over `voxels`.
    pub fn decode(&self, pattern: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        assert_eq!(pattern.len(), self.voxels.len(), "one value per voxel");
        let (for_z, for_c) = pattern.split_at(self.split);
        let z = self.z.model.predict_row_major(for_z, (1, for_z.len()))?;
        let c = self.c.model.predict_row_major(for_c, (1, for_c.len()))?;
        Ok((z, c))
    }
}

/// The flat indices of `decoder`'s ROI voxels in `subject`'s volume, in the decoder's column
/// order (the atlas' voxel coordinates, `rois/<atlas>.npy`).
fn roi_voxels(subject: &PreparedSubject, decoder: &Decoder) -> Result<Vec<usize>> {
    let roi = decoder.roi_of(subject)?;
    let path = subject.path(&format!("rois/{}.npy", roi.atlas));
    let coords = npy::read_i64(&path)?;
    let [nx, ny, nz] = subject.meta.volume_shape;
    let rows = coords.data.len() / 3;
    let flat = |row: usize| -> Result<usize> {
        let c = &coords.data[3 * row..3 * row + 3];
        let inside = (0..3).all(|i| c[i] >= 0 && (c[i] as usize) < [nx, ny, nz][i]);
        if coords.shape.get(1) != Some(&3) || !inside {
            return Err(RouteError::mismatch(
                &path,
                "voxel coordinates",
                format!("(n, 3) voxel indices inside the volume {:?}", [nx, ny, nz]),
                format!("shape {:?}, row {row}: {c:?}", coords.shape),
            ));
        }
        Ok(c[0] as usize + nx * (c[1] as usize + ny * c[2] as usize))
    };
    match roi.columns {
        Some(columns) => columns.into_iter().map(flat).collect(),
        None => (0..rows).map(flat).collect(),
    }
}

/// The mean of the last `k` volumes' z-scores, standardised per voxel by the running mean
/// and variance (Welford) of every pattern so far, the current one included.
pub struct PatternWindow {
    k: usize,
    recent: VecDeque<Vec<f32>>,
    count: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl PatternWindow {
    /// `k` ≥ 1 volumes over `voxels` voxels.
    pub fn new(voxels: usize, k: usize) -> PatternWindow {
        assert!(k >= 1, "a window of at least one volume");
        PatternWindow {
            k,
            recent: VecDeque::with_capacity(k),
            count: 0,
            mean: vec![0.0; voxels],
            m2: vec![0.0; voxels],
        }
    }

    /// Adds a volume's z-scores; returns the standardised pattern once `k` volumes are in,
    /// and the number of patterns its statistics rest on.
    pub fn push(&mut self, zscores: &[f32]) -> Option<(Vec<f32>, u64)> {
        assert_eq!(zscores.len(), self.mean.len(), "one value per voxel");
        if self.recent.len() == self.k {
            self.recent.pop_front();
        }
        self.recent.push_back(zscores.to_vec());
        if self.recent.len() < self.k {
            return None;
        }
        let k = self.k as f64;
        let pattern: Vec<f64> = (0..self.mean.len())
            .map(|v| self.recent.iter().map(|z| z[v] as f64).sum::<f64>() / k)
            .collect();
        self.count += 1;
        let n = self.count as f64;
        let standardised = pattern
            .iter()
            .enumerate()
            .map(|(v, &x)| {
                let delta = x - self.mean[v];
                self.mean[v] += delta / n;
                self.m2[v] += delta * (x - self.mean[v]);
                let sd = (self.m2[v] / n).sqrt();
                if sd > 1e-9 {
                    ((x - self.mean[v]) / sd) as f32
                } else {
                    0.0
                }
            })
            .collect();
        Some((standardised, self.count))
    }
}

/// Draws decoded (z, c) as the linear route does: the picture of z, encoded again, noised to
/// `strength` and denoised with DDIM conditioned on c (guidance against the empty prompt).
pub struct LiveDrawer<'a> {
    sd: &'a StableDiffusion,
    options: ReconstructOptions,
    latent_hw: usize,
    uncond: Option<Tensor>,
}

/// One volume's pictures: the VAE decode of its z, and the reconstruction.
pub struct Drawn {
    pub decoded_z: RgbImage,
    pub image: RgbImage,
}

impl<'a> LiveDrawer<'a> {
    /// Checks that the decoders were fit on `subject` and on `sd`'s latents and context (as
    /// the linear route checks them).
    pub fn new(
        subject: &PreparedSubject,
        sd: &'a StableDiffusion,
        decoders: &LiveDecoders,
        steps: usize,
        strength: f64,
        guidance: f64,
        seed: u64,
    ) -> Result<LiveDrawer<'a>> {
        let options = ReconstructOptions {
            method: Method::Linear,
            samples: 1,
            strength,
            steps,
            guidance,
            seed,
            sample_posterior: false,
            batch: 1,
            ..ReconstructOptions::default()
        };
        crate::linear::check_sampling(&options)?;
        let latent_hw = crate::linear::check_decoders(
            subject,
            sd,
            Method::Linear,
            Some(&decoders.z),
            Some(&decoders.c),
        )?
        .expect("the linear method has a z decoder");
        Ok(LiveDrawer {
            sd,
            latent_hw,
            uncond: crate::linear::unconditional(sd, guidance)?,
            options,
        })
    }

    /// The pictures of volume `volume`'s decoded features (its noise stream is the volume's).
    pub fn draw(&self, z: &[f32], c: &[f32], volume: usize) -> Result<Drawn> {
        let sd = self.sd;
        let hw = self.latent_hw;
        let z = Tensor::from_vec(
            z.to_vec(),
            (1, sd.unet.config.in_channels, hw, hw),
            &sd.device,
        )?;
        let decoded_z = tensor_to_image(&sd.decode_latent(&z)?)?;
        let pixels = crate::linear::init_pixels(sd, &decoded_z)?;
        let context = Conditioning {
            cond: crate::linear::context_row(sd, c, 0)?,
            uncond: self.uncond.clone(),
        };
        let latents = sample_latents(sd, &self.options, volume, &context, Some(&pixels), &[1])?;
        let image = tensor_to_image(&sd.decode_latent(&latents)?)?;
        Ok(Drawn { decoded_z, image })
    }
}

/// The shown images of a session and the volume whose pattern answers each: the first
/// volume of a trial's pattern is `delay_s` after its onset, and the pattern is decoded when
/// its last volume (`window` volumes later) arrives.
pub struct ShownTrial {
    pub onset: f64,
    /// The prepared subject's stimulus id.
    pub id: usize,
    /// 0-based volume whose image answers the trial.
    pub volume: usize,
}

/// Trials of the session's BIDS events (`onset`, `stim_file`; rows whose stim_file is n/a
/// are blanks) of images the subject's `stimuli/names.json` names, first showing of each.
pub fn shown_trials(
    subject: &PreparedSubject,
    events: &Path,
    tr: f64,
    delay_s: f64,
    window: usize,
) -> Result<Vec<ShownTrial>> {
    let table = brainrecon_data::runs::events::Events::read(events)?;
    let onsets = table.onsets()?;
    let files = table.unquoted("stim_file")?;
    let names_path = subject.path("stimuli/names.json");
    let names: std::collections::BTreeMap<String, String> =
        brainrecon_data::atomic::read_json(&names_path)?;
    let id_of: std::collections::BTreeMap<&str, usize> = names
        .iter()
        .filter_map(|(id, name)| Some((name.as_str(), id.parse().ok()?)))
        .collect();
    let mut trials: Vec<ShownTrial> = Vec::new();
    for (onset, file) in onsets.iter().zip(files) {
        let Some(file) = file.filter(|f| *f != "n/a") else {
            continue;
        };
        let id = *id_of.get(file).ok_or_else(|| {
            RouteError::mismatch(
                events,
                "stim_file",
                format!("a stimulus named in {}", names_path.display()),
                file,
            )
        })?;
        if trials.iter().any(|t| t.id == id) {
            continue;
        }
        let first = ((onset + delay_s) / tr).ceil() as usize;
        trials.push(ShownTrial {
            onset: *onset,
            id,
            volume: first + window - 1,
        });
    }
    Ok(trials)
}

/// One shown image's answer: its stimulus id, decoded features and pictures.
pub struct Answer {
    pub id: usize,
    pub z: Vec<f32>,
    pub c: Vec<f32>,
    pub drawn: Drawn,
}

/// The answers of a live session's `trials`: the decoded features (`decoded`: volume, z, c)
/// and the pictures (`SESSION/images/vol-NNNNNN.png`, `SESSION/decoded-z/…`) of each trial's
/// volume. Trials whose volume was not decoded or drawn are left out.
pub fn live_answers(
    trials: &[ShownTrial],
    decoded: &[(usize, Vec<f32>, Vec<f32>)],
    session: &Path,
) -> Result<Vec<Answer>> {
    let mut answers = Vec::new();
    for trial in trials {
        let name = format!("vol-{:06}.png", trial.volume + 1);
        let image = session.join("images").join(&name);
        let Some((_, z, c)) = decoded.iter().find(|d| d.0 == trial.volume) else {
            continue;
        };
        if !image.exists() {
            continue;
        }
        answers.push(Answer {
            id: trial.id,
            z: z.clone(),
            c: c.clone(),
            drawn: Drawn {
                image: read_png(&image)?,
                decoded_z: read_png(&session.join("decoded-z").join(&name))?,
            },
        });
    }
    Ok(answers)
}

/// Writes `answers` as a reconstruction folder `out` in the linear route's layout
/// (`decoded/{ids,z,c}.npy`, `decoded-z/<id>.png`, `sample-1/<id>.png`, `manifest.json`),
/// which `brainrecon eval` scores.
#[allow(clippy::too_many_arguments)]
pub fn write_recons(
    subject: &PreparedSubject,
    sd: &StableDiffusion,
    model: &str,
    drawer: &LiveDrawer,
    decoders: &LiveDecoders,
    answers: &[Answer],
    out: &Path,
    command: &str,
) -> Result<()> {
    let ids: Vec<usize> = answers.iter().map(|a| a.id).collect();
    for answer in answers {
        let file = format!("{}.png", answer.id);
        write_png(
            &Manifest::sample_dir(out, 1).join(&file),
            &answer.drawn.image,
        )?;
        write_png(
            &Manifest::decoded_z_dir(out).join(&file),
            &answer.drawn.decoded_z,
        )?;
    }
    let z_rows: Vec<f32> = answers.iter().flat_map(|a| a.z.iter().copied()).collect();
    let c_rows: Vec<f32> = answers.iter().flat_map(|a| a.c.iter().copied()).collect();
    crate::linear::write_decoded(
        out,
        &ids,
        &[
            ("z", &decoders.z.target_shape, &z_rows),
            ("c", &decoders.c.target_shape, &c_rows),
        ],
    )?;
    let fingerprint = sd.root.fingerprint()?;
    let manifest = Manifest {
        z_decoder: Some(decoders.z.dir.clone()),
        c_decoder: Some(decoders.c.dir.clone()),
        latent_image_size: Some(drawer.latent_hw * sd.vae_scale_factor()),
        complete: true,
        ..Manifest::new(
            subject,
            sd,
            (model, fingerprint),
            &drawer.options,
            &ids,
            command,
        )
    };
    brainrecon_data::atomic::write_json_atomic(&out.join(Manifest::FILE), &manifest)?;
    Ok(())
}

/// The same session analysed afterwards, as an offline analysis would: each voxel's samples
/// (`samples[t][v]`, NaN where the volume did not cover it) detrended by a line fitted to the
/// whole session and z-scored over it; the mean of `window` volumes ending at each of
/// `volumes`; standardised per voxel over every such window of the session.
/// Returns one pattern per entry of `volumes` (each ≥ `window` − 1).
pub fn offline_patterns(samples: &[Vec<f32>], window: usize, volumes: &[usize]) -> Vec<Vec<f32>> {
    let n = samples.len();
    assert!(
        window >= 1 && n >= window,
        "a session of at least one window"
    );
    let voxels = samples[0].len();
    let mut zscored = vec![vec![0.0f64; voxels]; n];
    let t_mean = (n as f64 - 1.0) / 2.0;
    let t_var: f64 = (0..n).map(|t| (t as f64 - t_mean).powi(2)).sum();
    for v in 0..voxels {
        let y: Vec<f64> = samples
            .iter()
            .map(|s| if s[v].is_nan() { 0.0 } else { s[v] as f64 })
            .collect();
        let mean = y.iter().sum::<f64>() / n as f64;
        let slope = (0..n)
            .map(|t| (t as f64 - t_mean) * (y[t] - mean))
            .sum::<f64>()
            / t_var.max(1e-12);
        let residual: Vec<f64> = (0..n)
            .map(|t| y[t] - mean - slope * (t as f64 - t_mean))
            .collect();
        let sd = (residual.iter().map(|r| r * r).sum::<f64>() / n as f64).sqrt();
        for t in 0..n {
            zscored[t][v] = if sd > 1e-12 { residual[t] / sd } else { 0.0 };
        }
    }
    let windows: Vec<Vec<f64>> = (window - 1..n)
        .map(|end| {
            (0..voxels)
                .map(|v| {
                    (end + 1 - window..=end).map(|t| zscored[t][v]).sum::<f64>() / window as f64
                })
                .collect()
        })
        .collect();
    let (mean, sd) = column_moments(&windows, voxels);
    volumes
        .iter()
        .map(|&end| {
            let w = &windows[end + 1 - window];
            (0..voxels)
                .map(|v| {
                    if sd[v] > 1e-12 {
                        ((w[v] - mean[v]) / sd[v]) as f32
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect()
}

/// Per-column mean and (population) standard deviation of `rows`.
fn column_moments(rows: &[Vec<f64>], columns: usize) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..columns)
        .map(|v| rows.iter().map(|r| r[v]).sum::<f64>() / n)
        .collect();
    let sd = (0..columns)
        .map(|v| (rows.iter().map(|r| (r[v] - mean[v]).powi(2)).sum::<f64>() / n).sqrt())
        .collect();
    (mean, sd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_patterns_detrend_and_standardise_over_the_whole_session() {
        // Voxel 0: a line plus a bump at volumes 4-5; voxel 1: constant (no information).
        let samples: Vec<Vec<f32>> = (0..10)
            .map(|t| {
                let bump = if t == 4 || t == 5 { 5.0 } else { 0.0 };
                vec![100.0 + 2.0 * t as f32 + bump, 7.0]
            })
            .collect();
        let patterns = offline_patterns(&samples, 2, &[5, 8]);
        assert!(
            patterns[0][0] > 1.5,
            "the bump's window stands out: {:?}",
            patterns[0]
        );
        assert!(
            patterns[1][0] < 0.0,
            "a quiet window is below average: {:?}",
            patterns[1]
        );
        assert_eq!((patterns[0][1], patterns[1][1]), (0.0, 0.0));
    }

    #[test]
    fn the_pattern_is_the_window_mean_standardised_by_running_statistics() {
        let mut window = PatternWindow::new(2, 2);
        assert!(window.push(&[1.0, 5.0]).is_none());
        // Mean of [1, 3] and [5, 5]: one pattern, no spread yet: 0.
        let (first, n) = window.push(&[3.0, 5.0]).unwrap();
        assert_eq!((first, n), (vec![0.0, 0.0], 1));
        // Next mean [4, 6]: patterns 2 and 4 (mean 3, sd 1) → +1; 5 and 6 → +1.
        let (second, n) = window.push(&[5.0, 7.0]).unwrap();
        assert_eq!(n, 2);
        assert!((second[0] - 1.0).abs() < 1e-6 && (second[1] - 1.0).abs() < 1e-6);
    }
}
