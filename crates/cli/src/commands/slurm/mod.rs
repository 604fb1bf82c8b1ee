//! `brainrecon slurm …`: a sharded `ridge fit` or `reconstruct` as a Slurm job array and the
//! dependent merge, resumable after any task dies.

mod scheduler;
mod script;
mod work;

use super::usage;
use brainrecon_data::atomic::{read_json, write_json_atomic};
use brainrecon_data::nsd::prepare::compact_ranges;
use script::Resources;
use std::path::{Path, PathBuf};
use work::Work;

/// Run sharded fits and reconstructions on a Slurm cluster: submit, status, resume
#[derive(clap::Subcommand)]
pub enum SlurmCommand {
    Submit(Box<SubmitArgs>),
    Status(JobsArgs),
    Resume(JobsArgs),
}

pub fn run(command: SlurmCommand) -> anyhow::Result<()> {
    match command {
        SlurmCommand::Submit(args) => submit(*args),
        SlurmCommand::Status(args) => status(args),
        SlurmCommand::Resume(args) => resume(args),
    }
}

/// Split `ridge fit` (targets) or `reconstruct` (test images) over a Slurm job array, with
/// the merge as a job that waits for every task.
///
/// Writes JOBS/task.sbatch (the array: task k `exec`s the command with `--shard k/N`),
/// JOBS/merge.sbatch (`ridge merge` or `reconstruct merge`, then each --then command), logs
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
    /// The command to shard: `ridge fit …` or `reconstruct …`, with its --out
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

const FORMAT: &str = "brainrecon-slurm-jobs";
const RECORD_FILE: &str = "slurm.json";

/// JOBS/slurm.json: what was submitted, so that status and resume need only the folder.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct JobsRecord {
    format: String,
    work: Work,
    shards: usize,
    /// The folder the command was given in; the scripts run there (relative paths hold).
    workdir: PathBuf,
    jobs: PathBuf,
    binary: PathBuf,
    then: Vec<String>,
    resources: Resources,
    /// The Slurm job id (`ARRAY_K`) running or last run for each shard.
    tasks: Vec<Option<String>>,
    merge_job: Option<String>,
}

impl JobsRecord {
    fn load(jobs: &Path) -> anyhow::Result<Self> {
        let path = jobs.join(RECORD_FILE);
        if !path.is_file() {
            return Err(usage(format!(
                "{}: missing (not a folder written by `brainrecon slurm submit`)",
                path.display()
            )));
        }
        let record: JobsRecord = read_json(&path)?;
        if record.format != FORMAT || record.tasks.len() != record.shards {
            return Err(usage(format!(
                "{}: format: expected {FORMAT} with one task per shard, found {} with {} tasks for {} shards",
                path.display(),
                record.format,
                record.tasks.len(),
                record.shards
            )));
        }
        Ok(record)
    }

    fn save(&self) -> anyhow::Result<()> {
        write_json_atomic(&self.jobs.join(RECORD_FILE), self)?;
        Ok(())
    }

    fn task_script(&self) -> PathBuf {
        self.jobs.join("task.sbatch")
    }

    fn merge_script(&self) -> PathBuf {
        self.jobs.join("merge.sbatch")
    }
}

fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let work = Work::parse(&args.command)?;
    if args.shards == 0 {
        return Err(usage("--shards: expected at least 1"));
    }
    let workdir = std::env::current_dir()?;
    let jobs = workdir.join(args.jobs.clone().unwrap_or_else(|| {
        let mut name = work.out.clone().into_os_string();
        name.push(".slurm");
        PathBuf::from(name)
    }));
    if jobs.join(RECORD_FILE).exists() {
        return Err(usage(format!(
            "{}: a submission is already recorded there; `brainrecon slurm resume --jobs {}` \
             continues it, or remove the folder to start over",
            jobs.join(RECORD_FILE).display(),
            jobs.display()
        )));
    }
    let binary = match args.binary.clone() {
        Some(binary) => binary,
        None => std::env::current_exe()?,
    };
    let record = JobsRecord {
        format: FORMAT.into(),
        shards: args.shards,
        workdir,
        jobs,
        binary,
        then: args.then.clone(),
        resources: Resources {
            partition: args.partition.clone(),
            account: args.account.clone(),
            time: args.time.clone(),
            mem: args.mem.clone(),
            cpus_per_task: args.cpus_per_task,
            gres: args.gres.clone(),
            signal_seconds: args.signal_seconds,
            extra: args.extra.clone(),
        },
        tasks: vec![None; args.shards],
        merge_job: None,
        work,
    };
    write_scripts(&record)?;
    record.save()?;
    if args.dry_run {
        let report = serde_json::json!({
            "jobs": record.jobs,
            "task_script": record.task_script(),
            "merge_script": record.merge_script(),
            "submitted": false,
        });
        if args.json {
            return super::print_json(&report);
        }
        outln!(
            "wrote {} and {}; `brainrecon slurm resume --jobs {}` submits them",
            record.task_script().display(),
            record.merge_script().display(),
            record.jobs.display()
        )?;
        return Ok(());
    }
    submit_missing(record, args.json)
}

fn write_scripts(record: &JobsRecord) -> anyhow::Result<()> {
    let logs = record.jobs.join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| usage(format!("{}: cannot create: {e}", logs.display())))?;
    let task = script::task_script(
        &record.work,
        &record.binary,
        &record.workdir,
        &record.jobs,
        record.shards,
        &record.resources,
    );
    let merge = script::merge_script(
        &record.work,
        &record.binary,
        &record.workdir,
        &record.jobs,
        record.shards,
        &record.then,
        &record.resources,
    );
    brainrecon_data::atomic::write_bytes_atomic(&record.task_script(), task.as_bytes())?;
    brainrecon_data::atomic::write_bytes_atomic(&record.merge_script(), merge.as_bytes())?;
    Ok(())
}

/// One shard as status reports it.
#[derive(Debug, serde::Serialize)]
struct ShardStatus {
    shard: usize,
    job: Option<String>,
    state: Option<String>,
    reason: Option<String>,
    done: bool,
}

#[derive(Debug, serde::Serialize)]
struct Status {
    jobs: PathBuf,
    command: String,
    out: PathBuf,
    shards: Vec<ShardStatus>,
    merge_job: Option<String>,
    merge_state: Option<String>,
    merge_reason: Option<String>,
    /// The merged result is there.
    done: bool,
}

fn current_status(record: &JobsRecord) -> Status {
    // a merged result counts every shard done (a merged reconstruction has no shards left)
    let merged = record.work.result_done(&record.workdir);
    let shards = (0..record.shards)
        .map(|k| {
            let job = record.tasks[k].clone();
            let state = job.as_deref().and_then(scheduler::job_state);
            ShardStatus {
                shard: k,
                done: merged
                    || record
                        .work
                        .shard_done(&record.workdir, &record.jobs, k, record.shards),
                state: state.as_ref().map(|s| s.state.clone()),
                reason: state.map(|s| s.reason),
                job,
            }
        })
        .collect();
    let merge = record.merge_job.as_deref().and_then(scheduler::job_state);
    Status {
        jobs: record.jobs.clone(),
        command: record.work.kind.name().into(),
        out: record.work.out.clone(),
        shards,
        merge_job: record.merge_job.clone(),
        merge_state: merge.as_ref().map(|s| s.state.clone()),
        merge_reason: merge.map(|s| s.reason),
        done: merged,
    }
}

fn status(args: JobsArgs) -> anyhow::Result<()> {
    let record = JobsRecord::load(&args.jobs)?;
    let status = current_status(&record);
    if args.json {
        return super::print_json(&status);
    }
    let done = status.shards.iter().filter(|s| s.done).count();
    outln!(
        "{} → {}: {done} of {} shards done; result {}",
        status.command,
        status.out.display(),
        status.shards.len(),
        if status.done {
            "merged"
        } else {
            "not merged yet"
        }
    )?;
    outln!(
        "{:>6}  {:<14}  {:<12}  {}",
        "shard",
        "job",
        "state",
        "output"
    )?;
    for s in &status.shards {
        outln!(
            "{:>6}  {:<14}  {:<12}  {}",
            s.shard,
            s.job.as_deref().unwrap_or("-"),
            s.state.as_deref().unwrap_or("-"),
            if s.done { "done" } else { "missing" }
        )?;
    }
    outln!(
        "{:>6}  {:<14}  {:<12}  {}",
        "merge",
        status.merge_job.as_deref().unwrap_or("-"),
        status.merge_state.as_deref().unwrap_or("-"),
        status.merge_reason.as_deref().unwrap_or("")
    )?;
    Ok(())
}

