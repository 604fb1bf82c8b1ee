//! `brainrecon group`: a space shared by a group of subjects, and a new subject brought into it
//! from one or two sessions.

use crate::commands::prelude::*;
use brainrecon_datasets::nsd::parse_sessions;
use brainrecon_routes::group::adapt::{adapt, AdaptRequest};
use brainrecon_routes::group::curve::{curve, CurveRequest};
use brainrecon_routes::group::fit::{fit_group_step, FitLimits, FitStep, GroupFitRequest};
use brainrecon_routes::group::prepare::{prepare_group, GroupPrepareRequest};
use brainrecon_routes::linear::shards::ImageShard;

/// A space shared across subjects: fit it on a group, then bring a new subject in from one
/// session
///
/// Every method maps each subject linearly into one k-dimensional space; decoders fitted there
/// on all the group's subjects serve a new subject once its own map is fitted. A subject adapted
/// into a space is an ordinary prepared subject (one atlas, `shared`), so `fit`, `reconstruct`,
/// `eval` and the report run on it unchanged.
#[derive(clap::Subcommand)]
pub enum GroupCommand {
    Prepare(PrepareArgs),
    Fit(FitArgs),
    Adapt(AdaptArgs),
    Curve(CurveArgs),
}

/// Make a group folder from prepared subjects
///
/// Checks that every subject has the ROI and features of the same model, finds the images every
/// subject saw (NSD's shared images: each subject's test images), and splits them into an align
/// half (used only to align subjects) and a test half (used only to score). Writes
/// OUT/group.json; nothing is copied.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --subjects 5 --images 300 --shared-images 100 --sessions 10 --out sim-group\n  \
    brainrecon nsd prepare --nsd-root sim-group --subject subj02 --out subj02   (and subj03 … subj05; then features)\n  \
    brainrecon group prepare --subject subj02 --subject subj03 --subject subj04 --subject subj05 --out group"
)]
#[command(mut_arg("json", |a| a.help("Print the report as JSON")))]
pub struct PrepareArgs {
    #[command(flatten)]
    request: GroupPrepareRequest,
    #[command(flatten)]
    json: JsonArg,
}

/// Fit a space shared by the group, its pooled subject and decoders on it
///
/// --method shared (default): one space by multi-subject reduced-rank ridge onto the stimulus
/// features: min Σ_s ‖Y_s − X_s M_s Pᵀ‖² + α_s‖M_s‖² with PᵀP = I (P: the k target directions
/// brains predict best; α_s by generalised cross-validation), MindEye2's shared space made
/// linear. Needs no images shared between subjects. --method srm | detsrm: BrainIAK's shared
/// response model on the align images. Then every subject's rows are mapped into the space
/// (the pooled subject, GROUP/spaces/NAME/pooled) and decoders for each --targets are fitted
/// on it (GROUP/spaces/NAME/decoders/TARGET), as `brainrecon fit` does.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon group fit --group group --method shared --k 32\n  brainrecon group fit --group group --method srm --k 32 --name srm32"
)]
#[command(mut_arg("json", |a| a.help("Print the report as JSON")))]
pub struct FitArgs {
    /// The group folder
    #[arg(long)]
    group: PathBuf,
    /// shared, srm or detsrm
    #[arg(long, default_value = "shared")]
    method: String,
    /// The space's name (default: the method's)
    #[arg(long)]
    name: Option<String>,
    /// Dimensions of the space
    #[arg(long, default_value_t = 64)]
    k: usize,
    /// SRM's iterations
    #[arg(long, default_value_t = 10)]
    n_iter: usize,
    /// Seed of the randomized solvers and SRM's start
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Decoders to fit on the pooled subject, comma-separated
    #[arg(long, default_value = "z,c", value_delimiter = ',')]
    targets: Vec<String>,
    /// Their cross-validation, as `fit --cv`
    #[arg(long, default_value = "5")]
    cv: String,
    /// Refuse (exit 2) before reading the train betas when the fit's estimated peak memory is
    /// above this many GB (10^9 bytes); the estimate is printed with --progress either way
    /// (the whole fit and --merge)
    #[arg(long)]
    memory_gb: Option<f64>,
    /// Array form, one task (k/N, 0-based, as $SLURM_ARRAY_TASK_ID/N): write the statistics
    /// (spectrum, GCV α, means) of the k-th of N slices of the subjects to --work; --method
    /// shared. `brainrecon slurm submit --shards N -- group fit …` runs every task, then --merge
    #[arg(long, conflicts_with = "merge")]
    shard: Option<String>,
    /// Array form, the merge: finish the fit from every subject's statistics in --work (the
    /// same bytes as one process)
    #[arg(long)]
    merge: bool,
    /// Folder of the array form's statistics (default GROUP/stats/NAME)
    #[arg(long)]
    work: Option<PathBuf>,
    #[command(flatten)]
    json: JsonArg,
}

