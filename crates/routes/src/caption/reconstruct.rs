//! `brainrecon reconstruct --method caption`: img2img from the linear route's decoded z,
//! conditioned on the caption BLIP wrote from each test image's decoded tokens (the caption
//! replaces the decoded c), with guidance against the empty prompt: the published settings are
//! the linear route's (DDIM 50, eta 0, strength 0.8, guidance 5, 5 samples, seed 42). It
//! shares the linear route's steps: manifest and resume checks, seeded per-image noise,
//! atomic PNGs skipped on a rerun.

use super::CaptionsFile;
use crate::decode::decoders::Decoder;
use crate::error::Result;
use crate::linear::shards::check_stop;
use crate::linear::{
    begin_run, check_sampling, decoded_test_z, decoded_z_image, finish_run, init_pixels,
    sample_images, unconditional, write_decoded, Counts, Manifest, Method, ReconstructOptions,
    ReconstructSummary,
};
use crate::progress::bar;
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::{Conditioning, StableDiffusion};
use brainrecon_nn::rng::fnv1a64;
use std::path::Path;

/// Runs the caption route on the subject's test images.
#[allow(clippy::too_many_arguments)]
pub fn reconstruct(
    subject: &PreparedSubject,
    sd: &StableDiffusion,
    model: &str,
    z_decoder: Option<&Decoder>,
    captions: &Path,
    options: &ReconstructOptions,
    out: &Path,
    command: &str,
    show_progress: bool,
) -> Result<ReconstructSummary> {
    let started = std::time::Instant::now();
    check_sampling(options)?;
    assert_eq!(
        options.method,
        Method::Caption,
        "the caption route runs --method caption"
    );
    let (captions_path, file) = CaptionsFile::load_for(captions, subject)?;
    let captions_bytes = std::fs::read(&captions_path)
        .map_err(|e| brainrecon_core::DataError::io(&captions_path, e))?;
    let (z_rows, hw) = decoded_test_z(subject, sd, z_decoder, "--method caption")?;
    let mut ids = subject.test_stimulus_ids()?;
    ids.truncate(options.limit.unwrap_or(usize::MAX));
    let texts = file.captions_for(&captions_path, &ids)?;
    let z_shape = [sd.unet.config.in_channels, hw, hw];
    write_decoded(out, &ids, &[("z", &z_shape, &z_rows)])?;

    let mut manifest = Manifest {
        z_decoder: z_decoder.map(|d| d.dir.clone()),
        captions: Some(captions_path.clone()),
        captions_fingerprint: Some(format!("{:016x}", fnv1a64(&captions_bytes))),
        latent_image_size: Some(hw * sd.vae_scale_factor()),
        ..Manifest::new(
            subject,
            sd,
            (model, sd.root.fingerprint()?),
            options,
            &ids,
            command,
        )
    };
    let scope = begin_run(out, &mut manifest)?;
    let progress = bar(
        (scope.rows.len() * (options.samples + 1)) as u64,
        "caption recon",
        show_progress,
    );
    let uncond = unconditional(sd, options.guidance)?;
    let mut counts = Counts::default();
    for row in scope.rows.clone() {
        check_stop(row - scope.rows.start, scope.rows.len())?;
        let (id, text) = (ids[row], &texts[row]);
        let image = decoded_z_image(sd, out, &z_rows, hw, row, id, &mut counts)?;
        progress.inc(1);
        let context = Conditioning {
            cond: sd.encode_text(&[text.as_str()])?,
            uncond: uncond.clone(),
        };
        let pixels = init_pixels(sd, &image)?;
        sample_images(
            sd,
            out,
            options,
            id,
            &context,
            Some(&pixels),
            false,
            &mut counts,
            &progress,
        )?;
    }
    progress.finish_and_clear();
    finish_run(&scope.manifest_path, &mut manifest)?;
    Ok(counts.summary(out, scope.rows.len(), started))
}
