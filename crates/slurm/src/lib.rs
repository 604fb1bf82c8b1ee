//! A sharded `ridge fit`, `reconstruct`, `group fit` or BIDS App participant level as a Slurm
//! job array and the dependent merge, resumable after any task dies.
//!
//! - [`submit`] writes JOBS/task.sbatch (the array: task k `exec`s the command with
//!   `--shard k/N`), JOBS/merge.sbatch (`ridge merge` or `reconstruct merge`, then each `then`
//!   command), logs under JOBS/logs/ and JOBS/slurm.json (the record of what was submitted), then
//!   submits both, the merge waiting on each task by id;
//! - [`status`] reads which shards are done (from their files) and what Slurm says of each job;
//! - [`resume`] resubmits only the shards neither done nor queued, and a merge that waits for them.
//!
//! The scripts are plain bash ([`script`]); what a sharded command is and how to tell a
//! finished shard is [`work`]; the Slurm client commands are [`scheduler`].

#![warn(missing_docs)]

mod report;
pub mod scheduler;
pub mod script;
pub mod work;

use brainrecon_core::fs::{read_json, write_bytes_atomic, write_json_atomic};
use brainrecon_core::{DataError, Result};
use brainrecon_datasets::nsd::prepare::compact_ranges;
use script::Resources;
use std::path::{Path, PathBuf};
use work::Work;

/// A wrong argument or an unusable submission folder: the user's to fix (exit status 2).
pub(crate) fn usage(message: impl Into<String>) -> DataError {
    DataError::Usage(message.into())
}

const FORMAT: &str = "brainrecon-slurm-jobs";
const RECORD_FILE: &str = "slurm.json";

/// What to submit: the command to shard and how to run its tasks.
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// The command to shard, brainrecon's arguments: `ridge fit …` or `reconstruct …`, with its
    /// `--out`.
    pub command: Vec<String>,
    /// Number of shards: array tasks 0 … N-1.
    pub shards: usize,
    /// Folder for the scripts, logs and the record (relative to `workdir`); `None`: OUT.slurm
    /// beside the command's --out.
    pub jobs: Option<PathBuf>,
    /// `#SBATCH` settings of the tasks and the merge.
    pub resources: Resources,
    /// brainrecon commands run after the merge in the same job.
    pub then: Vec<String>,
    /// The brainrecon program the tasks run.
    pub binary: PathBuf,
    /// The folder the command was given in; the scripts run there (relative paths hold).
    pub workdir: PathBuf,
    /// Write the scripts and the record without submitting ([`resume`] submits).
    pub dry_run: bool,
}

/// JOBS/slurm.json: what was submitted, so that status and resume need only the folder.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobsRecord {
    format: String,
    /// The sharded command.
    pub work: Work,
    /// Number of shards.
    pub shards: usize,
    /// The folder the command was given in; the scripts run there (relative paths hold).
    pub workdir: PathBuf,
    /// The submission's folder.
    pub jobs: PathBuf,
    /// The brainrecon program the tasks run.
    pub binary: PathBuf,
    /// brainrecon commands run after the merge.
    pub then: Vec<String>,
    /// `#SBATCH` settings.
    pub resources: Resources,
    /// The Slurm job id (`ARRAY_K`) running or last run for each shard.
    pub tasks: Vec<Option<String>>,
    /// The merge's job id, once submitted.
    pub merge_job: Option<String>,
}

