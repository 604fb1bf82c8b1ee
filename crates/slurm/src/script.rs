//! The batch scripts a submission writes: one for the array of shards, one for the step that
//! joins them. Plain bash a user can read and edit before `slurm resume` submits them.

use crate::work::{Work, WorkKind};
use std::fmt::Write;
use std::path::Path;

/// `#SBATCH` settings shared by the scripts.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time` of each task and of the merge, e.g. 2:00:00.
    pub time: Option<String>,
    /// `--mem` of each task and of the merge, e.g. 32G.
    pub mem: Option<String>,
    /// `--cpus-per-task` of each task and of the merge.
    pub cpus_per_task: Option<usize>,
    /// `--gres`, tasks only: the merge needs no GPU.
    pub gres: Option<String>,
    /// Seconds before the time limit at which Slurm sends SIGTERM to the task.
    pub signal_seconds: u32,
    /// Any other `#SBATCH` options, as written after `#SBATCH`.
    pub extra: Vec<String>,
}

/// `word` as one bash word: bare when it is only safe characters, else single-quoted.
pub fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `text` inside bash double quotes, followed by `expanded` unescaped (where
/// `$SLURM_ARRAY_TASK_ID` still expands).
fn double_quoted(text: &str, expanded: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push_str(expanded);
    quoted.push('"');
    quoted
}

fn header(name: &str, workdir: &Path, log: &Path, resources: &Resources, task: bool) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let mut line = |option: String| {
        let _ = writeln!(s, "#SBATCH {option}");
    };
    line(format!("--job-name={}", shell_word(name)));
    line(format!(
        "--chdir={}",
        shell_word(&workdir.display().to_string())
    ));
    // Append: a requeued or resubmitted task would otherwise truncate its own log.
    line(format!(
        "--output={}",
        shell_word(&log.display().to_string())
    ));
    line("--open-mode=append".into());
    if let Some(p) = &resources.partition {
        line(format!("--partition={}", shell_word(p)));
    }
    if let Some(a) = &resources.account {
        line(format!("--account={}", shell_word(a)));
    }
    if let Some(t) = &resources.time {
        line(format!("--time={}", shell_word(t)));
    }
    if let Some(m) = &resources.mem {
        line(format!("--mem={}", shell_word(m)));
    }
    if let Some(c) = resources.cpus_per_task {
        line(format!("--cpus-per-task={c}"));
    }
    if task {
        if let Some(g) = &resources.gres {
            line(format!("--gres={}", shell_word(g)));
        }
        // B: the signal goes to the batch shell, which exec'd brainrecon (so brainrecon gets
        // it), N s before the time limit; a preempted task is requeued, not cancelled.
        line(format!("--signal=B:TERM@{}", resources.signal_seconds));
        line("--requeue".into());
    }
    for extra in &resources.extra {
        line(extra.clone());
    }
    s
}

/// The array script: task k runs shard k of `shards` (the count written out, since a task
/// resubmitted alone sees SLURM_ARRAY_TASK_COUNT = 1).
pub fn task_script(
    work: &Work,
    binary: &Path,
    workdir: &Path,
    jobs: &Path,
    shards: usize,
    resources: &Resources,
) -> String {
    let log = jobs.join("logs").join("task-%a.log");
    let mut s = header(
        &format!("brainrecon-{}", work.kind.name().replace(' ', "-")),
        workdir,
        &log,
        resources,
        true,
    );
    let _ = writeln!(
        s,
        "#SBATCH --array=0-{}\n\nset -euo pipefail\necho \"$(date -u +%FT%TZ) shard $SLURM_ARRAY_TASK_ID/{shards} on $(hostname), job $SLURM_JOB_ID\"",
        shards - 1
    );
    // Without cgroups nothing keeps a task to the CPUs it was given; the matrix products'
    // thread pool then does, and always: Slurm gives one CPU a task unless --cpus-per-task
    // says otherwise, so a result never depends on the core count of the node it ran on.
    s.push_str("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n");
    let mut words = vec![shell_word(&binary.display().to_string())];
    words.extend(work.command_words().iter().map(|w| shell_word(w)));
    words.extend(work.args.iter().map(|w| shell_word(w)));
    // The BIDS App's OUTPUT_DIR is positional, among the arguments already.
    let out = match work.kind {
        WorkKind::RidgeFit => Some(double_quoted(
            &jobs.join("shards").display().to_string(),
            "/$SLURM_ARRAY_TASK_ID",
        )),
        WorkKind::Reconstruct => Some(shell_word(&work.out.display().to_string())),
        // --group is among the arguments; the statistics go to its work folder.
        WorkKind::BidsApp | WorkKind::GroupFit => None,
    };
    if let Some(out) = out {
        words.extend(["--out".to_string(), out]);
    }
    let _ = writeln!(
        s,
        "# exec: brainrecon itself receives Slurm's signals\nexec {} --shard \"$SLURM_ARRAY_TASK_ID/{shards}\"",
        words.join(" ")
    );
    s
}

