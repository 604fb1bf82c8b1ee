//! What a sharded job is: the command given to `slurm submit`, how each task runs a shard of
//! it, how the shards are joined, and how to tell from the files which shards are done.

use crate::usage;
use brainrecon_core::Result;
use brainrecon_routes::linear::Manifest;
use std::path::{Path, PathBuf};

/// The commands that split into shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkKind {
    /// `ridge fit`: each task fits a range of targets into `<jobs>/shards/<k>`; `ridge merge`.
    RidgeFit,
    /// `reconstruct`: each task draws a slice of the test images into --out; `reconstruct
    /// merge`.
    Reconstruct,
    /// `bids-app BIDS_DIR OUTPUT_DIR participant`: each task runs its share of the participants
    /// into OUTPUT_DIR; the group level joins them.
    BidsApp,
    /// `group fit --method shared`: each task writes the statistics of its share of the
    /// subjects into the work folder; `group fit --merge` fits the space from them.
    GroupFit,
}

impl WorkKind {
    /// The command's name as typed after `brainrecon`.
    pub fn name(self) -> &'static str {
        match self {
            WorkKind::RidgeFit => "ridge fit",
            WorkKind::Reconstruct => "reconstruct",
            WorkKind::BidsApp => "bids-app",
            WorkKind::GroupFit => "group fit",
        }
    }
}

/// A command to shard: its kind, its arguments after the command's name, and its --out (the
/// BIDS App: its OUTPUT_DIR, kept among the arguments too, which are positional there; `group
/// fit`: its --group, kept among the arguments too).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Work {
    /// Which command.
    pub kind: WorkKind,
    /// The arguments after `ridge fit` or `reconstruct`, without --out.
    pub args: Vec<String>,
    /// The command's --out.
    pub out: PathBuf,
}

impl Work {
    /// `ridge fit ARGS…` or `reconstruct ARGS…`, with an --out and no --shard of its own, or
    /// `bids-app BIDS_DIR OUTPUT_DIR participant ARGS…`.
    pub fn parse(command: &[String]) -> Result<Self> {
        if let [app, rest @ ..] = command {
            if app == "bids-app" {
                return Self::parse_bids_app(rest);
            }
        }
        if let [group, fit, rest @ ..] = command {
            if group == "group" && fit == "fit" {
                return Self::parse_group_fit(rest);
            }
        }
        let (kind, rest) = match command {
            [ridge, fit, rest @ ..] if ridge == "ridge" && fit == "fit" => {
                (WorkKind::RidgeFit, rest)
            }
            [reconstruct, rest @ ..] if reconstruct == "reconstruct" => {
                (WorkKind::Reconstruct, rest)
            }
            _ => {
                return Err(usage(format!(
                    "slurm submit: expected `-- ridge fit ARGS`, `-- reconstruct ARGS`, \
                     `-- group fit ARGS` or `-- bids-app BIDS_DIR OUTPUT_DIR participant ARGS` \
                     (the commands that split into shards), found `{}`",
                    command.join(" ")
                )))
            }
        };
        let mut args = Vec::with_capacity(rest.len());
        let mut out = None;
        let mut words = rest.iter();
        while let Some(word) = words.next() {
            if word == "--shard" || word.starts_with("--shard=") {
                return Err(usage(
                    "slurm submit: leave --shard out of the command; each task gets its own",
                ));
            }
            if word == "--out" {
                out = words.next().cloned();
            } else if let Some(value) = word.strip_prefix("--out=") {
                out = Some(value.to_string());
            } else {
                args.push(word.clone());
            }
        }
        let out = out
            .filter(|o| !o.is_empty())
            .ok_or_else(|| usage(format!("slurm submit: `{}` needs --out", kind.name())))?;
        Ok(Work {
            kind,
            args,
            out: PathBuf::from(out),
        })
    }

