//! `brainrecon slurm …`: a sharded `ridge fit`, `reconstruct`, `group fit` or `bids-app …
//! participant` as a Slurm job array and the dependent merge, resumable after any task dies.

use brainrecon_slurm::script::Resources;
use brainrecon_slurm::SubmitOptions;
use std::path::PathBuf;

subcommands! {
    /// Run sharded fits and reconstructions on a Slurm cluster: submit, status, resume
    pub enum SlurmCommand {
        Submit(Box<SubmitArgs>) => submit,
        Status(JobsArgs) => status,
        Resume(JobsArgs) => resume,
    }
}

/// Split `ridge fit` (targets), `reconstruct` (test images), `group fit` (subjects' statistics)
/// or `bids-app … participant` (participants) over a Slurm job array, with the merge as a job
/// that waits for every task.
///
/// Writes JOBS/task.sbatch (the array: task k `exec`s the command with `--shard k/N`),
/// JOBS/merge.sbatch (`ridge merge`, `reconstruct merge`, `group fit … --merge` or `bids-app …
/// group`, then each --then command), logs
/// under JOBS/logs/ (appended, never truncated) and JOBS/slurm.json (the jobs submitted), then
/// submits both; the merge depends on each task by id (`afterok:A_0:…:A_N-1`). With --dry-run
/// it writes the scripts only: read or edit them, then `slurm resume` submits them.
///
/// A task stopped by SIGTERM (a time limit with `--signal=B:TERM@S`, preemption, scancel)
/// keeps what it finished and exits non-zero, so the merge never runs on incomplete shards;
/// `slurm resume` resubmits only the shards not done and a merge that waits for them. The
/// result is the same bytes as one process.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  \
    brainrecon slurm submit --shards 8 --partition gpu --gres gpu:1 --time 2:00:00 \\\n    \
    --then 'eval --stimuli prepared/subj01 --recons recons/linear' \\\n    \
    -- reconstruct --subject prepared/subj01 --decoders decoders --model CompVis/stable-diffusion-v1-4 --device cuda --out recons/linear\n  \
    brainrecon slurm submit --shards 16 --mem 32G -- ridge fit --x X.npy --y Y.npy --cv 5 --out models/c\n  \
    brainrecon slurm submit --shards 7 --mem 24G --jobs group-fit.slurm -- group fit --group group --k 1024\n  \
    brainrecon slurm status --jobs recons/linear.slurm\n  \
    brainrecon slurm resume --jobs recons/linear.slurm")]
pub struct SubmitArgs {
    /// Number of shards: array tasks 0 … N-1
    #[arg(long)]
    shards: usize,
    /// Folder for the scripts, logs and the record [default: OUT.slurm, beside the command's --out]
    #[arg(long)]
    jobs: Option<PathBuf>,
    /// Slurm partition (sbatch --partition)
    #[arg(long)]
    partition: Option<String>,
    /// Slurm account (sbatch --account)
    #[arg(long)]
    account: Option<String>,
    /// Time limit of each task and of the merge (sbatch --time, e.g. 2:00:00)
    #[arg(long)]
    time: Option<String>,
    /// Memory of each task and of the merge (sbatch --mem, e.g. 32G)
    #[arg(long)]
    mem: Option<String>,
    /// CPUs of each task and of the merge (sbatch --cpus-per-task)
    #[arg(long)]
    cpus_per_task: Option<usize>,
    /// Generic resources of each task, not the merge (sbatch --gres, e.g. gpu:1)
    #[arg(long)]
    gres: Option<String>,
    /// Seconds before the time limit at which a task gets SIGTERM to stop after its current
    /// image (sbatch --signal=B:TERM@S)
    #[arg(long, default_value_t = 120)]
    signal_seconds: u32,
    /// Another #SBATCH option for both scripts, as written after #SBATCH (repeatable), e.g.
    /// --sbatch=--qos=high
    #[arg(long = "sbatch")]
    extra: Vec<String>,
    /// A brainrecon command run after the merge in the same job (repeatable), e.g. 'eval
    /// --stimuli prepared/subj01 --recons recons/linear'
    #[arg(long)]
    then: Vec<String>,
    /// The brainrecon the tasks run [default: this one]
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Write the scripts and the record without submitting (`slurm resume` submits)
    #[arg(long)]
    dry_run: bool,
    /// Print the submission as JSON
    #[arg(long)]
    json: bool,
    /// The command to shard: `ridge fit …` or `reconstruct …` with its --out, or `bids-app BIDS_DIR
    /// OUTPUT_DIR participant …`
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Show which shards of a submission are done, running or to resubmit (`slurm status`), or
/// resubmit the shards neither done nor queued and a merge that waits for them (`slurm resume`).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon slurm status --jobs recons/linear.slurm --json\n  brainrecon slurm resume --jobs recons/linear.slurm"
)]
pub struct JobsArgs {
    /// The folder `slurm submit` wrote (its --jobs)
    #[arg(long)]
    jobs: PathBuf,
    /// Print as JSON
    #[arg(long)]
    json: bool,
}

fn submit(args: Box<SubmitArgs>) -> anyhow::Result<()> {
    let binary = args.binary.map_or_else(std::env::current_exe, Ok)?;
    let options = SubmitOptions {
        command: args.command,
        shards: args.shards,
        jobs: args.jobs,
        resources: Resources {
            partition: args.partition,
            account: args.account,
            time: args.time,
            mem: args.mem,
            cpus_per_task: args.cpus_per_task,
            gres: args.gres,
            signal_seconds: args.signal_seconds,
            extra: args.extra,
        },
        then: args.then,
        binary,
        workdir: std::env::current_dir()?,
        dry_run: args.dry_run,
    };
    if let Some(warning) = brainrecon_slurm::scheduler::shared_filesystem_warning(&options.workdir)
    {
        eprintln!("warning: {warning}");
    }
    let submitted = brainrecon_slurm::submit(&options)?;
    crate::commands::report(args.json, &submitted, |_| submitted.text())
}

fn status(args: JobsArgs) -> anyhow::Result<()> {
    let status = brainrecon_slurm::status(&args.jobs)?;
    crate::commands::report(args.json, &status, |_| status.text())
}

fn resume(args: JobsArgs) -> anyhow::Result<()> {
    let submission = brainrecon_slurm::resume(&args.jobs)?;
    crate::commands::report(args.json, &submission, |_| submission.text())
}
