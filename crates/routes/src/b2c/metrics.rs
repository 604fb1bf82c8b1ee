//! The B2C paper's Table 1 columns that are not image metrics: latent MSE and PCC (each
//! reconstruction's final latent vs the stimulus' VAE latent), and the encoder's context
//! against the true CLIP text context (mean cosine; pairwise identification).

use super::B2cRecord;
use crate::decode::features::{load_features, mean_of_ids, FeatureKind};
use crate::error::{Result, RouteError};
use crate::linear::Manifest;
use crate::score::evaluate::{latent_metrics, EvalContext, EvalExtras, EvalRow};
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_formats::npy;
use brainrecon_metrics::vector;
use std::path::Path;

/// `dir/decoded/<name>.npy` as (n, d) rows for `n` images.
fn decoded(dir: &Path, name: &str, n: usize) -> Result<(Vec<f32>, usize)> {
    let path = dir.join("decoded").join(format!("{name}.npy"));
    let array = npy::read_f32(&path)?;
    if array.shape.first() != Some(&n) {
        return Err(RouteError::mismatch(
            &path,
            "shape",
            format!("{n} rows, one per test image"),
            format!("{:?}", array.shape),
        ));
    }
    let d = array.data.len() / n.max(1);
    Ok((array.data, d))
}

/// Mean over the subject's train images of a feature kind (the centre for identification).
fn train_mean(
    subject: &PreparedSubject,
    record: &B2cRecord,
    kind: FeatureKind,
) -> Result<Vec<f32>> {
    let (meta, values) = load_features(subject, &record.features, kind)?;
    mean_of_ids(subject, &values, meta.width(), &subject.train_image_ids()?)
}

/// Latent MSE, PCC and two-way identification of each sample's final latents (samples 1..=
/// `options.samples`), against the stimuli's latents read once.
pub fn sample_latent_rows(
    subject: &PreparedSubject,
    dir: &Path,
    manifest: &Manifest,
    record: &B2cRecord,
) -> Result<Vec<EvalRow>> {
    let n = manifest.ids.len();
    let (truth, d) = decoded(dir, "stimulus-latents", n)?;
    let center = train_mean(subject, record, FeatureKind::Vae)?;
    (1..=manifest.options.samples)
        .map(|k| {
            let mut latents = Vec::with_capacity(n * d);
            for id in &manifest.ids {
                let path = Manifest::sample_dir(dir, k).join(format!("{id}.latent.npy"));
                let array = npy::read_f32(&path)?;
                if array.data.len() != d {
                    return Err(RouteError::mismatch(&path, "length", d, array.data.len()));
                }
                latents.extend(array.data);
            }
            latent_metrics(&latents, &truth, &center, n, d)
        })
        .collect()
}

/// The encoder's contexts against the true ones: mean cosine and two-way identification
/// (Pearson on contexts centred by the train images' mean context).
pub fn context_row(
    subject: &PreparedSubject,
    dir: &Path,
    manifest: &Manifest,
    record: &B2cRecord,
) -> Result<EvalRow> {
    let n = manifest.ids.len();
    let (context, d) = decoded(dir, "context", n)?;
    let (truth, _) = decoded(dir, "true-context", n)?;
    let mut cosine = 0.0;
    for i in 0..n {
        cosine +=
            vector::cosine_similarity(&context[i * d..(i + 1) * d], &truth[i * d..(i + 1) * d])?;
    }
    let center = train_mean(subject, record, FeatureKind::ClipText)?;
    let ident = latent_metrics(&context, &truth, &center, n, d)?;
    Ok(EvalRow {
        name: "B2C context (features)".into(),
        n_images: n,
        context_cosine: Some(cosine / n as f64),
        context_two_way: ident.two_way_latent,
        ..EvalRow::default()
    })
}

/// B2C's part of an evaluation: the samples' latent scores and the context row.
struct B2cExtras<'a> {
    subject: &'a PreparedSubject,
    dir: &'a Path,
    manifest: &'a Manifest,
    record: B2cRecord,
}

impl EvalExtras for B2cExtras<'_> {
    fn sample_latents(&self) -> Result<Vec<EvalRow>> {
        sample_latent_rows(self.subject, self.dir, self.manifest, &self.record)
    }

    fn rows(&self) -> Result<Vec<EvalRow>> {
        Ok(vec![context_row(
            self.subject,
            self.dir,
            self.manifest,
            &self.record,
        )?])
    }
}

/// B2C's extras for a reconstruction made by B2C (its manifest names the B2C record), else none.
pub fn eval_extras<'a>(context: &EvalContext<'a>) -> Result<Option<Box<dyn EvalExtras + 'a>>> {
    let Some(record) = context.manifest.b2c.as_deref() else {
        return Ok(None);
    };
    Ok(Some(Box::new(B2cExtras {
        subject: context.subject,
        dir: context.dir,
        manifest: context.manifest,
        record: B2cRecord::load(record)?,
    })))
}

/// The finder of B2C's extras alone (the ablation's runs have no captions).
pub fn extras<'a>(context: &EvalContext<'a>) -> Result<Vec<Box<dyn EvalExtras + 'a>>> {
    Ok(eval_extras(context)?.into_iter().collect())
}
