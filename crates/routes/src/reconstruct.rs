//! One entry to the image routes that reconstruct a prepared subject's test images: the linear
//! route (and its z-only and c-only ablations), B2C and the caption route, chosen by what
//! conditions the images.

use crate::decode::decoders::Decoder;
use crate::linear::shards::ImageShard;
use crate::linear::{Method, ReconstructOptions, ReconstructSummary};
use crate::score::evaluate::{EvalContext, EvalExtras};
use crate::{Result, RouteError};
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::StableDiffusion;
use std::path::{Path, PathBuf};

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

/// A reconstruction as the command line asks for it: names and folders, checked (in this
/// order) before anything is loaded.
#[derive(Debug, Clone)]
pub struct ReconstructRequest {
    /// linear, z-only, c-only, b2c or caption.
    pub method: String,
    /// The captions of `--method caption` (captions.json or its folder).
    pub captions: Option<PathBuf>,
    /// The trained B2C folder of `--method b2c`.
    pub b2c: Option<PathBuf>,
    /// B2C's start: `noise` (txt2img) or `z` (img2img from the decoded z).
    pub init: String,
    /// The prepared subject.
    pub subject: PathBuf,
    /// The folder with z/ and c/.
    pub decoders: Option<PathBuf>,
    /// The diffusion model (folder, cached id or shapes-ldm).
    pub model: String,
    /// The output folder.
    pub out: PathBuf,
    /// The sampling settings; `method`, `init_z` and `shard` are set from the fields above.
    pub options: ReconstructOptions,
    /// Samples denoised together (default: all of an image's).
    pub batch: Option<usize>,
    /// `k/N`: only this slice of the test images.
    pub shard: Option<String>,
    /// Where the models run.
    pub device: brainrecon_core::Device,
    /// The weights' precision: f32, f16, or bf16 (GPU only).
    pub dtype: brainrecon_diffusion::pipeline::DType,
    /// The command recorded in the manifest.
    pub command: String,
    /// Draw progress bars.
    pub progress: bool,
}

/// What [`run`] did, with the method it ran.
#[derive(Debug, Clone)]
pub struct Reconstructed {
    /// The route that ran.
    pub method: Method,
    /// What it wrote and how long it took.
    pub summary: ReconstructSummary,
}

impl Reconstructed {
    /// The line the command prints.
    pub fn text(&self) -> String {
        let s = &self.summary;
        format!(
            "{} route: {} test images, {} images written, {} already there, {:.1} s → {}",
            self.method.name(),
            s.n_images,
            s.written,
            s.skipped,
            s.seconds,
            s.out.display()
        )
    }
}

/// Checks `request`, loads the subject, decoders and model, and reconstructs.
pub fn run(request: &ReconstructRequest) -> Result<Reconstructed> {
    let r = request;
    let shard = r.shard.as_deref().map(ImageShard::parse).transpose()?;
    let method = Method::parse(&r.method)?;
    crate::decode::options::check_sampling(r.options.steps, r.options.guidance)?;
    if r.batch == Some(0) {
        return Err(RouteError::Usage("--batch must be at least 1".into()));
    }
    let subject = PreparedSubject::open(&r.subject)?;
    let init_z = match r.init.as_str() {
        "noise" => false,
        "z" => true,
        other => {
            return Err(RouteError::Usage(format!(
                "--init: expected noise or z, found '{other}'"
            )))
        }
    };
    if method != Method::B2c && r.decoders.is_none() {
        return Err(RouteError::Usage(format!(
            "--method {} needs --decoders DIR",
            method.name()
        )));
    }
    if (method == Method::B2c) != r.b2c.is_some() {
        return Err(RouteError::Usage(
            "--b2c DIR goes with --method b2c, and --method b2c needs it".into(),
        ));
    }
    if (method == Method::Caption) != r.captions.is_some() {
        return Err(RouteError::Usage(
            "--captions FILE goes with --method caption, and --method caption needs it".into(),
        ));
    }
    let decoders = load_decoders(r.decoders.as_deref())?;
    let device = crate::decode::options::open_device(r.device)?;
    crate::decode::options::check_dtype_on(r.dtype, &device)?;
    let mut sd = StableDiffusion::load(&r.model, r.dtype, &device)?;
    let options = ReconstructOptions {
        method,
        init_z,
        batch: r.batch.unwrap_or(r.options.samples),
        shard,
        ..r.options.clone()
    };
    let summary = reconstruct(
        &subject,
        &mut sd,
        &r.model,
        &decoders,
        condition(r.b2c.as_deref(), r.captions.as_deref()),
        &options,
        &r.out,
        &r.command,
        r.progress,
    )?;
    Ok(Reconstructed { method, summary })
}

impl crate::linear::shards::MergeSummary {
    /// The line `reconstruct merge` prints.
    pub fn text(&self) -> String {
        if self.merged {
            format!(
                "merged {} shards: {} test images → {}",
                self.shards,
                self.n_images,
                self.out.join(crate::linear::Manifest::FILE).display()
            )
        } else {
            format!(
                "{} is already one finished run of {} test images",
                self.out.display(),
                self.n_images
            )
        }
    }
}

/// The image routes' extras for an evaluation of their reconstructions: B2C's latent and
/// context rows, and the scores of decoded captions (see [`EvalExtras`]).
pub fn eval_extras<'a>(context: &EvalContext<'a>) -> Result<Vec<Box<dyn EvalExtras + 'a>>> {
    let b2c = crate::b2c::metrics::eval_extras(context)?;
    let captions = crate::caption::scores::eval_extras(context)?;
    Ok(b2c.into_iter().chain(captions).collect())
}
