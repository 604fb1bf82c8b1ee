//! `demo --route new-subject`: a new subject from one session, through a space shared by a
//! simulated group, against the same subject decoded from its one session alone and from all
//! its sessions.
//!
//! Every step is announced with the brainrecon command that does it and run by the library
//! function behind it; a step whose output is already in OUT/new-subject is skipped, so an
//! interrupted demo continues where it stopped. The three conditions are scored on the same
//! test images: two-way identification of the decoded z and c over the group's test half, and
//! the colour and shape of a few reconstructions.

use crate::demo::{mean_accuracy, path, DemoOptions, DemoSteps, Route};
use brainrecon_core::fs::write_json_atomic;
use brainrecon_core::DataError;
use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions};
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::DType;
use brainrecon_formats::image::{read_png, write_png, RgbImage};
use brainrecon_routes::decode::decoders::{fit_request, Decoder, FitRequest};
use brainrecon_routes::decode::options::parse_device;
use brainrecon_routes::group::adapt::{adapt, AdaptRequest, Via};
use brainrecon_routes::group::fit::{fit_group, GroupFitRequest};
use brainrecon_routes::group::prepare::{prepare_group, GroupPrepareRequest};
use brainrecon_routes::group::{decoders_dir, space_dir, GroupMeta};
use brainrecon_routes::linear::{Manifest, ReconstructOptions};
use brainrecon_routes::reconstruct::ReconstructRequest;
use brainrecon_routes::{Result, RouteError};
use brainrecon_simulate::classify::{scene_accuracy, SceneAccuracy};
use brainrecon_simulate::Truth;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Subjects of the simulated group: subject 1 is the new one, the others the group.
pub const SUBJECTS: usize = 5;
/// Sessions each subject's trials are split into.
pub const SESSIONS: usize = 10;
/// Dimensions of the shared space.
pub const K: usize = 32;
/// Test images reconstructed in each condition (the first of the group's test half).
pub const PICTURED: usize = 6;
/// The space's method and name in the group folder: the shared space by reduced-rank ridge,
/// which needs no shared images; with this demo's 50 align images it does better than SRM
/// (the README's curve, with 100, finds SRM ahead).
const SPACE: &str = "shared";

/// How one condition decodes the new subject.
#[derive(Debug, Clone, Serialize)]
pub struct Condition {
    /// Sessions of the new subject's data used to fit.
    pub sessions: usize,
    /// Its train trials in them.
    pub n_train_trials: usize,
    /// Two-way identification of the decoded z over the test half (chance 0.5).
    pub two_way_z: f64,
    /// Two-way identification of the decoded c over the test half.
    pub two_way_c: f64,
    /// The mean of the two.
    pub two_way_mean: f64,
    /// Colour and shape read back from the reconstructions (mean over samples).
    pub reconstruction: SceneAccuracy,
    /// The decoders used.
    pub decoders: PathBuf,
    /// The reconstructions.
    pub recons: PathBuf,
}

/// The headline figures of `demo --route new-subject` (OUT/demo-new-subject.json).
#[derive(Debug, Serialize)]
pub struct NewSubjectSummary {
    /// The output folder.
    pub out: PathBuf,
    /// Always [`Route::NewSubject`].
    pub route: Route,
    /// Subjects simulated (the group is all but the first).
    pub subjects: usize,
    /// Images each subject saw.
    pub images: usize,
    /// How many of them every subject saw.
    pub shared_images: usize,
    /// Sessions of each subject.
    pub sessions: usize,
    /// Dimensions of the shared space.
    pub k: usize,
    /// Test images of the two-way identification (the shared images not used to align).
    pub n_test: usize,
    /// The test images reconstructed (ids).
    pub pictured: Vec<usize>,
    /// Decoders fitted on the new subject's first session alone.
    pub one_session: Condition,
    /// Its first session mapped into the group's space, decoded by the group's decoders.
    pub one_session_group: Condition,
    /// Decoders fitted on all its sessions: the ceiling.
    pub all_sessions: Condition,
    /// Chance accuracies.
    pub chance: SceneAccuracy,
    /// The picture: truth | one session alone | one session + group | all sessions.
    pub pairs: PathBuf,
    /// Wall time of the demo.
    pub seconds: f64,
}

