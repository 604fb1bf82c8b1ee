//! `video demo`: the route's commands in order on a simulated subject, handed to the caller
//! one [`Step`] at a time (the command line runs them in-process and prints them).

pub use crate::music_demo::Step;
use crate::music_demo::{arg, args};
use brainrecon_routes::RouteError;
use std::path::PathBuf;

/// What decodes the windows' contexts in the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoDecoder {
    /// The caption word by word (`video fit --context words`).
    Words,
    /// Ridge to the context (`video fit`).
    Ridge,
    /// MinD-Video's window encoder (`video train-encoder`, patches of 64 voxels).
    Encoder,
}

impl std::str::FromStr for DemoDecoder {
    type Err = RouteError;

    /// `words`, `ridge` or `encoder` (as `video demo --decoder` takes them).
    fn from_str(name: &str) -> Result<Self, RouteError> {
        match name {
            "words" => Ok(DemoDecoder::Words),
            "ridge" => Ok(DemoDecoder::Ridge),
            "encoder" => Ok(DemoDecoder::Encoder),
            other => Err(RouteError::Usage(format!(
                "--decoder: expected words, ridge or encoder, found '{other}'"
            ))),
        }
    }
}

/// The demo's settings.
#[derive(Debug, Clone)]
pub struct VideoDemoOptions {
    /// Output folder (a simulated subject and prepared windows there are reused).
    pub out: PathBuf,
    /// Seed of the subject and the clips.
    pub seed: u64,
    /// Denoising steps per clip.
    pub steps: usize,
    /// Only the first `limit` test clips.
    pub limit: Option<usize>,
    /// What decodes the windows' contexts.
    pub decoder: DemoDecoder,
}

/// Runs the video demo's five steps through `step` (simulate, video prepare, video fit or
/// train-encoder, video reconstruct, video eval; the simulated subject and prepared windows
/// are reused when present). Returns the report page to open.
pub fn run<E: From<RouteError>>(
    opts: &VideoDemoOptions,
    step: &mut dyn FnMut(Step<'_>) -> std::result::Result<(), E>,
) -> std::result::Result<PathBuf, E> {
    let o = |name: &str| arg(&opts.out.join(name));
    let seed = opts.seed.to_string();
    let subject = opts.out.join("subject");
    if subject.join("design.json").is_file() {
        let title = format!("simulated subject found in {}", subject.display());
        step(Step::note(1, 5, &title))?;
    } else {
        step(Step::command(
            1,
            5,
            "simulate a subject watching clips of moving shapes (CC2017's layout)",
            &args(&[
                "simulate",
                "--kind",
                "video",
                "--out",
                &o("subject"),
                "--seed",
                &seed,
            ]),
        ))?;
    }
    if !opts.out.join("prepared").join("video.json").is_file() {
        step(Step::command(
            2,
            5,
            "prepare fMRI windows 4-8 s after each TR (detrend, z-score, repetition average, reliable voxels)",
            &args(&[
                "video", "prepare", "--cc2017", &o("subject"), "--subject", "1", "--lag", "2",
                "--out", &o("prepared"),
            ]),
        ))?;
    }
    let stimuli = subject.join("stimuli");
    let encoder = opts.decoder == DemoDecoder::Encoder;
    let mut a = args(&[
        "video",
        if encoder { "train-encoder" } else { "fit" },
        "--prepared",
        &o("prepared"),
        "--stimuli",
        &arg(&stimuli),
        "--captions",
        &arg(&stimuli.join("captions.tsv")),
        "--out",
        &o("fit"),
    ]);
    let title = match opts.decoder {
        DemoDecoder::Encoder => {
            a.extend(args(&["--patch-size", "64"]));
            "decode each window's caption context (MinD-Video's window encoder)"
        }
        DemoDecoder::Words => {
            a.extend(args(&["--context", "words"]));
            "decode each window's caption word by word, then its context (ridge per word)"
        }
        DemoDecoder::Ridge => "decode each window's caption context (ridge)",
    };
    step(Step::command(3, 5, title, &a))?;
    let mut a = args(&[
        "video",
        "reconstruct",
        "--decoded",
        &o("fit"),
        "--out",
        &o("clips"),
        "--steps",
        &opts.steps.to_string(),
        "--seed",
        &seed,
    ]);
    if let Some(limit) = opts.limit {
        a.extend(args(&["--limit", &limit.to_string()]));
    }
    step(Step::command(
        4,
        5,
        "generate a clip per test window (shapes-ldm + shapes-motion)",
        &a,
    ))?;
    step(Step::command(
        5,
        5,
        "score the clips (MinD-Video's protocol) and write the report",
        &args(&[
            "video",
            "eval",
            "--reconstructed",
            &o("clips"),
            "--stimuli",
            &arg(&stimuli),
            "--out",
            &o("report"),
        ]),
    ))?;
    Ok(opts.out.join("report").join("index.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoder_decoder_trains_the_window_encoder() {
        let dir = tempfile::tempdir().unwrap();
        let opts = VideoDemoOptions {
            out: dir.path().into(),
            seed: 1,
            steps: 4,
            limit: Some(2),
            decoder: DemoDecoder::Encoder,
        };
        let mut seen = Vec::new();
        let page = run(&opts, &mut |s: Step<'_>| -> Result<(), RouteError> {
            seen.push(s.args.unwrap_or_default().join(" "));
            Ok(())
        })
        .unwrap();
        assert_eq!(page, dir.path().join("report").join("index.html"));
        assert_eq!(seen.len(), 5);
        assert!(seen[2].starts_with("video train-encoder") && seen[2].ends_with("--patch-size 64"));
        assert!(seen[3].ends_with("--limit 2"));
    }
}