impl JobsRecord {
    /// Reads JOBS/slurm.json, refusing a folder `submit` did not write.
    pub fn load(jobs: &Path) -> Result<Self> {
        let path = jobs.join(RECORD_FILE);
        if !path.is_file() {
            return Err(usage(format!(
                "{}: missing (not a folder written by `brainrecon slurm submit`)",
                path.display()
            )));
        }
        let record: JobsRecord = read_json(&path)?;
        if !same_folder(jobs, &record.jobs) {
            // Its scripts `cd` to the recorded paths: run from here they would write (and
            // resume would recreate) the old folder, losing edits made to the scripts here.
            return Err(usage(format!(
                "{}: jobs: recorded at {}, found at {}: the folder was moved, and its scripts and record name the old place; move it back, or submit again from here (`brainrecon slurm submit …` with the same command)",
                path.display(),
                record.jobs.display(),
                jobs.display()
            )));
        }
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

    fn save(&self) -> Result<()> {
        write_json_atomic(&self.jobs.join(RECORD_FILE), self)
    }

    /// JOBS/task.sbatch, the array script.
    pub fn task_script(&self) -> PathBuf {
        self.jobs.join("task.sbatch")
    }

    /// JOBS/merge.sbatch, the dependent merge.
    pub fn merge_script(&self) -> PathBuf {
        self.jobs.join("merge.sbatch")
    }

    fn write_scripts(&self) -> Result<()> {
        let logs = self.jobs.join("logs");
        std::fs::create_dir_all(&logs)
            .map_err(|e| usage(format!("{}: cannot create: {e}", logs.display())))?;
        let task = script::task_script(
            &self.work,
            &self.binary,
            &self.workdir,
            &self.jobs,
            self.shards,
            &self.resources,
        );
        let merge = script::merge_script(
            &self.work,
            &self.binary,
            &self.workdir,
            &self.jobs,
            self.shards,
            &self.then,
            &self.resources,
        );
        write_bytes_atomic(&self.task_script(), task.as_bytes())?;
        write_bytes_atomic(&self.merge_script(), merge.as_bytes())
    }
}

/// Whether `a` and `b` name one folder (both resolved; a missing `b` is another folder).
fn same_folder(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// JOBS/then.done, written by the merge script once every `then` command succeeded.
pub(crate) const THEN_DONE: &str = "then.done";

/// Seconds of a Slurm `--time`: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS
/// (None for what Slurm would read otherwise, e.g. UNLIMITED).
pub fn time_seconds(time: &str) -> Option<u64> {
    let number = |t: &str| t.parse::<u64>().ok();
    let (days, rest) = match time.split_once('-') {
        Some((d, rest)) => (number(d)?, rest),
        None => (0, time),
    };
    let parts: Vec<u64> = rest.split(':').map(number).collect::<Option<_>>()?;
    let seconds = match (time.contains('-'), parts.as_slice()) {
        (false, [m]) => m * 60,
        (false, [m, s]) => m * 60 + s,
        (_, [h, m, s]) => h * 3600 + m * 60 + s,
        (true, [h]) => h * 3600,
        (true, [h, m]) => h * 3600 + m * 60,
        _ => return None,
    };
    Some(days * 86_400 + seconds)
}

/// What is checked before anything is written or submitted: the signal before the time
/// limit, and the command's inputs (each task would fail alone, and the merge wait forever).
fn check_submission(options: &SubmitOptions, work: &Work) -> Result<()> {
    if let Some(time) = &options.resources.time {
        let seconds = time_seconds(time).ok_or_else(|| {
            usage(format!(
                "--time: expected minutes, MM:SS, HH:MM:SS or D-HH[:MM[:SS]], found {time}"
            ))
        })?;
        if u64::from(options.resources.signal_seconds) >= seconds {
            return Err(usage(format!(
                "--signal-seconds {} is not below --time {time} ({seconds} s): each task would be told to stop as it starts, and requeued without end",
                options.resources.signal_seconds
            )));
        }
    }
    work.check_inputs(&options.workdir, options.shards)
}

/// What [`submit`] did with `dry_run` on: the scripts written, nothing submitted. (Fields in
/// alphabetical order: the JSON the command printed before this was a struct.)
#[derive(Debug, serde::Serialize)]
pub struct Written {
    /// The submission's folder.
    pub jobs: PathBuf,
    /// JOBS/merge.sbatch.
    pub merge_script: PathBuf,
    /// Always false.
    pub submitted: bool,
    /// JOBS/task.sbatch.
    pub task_script: PathBuf,
}

/// What [`submit`] did; as JSON, the variant's own fields.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Submitted {
    /// `dry_run`: the scripts and the record are written.
    Written(Written),
    /// The array and the merge are submitted.
    Submitted(Submission),
}

/// Writes the scripts and the record of a new submission in its folder, then (unless
/// `dry_run`) submits the array and the merge.
pub fn submit(options: &SubmitOptions) -> Result<Submitted> {
    let work = Work::parse(&options.command)?;
    if options.shards == 0 {
        return Err(usage("--shards: expected at least 1"));
    }
    check_submission(options, &work)?;
    let workdir = options.workdir.clone();
    let jobs = workdir.join(options.jobs.clone().unwrap_or_else(|| {
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
    let jobs_existed = jobs.exists();
    let record = JobsRecord {
        format: FORMAT.into(),
        shards: options.shards,
        workdir,
        jobs,
        binary: options.binary.clone(),
        then: options.then.clone(),
        resources: options.resources.clone(),
        tasks: vec![None; options.shards],
        merge_job: None,
        work,
    };
    record.write_scripts()?;
    record.save()?;
    if options.dry_run {
        return Ok(Submitted::Written(Written {
            jobs: record.jobs.clone(),
            merge_script: record.merge_script(),
            submitted: false,
            task_script: record.task_script(),
        }));
    }
    let jobs = record.jobs.clone();
    match submit_missing(record) {
        Ok(submission) => Ok(Submitted::Submitted(submission)),
        Err(e) => {
            // Refused before anything was queued (a rejected --partition, --account): nothing
            // to resume, so the record goes and the same submit can be run again.
            let queued = JobsRecord::load(&jobs)
                .map(|r| r.tasks.iter().any(Option::is_some) || r.merge_job.is_some())
                .unwrap_or(true);
            if !queued {
                if jobs_existed {
                    let _ = std::fs::remove_file(jobs.join(RECORD_FILE));
                } else {
                    let _ = std::fs::remove_dir_all(&jobs);
                }
            }
            Err(e)
        }
    }
}

/// Resubmits the shards of the submission in `jobs` that are neither done nor queued, and a
/// merge that waits for them. The scripts are the user's to edit; they are written again only
/// when missing.
pub fn resume(jobs: &Path) -> Result<Submission> {
    let record = JobsRecord::load(jobs)?;
    if !record.task_script().is_file() || !record.merge_script().is_file() {
        record.write_scripts()?;
    }
    submit_missing(record)
}

/// One shard as status reports it.
#[derive(Debug, serde::Serialize)]
pub struct ShardStatus {
    /// The shard's index k.
    pub shard: usize,
    /// The Slurm job id that ran or runs it.
    pub job: Option<String>,
    /// Slurm's state of that job (None: never submitted, or Slurm forgot it).
    pub state: Option<String>,
    /// Slurm's reason for that state.
    pub reason: Option<String>,
    /// Its output is complete.
    pub done: bool,
}

/// The state of a submission: each shard's, and the merge's.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    /// The submission's folder.
    pub jobs: PathBuf,
    /// The sharded command's name (`ridge fit`, `reconstruct`).
    pub command: String,
    /// The command's --out.
    pub out: PathBuf,
    /// Every shard.
    pub shards: Vec<ShardStatus>,
    /// The merge's job id.
    pub merge_job: Option<String>,
    /// Slurm's state of the merge job.
    pub merge_state: Option<String>,
    /// Slurm's reason for that state.
    pub merge_reason: Option<String>,
    /// The merged result is there.
    pub done: bool,
    /// Every `then` command succeeded (true when there are none).
    pub then_done: bool,
}

/// Which shards of the submission in `jobs` are done, and what Slurm says of each job.
pub fn status(jobs: &Path) -> Result<Status> {
    current_status(&JobsRecord::load(jobs)?)
}

fn current_status(record: &JobsRecord) -> Result<Status> {
    // a merged result counts every shard done (a merged reconstruction has no shards left)
    let merged = record.work.result_done(&record.workdir);
    let state_of = |job: Option<&str>| job.map(scheduler::job_state).transpose();
    let shards = (0..record.shards)
        .map(|k| {
            let job = record.tasks[k].clone();
            let state = state_of(job.as_deref())?.flatten();
            Ok(ShardStatus {
                shard: k,
                done: merged
                    || record
                        .work
                        .shard_done(&record.workdir, &record.jobs, k, record.shards),
                state: state.as_ref().map(|s| s.state.clone()),
                reason: state.map(|s| s.reason),
                job,
            })
        })
        .collect::<Result<_>>()?;
    let merge = state_of(record.merge_job.as_deref())?.flatten();
    Ok(Status {
        jobs: record.jobs.clone(),
        command: record.work.kind.name().into(),
        out: record.work.out.clone(),
        shards,
        merge_job: record.merge_job.clone(),
        merge_state: merge.as_ref().map(|s| s.state.clone()),
        merge_reason: merge.map(|s| s.reason),
        done: merged,
        then_done: record.then.is_empty() || record.jobs.join(THEN_DONE).is_file(),
    })
}

/// What one submit or resume did.
#[derive(Debug, serde::Serialize)]
pub struct Submission {
    /// The submission's folder.
    pub jobs: PathBuf,
    /// Shards submitted now, and the array job that runs them.
    pub submitted_shards: Vec<usize>,
    /// The array job submitted now.
    pub array_job: Option<String>,
    /// The merge job submitted now (None: the one queued still waits for the right tasks, or
    /// the result is already there).
    pub merge_job: Option<String>,
    /// Shards done.
    pub shards_done: usize,
    /// The result is merged.
    pub done: bool,
    /// The sharded command's --out.
    #[serde(skip)]
    pub out: PathBuf,
    /// Number of shards.
    #[serde(skip)]
    pub shards: usize,
    /// The merge job recorded after this call (submitted now or before).
    #[serde(skip)]
    pub recorded_merge_job: Option<String>,
}

/// Submits the shards neither done nor queued as one array, and a merge that waits for every
/// shard not done; a queued merge waiting on other jobs is cancelled first.
fn submit_missing(mut record: JobsRecord) -> Result<Submission> {
    let status = current_status(&record)?;
    let alive = |state: &Option<String>| state.as_deref().is_some_and(scheduler::alive);
    let mut submission = Submission {
        jobs: record.jobs.clone(),
        submitted_shards: Vec::new(),
        array_job: None,
        merge_job: None,
        shards_done: status.shards.iter().filter(|s| s.done).count(),
        done: status.done && status.then_done,
        out: record.work.out.clone(),
        shards: record.shards,
        recorded_merge_job: None,
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
    if status.done && !status.then_done && !alive(&status.merge_state) {
        // Merged, but a `then` command failed: the merge script runs them again (it skips
        // the merge, whose result is there).
        let merge = scheduler::sbatch(&record.merge_script(), &[])?;
        record.merge_job = Some(merge.clone());
        submission.merge_job = Some(merge);
        record.save()?;
    }
    submission.recorded_merge_job = record.merge_job.clone();
    Ok(submission)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options of a dry run in `dir`, where the inputs the tests' commands name exist.
    fn options(dir: &Path, command: &str) -> SubmitOptions {
        std::fs::create_dir_all(dir.join("s")).unwrap();
        for name in ["X.npy", "Y.npy", "X", "Y"] {
            brainrecon_formats::npy::write(&dir.join(name), &[4, 3], &[0f32; 12]).unwrap();
        }
        SubmitOptions {
            command: command.split(' ').map(String::from).collect(),
            shards: 3,
            jobs: None,
            resources: Resources {
                partition: Some("gpu".into()),
                signal_seconds: 120,
                ..Resources::default()
            },
            then: vec!["eval --stimuli s --recons r".into()],
            binary: PathBuf::from("/opt/brainrecon"),
            workdir: dir.to_path_buf(),
            dry_run: true,
        }
    }

    #[test]
    fn a_dry_run_writes_scripts_and_a_record_that_resume_reads() {
        let dir = tempfile::tempdir().unwrap();
        let submitted = submit(&options(dir.path(), "reconstruct --subject s --out r")).unwrap();
        let Submitted::Written(written) = submitted else {
            panic!("a dry run submits nothing")
        };
        assert_eq!(written.jobs, dir.path().join("r.slurm"));
        let task = std::fs::read_to_string(&written.task_script).unwrap();
        assert!(task.contains("#SBATCH --array=0-2\n"), "{task}");
        assert!(task.contains("#SBATCH --partition=gpu\n"), "{task}");
        assert!(task.ends_with(
            "exec /opt/brainrecon reconstruct --subject s --out r --shard \"$SLURM_ARRAY_TASK_ID/3\"\n"
        ));
        let merge = std::fs::read_to_string(&written.merge_script).unwrap();
        assert!(merge.ends_with(&format!(
            "\n/opt/brainrecon reconstruct merge --out r\n/opt/brainrecon eval --stimuli s --recons r\ntouch {}\n",
            written.jobs.join("then.done").display()
        )), "{merge}");
        assert!(written.jobs.join("logs").is_dir());

        let record = JobsRecord::load(&written.jobs).unwrap();
        assert_eq!(record.shards, 3);
        assert_eq!(record.tasks, vec![None; 3]);
        // A second submission into the same folder is refused.
        let again = submit(&options(dir.path(), "reconstruct --subject s --out r")).unwrap_err();
        assert!(again.to_string().contains("already recorded"), "{again}");
    }

    #[test]
    fn status_reads_finished_ridge_shards_from_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let Submitted::Written(written) = submit(&options(
            dir.path(),
            "ridge fit --x X.npy --y Y.npy --out model",
        ))
        .unwrap() else {
            panic!("a dry run submits nothing")
        };
        let shard = written.jobs.join("shards").join("1");
        std::fs::create_dir_all(&shard).unwrap();
        std::fs::write(shard.join(brainrecon_ridge::MODEL_FILE), b"{}").unwrap();
        let status = status(&written.jobs).unwrap();
        let done: Vec<bool> = status.shards.iter().map(|s| s.done).collect();
        assert_eq!(done, [false, true, false]);
        assert_eq!(status.command, "ridge fit");
        assert!(!status.done);
        assert!(status.shards.iter().all(|s| s.job.is_none()));
    }

    #[test]
    fn slurm_times_are_read_as_slurm_reads_them() {
        for (text, seconds) in [
            ("90", 5_400),
            ("10:30", 630),
            ("2:00:00", 7_200),
            ("1-12", 129_600),
            ("1-0:30", 88_200),
            ("2-01:02:03", 176_523),
        ] {
            assert_eq!(time_seconds(text), Some(seconds), "{text}");
        }
        for text in ["UNLIMITED", "", "1:2:3:4", "-5", "1-"] {
            assert_eq!(time_seconds(text), None, "{text}");
        }
    }

    #[test]
    fn what_each_task_would_find_alone_is_refused_at_submit() {
        let dir = tempfile::tempdir().unwrap();
        let mut late = options(dir.path(), "ridge fit --x X.npy --y Y.npy --out m");
        late.resources.time = Some("2:00".into());
        let err = submit(&late).unwrap_err().to_string();
        assert!(
            err.contains("--signal-seconds 120") && err.contains("--time 2:00"),
            "{err}"
        );
        let mut many = options(dir.path(), "ridge fit --x X.npy --y Y.npy --out m");
        many.shards = 4;
        let err = submit(&many).unwrap_err().to_string();
        assert!(
            err.contains("--shards 4") && err.contains("3 targets"),
            "{err}"
        );
        let missing = options(dir.path(), "ridge fit --x X.npy --y nothing.npy --out m");
        let err = submit(&missing).unwrap_err().to_string();
        assert!(err.contains("nothing.npy") && err.contains("--y"), "{err}");
        let subject = options(dir.path(), "reconstruct --subject=gone --out r");
        let err = submit(&subject).unwrap_err().to_string();
        assert!(err.contains("gone") && err.contains("--subject"), "{err}");
        // Nothing was written for any of them.
        assert!(!dir.path().join("m.slurm").exists() && !dir.path().join("r.slurm").exists());
    }

    #[test]
    fn a_moved_submission_folder_is_refused_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let Submitted::Written(written) = submit(&options(
            dir.path(),
            "ridge fit --x X.npy --y Y.npy --out model",
        ))
        .unwrap() else {
            panic!("a dry run submits nothing")
        };
        let moved = dir.path().join("elsewhere.slurm");
        std::fs::rename(&written.jobs, &moved).unwrap();
        for err in [resume(&moved).unwrap_err(), status(&moved).unwrap_err()] {
            let text = err.to_string();
            assert!(
                text.contains("moved")
                    && text.contains("model.slurm")
                    && text.contains("elsewhere.slurm"),
                "{text}"
            );
        }
        assert!(!written.jobs.exists(), "the old folder was recreated");
    }

    #[test]
    fn bad_submissions_are_refused_as_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut zero = options(dir.path(), "ridge fit --x X --y Y --out m");
        zero.shards = 0;
        assert!(matches!(submit(&zero), Err(DataError::Usage(_))));
        let missing = JobsRecord::load(dir.path()).unwrap_err();
        assert!(matches!(missing, DataError::Usage(_)), "{missing}");
        assert!(missing.to_string().contains("slurm.json: missing"));
    }
}
