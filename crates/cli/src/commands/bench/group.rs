//! `brainrecon bench group-adapt`: a new subject adapted into a group's shared space at NSD's
//! size, one fresh process per k, and the group's shared-space fit.

use crate::commands::prelude::*;
use brainrecon_showcase::bench::group::{self, GroupBench};

/// Time adapting a new subject into a shared space (and fitting the group's space) at NSD's size.
///
/// The adapt runs the steps of `group adapt --via features` on a shared space with the
/// library's functions: read X (trials × voxels), the targets Y (trials × targets: z 16,384
/// then c) and the basis P (targets × k), all float32 .npy → float64; scale Y by block;
/// T = Y·P; α by GCV (512 columns of T, 17 alphas 10^-1 … 10^7); M = ridge(X → T); map the
/// trials and the test rows. The data (a planted rank-64 structure plus noise, seeded) go to
/// `--data-dir`, P is a random orthonormal basis; each k runs in a fresh process, whose peak
/// memory (VmHWM) includes the arrays read. The group fit runs `group fit`'s streamed shared
/// space on `--subjects` × `--group-images` trials generated block by block (where the route
/// reads them from disk): column means, one spectrum and the GCV α per subject, then the
/// randomized SVD at `--group-k` and the maps, with its peak memory beside the bound computed
/// before it. `--no-adapt` times the group fit alone. Threads: `--threads` (and
/// RAYON_NUM_THREADS).
#[derive(clap::Args)]
#[command(mut_arg("json", |a| a.help("Print the results as JSON")))]
#[command(
    after_help = "Example:\n  RAYON_NUM_THREADS=2 brainrecon bench group-adapt --k 256,1024 --group-images 1000\n  \
    bash tools/bench/group_adapt.sh     # the documented run, JSON in target/bench-group/group_adapt.json"
)]
pub struct Args {
    /// Voxels of the new subject (NSD's nsdgeneral: 15,724)
    #[arg(long, default_value_t = 15_724)]
    voxels: usize,
    /// Trials the map is fitted on (one hour: 750)
    #[arg(long, default_value_t = 750)]
    trials: usize,
    /// Test rows mapped besides the trials
    #[arg(long, default_value_t = 1000)]
    test_rows: usize,
    /// Targets (z 16,384 + c 59,136)
    #[arg(long, default_value_t = 75_520)]
    targets: usize,
    /// Dimensions of the shared space, comma-separated, one measured process each
    #[arg(long, value_delimiter = ',', default_value = "256,1024")]
    k: Vec<usize>,
    /// Time the group fit only, no adapt
    #[arg(long)]
    no_adapt: bool,
    /// Subjects of the group fit
    #[arg(long, default_value_t = 7)]
    subjects: usize,
    /// Rows (trials) per subject of the group fit (0: no group fit)
    #[arg(long, default_value_t = 0)]
    group_images: usize,
    /// Dimension of the group fit's space
    #[arg(long, default_value_t = 1024)]
    group_k: usize,
    /// Threads for the linear algebra
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Where the generated .npy files go (reused when already there)
    #[arg(long, default_value = "target/bench-group")]
    data_dir: PathBuf,
    #[command(flatten)]
    json: JsonArg,
    /// Measure in this process: `adapt` (the first --k) or `group`
    #[arg(long, hide = true)]
    measure: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let bench = GroupBench {
        voxels: args.voxels,
        trials: args.trials,
        test_rows: args.test_rows,
        targets: args.targets,
        k: args.k,
        adapt: !args.no_adapt,
        subjects: args.subjects,
        group_images: args.group_images,
        group_k: args.group_k,
        threads: args.threads,
        data_dir: args.data_dir,
    };
    if let Some(what) = &args.measure {
        let measured = group::measure_here(&bench, what)?;
        return outln!("{}", serde_json::to_string(&measured)?);
    }
    let measured = group::run(&bench, &mut super::FreshProcess)?;
    report(args.json.json, &measured, |r| r.text())
}
