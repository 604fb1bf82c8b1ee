//! One entry to the image routes that reconstruct a prepared subject's test images: the linear
//! route (and its z-only and c-only ablations), B2C and the caption route, chosen by what
//! conditions the images.

use crate::decoders::Decoder;
use crate::linear::{ReconstructOptions, ReconstructSummary};
use crate::Result;
use brainrecon_data::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::StableDiffusion;
use std::path::Path;

/// The z and c decoders in `dir` (`dir/z`, `dir/c`; each `None` when its folder is absent, all
/// `None` without a folder).
pub fn load_decoders(dir: Option<&Path>) -> Result<[Option<Decoder>; 2]> {
    let load = |name: &str| -> Result<Option<Decoder>> {
        let Some(dir) = dir else {
            return Ok(None);
        };
        let dir = dir.join(name);
        if !dir.exists() {
            return Ok(None);
        }
        Ok(Some(Decoder::load(&dir)?))
    };
    Ok([load("z")?, load("c")?])
}

/// What conditions the reconstructions besides the decoders.
#[derive(Debug, Clone, Copy)]
pub enum Condition<'a> {
    /// The decoded c (the linear route and its ablations).
    Decoded,
    /// The context a trained B2C encoder (this folder) makes of the betas.
    B2c(&'a Path),
    /// The captions `caption` wrote (captions.json or its folder).
    Captions(&'a Path),
}

/// Runs the route `condition` names on the subject's test images into `out`. `command` and
/// `model` are recorded; B2C loads its tuned U-Net into `sd`.
#[allow(clippy::too_many_arguments)]
pub fn reconstruct(
    subject: &PreparedSubject,
    sd: &mut StableDiffusion,
    model: &str,
    [z, c]: &[Option<Decoder>; 2],
    condition: Condition,
    options: &ReconstructOptions,
    out: &Path,
    command: &str,
    show_progress: bool,
) -> Result<ReconstructSummary> {
    match condition {
        Condition::B2c(dir) => {
            let b2c = crate::b2c::load(dir, subject, sd)?;
            crate::b2c::reconstruct::reconstruct(
                subject,
                sd,
                model,
                &b2c,
                z.as_ref(),
                options,
                out,
                command,
                show_progress,
            )
        }
        Condition::Captions(captions) => crate::caption::reconstruct::reconstruct(
            subject,
            sd,
            model,
            z.as_ref(),
            captions,
            options,
            out,
            command,
            show_progress,
        ),
        Condition::Decoded => crate::linear::reconstruct(
            subject,
            sd,
            model,
            z.as_ref(),
            c.as_ref(),
            options,
            out,
            command,
            show_progress,
        ),
    }
}

/// The condition from the folders given: a B2C folder (`--method b2c`), else captions
/// (`--method caption`), else the decoded c.
pub fn condition<'a>(b2c: Option<&'a Path>, captions: Option<&'a Path>) -> Condition<'a> {
    match (b2c, captions) {
        (Some(dir), _) => Condition::B2c(dir),
        (None, Some(file)) => Condition::Captions(file),
        (None, None) => Condition::Decoded,
    }
}