impl NewSubjectSummary {
    /// The summary as the command prints it.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut text = String::new();
        let pct = |v: f64| format!("{:.0}%", 100.0 * v);
        let _ = writeln!(
            text,
            "\ndemo finished in {:.0} s: a new subject among {} (group of {}), {} test images, {} reconstructed",
            self.seconds,
            self.subjects,
            self.subjects - 1,
            self.n_test,
            self.pictured.len()
        );
        for (label, c) in [
            ("1 session alone:  ", &self.one_session),
            ("1 session + group:", &self.one_session_group),
            ("all sessions:     ", &self.all_sessions),
        ] {
            let _ = writeln!(
                text,
                "  {label} {} session{}, {} train trials: two-way z {:.3}, c {:.3} (chance 0.5); \
                 colour right {}, shape right {}",
                c.sessions,
                if c.sessions == 1 { "" } else { "s" },
                c.n_train_trials,
                c.two_way_z,
                c.two_way_c,
                pct(c.reconstruction.colour),
                pct(c.reconstruction.shape)
            );
        }
        let _ = writeln!(
            text,
            "  chance: colour {}, shape {}",
            pct(self.chance.colour),
            pct(self.chance.shape)
        );
        let _ = writeln!(
            text,
            "  pairs:  {} (truth | 1 session alone | 1 session + group | all sessions)",
            self.pairs.display()
        );
        text
    }
}

/// The route's folders under OUT/new-subject.
struct Paths {
    work: PathBuf,
    root: PathBuf,
    group: PathBuf,
}

impl Paths {
    fn new(out: &Path) -> Self {
        let work = out.join("new-subject");
        Paths {
            root: work.join("nsd"),
            group: work.join("group"),
            work,
        }
    }

    fn subject(&self, s: usize) -> PathBuf {
        self.work.join(format!("subj{s:02}"))
    }

    fn one_session(&self) -> PathBuf {
        self.work.join("subj01-s1")
    }

    fn adapted(&self) -> PathBuf {
        self.work.join("subj01-s1-shared")
    }

    fn within(&self, name: &str) -> PathBuf {
        self.work.join(format!("decoders-{name}"))
    }

    fn recons(&self, name: &str) -> PathBuf {
        self.work.join(format!("recons-{name}"))
    }
}

/// Runs the route: every step not already done, then the figures, written to
/// OUT/demo-new-subject.json beside OUT/pairs-new-subject.png.
pub fn run<S: DemoSteps>(
    options: &DemoOptions,
    steps: &mut S,
) -> Result<NewSubjectSummary, S::Error> {
    let started = std::time::Instant::now();
    let paths = Paths::new(&options.out);
    std::fs::create_dir_all(&paths.work)
        .map_err(|e| RouteError::from(DataError::io(&paths.work, e)))?;
    let shared_images = (options.images / 3).max(3);
    simulate(options, &paths, shared_images, steps)?;
    subjects(options, &paths, steps)?;
    group(&paths, steps)?;
    let adapted = paths.adapted();
    let one = paths.one_session();
    if adapted.join("subject.json").is_file() {
        steps.note(
            5,
            &format!("adapted subject found in {}", adapted.display()),
        );
    } else {
        steps.announce(
            5,
            "map the new subject's one session into the group's space",
            &[
                "group",
                "adapt",
                "--group",
                path(&paths.group),
                "--space",
                SPACE,
                "--subject",
                path(&one),
                "--eval-subject",
                path(&paths.subject(1)),
                "--out",
                path(&adapted),
            ],
        );
        let report = adapt(&AdaptRequest {
            group: paths.group.clone(),
            space: SPACE.into(),
            subject: one.clone(),
            sessions: None,
            via: Via::Features,
            map: None,
            eval_subject: Some(paths.subject(1)),
            out: adapted.clone(),
        })?;
        steps.print(&report.text())?;
    }
    let group = GroupMeta::read(&paths.group)?;
    for (name, subject) in [("s1", &one), ("all", &paths.subject(1))] {
        within_decoders(&group, subject, &paths.within(name), steps)?;
    }

    let (full, full_ids, test_ids) = test_half(&paths)?;
    let pictured: Vec<usize> = test_ids.iter().take(PICTURED).copied().collect();
    // The within-subject decoders read the subject's every test image in order: reconstruct
    // as many as it takes to reach the pictured ones.
    let limit = pictured
        .last()
        .and_then(|last| full_ids.iter().position(|id| id == last))
        .map_or(PICTURED, |at| at + 1);
    let group_decoders = decoders_dir(&paths.group, SPACE);
    let runs = [
        ("s1", paths.subject(1), paths.within("s1"), limit),
        (
            "s1-group",
            adapted.clone(),
            group_decoders.clone(),
            PICTURED,
        ),
        ("all", paths.subject(1), paths.within("all"), limit),
    ];
    for (name, subject, decoders, limit) in &runs {
        reconstruct(
            options,
            subject,
            decoders,
            &paths.recons(name),
            *limit,
            steps,
        )?;
    }
    Ok(summarize(
        options, &paths, &full, &test_ids, &pictured, started,
    )?)
}

