//! The lines `slurm submit`, `status` and `resume` print for people.

use crate::{Status, Submission, Submitted, Written};
use brainrecon_datasets::nsd::prepare::compact_ranges;
use std::fmt::Write;

impl Written {
    /// What was written and how to submit it.
    pub fn text(&self) -> String {
        format!(
            "wrote {} and {}; `brainrecon slurm resume --jobs {}` submits them\n",
            self.task_script.display(),
            self.merge_script.display(),
            self.jobs.display()
        )
    }
}

impl Submitted {
    /// As `slurm submit` prints it.
    pub fn text(&self) -> String {
        match self {
            Submitted::Written(written) => written.text(),
            Submitted::Submitted(submission) => submission.text(),
        }
    }
}

impl Status {
    /// A line of totals, then a table: one row per shard and one for the merge.
    pub fn text(&self) -> String {
        let mut text = String::new();
        let done = self.shards.iter().filter(|s| s.done).count();
        let _ = writeln!(
            text,
            "{} → {}: {done} of {} shards done; result {}",
            self.command,
            self.out.display(),
            self.shards.len(),
            match (self.done, self.then_done) {
                (true, true) => "merged",
                (true, false) => "merged; the `then` commands have not all succeeded yet",
                (false, _) => "not merged yet",
            }
        );
        let mut row = |first: &dyn std::fmt::Display, job: &str, state: &str, last: &str| {
            let _ = writeln!(text, "{first:>6}  {job:<14}  {state:<12}  {last}");
        };
        row(&"shard", "job", "state", "output");
        for s in &self.shards {
            row(
                &s.shard,
                s.job.as_deref().unwrap_or("-"),
                s.state.as_deref().unwrap_or("-"),
                if s.done { "done" } else { "missing" },
            );
        }
        row(
            &"merge",
            self.merge_job.as_deref().unwrap_or("-"),
            self.merge_state.as_deref().unwrap_or("-"),
            self.merge_reason.as_deref().unwrap_or(""),
        );
        text
    }
}

impl Submission {
    /// What was submitted, and how to follow it.
    pub fn text(&self) -> String {
        if self.done {
            return format!(
                "{}: already merged; nothing to submit\n",
                self.out.display()
            );
        }
        let mut text = String::new();
        if let Some(array) = &self.array_job {
            let _ = writeln!(
                text,
                "submitted array job {array}: shards {} of {}",
                compact_ranges(&self.submitted_shards),
                self.shards
            );
        }
        let _ = match &self.merge_job {
            Some(merge) if self.shards_done == self.shards && self.array_job.is_none() => {
                writeln!(
                    text,
                    "submitted merge job {merge}: the result is merged, the `then` commands run again"
                )
            }
            Some(merge) => writeln!(
                text,
                "submitted merge job {merge}, after every shard not yet done"
            ),
            None => writeln!(
                text,
                "merge job {} is queued or running",
                self.recorded_merge_job.as_deref().unwrap_or("-")
            ),
        };
        let _ = writeln!(
            text,
            "`brainrecon slurm status --jobs {}` shows progress",
            self.jobs.display()
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use crate::{ShardStatus, Status, Submission};
    use std::path::PathBuf;

    #[test]
    fn status_prints_a_row_per_shard_and_one_for_the_merge() {
        let shard = |k: usize, done: bool| ShardStatus {
            shard: k,
            job: Some(format!("7_{k}")),
            state: Some("COMPLETED".into()),
            reason: None,
            done,
        };
        let status = Status {
            jobs: "m.slurm".into(),
            command: "ridge fit".into(),
            out: "m".into(),
            shards: vec![shard(0, true), shard(1, false)],
            merge_job: None,
            merge_state: None,
            merge_reason: None,
            done: false,
            then_done: true,
        };
        assert_eq!(
            status.text(),
            "ridge fit → m: 1 of 2 shards done; result not merged yet\n \
             shard  job             state         output\n     \
             0  7_0             COMPLETED     done\n     \
             1  7_1             COMPLETED     missing\n \
             merge  -               -             \n"
        );
    }

    #[test]
    fn a_submission_says_what_went_in_and_how_to_follow_it() {
        let submission = Submission {
            jobs: PathBuf::from("r.slurm"),
            submitted_shards: vec![0, 1, 2, 5],
            array_job: Some("41".into()),
            merge_job: Some("42".into()),
            shards_done: 2,
            done: false,
            out: "r".into(),
            shards: 6,
            recorded_merge_job: Some("42".into()),
        };
        assert_eq!(
            submission.text(),
            "submitted array job 41: shards 0-2,5 of 6\n\
             submitted merge job 42, after every shard not yet done\n\
             `brainrecon slurm status --jobs r.slurm` shows progress\n"
        );
        let merged = Submission {
            done: true,
            ..submission
        };
        assert_eq!(merged.text(), "r: already merged; nothing to submit\n");
    }
}
