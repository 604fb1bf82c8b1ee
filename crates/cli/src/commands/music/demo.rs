//! `brainrecon music demo`: the route's commands in order on a simulated subject.

use crate::commands::usage;
use std::path::{Path, PathBuf};

/// Simulate a subject hearing music, prepare its runs, decode genres-clap embeddings and
/// retrieve music from a library nobody heard: a page with players (a few minutes on 2 cores)
#[derive(clap::Args)]
#[command(after_help = "Example:\n  brainrecon music demo --out music-demo\n  \
    brainrecon music demo --out music-demo-paper --size paper   (ds003720's 540 clips)")]
pub struct Args {
    /// Output folder (steps already done there are reused)
    #[arg(long)]
    out: PathBuf,
    /// small or paper
    #[arg(long, default_value = "small")]
    size: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn step(number: usize, title: &str, args: &[String]) -> anyhow::Result<()> {
    eprintln!("\n[{number}/4] {title}\n  brainrecon {}", args.join(" "));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::run_command_line(&refs)
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !matches!(args.size.as_str(), "small" | "paper") {
        return Err(usage(format!(
            "--size: expected small or paper, found {:?}",
            args.size
        )));
    }
    let (sim, runs, fit, page) = (
        args.out.join("subject"),
        args.out.join("runs"),
        args.out.join("fit"),
        args.out.join("page"),
    );
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    if sim.join("truth/truth.json").is_file() {
        eprintln!("\n[1/4] simulated subject found in {}", sim.display());
    } else {
        let mut a = s(&[
            "simulate",
            "--kind",
            "music",
            "--out",
            &path(&sim),
            "--seed",
            &args.seed.to_string(),
        ]);
        if args.size == "paper" {
            a.extend(s(&["--size", "paper"]));
        }
        step(
            1,
            "simulate a subject hearing 15-s clips of 10 genres (ds003720's layout)",
            &a,
        )?;
    }
    step(
        2,
        "prepare the runs (detrend, z-score, brain mask)",
        &s(&[
            "bids",
            "prepare",
            "--bids-root",
            &path(&sim),
            "--subject",
            "001",
            "--task",
            "Training",
            "--task",
            "Test",
            "--mask",
            &path(&sim.join("derivatives/mask/sub-001_mask.nii.gz")),
            "--out",
            &path(&runs),
        ]),
    )?;
    step(
        3,
        "decode genres-clap embeddings of 10-s windows, one ridge per ROI, best 6 averaged",
        &s(&[
            "music",
            "fit",
            "--runs",
            &path(&runs),
            "--stimuli",
            &path(&sim.join("stimuli/genres")),
            "--atlas",
            &path(&sim.join("derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz")),
            "--out",
            &path(&fit),
            "--seed",
            &args.seed.to_string(),
        ]),
    )?;
    step(
        4,
        "retrieve music from a library nobody heard",
        &s(&[
            "music",
            "retrieve",
            "--fit",
            &path(&fit),
            "--library",
            &path(&sim.join("library")),
            "--out",
            &path(&page),
        ]),
    )?;
    outln!("open {} in a browser", page.join("index.html").display())?;
    Ok(())
}