/// The new subject prepared from all its sessions, its test images, and the test half (the
/// shared images not used to align, as the adapted subject holds them).
fn test_half(paths: &Paths) -> Result<(PreparedSubject, Vec<usize>, Vec<usize>)> {
    let full = PreparedSubject::open(&paths.subject(1))?;
    let full_ids = full.test_stimulus_ids()?;
    let test_ids = PreparedSubject::open(&paths.adapted())?.test_stimulus_ids()?;
    Ok((full, full_ids, test_ids))
}

/// Step 1: the group simulated in NSD's layout.
fn simulate<S: DemoSteps>(
    options: &DemoOptions,
    paths: &Paths,
    shared_images: usize,
    steps: &mut S,
) -> Result<(), S::Error> {
    let root = &paths.root;
    if root.join("truth").join("group.json").is_file() {
        steps.note(1, &format!("simulated group found in {}", root.display()));
        return Ok(());
    }
    let (subjects, images, shared, sessions, seed) = (
        SUBJECTS.to_string(),
        options.images.to_string(),
        shared_images.to_string(),
        SESSIONS.to_string(),
        options.seed.to_string(),
    );
    steps.announce(
        1,
        "simulate a group of subjects (NSD layout)",
        &[
            "simulate",
            "--subjects",
            &subjects,
            "--images",
            &images,
            "--shared-images",
            &shared,
            "--sessions",
            &sessions,
            "--seed",
            &seed,
            "--out",
            path(root),
        ],
    );
    use brainrecon_simulate::request;
    let summary = request::run(&request::Request {
        images: Some(options.images),
        seed: options.seed,
        sessions: Some(SESSIONS),
        progress: options.progress,
        subjects: Some(SUBJECTS),
        shared_images: Some(shared_images),
        ..request::Request::new(root.clone(), request::Kind::Image)
    })
    .map_err(RouteError::from)?;
    steps.print(&format!("{}\n", summary.text()))
}

