//! `brainrecon bench group-adapt`: a new subject adapted into a group's shared space at NSD's
//! size, one fresh process per k, and the group's shared-space fit.

use crate::args::JsonArg;
use crate::commands::{print_json, usage};
use brainrecon_showcase::bench::group::{
    ensure_adapt_data, ensure_basis, machine, measure_adapt, measure_group, AdaptResult,
    AdaptWorkload, GroupBenchReport, GroupResult, GroupWorkload,
};
use std::path::PathBuf;

/// Time adapting a new subject into a shared space (and fitting the group's space) at NSD's size.
///
/// The adapt runs the steps of `group adapt --via features` on a shared space with the
/// library's functions: read X (trials × voxels), the targets Y (trials × targets: z 16,384
/// then c) and the basis P (targets × k), all float32 .npy → float64; scale Y by block;
/// T = Y·P; α by GCV (512 columns of T, 17 alphas 10^-1 … 10^7); M = ridge(X → T); map the
/// trials and the test rows. The data (a planted rank-64 structure plus noise, seeded) go to
/// `--data-dir`, P is a random orthonormal basis; each k runs in a fresh process, whose peak
/// memory (VmHWM) includes the arrays read. The group fit generates `--subjects` ×
/// `--group-images` rows in memory and times the per-subject GCV and the shared-space fit
/// (randomized SVD) at `--group-k`. Threads: `--threads` (and RAYON_NUM_THREADS).
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
    /// Subjects of the group fit
    #[arg(long, default_value_t = 7)]
    subjects: usize,
    /// Rows (images) per subject of the group fit (0: no group fit)
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
    if args.threads == 0 || args.voxels == 0 || args.trials < 2 || args.targets == 0 {
        return Err(usage(
            "--threads, --voxels and --targets must be ≥ 1, --trials ≥ 2",
        ));
    }
    if args.k.is_empty() || args.k.iter().any(|&k| k == 0 || k > args.targets) {
        return Err(usage(format!(
            "--k: each k must be between 1 and --targets ({})",
            args.targets
        )));
    }
    let group = GroupWorkload {
        subjects: args.subjects,
        rows: args.group_images,
        voxels: args.voxels,
        targets: args.targets,
        k: args.group_k,
    };
    match args.measure.as_deref() {
        Some("adapt") => {
            let result = measure_adapt(&args.data_dir, args.k[0], args.threads)?;
            return outln!("{}", serde_json::to_string(&result)?);
        }
        Some("group") => {
            let result = measure_group(&group, args.threads)?;
            return outln!("{}", serde_json::to_string(&result)?);
        }
        Some(other) => return Err(usage(format!("--measure: adapt or group, found '{other}'"))),
        None => {}
    }
    let workload = AdaptWorkload {
        voxels: args.voxels,
        trials: args.trials,
        test_rows: args.test_rows,
        targets: args.targets,
    };
    ensure_adapt_data(&workload, &args.data_dir)?;
    let common = |c: &mut std::process::Command| {
        c.args(["bench", "group-adapt", "--threads"])
            .arg(args.threads.to_string())
            .args(["--voxels", &args.voxels.to_string()])
            .args(["--trials", &args.trials.to_string()])
            .args(["--test-rows", &args.test_rows.to_string()])
            .args(["--targets", &args.targets.to_string()])
            .arg("--data-dir")
            .arg(&args.data_dir);
    };
    let mut adapt = Vec::new();
    for &k in &args.k {
        ensure_basis(&args.data_dir, args.targets, k)?;
        eprintln!("bench group-adapt: adapting at k = {k}…");
        adapt.push(super::in_fresh_process::<AdaptResult>(
            &format!("the adapt at k = {k}"),
            |c| {
                common(c);
                c.args(["--measure", "adapt", "--k", &k.to_string()])
            },
        )?);
    }
    let group = if args.group_images > 0 {
        eprintln!(
            "bench group-adapt: fitting the group ({} subjects × {} rows, k = {})…",
            args.subjects, args.group_images, args.group_k
        );
        Some(super::in_fresh_process::<GroupResult>(
            "the group fit",
            |c| {
                common(c);
                c.args(["--measure", "group", "--subjects"])
                    .arg(args.subjects.to_string())
                    .args(["--group-images", &args.group_images.to_string()])
                    .args(["--group-k", &args.group_k.to_string()])
            },
        )?)
    } else {
        None
    };
    let report = GroupBenchReport {
        machine: machine(),
        adapt,
        group,
        goal_seconds: 60.0,
        goal_gb: 4.0,
    };
    if args.json.json {
        return print_json(&report);
    }
    out!("{}", report.text())
}
