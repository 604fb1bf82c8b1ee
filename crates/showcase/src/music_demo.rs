//! `music demo`: the route's commands in order on a simulated subject. Each step is a
//! brainrecon command handed to the caller as its arguments (the command line runs them
//! in-process and prints them, so the demo doubles as a recipe).

use brainrecon_routes::RouteError;
use std::path::{Path, PathBuf};

/// One step of a route's demo, `number` of `of`: the brainrecon command `args` (without the
/// program name) titled `title`, or, with `args` `None`, a note that its output is already
/// there.
pub struct Step<'a> {
    /// This step, 1-based.
    pub number: usize,
    /// Steps of the demo.
    pub of: usize,
    /// What the step does, or the note that it is done.
    pub title: &'a str,
    /// The command's arguments, without the program name; None for a note.
    pub args: Option<&'a [String]>,
}

impl<'a> Step<'a> {
    /// Step `number` of `of`: the command `args`.
    pub fn command(number: usize, of: usize, title: &'a str, args: &'a [String]) -> Self {
        Step {
            number,
            of,
            title,
            args: Some(args),
        }
    }

    /// Step `number` of `of` is done already: `note` says where.
    pub fn note(number: usize, of: usize, note: &'a str) -> Self {
        Step {
            number,
            of,
            title: note,
            args: None,
        }
    }
}

/// The demo's settings.
#[derive(Debug, Clone)]
pub struct MusicDemoOptions {
    /// Output folder (steps already done there are reused).
    pub out: PathBuf,
    /// `small` or `paper` (ds003720's 540 clips).
    pub size: String,
    /// Seed of the simulated subject and of the fit (`--seed`).
    pub seed: u64,
}

/// A path as a command-line argument.
pub fn arg(p: &Path) -> String {
    p.display().to_string()
}

/// Strings of string slices, for a step's arguments.
pub fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Runs the music demo's four steps through `step` (simulate, bids prepare, music fit, music
/// retrieve; the simulated subject is reused when present). Returns the page to open.
pub fn run<E: From<RouteError>>(
    opts: &MusicDemoOptions,
    step: &mut dyn FnMut(Step<'_>) -> std::result::Result<(), E>,
) -> std::result::Result<PathBuf, E> {
    if !matches!(opts.size.as_str(), "small" | "paper") {
        return Err(RouteError::Usage(format!(
            "--size: expected small or paper, found {:?}",
            opts.size
        ))
        .into());
    }
    let out = &opts.out;
    let (sim, runs, fit, page) = (
        out.join("subject"),
        out.join("runs"),
        out.join("fit"),
        out.join("page"),
    );
    let seed = opts.seed.to_string();
    if sim.join("truth/truth.json").is_file() {
        let title = format!("simulated subject found in {}", sim.display());
        step(Step::note(1, 4, &title))?;
    } else {
        let mut a = args(&[
            "simulate",
            "--kind",
            "music",
            "--out",
            &arg(&sim),
            "--seed",
            &seed,
        ]);
        if opts.size == "paper" {
            a.extend(args(&["--size", "paper"]));
        }
        step(Step::command(
            1,
            4,
            "simulate a subject hearing 15-s clips of 10 genres (ds003720's layout)",
            &a,
        ))?;
    }
    let mask = sim.join("derivatives/mask/sub-001_mask.nii.gz");
    step(Step::command(
        2,
        4,
        "prepare the runs (detrend, z-score, brain mask)",
        &args(&[
            "bids",
            "prepare",
            "--bids-root",
            &arg(&sim),
            "--subject",
            "001",
            "--task",
            "Training",
            "--task",
            "Test",
            "--mask",
            &arg(&mask),
            "--out",
            &arg(&runs),
        ]),
    ))?;
    let atlas = sim.join("derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz");
    step(Step::command(
        3,
        4,
        "decode genres-clap embeddings of 10-s windows, one ridge per ROI, best 6 averaged",
        &args(&[
            "music",
            "fit",
            "--runs",
            &arg(&runs),
            "--stimuli",
            &arg(&sim.join("stimuli/genres")),
            "--atlas",
            &arg(&atlas),
            "--out",
            &arg(&fit),
            "--seed",
            &seed,
        ]),
    ))?;
    step(Step::command(
        4,
        4,
        "retrieve music from a library nobody heard",
        &args(&[
            "music",
            "retrieve",
            "--fit",
            &arg(&fit),
            "--library",
            &arg(&sim.join("library")),
            "--out",
            &arg(&page),
        ]),
    ))?;
    Ok(page.join("index.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_steps_in_order_and_sizes_checked() {
        let dir = tempfile::tempdir().unwrap();
        let opts = MusicDemoOptions {
            out: dir.path().into(),
            size: "small".into(),
            seed: 3,
        };
        let mut seen = Vec::new();
        let page = run(&opts, &mut |s: Step<'_>| -> Result<(), RouteError> {
            seen.push((s.number, s.of, s.args.map(|a| a[..2].join(" "))));
            Ok(())
        })
        .unwrap();
        assert_eq!(page, dir.path().join("page").join("index.html"));
        let names = [
            "simulate --kind",
            "bids prepare",
            "music fit",
            "music retrieve",
        ];
        let expected: Vec<_> = (1..=4)
            .map(|n| (n, 4, Some(names[n - 1].to_string())))
            .collect();
        assert_eq!(seen, expected);
        let bad = MusicDemoOptions {
            size: "huge".into(),
            ..opts
        };
        let err = run(&bad, &mut |_| Ok::<(), RouteError>(())).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("--size: expected small or paper"));
    }
}