/// Steps 2–3: every subject prepared from all its sessions, the new one also from its first
/// session alone, and the features of their stimuli.
fn subjects<S: DemoSteps>(
    options: &DemoOptions,
    paths: &Paths,
    steps: &mut S,
) -> Result<(), S::Error> {
    let mut prepared: Vec<(usize, PathBuf, Option<Vec<usize>>)> = (1..=SUBJECTS)
        .map(|s| (s, paths.subject(s), None))
        .collect();
    prepared.push((1, paths.one_session(), Some(vec![1])));
    for (s, out, sessions) in &prepared {
        if out.join("subject.json").is_file() {
            steps.note(2, &format!("prepared subject found in {}", out.display()));
            continue;
        }
        let name = format!("subj{s:02}");
        let mut args = vec![
            "nsd",
            "prepare",
            "--nsd-root",
            path(&paths.root),
            "--subject",
            &name,
        ];
        if sessions.is_some() {
            args.extend(["--sessions", "1"]);
        }
        args.extend(["--out", path(out)]);
        steps.announce(2, "prepare it as NSD is prepared", &args);
        let report = prepare(&PrepareOptions {
            sessions: sessions.clone(),
            progress: options.progress,
            ..PrepareOptions::defaults(&paths.root, *s, out)
        })
        .map_err(RouteError::from)?;
        let m = &report.meta;
        steps.print(&format!(
            "prepared {} at {}: {} train trials ({} images), {} test images ({} trials)\n",
            m.subject,
            out.display(),
            m.n_train_trials,
            m.n_train_images,
            m.n_test_images,
            m.n_test_trials
        ))?;
    }
    for (_, subject, _) in &prepared {
        for kind in ["vae", "clip-text"] {
            steps.announce(
                3,
                &format!("features of the stimuli: {kind}"),
                &[
                    "features",
                    "--subject",
                    path(subject),
                    "--model",
                    &options.model,
                    "--kind",
                    kind,
                    "--device",
                    &options.device,
                ],
            );
            crate::demo::features(
                &options.device,
                options.progress,
                subject,
                kind,
                &options.model,
                steps,
            )?;
        }
    }
    Ok(())
}

/// Step 4: the group of subjects 2 … N and its shared space with decoders.
fn group<S: DemoSteps>(paths: &Paths, steps: &mut S) -> Result<(), S::Error> {
    let group = &paths.group;
    if group.join("group.json").is_file() {
        steps.note(4, &format!("group found in {}", group.display()));
    } else {
        let members: Vec<PathBuf> = (2..=SUBJECTS).map(|s| paths.subject(s)).collect();
        let mut args = vec!["group", "prepare"];
        for member in &members {
            args.extend(["--subject", path(member)]);
        }
        args.extend(["--out", path(group)]);
        steps.announce(4, "gather the group (every subject but the new one)", &args);
        let report = prepare_group(&GroupPrepareRequest {
            subjects: members,
            out: group.clone(),
            roi: "nsdgeneral".into(),
            kinds: vec!["vae".into(), "clip-text".into()],
            align_share: 0.5,
            seed: 0,
        })?;
        steps.print(&report.text())?;
    }
    if space_dir(group, SPACE).join("space.json").is_file() {
        steps.note(4, &format!("space {SPACE} found in {}", group.display()));
        return Ok(());
    }
    let k = K.to_string();
    steps.announce(
        4,
        "fit the space shared by the group, and decoders on it",
        &[
            "group",
            "fit",
            "--group",
            path(group),
            "--method",
            SPACE,
            "--k",
            &k,
        ],
    );
    let mut notes = Vec::new();
    let report = fit_group(
        &GroupFitRequest {
            group: group.clone(),
            method: SPACE.into(),
            name: None,
            k: K,
            n_iter: 10,
            seed: 0,
            targets: vec!["z".into(), "c".into()],
            cv: "5".into(),
        },
        &mut |line| notes.push(line),
    )?;
    for line in notes {
        steps.warn(&line);
    }
    steps.print(&report.text())
}

/// Step 5: the new subject's own decoders of z and c from `subject` (the group's ROI).
fn within_decoders<S: DemoSteps>(
    group: &GroupMeta,
    subject: &Path,
    dir: &Path,
    steps: &mut S,
) -> Result<(), S::Error> {
    for target in ["z", "c"] {
        let out = dir.join(target);
        if out.join("model.json").is_file() {
            steps.note(5, &format!("decoder {target} found in {}", out.display()));
            continue;
        }
        steps.announce(
            5,
            &format!("fit the new subject's own decoder of {target}"),
            &[
                "fit",
                "--subject",
                path(subject),
                "--target",
                target,
                "--roi",
                &group.roi,
                "--out",
                path(&out),
            ],
        );
        let fitted = fit_request(
            &FitRequest {
                roi: Some(group.roi.clone()),
                ..FitRequest::with_defaults(subject.to_path_buf(), target, out)
            },
            &mut |warning| steps.warn(&warning),
        )?;
        steps.print(&fitted.text())?;
    }
    Ok(())
}

