//! `brainrecon video demo`: the route's commands in order on a simulated subject.

use std::path::{Path, PathBuf};

/// The video route end to end on a synthetic subject: simulate, prepare, fit, reconstruct, eval
#[derive(clap::Args)]
#[command(after_help = "Example:\n  brainrecon video demo --out video-demo")]
pub struct Args {
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// Seed of the subject and the clips
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Denoising steps per clip
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Only the first N test clips
    #[arg(long)]
    limit: Option<usize>,
    /// What decodes the windows' contexts: the caption word by word (`video fit --context
    /// words`), ridge to the context (`video fit`), or MinD-Video's window encoder (`video
    /// train-encoder`, patches of 64 voxels)
    #[arg(long, default_value = "words", value_parser = ["words", "ridge", "encoder"])]
    decoder: String,
}

fn step(number: usize, title: &str, args: &[String]) -> anyhow::Result<()> {
    eprintln!("\n[{number}/5] {title}\n  brainrecon {}", args.join(" "));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::run_command_line(&refs)
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let o = |name: &str| args.out.join(name);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let seed = args.seed.to_string();
    if o("subject").join("design.json").is_file() {
        eprintln!(
            "\n[1/5] simulated subject found in {}",
            o("subject").display()
        );
    } else {
        let a = s(&[
            "simulate",
            "--kind",
            "video",
            "--out",
            &path(&o("subject")),
            "--seed",
            &seed,
        ]);
        step(
            1,
            "simulate a subject watching clips of moving shapes (CC2017's layout)",
            &a,
        )?;
    }
    if !o("prepared").join("video.json").is_file() {
        let a = s(&[
            "video",
            "prepare",
            "--cc2017",
            &path(&o("subject")),
            "--subject",
            "1",
            "--lag",
            "2",
            "--out",
            &path(&o("prepared")),
        ]);
        step(
            2,
            "prepare fMRI windows 4-8 s after each TR (detrend, z-score, repetition average, reliable voxels)",
            &a,
        )?;
    }
    let stimuli = o("subject").join("stimuli");
    let encoder = args.decoder == "encoder";
    let mut a = s(&[
        "video",
        if encoder { "train-encoder" } else { "fit" },
        "--prepared",
        &path(&o("prepared")),
        "--stimuli",
        &path(&stimuli),
        "--captions",
        &path(&stimuli.join("captions.tsv")),
        "--out",
        &path(&o("fit")),
    ]);
    let title = match args.decoder.as_str() {
        "encoder" => {
            a.extend(s(&["--patch-size", "64"]));
            "decode each window's caption context (MinD-Video's window encoder)"
        }
        "words" => {
            a.extend(s(&["--context", "words"]));
            "decode each window's caption word by word, then its context (ridge per word)"
        }
        _ => "decode each window's caption context (ridge)",
    };
    step(3, title, &a)?;
    let mut a = s(&[
        "video",
        "reconstruct",
        "--decoded",
        &path(&o("fit")),
        "--out",
        &path(&o("clips")),
        "--steps",
        &args.steps.to_string(),
        "--seed",
        &seed,
    ]);
    if let Some(limit) = args.limit {
        a.extend(s(&["--limit", &limit.to_string()]));
    }
    step(
        4,
        "generate a clip per test window (shapes-ldm + shapes-motion)",
        &a,
    )?;
    let a = s(&[
        "video",
        "eval",
        "--reconstructed",
        &path(&o("clips")),
        "--stimuli",
        &path(&stimuli),
        "--out",
        &path(&o("report")),
    ]);
    step(
        5,
        "score the clips (MinD-Video's protocol) and write the report",
        &a,
    )?;
    outln!(
        "open {} in a browser",
        o("report").join("index.html").display()
    )?;
    Ok(())
}
