//! `brainrecon reconstruct --method b2c`: txt2img (or img2img from the linear route's decoded
//! z, `--init z`) conditioned on the context the trained encoder makes of each test image's
//! averaged betas, with guidance against the empty prompt. It shares the linear route's steps:
//! manifest and resume checks, seeded per-image noise, atomic PNGs skipped on a rerun.
//!
//! Besides the images it writes what `brainrecon eval` needs for the paper's Table 1:
//! `decoded/context.npy` (the encoder's output), `decoded/true-context.npy` (the CLIP text
//! context of the captions), `decoded/stimulus-latents.npy` (the stimuli's VAE latents) and
//! `sample-<k>/<id>.latent.npy` (each reconstruction's final latent).

use super::groups::layout_betas;
use super::B2c;
use crate::decode::decoders::Decoder;
use crate::decode::features::{load_features, rows_for_ids, FeatureKind};
use crate::error::Result;
use crate::linear::shards::check_stop;
use crate::linear::{
    begin_run, check_sampling, context_row, decoded_test_z, decoded_z_image, finish_run,
    init_pixels, sample_images, unconditional, write_decoded, Counts, Manifest, Method,
    ReconstructOptions, ReconstructSummary,
};
use crate::progress::bar;
use brainrecon_datasets::prepared::{PreparedSubject, Split};
use brainrecon_diffusion::pipeline::{Conditioning, StableDiffusion};
use std::path::Path;

/// Runs the B2C route on the subject's test images (`sd` already holds the tuned U-Net, see
/// [`super::load`]).
#[allow(clippy::too_many_arguments)]
pub fn reconstruct(
    subject: &PreparedSubject,
    sd: &StableDiffusion,
    model: &str,
    b2c: &B2c,
    z_decoder: Option<&Decoder>,
    options: &ReconstructOptions,
    out: &Path,
    command: &str,
    show_progress: bool,
) -> Result<ReconstructSummary> {
    let started = std::time::Instant::now();
    check_sampling(options)?;
    assert_eq!(
        options.method,
        Method::B2c,
        "the B2C route runs --method b2c"
    );
    let z = if options.init_z {
        Some(decoded_test_z(subject, sd, z_decoder, "--init z")?)
    } else {
        None
    };
    let mut ids = subject.test_stimulus_ids()?;
    ids.truncate(options.limit.unwrap_or(usize::MAX));
    let (_, betas) = layout_betas(subject, &b2c.record.layout, Split::Test)?;
    let v = b2c.record.layout.columns.len();
    let contexts = b2c.contexts(&betas[..ids.len() * v], ids.len(), &sd.device)?;
    let context_shape = contexts.dims()[1..].to_vec();
    let context_rows = contexts.flatten_all()?.to_vec1::<f32>()?;
    let (_, latents) = load_features(subject, &b2c.record.features, FeatureKind::Vae)?;
    let (_, truths) = load_features(subject, &b2c.record.features, FeatureKind::ClipText)?;
    let context_width: usize = context_shape.iter().product();
    let h = sd.default_size() / sd.vae_scale_factor();
    let latent_shape = [sd.unet.config.in_channels, h, h];
    let latent_width: usize = latent_shape.iter().product();
    let true_contexts = rows_for_ids(subject, &truths, context_width, &ids)?;
    let stimulus_latents = rows_for_ids(subject, &latents, latent_width, &ids)?;
    let mut arrays: Vec<(&str, &[usize], &[f32])> = vec![
        ("context", &context_shape, &context_rows),
        ("true-context", &context_shape, &true_contexts),
        ("stimulus-latents", &latent_shape, &stimulus_latents),
    ];
    let z_shape = z
        .as_ref()
        .map(|(_, hw)| vec![sd.unet.config.in_channels, *hw, *hw]);
    if let (Some((rows, _)), Some(shape)) = (&z, &z_shape) {
        arrays.push(("z", shape, rows));
    }
    write_decoded(out, &ids, &arrays)?;

    let mut manifest = Manifest {
        z_decoder: z_decoder.filter(|_| options.init_z).map(|d| d.dir.clone()),
        b2c: Some(b2c.dir.clone()),
        b2c_fingerprint: Some(b2c.fingerprint()?),
        latent_image_size: z.as_ref().map(|(_, hw)| hw * sd.vae_scale_factor()),
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
    let per_image = options.samples + usize::from(options.init_z);
    let progress = bar(
        (scope.rows.len() * per_image) as u64,
        "b2c recon",
        show_progress,
    );
    let uncond = unconditional(sd, options.guidance)?;
    let mut counts = Counts::default();
    for row in scope.rows.clone() {
        check_stop(row - scope.rows.start, scope.rows.len())?;
        let id = ids[row];
        let context = Conditioning {
            cond: context_row(sd, &context_rows, row)?,
            uncond: uncond.clone(),
        };
        let pixels = match &z {
            Some((rows, hw)) => {
                let image = decoded_z_image(sd, out, rows, *hw, row, id, &mut counts)?;
                progress.inc(1);
                Some(init_pixels(sd, &image)?)
            }
            None => None,
        };
        sample_images(
            sd,
            out,
            options,
            id,
            &context,
            pixels.as_ref(),
            true,
            &mut counts,
            &progress,
        )?;
    }
    progress.finish_and_clear();
    finish_run(&scope.manifest_path, &mut manifest)?;
    Ok(counts.summary(out, scope.rows.len(), started))
}