    /// `BIDS_DIR OUTPUT_DIR participant ARGS…`: one participant level over the array.
    fn parse_bids_app(rest: &[String]) -> Result<Self> {
        let positional: Vec<&String> = rest.iter().filter(|w| !w.starts_with('-')).collect();
        if rest
            .iter()
            .any(|w| w == "--shard" || w.starts_with("--shard="))
        {
            return Err(usage(
                "slurm submit: leave --shard out of the command; each task gets its own",
            ));
        }
        match (rest.first(), rest.get(1), rest.get(2)) {
            (Some(_), Some(out), Some(level))
                if level == "participant" && positional.len() >= 3 && !out.starts_with('-') =>
            {
                Ok(Work {
                    kind: WorkKind::BidsApp,
                    args: rest.to_vec(),
                    out: PathBuf::from(out),
                })
            }
            _ => Err(usage(format!(
                "slurm submit: expected `-- bids-app BIDS_DIR OUTPUT_DIR participant [OPTIONS]` \
                 (the participant level splits over the array; the group level follows it), \
                 found `bids-app {}`",
                rest.join(" ")
            ))),
        }
    }

    /// `group fit ARGS…` with a --group and neither --shard nor --merge: each task writes its
    /// subjects' statistics, the merge fits the space.
    fn parse_group_fit(rest: &[String]) -> Result<Self> {
        for word in rest {
            let flag = word.split('=').next().unwrap_or(word);
            if flag == "--shard" || flag == "--merge" {
                return Err(usage(format!(
                    "slurm submit: leave {flag} out of `group fit`; each task gets its own \
                     --shard and the merge job runs --merge"
                )));
            }
        }
        let work = Work {
            kind: WorkKind::GroupFit,
            args: rest.to_vec(),
            out: PathBuf::new(),
        };
        let group = work
            .value_of("--group")
            .filter(|g| !g.is_empty())
            .ok_or_else(|| usage("slurm submit: `group fit` needs --group"))?
            .to_string();
        Ok(Work {
            out: PathBuf::from(group),
            ..work
        })
    }

    /// `group fit`'s space name (--name, else the method's) and its work folder (--work, else
    /// GROUP/stats/NAME), relative to `workdir`.
    fn group_fit_work(&self, workdir: &Path) -> (String, PathBuf) {
        let name = self
            .value_of("--name")
            .or(self.value_of("--method"))
            .unwrap_or("shared")
            .to_string();
        let group = workdir.join(&self.out);
        let work = match self.value_of("--work") {
            Some(w) => workdir.join(w),
            None => brainrecon_routes::group::fit::default_work_dir(&group, &name),
        };
        (name, work)
    }

    /// The value of `--flag` (or `--flag=value`) among the command's arguments.
    fn value_of(&self, flag: &str) -> Option<&str> {
        let mut words = self.args.iter();
        while let Some(word) = words.next() {
            if word == flag {
                return words.next().map(String::as_str);
            }
            if let Some(value) = word.strip_prefix(flag).and_then(|v| v.strip_prefix('=')) {
                return Some(value);
            }
        }
        None
    }

