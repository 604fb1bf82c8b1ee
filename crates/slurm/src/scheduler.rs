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

/// The state of job `id` (`scontrol show job -o`), or `None` when Slurm no longer knows it
/// (purged after MinJobAge: "Invalid job id specified"). Any other failure of the query (the
/// controller unreachable, a timeout) is an error: read as "no such job" it made a running
/// shard look finished or lost, and resume would have submitted it a second time.
pub fn job_state(id: &str) -> Result<Option<JobState>> {
    let args = ["show", "job", "-o", id];
    let output = Command::new("scontrol").args(args).output().map_err(|e| {
        usage(format!(
            "scontrol: {e} (is this a Slurm login node? Slurm's client commands must be on PATH)"
        ))
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    job_state_of(id, output.status.success(), &stdout, &stderr)
}

/// [`job_state`] from what scontrol printed and whether it succeeded.
fn job_state_of(id: &str, success: bool, stdout: &str, stderr: &str) -> Result<Option<JobState>> {
    if success {
        if let Some(state) = parse_job_state(stdout) {
            return Ok(Some(state));
        }
    }
    if stderr.contains("Invalid job id") || stdout.contains("Invalid job id") {
        return Ok(None);
    }
    Err(usage(format!(
        "`scontrol show job -o {id}` {}: {} (the job's state is unknown, so nothing was submitted or changed; try again when the controller answers)",
        if success { "printed no JobState" } else { "failed" },
        if stderr.trim().is_empty() { stdout.trim() } else { stderr.trim() }
    )))
}

/// The distinct nodes of the cluster (`sinfo -h -N -o %N`), None when sinfo cannot say.
pub fn node_count() -> Option<usize> {
    let out = run(
        "sinfo",
        &["-h".into(), "-N".into(), "-o".into(), "%N".into()],
    )
    .ok()?;
    let nodes: std::collections::BTreeSet<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Some(nodes.len())
}

/// Filesystems that several nodes mount as one (network and cluster filesystems).
const SHARED_FILESYSTEMS: [&str; 14] = [
    "nfs",
    "nfs4",
    "lustre",
    "gpfs",
    "beegfs",
    "ceph",
    "fuse.ceph",
    "cifs",
    "smb3",
    "glusterfs",
    "fuse.glusterfs",
    "panfs",
    "wekafs",
    "fuse.sshfs",
];

/// The type of the filesystem holding `path` (the longest mount point above it in
/// /proc/self/mounts), None where that cannot be read.
pub fn filesystem_of(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            // /proc/self/mounts writes a space in a mount point as \040.
            let point = point.replace("\\040", " ");
            path.starts_with(&point)
                .then(|| (point.len(), kind.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

/// A warning when the cluster has several nodes and `workdir` is on a filesystem only this
/// node sees (tasks on other nodes would not find their inputs, and their outputs would not
/// reach the merge).
pub fn shared_filesystem_warning(workdir: &Path) -> Option<String> {
    let nodes = node_count()?;
    let kind = filesystem_of(workdir)?;
    (nodes > 1 && !SHARED_FILESYSTEMS.contains(&kind.as_str())).then(|| {
        format!(
            "{} is on a {kind} filesystem, which the other {} nodes of this cluster may not see: tasks there would not find their inputs, nor the merge their outputs (submit from a shared filesystem, or keep the jobs on this node with --sbatch=--nodelist=NODE)",
            workdir.display(),
            nodes - 1
        )
    })
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

    #[test]
    fn the_filesystem_of_a_folder_is_its_deepest_mount() {
        let root = filesystem_of(Path::new("/")).expect("/proc/self/mounts lists /");
        assert!(!root.is_empty());
        assert_eq!(
            filesystem_of(Path::new("/proc/self")).as_deref(),
            Some("proc")
        );
        assert!(filesystem_of(Path::new("/no/such/folder")).is_none());
    }

    #[test]
    fn a_failed_query_is_not_a_finished_job() {
        let line = "JobId=7 JobState=RUNNING Reason=None";
        assert_eq!(
            job_state_of("7", true, line, "").unwrap().unwrap().state,
            "RUNNING"
        );
        let purged = "slurm_load_jobs error: Invalid job id specified";
        assert!(job_state_of("7", false, "", purged).unwrap().is_none());
        let down = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)";
        let err = job_state_of("7", false, "", down).unwrap_err().to_string();
        assert!(
            err.contains("scontrol show job -o 7") && err.contains("Unable to contact"),
            "{err}"
        );
        assert!(job_state_of("7", true, "garbage", "").is_err());
    }
}