/// The dependent step: the merge, then each `then` command (brainrecon's arguments as the
/// user wrote them, e.g. `eval --stimuli prepared/subj01 --recons recons/linear`).
pub fn merge_script(
    work: &Work,
    binary: &Path,
    workdir: &Path,
    jobs: &Path,
    shards: usize,
    then: &[String],
    resources: &Resources,
) -> String {
    let log = jobs.join("logs").join("merge.log");
    let mut s = header("brainrecon-merge", workdir, &log, resources, false);
    let bin = shell_word(&binary.display().to_string());
    let merge: Vec<String> = work
        .merge_args(jobs, shards)
        .iter()
        .map(|w| shell_word(w))
        .collect();
    let _ = writeln!(
        s,
        "\nset -euo pipefail\necho \"$(date -u +%FT%TZ) merging {shards} shards on $(hostname), job $SLURM_JOB_ID\""
    );
    // The merge is idempotent (a merged result is merged again, or left as it is), so when a
    // `then` command failed, `slurm resume` runs this script again; the marker written after
    // the last of them tells it they all succeeded.
    let mut steps = vec![format!("{bin} {}", merge.join(" "))];
    steps.extend(then.iter().map(|step| format!("{bin} {step}")));
    if then.is_empty() {
        let _ = writeln!(s, "exec {}", steps[0]);
        return s;
    }
    for step in &steps {
        let _ = writeln!(s, "{step}");
    }
    let marker = jobs.join(crate::THEN_DONE).display().to_string();
    let _ = writeln!(s, "touch {}", shell_word(&marker));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_script_execs_with_an_explicit_count_and_appends() {
        let work = Work::parse(
            &"ridge fit --x a b.npy --y Y.npy --out model"
                .split(' ')
                .map(String::from)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let resources = Resources {
            gres: Some("gpu:1".into()),
            signal_seconds: 90,
            ..Resources::default()
        };
        let s = task_script(
            &work,
            Path::new("/opt/brainrecon"),
            Path::new("/home/u/exp"),
            Path::new("/home/u/exp/jobs $x"),
            8,
            &resources,
        );
        assert!(s.contains("#SBATCH --array=0-7\n"), "{s}");
        assert!(s.contains("#SBATCH --open-mode=append\n"));
        assert!(s.contains("#SBATCH --signal=B:TERM@90\n"));
        assert!(s.contains("#SBATCH --gres=gpu:1\n"));
        assert!(s.contains(
            "exec /opt/brainrecon ridge fit --x a b.npy --y Y.npy --out \"/home/u/exp/jobs \\$x/shards/$SLURM_ARRAY_TASK_ID\" --shard \"$SLURM_ARRAY_TASK_ID/8\"\n"
        ), "{s}");
        let m = merge_script(
            &work,
            Path::new("/opt/brainrecon"),
            Path::new("/home/u/exp"),
            Path::new("jobs"),
            2,
            &["ridge score --model model".into()],
            &resources,
        );
        assert!(!m.contains("--gres"), "{m}");
        assert!(m.contains("\n/opt/brainrecon ridge merge --models jobs/shards/0 jobs/shards/1 --out model\n/opt/brainrecon ridge score --model model\ntouch jobs/then.done\n"), "{m}");
    }

    #[test]
    fn group_fit_tasks_write_statistics_and_the_merge_fits() {
        let command: Vec<String> = "group fit --group grp --k 1024"
            .split(' ')
            .map(String::from)
            .collect();
        let work = Work::parse(&command).unwrap();
        let resources = Resources::default();
        let (bin, dir, jobs) = (
            Path::new("/opt/brainrecon"),
            Path::new("/home/u/exp"),
            Path::new("jobs"),
        );
        let s = task_script(&work, bin, dir, jobs, 7, &resources);
        assert!(s.contains("#SBATCH --array=0-6\n"), "{s}");
        assert!(
            s.contains("exec /opt/brainrecon group fit --group grp --k 1024 --shard \"$SLURM_ARRAY_TASK_ID/7\"\n"),
            "{s}"
        );
        let m = merge_script(&work, bin, dir, jobs, 7, &[], &resources);
        assert!(
            m.contains("exec /opt/brainrecon group fit --group grp --k 1024 --merge\n"),
            "{m}"
        );
    }

    #[test]
    fn shell_words_survive_bash() {
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("a/b_c-1.npy"), "a/b_c-1.npy");
    }
}