fn resume(args: JobsArgs) -> anyhow::Result<()> {
    let record = JobsRecord::load(&args.jobs)?;
    // The scripts are the user's to edit; they are written again only when missing.
    if !record.task_script().is_file() || !record.merge_script().is_file() {
        write_scripts(&record)?;
    }
    submit_missing(record, args.json)
}

/// What one submit or resume did.
#[derive(Debug, serde::Serialize)]
struct Submission {
    jobs: PathBuf,
    /// Shards submitted now, and the array job that runs them.
    submitted_shards: Vec<usize>,
    array_job: Option<String>,
    /// The merge job submitted now (None: the one queued still waits for the right tasks, or
    /// the result is already there).
    merge_job: Option<String>,
    /// Shards done, and the result merged.
    shards_done: usize,
    done: bool,
}

/// Submits the shards neither done nor queued as one array, and a merge that waits for every
/// shard not done; a queued merge waiting on other jobs is cancelled first.
fn submit_missing(mut record: JobsRecord, json: bool) -> anyhow::Result<()> {
    let status = current_status(&record);
    let alive = |state: &Option<String>| state.as_deref().is_some_and(scheduler::alive);
    let mut submission = Submission {
        jobs: record.jobs.clone(),
        submitted_shards: Vec::new(),
        array_job: None,
        merge_job: None,
        shards_done: status.shards.iter().filter(|s| s.done).count(),
        done: status.done,
    };
    if !status.done {
        submission.submitted_shards = status
            .shards
            .iter()
            .filter(|s| !s.done && !alive(&s.state))
            .map(|s| s.shard)
            .collect();
        if !submission.submitted_shards.is_empty() {
            let array = scheduler::sbatch(
                &record.task_script(),
                &[format!(
                    "--array={}",
                    compact_ranges(&submission.submitted_shards)
                )],
            )?;
            for &k in &submission.submitted_shards {
                record.tasks[k] = Some(format!("{array}_{k}"));
            }
            submission.array_job = Some(array);
            record.save()?;
        }
        let merge_alive = alive(&status.merge_state);
        let merge_running = status.merge_state.as_deref() == Some("RUNNING");
        if !merge_running && (!merge_alive || !submission.submitted_shards.is_empty()) {
            if let (true, Some(old)) = (merge_alive, &record.merge_job) {
                scheduler::cancel(old)?;
            }
            let waits_for: Vec<String> = status
                .shards
                .iter()
                .filter(|s| !s.done)
                .filter_map(|s| record.tasks[s.shard].clone())
                .collect();
            let options: Vec<String> = scheduler::after_ok(&waits_for).into_iter().collect();
            let merge = scheduler::sbatch(&record.merge_script(), &options)?;
            record.merge_job = Some(merge.clone());
            submission.merge_job = Some(merge);
            record.save()?;
        }
    }
    if json {
        return super::print_json(&submission);
    }
    if submission.done {
        outln!(
            "{}: already merged; nothing to submit",
            record.work.out.display()
        )?;
        return Ok(());
    }
    if let Some(array) = &submission.array_job {
        outln!(
            "submitted array job {array}: shards {} of {}",
            compact_ranges(&submission.submitted_shards),
            record.shards
        )?;
    }
    match &submission.merge_job {
        Some(merge) => outln!("submitted merge job {merge}, after every shard not yet done")?,
        None => outln!(
            "merge job {} is queued or running",
            record.merge_job.as_deref().unwrap_or("-")
        )?,
    }
    outln!(
        "`brainrecon slurm status --jobs {}` shows progress",
        record.jobs.display()
    )?;
    Ok(())
}