/// Step 6: the first `limit` test images of `subject` reconstructed with `decoders`.
fn reconstruct<S: DemoSteps>(
    options: &DemoOptions,
    subject: &Path,
    decoders: &Path,
    out: &Path,
    limit: usize,
    steps: &mut S,
) -> Result<(), S::Error> {
    if out.join(Manifest::FILE).is_file() {
        steps.note(6, &format!("reconstructions found in {}", out.display()));
        return Ok(());
    }
    let (seed, samples, sampler_steps, limit_text) = (
        options.seed.to_string(),
        options.samples.to_string(),
        options.steps.to_string(),
        limit.to_string(),
    );
    steps.announce(
        6,
        "reconstruct test images",
        &[
            "reconstruct",
            "--subject",
            path(subject),
            "--decoders",
            path(decoders),
            "--model",
            &options.model,
            "--out",
            path(out),
            "--limit",
            &limit_text,
            "--samples",
            &samples,
            "--steps",
            &sampler_steps,
            "--seed",
            &seed,
            "--device",
            &options.device,
        ],
    );
    let done = brainrecon_routes::reconstruct::run(&ReconstructRequest {
        method: "linear".into(),
        captions: None,
        b2c: None,
        init: "noise".into(),
        subject: subject.to_path_buf(),
        decoders: Some(decoders.to_path_buf()),
        model: options.model.clone(),
        out: out.to_path_buf(),
        options: ReconstructOptions {
            samples: options.samples,
            steps: options.steps,
            seed: options.seed,
            limit: Some(limit),
            ..ReconstructOptions::default()
        },
        batch: None,
        shard: None,
        device: parse_device(&options.device)?,
        dtype: DType::F32,
        command: options.command.clone(),
        progress: options.progress,
    })?;
    steps.print(&format!("{}\n", done.text()))
}

