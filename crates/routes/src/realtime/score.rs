//! Scoring a session: the shown images' answers written as a reconstruction folder, live and
//! from the same volumes analysed after the session.

use super::decoders::LiveDecoders;
use super::draw::{Drawn, LiveDrawer};
use crate::error::{Result, RouteError};
use crate::linear::Manifest;
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::StableDiffusion;
use brainrecon_formats::image::{read_png, write_png};
use std::path::Path;

/// The shown images of a session and the volume whose pattern answers each: the first
/// volume of a trial's pattern is `delay_s` after its onset, and the pattern is decoded when
/// its last volume (`window` volumes later) arrives.
pub struct ShownTrial {
    /// Onset of the image in the session, seconds (the events' `onset`).
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
    let table = brainrecon_formats::events::Events::read(events)?;
    let onsets = table.onsets()?;
    let files = table.unquoted("stim_file")?;
    let names_path = subject.path("stimuli/names.json");
    let names: std::collections::BTreeMap<String, String> =
        brainrecon_core::fs::read_json(&names_path)?;
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
    /// The prepared subject's stimulus id.
    pub id: usize,
    /// The decoded VAE latent z, flattened.
    pub z: Vec<f32>,
    /// The decoded CLIP text context c, flattened.
    pub c: Vec<f32>,
    /// Its pictures: the decode of z and the reconstruction.
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
    brainrecon_core::fs::write_json_atomic(&out.join(Manifest::FILE), &manifest)?;
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
}