/// Bring a new subject into a group's space from its few sessions
///
/// Fits the subject's own map into the space and writes it as a prepared subject (OUT) whose
/// one atlas `shared` holds the space's coordinates, with the subject's stimuli and features
/// linked. --via features (default): the map is fitted from the subject's own trials onto the
/// space's response predicted from the stimulus features (a shared space: Y·P; SRM: the group's
/// encoder), so no image needs to be shared with the group. --via shared-images: onto the
/// group's response to the align images the subject also saw (BrainIAK's transform_subject with
/// --map orthogonal, the default there). --via both: the two together. --map encoding (the
/// default with features): per-voxel encoding models from the space inverted by generalised
/// least squares, penalties by 5-fold cross-validation. The group's decoders
/// (GROUP/spaces/NAME/decoders) then apply to OUT.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon nsd prepare --nsd-root sim-group --subject subj01 --sessions 1 --out subj01-s1\n  \
    brainrecon features --subject subj01-s1 --kind z --model shapes-ldm   (and --kind c)\n  \
    brainrecon group adapt --group group --space shared --subject subj01-s1 --out subj01-s1-shared\n  \
    brainrecon reconstruct --subject subj01-s1-shared --decoders group/spaces/shared/decoders --out recon-s1"
)]
#[command(mut_arg("json", |a| a.help("Print the report as JSON")))]
pub struct AdaptArgs {
    /// The group folder
    #[arg(long)]
    group: PathBuf,
    /// The space (its name in GROUP/spaces)
    #[arg(long, default_value = "shared")]
    space: String,
    /// The new subject, prepared with features
    #[arg(long)]
    subject: PathBuf,
    /// Sessions of its train trials to use (e.g. 1 or 1-2); default: all it holds
    #[arg(long)]
    sessions: Option<String>,
    /// features, shared-images or both
    #[arg(long)]
    via: Option<String>,
    /// encoding, ridge, procrustes (fmralign's scaled orthogonal Procrustes) or orthogonal
    /// (BrainIAK's transform_subject)
    #[arg(long)]
    map: Option<String>,
    /// Score on this subject's test images (the same person prepared from all its sessions)
    #[arg(long)]
    eval_subject: Option<PathBuf>,
    /// The adapted subject to write
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    json: JsonArg,
}

/// Two-way identification of a new subject against the trials it was scanned for
///
/// The x axis is the new subject's first N train trials in acquisition order (sessions in
/// order, trials in order within them: what a lab scans first), labelled with minutes of
/// scanning at NSD's pace (an image every 4 s, 3 s on and 1 s off: minutes = trials × 4 / 60;
/// 750 trials is NSD's one session). At each point the within-subject decoders are fitted on
/// every row the group methods see from the subject (those trials and its align-image rows of
/// the sessions they span), and the subject is adapted into each space. The held-out images
/// (its test images outside the group's align set, scored with all its sessions) are split per
/// seed into validation and test halves: with several spaces, the best group method is chosen
/// on the validation images only and scored on the test ones. Every point is the mean ± s.d.
/// over seeds with its unrounded ratio to the ceiling, the within-subject route on all trials.
/// Writes OUT/curve.json (per-seed values), curve.md and curve.svg. A new subject that is one
/// of the group's subjects is refused.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon group curve --group group --space shared --space srm --nsd-root sim-group --subject subj01 --trials 100,250,500,750,1500,all --seeds 3 --out curve"
)]
#[command(mut_arg("json", |a| a.help("Print the curve as JSON")))]
pub struct CurveArgs {
    #[command(flatten)]
    request: CurveRequest,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(command: GroupCommand) -> anyhow::Result<()> {
    let progress = super::show_progress();
    let mut note = |line: String| {
        if progress {
            eprintln!("{line}");
        }
    };
    match command {
        GroupCommand::Prepare(a) => {
            let report = prepare_group(&a.request)?;
            super::report(a.json.json, &report, |r| r.text())
        }
        GroupCommand::Fit(a) => {
            let request = GroupFitRequest {
                group: a.group,
                method: a.method,
                name: a.name,
                k: a.k,
                n_iter: a.n_iter,
                seed: a.seed,
                targets: a.targets,
                cv: a.cv,
            };
            let limits = FitLimits::with_memory_gb(a.memory_gb)?;
            let step = match (a.shard, a.merge) {
                (Some(shard), _) => FitStep::SubjectStats {
                    shard: ImageShard::parse(&shard)?,
                    work: a.work,
                },
                (None, true) => FitStep::Merge { work: a.work },
                (None, false) if a.work.is_some() => {
                    return Err(super::usage(
                        "--work: belongs to the array form; add --shard k/N or --merge",
                    ))
                }
                (None, false) => FitStep::Whole,
            };
            let report = fit_group_step(&request, &limits, &step, &mut note)?;
            super::report(a.json.json, &report, |r| r.text())
        }
        GroupCommand::Adapt(a) => {
            let report = adapt(&AdaptRequest {
                group: a.group,
                space: a.space,
                subject: a.subject,
                sessions: a.sessions.as_deref().map(parse_sessions).transpose()?,
                via: a
                    .via
                    .map(|v| super::parse_flag("--via", &v))
                    .transpose()?
                    .unwrap_or_default(),
                map: a.map.map(|m| super::parse_flag("--map", &m)).transpose()?,
                eval_subject: a.eval_subject,
                out: a.out,
            })?;
            super::report(a.json.json, &report, |r| r.text())
        }
        GroupCommand::Curve(a) => {
            let request = CurveRequest {
                progress,
                ..a.request
            };
            let result = curve(&request, &mut note)?;
            super::report(a.json.json, &result, |r| r.text())
        }
    }
}
