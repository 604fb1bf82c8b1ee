//! `brainrecon glm prepare`: a `glm` folder + the stimulus files → a prepared subject.

use crate::commands::nsd::ZScoreArg;
use brainrecon_datasets::experiment::prepare::{prepare_experiment, ExperimentOptions, TestSet};
use brainrecon_routes::glm::model_folder;
use std::path::PathBuf;

/// Prepare a subject from `glm`'s single-trial betas, as `nsd prepare` prepares NSD's
///
/// Each condition of the fit is a stimulus image: its name (the events' stim_file) is read
/// under --stimuli (default: the raw dataset's stimuli/ folder), PNG or JPEG; a name without
/// an extension gets one (GOD), Kamitani lab's numeric ImageNet ids become their file names
/// (DIR: 1639765.047681 → n01639765_47681), and a name not found there is looked up by file
/// name in its subfolders (BOLD5000's COCO/, ImageNet/, Scene/). Test images are
/// the conditions shown at least --test-repeats times (or those listed in --test-list), their
/// betas averaged over repeats; every other trial is a training row. Betas (GLMsingle's
/// TYPED_FITHRF_GLMDENOISE_RR by default, --betas typea|typeb|typec|typed) are z-scored per
/// voxel over each session's trials. ROIs come from fMRIPrep's aparc+aseg in the runs' space
/// (sub-<S>_desc-aparcaseg_dseg.nii.gz, sampled at the runs' voxels by nearest neighbour;
/// runs in a template space such as MNI152NLin2009cAsym take the T1w one through fMRIPrep's
/// anat/sub-<S>_from-T1w_to-<SPACE>_mode-image_xfm.h5, as antsApplyTransforms -n
/// NearestNeighbor resamples), or from --atlas (with --atlas-transform when it is in another
/// space; for a CIFTI fit, a .dlabel.nii parcellation of the grayordinates): `streams` (NSD's stream names from Desikan–Killiany
/// regions: early = pericalcarine, cuneus, lingual; ventral = fusiform, parahippocampal,
/// inferiortemporal; lateral = lateraloccipital; parietal = superior and inferior parietal),
/// `visual` (their union, which the routes' default `nsdgeneral` resolves to) and, with
/// --rois, `aparcaseg` (every label under FreeSurfer's names). Captions (JSON: stimulus name →
/// captions) are needed by the routes that decode text embeddings. Writes the prepared
/// subject plus stimuli/names.json (id → stimulus name); a rerun with the same settings does
/// nothing.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon glm prepare --glm glm-sub01 --captions sim-events/stimuli/captions.json --out prepared/sub01\n  brainrecon glm prepare --glm glm-01 --stimuli /data/things/images --test-repeats 12 --image-size 256 --out prepared/things-01"
)]
pub struct Args {
    /// A finished `brainrecon glm` folder
    #[arg(long)]
    glm: PathBuf,
    /// Output folder for the prepared subject
    #[arg(long)]
    out: PathBuf,
    /// Which of GLMsingle's models: typea, typeb, typec or typed
    #[arg(long, default_value = "typed")]
    betas: String,
    /// Folder the stimulus names are relative to [default: <raw dataset>/stimuli]
    #[arg(long)]
    stimuli: Option<PathBuf>,
    /// JSON object: stimulus name → a caption or a list of captions
    #[arg(long)]
    captions: Option<PathBuf>,
    /// Label volume for the ROIs, or a .dlabel.nii for a CIFTI fit [default: fMRIPrep's
    /// aparc+aseg in the runs' space]
    #[arg(long)]
    atlas: Option<PathBuf>,
    /// ITK transform (.h5, mode-image) from the runs' space into --atlas's space, e.g.
    /// fMRIPrep's from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5 for a T1w atlas
    #[arg(long, requires = "atlas")]
    atlas_transform: Option<PathBuf>,
    /// The atlas' BIDS dseg table (index, name) [default: fMRIPrep's desc-aparcaseg_dseg.tsv, else FreeSurfer's names]
    #[arg(long)]
    atlas_labels: Option<PathBuf>,
    /// Atlases to write: visual, streams, aparcaseg
    #[arg(long, default_value = "visual,streams", value_delimiter = ',')]
    rois: Vec<String>,
    /// Test images: the conditions shown at least this many times
    #[arg(long, default_value_t = 3)]
    test_repeats: usize,
    /// Test images: the conditions listed in this file, one per line (instead of --test-repeats)
    #[arg(long)]
    test_list: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ZScoreArg::Session)]
    zscore: ZScoreArg,
    /// Also write train betas averaged over repeats
    #[arg(long)]
    average_train: bool,
    /// Resize stimuli to this square size [default: keep theirs]
    #[arg(long)]
    image_size: Option<usize>,
    /// Leave out conditions without an image (e.g. THINGS-fMRI's catch trials) instead of failing
    #[arg(long)]
    leave_out_missing: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(size) = args.image_size.filter(|size| !(16..=1024).contains(size)) {
        let message = format!("--image-size: expected 16 to 1024, found {size}");
        return Err(crate::commands::usage(message));
    }
    let report = prepare_experiment(&ExperimentOptions {
        glm: args.glm.clone(),
        out: args.out.clone(),
        model: model_folder(&args.betas)?.to_string(),
        stimuli: args.stimuli,
        captions: args.captions,
        atlas: args.atlas,
        atlas_transform: args.atlas_transform,
        atlas_labels: args.atlas_labels,
        rois: args.rois,
        test: match args.test_list {
            Some(list) => TestSet::List(list),
            None => TestSet::MinRepeats(args.test_repeats),
        },
        zscore: args.zscore.into(),
        average_train: args.average_train,
        image_size: args.image_size,
        leave_out_missing: args.leave_out_missing,
    })?;
    crate::commands::report(args.json, &report, |_| report.text())
}