/// The figures of the three conditions, the picture and the summary file.
fn summarize(
    options: &DemoOptions,
    paths: &Paths,
    full: &PreparedSubject,
    test_ids: &[usize],
    pictured: &[usize],
    started: std::time::Instant,
) -> Result<NewSubjectSummary> {
    let truth: Truth = brainrecon_core::fs::read_json(
        &paths.root.join("truth").join("subj01").join("truth.json"),
    )?;
    let scenes: Vec<_> = pictured.iter().map(|&id| truth.scenes[id]).collect();
    let one = PreparedSubject::open(&paths.one_session())?;
    let adapted = PreparedSubject::open(&paths.adapted())?;
    let mut columns = Vec::new();
    let mut condition = |name: &str,
                         subject: &PreparedSubject,
                         sessions: usize,
                         n_train_trials: usize,
                         decoders: PathBuf|
     -> Result<Condition> {
        let mut two_way = [0.0; 2];
        for (score, target) in two_way.iter_mut().zip(["z", "c"]) {
            let decoder = Decoder::load(&decoders.join(target))?;
            let (ids, decoded) = decoder.predict_test(subject)?;
            let width = decoded.len() / ids.len().max(1);
            // The rows of the test half, in its order.
            let rows: Vec<f32> = test_ids
                .iter()
                .map(|id| {
                    let row = ids.iter().position(|i| i == id).ok_or_else(|| {
                        RouteError::Usage(format!(
                            "{}: test image {id} missing",
                            subject.root.display()
                        ))
                    })?;
                    Ok(decoded[row * width..(row + 1) * width].to_vec())
                })
                .collect::<Result<Vec<_>>>()?
                .concat();
            *score = brainrecon_routes::group::curve::two_way(full, target, test_ids, &rows)?;
        }
        let recons = paths.recons(name);
        let manifest = Manifest::load(&recons)?;
        let mut per_sample = Vec::new();
        for k in 1..=manifest.options.samples {
            let set = pictured
                .iter()
                .map(|id| {
                    Ok(read_png(
                        &Manifest::sample_dir(&recons, k).join(format!("{id}.png")),
                    )?)
                })
                .collect::<Result<Vec<RgbImage>>>()?;
            per_sample.push(scene_accuracy(&scenes, &set));
            if k == 1 {
                columns.push(set);
            }
        }
        Ok(Condition {
            sessions,
            n_train_trials,
            two_way_z: two_way[0],
            two_way_c: two_way[1],
            two_way_mean: (two_way[0] + two_way[1]) / 2.0,
            reconstruction: mean_accuracy(&per_sample),
            decoders,
            recons,
        })
    };
    let one_trials = one.meta.n_train_trials;
    let one_session = condition("s1", full, 1, one_trials, paths.within("s1"))?;
    let one_session_group = condition(
        "s1-group",
        &adapted,
        1,
        one_trials,
        decoders_dir(&paths.group, SPACE),
    )?;
    let all_sessions = condition(
        "all",
        full,
        full.meta.sessions.len(),
        full.meta.n_train_trials,
        paths.within("all"),
    )?;
    let stimuli = full.images()?;
    let rows: Vec<Vec<RgbImage>> = pictured
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let stimulus = stimuli.get(id).ok_or_else(|| {
                RouteError::Usage(format!("{}: test image {id} missing", full.root.display()))
            })?;
            let mut row = vec![stimulus];
            row.extend(columns.iter().map(|c| c[i].clone()));
            Ok(row)
        })
        .collect::<Result<_>>()?;
    let out = &options.out;
    let pairs = out.join("pairs-new-subject.png");
    write_png(&pairs, &sheet(&rows, 2))?;
    let summary = NewSubjectSummary {
        out: out.clone(),
        route: Route::NewSubject,
        subjects: SUBJECTS,
        images: options.images,
        shared_images: truth.shared_ids.len(),
        sessions: SESSIONS,
        k: K,
        n_test: test_ids.len(),
        pictured: pictured.to_vec(),
        one_session,
        one_session_group,
        all_sessions,
        chance: SceneAccuracy::chance(),
        pairs,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_json_atomic(&out.join("demo-new-subject.json"), &summary)?;
    Ok(summary)
}

/// Rows of images side by side (each group's images 2 px apart, groups 8 px apart),
/// `per_row` groups a row, all at the first image's size, on a white ground.
pub fn sheet(groups: &[Vec<RgbImage>], per_row: usize) -> RgbImage {
    let size = groups[0][0].height;
    let (gap, wide_gap) = (2, 8);
    let n = groups.iter().map(Vec::len).max().unwrap_or(1);
    let group_w = n * size + (n - 1) * gap;
    let rows = groups.len().div_ceil(per_row);
    let height = rows * (size + wide_gap) + wide_gap;
    let width = per_row * (group_w + wide_gap) + wide_gap;
    let mut pixels = vec![255u8; height * width * 3];
    for (k, group) in groups.iter().enumerate() {
        let top = wide_gap + (k / per_row) * (size + wide_gap);
        let left = wide_gap + (k % per_row) * (group_w + wide_gap);
        for (j, image) in group.iter().enumerate() {
            let image = image.resize(size, size);
            let x0 = left + j * (size + gap);
            for y in 0..size {
                let at = ((top + y) * width + x0) * 3;
                pixels[at..at + size * 3]
                    .copy_from_slice(&image.pixels[y * size * 3..(y + 1) * size * 3]);
            }
        }
    }
    RgbImage::new(height, width, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sheet_lays_out_groups_of_four() {
        let image = RgbImage::new(8, 8, vec![0u8; 8 * 8 * 3]);
        let groups = vec![vec![image.clone(); 4]; 3];
        let sheet = sheet(&groups, 2);
        assert_eq!(sheet.height, 2 * (8 + 8) + 8);
        assert_eq!(sheet.width, 2 * (4 * 8 + 3 * 2 + 8) + 8);
    }
}
