//! The Slurm client commands that submission, status and resume call: sbatch, scontrol, scancel, from PATH
//! (SLURM_CONF and the rest of the environment pass through).

use crate::usage;
use brainrecon_core::Result;
use std::path::Path;
use std::process::Command;

/// Runs `program args…` and returns its standard output; a missing program or a failure is a
/// clear error naming the command and what it printed.
fn run(program: &str, args: &[String]) -> Result<String> {
    let output = Command::new(program).args(args).output().map_err(|e| {
        usage(format!(
            "{program}: {e} (is this a Slurm login node? Slurm's client commands must be on PATH)"
        ))
    })?;
    if !output.status.success() {
        return Err(usage(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `sbatch --parsable [options] script` → the job id (without a cluster name).
pub fn sbatch(script: &Path, options: &[String]) -> Result<String> {
    let mut args = vec!["--parsable".to_string()];
    args.extend(options.iter().cloned());
    args.push(script.display().to_string());
    let out = run("sbatch", &args)?;
    let id = out.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(usage(format!(
            "sbatch {}: expected a job id, found '{}'",
            script.display(),
            out.trim()
        )));
    }
    Ok(id)
}

/// `--dependency=afterok:J1:J2…` on each job given (individual array tasks: with Slurm 22.05 an
/// `afterok` on a whole array is never satisfied again once one task failed, even after it was
/// resubmitted and succeeded).
pub fn after_ok(jobs: &[String]) -> Option<String> {
    (!jobs.is_empty()).then(|| format!("--dependency=afterok:{}", jobs.join(":")))
}

/// A job's state and reason as `scontrol show job -o` reports them; `None` when Slurm no
/// longer knows the job (purged after MinJobAge) or the query failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobState {
    /// `JobState`, e.g. PENDING, RUNNING, FAILED.
    pub state: String,
    /// `Reason`, e.g. DependencyNeverSatisfied (None when Slurm gives none).
    pub reason: String,
}

/// Whether a job in `state` is pending, running or on its way to either: it will still
/// produce its output.
pub fn alive(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESIZING"
            | "SUSPENDED"
            | "STOPPED"
            | "SIGNALING"
            | "STAGE_OUT"
    )
}

/// One field `Name=value` of `scontrol show job -o`'s one-line record.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// Parses the record of `scontrol show job -o ID`.
pub fn parse_job_state(text: &str) -> Option<JobState> {
    let line = text.lines().find(|l| l.contains("JobState="))?;
    Some(JobState {
        state: field(line, "JobState")?.to_string(),
        reason: field(line, "Reason").unwrap_or("None").to_string(),
    })
}

/// The state of job `id` (`scontrol show job -o`), or `None` when Slurm no longer knows it.
pub fn job_state(id: &str) -> Option<JobState> {
    let out = run(
        "scontrol",
        &["show".into(), "job".into(), "-o".into(), id.into()],
    )
    .ok()?;
    parse_job_state(&out)
}

/// Cancels job `id` (`scancel`).
pub fn cancel(id: &str) -> Result<()> {
    run("scancel", &[id.to_string()]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_and_reason() {
        let line = "JobId=2 JobName=wrap UserId=root(0) Priority=1 JobState=PENDING Reason=DependencyNeverSatisfied Dependency=afterok:1_1(failed)";
        let state = parse_job_state(line).unwrap();
        assert_eq!(state.state, "PENDING");
        assert_eq!(state.reason, "DependencyNeverSatisfied");
        assert!(alive(&state.state));
        assert!(parse_job_state("slurm_load_jobs error: Invalid job id specified").is_none());
        assert!(!alive("FAILED"));
    }
}