    /// Checks at submit time what each task would otherwise find alone: the input files
    /// exist (relative to `workdir`), and a ridge fit has at least one target per shard.
    pub fn check_inputs(&self, workdir: &Path, shards: usize) -> Result<()> {
        let inputs: &[&str] = match self.kind {
            WorkKind::RidgeFit => &["--x", "--y", "--groups"],
            WorkKind::Reconstruct => &["--subject"],
            WorkKind::BidsApp => {
                let description = workdir.join(&self.args[0]).join("dataset_description.json");
                if !description.is_file() {
                    return Err(brainrecon_core::DataError::Missing {
                        path: description,
                        what: "BIDS_DIR's dataset_description.json (each task reads the \
                               dataset; checked before submitting)"
                            .into(),
                    });
                }
                &[]
            }
            WorkKind::GroupFit => {
                let meta = brainrecon_routes::group::GroupMeta::read(&workdir.join(&self.out))
                    .map_err(|e| usage(format!("--group of `group fit`: {e}")))?;
                if shards > meta.subjects.len() {
                    return Err(usage(format!(
                        "--shards {shards}: the group {} has {} subjects, so at most {} shards \
                         of at least one subject each",
                        self.out.display(),
                        meta.subjects.len(),
                        meta.subjects.len()
                    )));
                }
                &[]
            }
        };
        for flag in inputs {
            if let Some(value) = self.value_of(flag) {
                let path = workdir.join(value);
                if !path.exists() {
                    return Err(brainrecon_core::DataError::Missing {
                        path,
                        what: format!(
                            "{flag} of `{}` (each task reads it; checked before submitting)",
                            self.kind.name()
                        ),
                    });
                }
            }
        }
        if let (WorkKind::RidgeFit, Some(y)) = (self.kind, self.value_of("--y")) {
            let path = workdir.join(y);
            let header = brainrecon_formats::npy::read_header(&path)?;
            let targets = match header.shape.as_slice() {
                [_] => 1,
                [_, t] => *t,
                _ => 0,
            };
            if targets > 0 && shards > targets {
                return Err(usage(format!(
                    "--shards {shards}: {} has {targets} targets (columns), so at most {targets} shards of at least one target each",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Where task `k`'s output goes (relative paths from the submission's folder).
    pub fn shard_out(&self, jobs: &Path, k: usize) -> PathBuf {
        match self.kind {
            WorkKind::RidgeFit => jobs.join("shards").join(k.to_string()),
            WorkKind::Reconstruct | WorkKind::BidsApp => self.out.clone(),
            WorkKind::GroupFit => self.group_fit_work(Path::new("")).1,
        }
    }

    /// The command words after `brainrecon` that join the shards.
    pub fn merge_args(&self, jobs: &Path, shards: usize) -> Vec<String> {
        let out = self.out.display().to_string();
        match self.kind {
            WorkKind::RidgeFit => {
                let mut words = vec!["ridge".into(), "merge".into(), "--models".into()];
                words.extend((0..shards).map(|k| self.shard_out(jobs, k).display().to_string()));
                words.extend(["--out".into(), out]);
                words
            }
            WorkKind::Reconstruct => {
                vec!["reconstruct".into(), "merge".into(), "--out".into(), out]
            }
            WorkKind::GroupFit => ["group", "fit"]
                .into_iter()
                .map(String::from)
                .chain(self.args.iter().cloned())
                .chain(std::iter::once("--merge".to_string()))
                .collect(),
            // The group level over the same dataset, participants and options.
            WorkKind::BidsApp => std::iter::once("bids-app".to_string())
                .chain(self.args.iter().enumerate().map(|(i, w)| {
                    if i == 2 {
                        "group".to_string()
                    } else {
                        w.clone()
                    }
                }))
                .collect(),
        }
    }

    /// The command's name words (`ridge fit`, `reconstruct`).
    pub fn command_words(&self) -> Vec<String> {
        self.kind.name().split(' ').map(String::from).collect()
    }

    /// Whether shard `k` of `shards` finished, read from its files (`workdir` resolves
    /// relative paths): a ridge shard's model.json (written last), a reconstruction shard's
    /// manifest marked complete.
    pub fn shard_done(&self, workdir: &Path, jobs: &Path, k: usize, shards: usize) -> bool {
        match self.kind {
            WorkKind::RidgeFit => workdir
                .join(self.shard_out(jobs, k))
                .join(brainrecon_ridge::MODEL_FILE)
                .is_file(),
            WorkKind::Reconstruct => {
                let out = workdir.join(&self.out);
                let shard = brainrecon_routes::linear::shards::ImageShard {
                    index: k,
                    count: shards,
                };
                brainrecon_core::fs::read_json::<Manifest>(&shard.manifest_path(&out))
                    .is_ok_and(|m| m.complete)
            }
            WorkKind::BidsApp => {
                brainrecon_routes::bids_app::shard_done(&workdir.join(&self.out), k, shards)
            }
            WorkKind::GroupFit => {
                let Ok(meta) = brainrecon_routes::group::GroupMeta::read(&workdir.join(&self.out))
                else {
                    return false;
                };
                let shard = brainrecon_routes::linear::shards::ImageShard {
                    index: k,
                    count: shards,
                };
                let (_, work) = self.group_fit_work(workdir);
                brainrecon_routes::group::fit::shard_stats_done(&work, shard, meta.subjects.len())
            }
        }
    }

    /// Whether the joined result is there: the merged model, or the reconstruction's
    /// manifest complete with its shards merged.
    pub fn result_done(&self, workdir: &Path) -> bool {
        let out = workdir.join(&self.out);
        match self.kind {
            WorkKind::RidgeFit => out.join(brainrecon_ridge::MODEL_FILE).is_file(),
            WorkKind::Reconstruct => {
                !brainrecon_routes::linear::shards::shards_dir(&out).exists()
                    && Manifest::load(&out).is_ok_and(|m| m.complete && m.options.shard.is_none())
            }
            WorkKind::BidsApp => brainrecon_routes::bids_app::group_done(&out),
            // space.json is committed with the space; the decoders follow in the same merge.
            WorkKind::GroupFit => {
                let (name, _) = self.group_fit_work(workdir);
                brainrecon_routes::group::space_dir(&out, &name)
                    .join("space.json")
                    .is_file()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(String::from).collect()
    }

    #[test]
    fn parse_takes_out_and_refuses_shard() {
        let work = Work::parse(&words("ridge fit --x X.npy --out=m --y Y.npy")).unwrap();
        assert_eq!(work.kind, WorkKind::RidgeFit);
        assert_eq!(work.out, PathBuf::from("m"));
        assert_eq!(work.args, words("--x X.npy --y Y.npy"));
        assert!(Work::parse(&words("reconstruct --subject s --out r --shard 0/2")).is_err());
        assert!(Work::parse(&words("reconstruct --subject s")).is_err());
        assert!(Work::parse(&words("fit --subject s --out d")).is_err());
    }

    #[test]
    fn bids_app_splits_its_participant_level_and_merges_with_the_group_level() {
        let work = Work::parse(&words("bids-app ds out participant --space T1w")).unwrap();
        assert_eq!(work.kind, WorkKind::BidsApp);
        assert_eq!(work.out, PathBuf::from("out"));
        assert_eq!(
            work.merge_args(Path::new("jobs"), 2).join(" "),
            "bids-app ds out group --space T1w"
        );
        assert!(Work::parse(&words("bids-app ds out group")).is_err());
        assert!(Work::parse(&words("bids-app ds out participant --shard 0/2")).is_err());
    }

    #[test]
    fn group_fit_shards_its_subjects_and_merges_with_merge() {
        let work = Work::parse(&words("group fit --group g --k 4 --name s4")).unwrap();
        assert_eq!(work.kind, WorkKind::GroupFit);
        assert_eq!(work.out, PathBuf::from("g"));
        assert_eq!(work.args, words("--group g --k 4 --name s4"));
        assert_eq!(
            work.merge_args(Path::new("jobs"), 3).join(" "),
            "group fit --group g --k 4 --name s4 --merge"
        );
        assert_eq!(
            work.shard_out(Path::new("jobs"), 0),
            PathBuf::from("g/stats/s4")
        );
        let custom = Work::parse(&words("group fit --group=g --work w")).unwrap();
        assert_eq!(custom.out, PathBuf::from("g"));
        assert_eq!(custom.shard_out(Path::new("jobs"), 1), PathBuf::from("w"));
        for refused in [
            "group fit --group g --merge",
            "group fit --group g --shard 0/2",
            "group fit --k 4",
        ] {
            assert!(Work::parse(&words(refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn ridge_merge_lists_every_shard() {
        let work = Work::parse(&words("ridge fit --x X --y Y --out model")).unwrap();
        let merge = work.merge_args(Path::new("jobs"), 3).join(" ");
        assert_eq!(
            merge,
            "ridge merge --models jobs/shards/0 jobs/shards/1 jobs/shards/2 --out model"
        );
    }
}
