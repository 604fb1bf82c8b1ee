//! Every reader against mutated copies of valid files: bit flips, truncation, zeroed and 0xFF
//! runs, huge little-endian sizes written over header fields, NaN/Inf, duplicated chunks. A
//! reader may return an error (naming the file) or a value; it must not panic, abort or hang.
//!
//! Seeded from the committed fixtures; cases per reader from `BRAINRECON_FUZZ_CASES` (default
//! 150, a few seconds in all), seed from `BRAINRECON_FUZZ_SEED` (default 0).
//! `tools/fuzz.sh` runs the long version. A failing case is written to
//! `<target>/tmp/fuzz-crashers/` and printed with its seed and mutation so it can be replayed.

use brainrecon_datasets::ds005531::DataDt;
use brainrecon_formats::{
    audio, cifti, dicom, image, itk_transform, mat, nifti_io, npy, pickle, video,
};
use brainrecon_formats::{events::Events, nifti4d};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod mutate;
mod pickle_program;

use mutate::{env_number, mutate, mutate_number, seed, Rng};

fn cases() -> usize {
    env_number("BRAINRECON_FUZZ_CASES", 150) as usize
}

/// The fixture folders: the layouts' (this crate) and the formats' (brainrecon-formats).
fn fixture_roots() -> [PathBuf; 2] {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        here.join("tests/fixtures"),
        here.join("../formats/tests/fixtures"),
    ]
}

/// Files under `dir` (recursively) whose names end with `suffix`.
fn seeds(dir: &str, suffix: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                walk(&path, suffix, out);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for root in fixture_roots() {
        walk(&root.join(dir), suffix, &mut out);
    }
    out
}

/// Mutates each seed file `cases()` times (in all) and reads every copy with `read`.
fn fuzz(
    target: &str,
    seed_files: &[PathBuf],
    suffix: &str,
    read: impl Fn(&Path) -> Result<(), String>,
) {
    assert!(!seed_files.is_empty(), "{target}: no seed files");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(seed()
        ^ target
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64));
    let (mut errors, mut failures) = (0usize, Vec::new());
    let mut slowest = Duration::ZERO;
    for case in 0..cases() {
        let source = &seed_files[case % seed_files.len()];
        let mut bytes = std::fs::read(source).unwrap();
        let steps = 1 + rng.below(3);
        let text = [".tsv", ".json"].contains(&suffix);
        let what: Vec<String> = (0..steps)
            .map(|_| {
                // Text tables get hostile numbers half of the time.
                let number = (text && rng.below(2) == 0)
                    .then(|| mutate_number(&mut rng, &mut bytes))
                    .flatten();
                number.unwrap_or_else(|| mutate(&mut rng, &mut bytes))
            })
            .collect();
        let path = dir.path().join(format!("case{suffix}"));
        std::fs::write(&path, &bytes).unwrap();
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| read(&path)));
        let took = started.elapsed();
        slowest = slowest.max(took);
        match verdict(outcome, &path, took) {
            Ok(refused) => errors += refused as usize,
            Err(failure) => {
                let kept = keep_crasher(
                    &format!("{target}-seed{}-case{case}{suffix}", seed()),
                    &bytes,
                );
                failures.push(format!(
                    "{target} case {case} from {} ({}): {failure} → {}",
                    source.display(),
                    what.join("; "),
                    kept.display()
                ));
            }
        }
    }
    eprintln!(
        "{target}: {} cases, {errors} refused with an error, slowest {slowest:?}",
        cases()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One case's outcome judged: Ok(true) a refusal naming the file by its whole path ("case"
/// alone is in many messages), Ok(false) a read; Err what was wrong (a panic, an error not
/// naming the file, more than 5 s).
fn verdict(
    outcome: std::thread::Result<Result<(), String>>,
    path: &Path,
    took: Duration,
) -> Result<bool, String> {
    let refused = match outcome {
        Ok(Ok(())) => false,
        Ok(Err(message)) if message.contains(&*path.to_string_lossy()) => true,
        Ok(Err(message)) => return Err(format!("error without the file's name: {message}")),
        Err(_) => return Err("panic".to_string()),
    };
    if took > Duration::from_secs(5) {
        return Err(format!("took {took:?}"));
    }
    Ok(refused)
}

/// Keeps a failing case's bytes as `name` under the target's fuzz-crashers folder.
fn keep_crasher(name: &str, bytes: &[u8]) -> PathBuf {
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashers");
    std::fs::create_dir_all(&keep).unwrap();
    let kept = keep.join(name);
    std::fs::write(&kept, bytes).unwrap();
    kept
}

fn text<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, String> {
    result.map_err(|e| e.to_string())
}

#[test]
fn npy_arrays() {
    let seed_files = seeds("", ".npy");
    fuzz("npy", &seed_files, ".npy", |path| {
        let header = text(npy::read_header(path))?;
        match header.descr.as_str() {
            "<f4" => {
                let mapped = text(npy::MappedF32::open(path))?;
                let _sum: f32 = mapped.as_slice().iter().sum();
                text(npy::read_f32(path)).map(drop)
            }
            "<f8" => text(npy::read_f32(path)).map(drop),
            "|u1" => text(npy::read_u8(path)).map(drop),
            "|O" => text(npy::read_pickled(path)).map(drop),
            _ => text(npy::read_i64(path)).map(drop),
        }
    });
}

#[test]
fn things_eeg2_dicts() {
    use brainrecon_datasets::things_eeg2::{read_image_metadata, read_preprocessed, read_raw};
    let seed_files = seeds("things_eeg2", ".npy");
    fuzz("things_eeg2", &seed_files, ".npy", |path| {
        // The mutated copy loses its name, so each reader gets it; one must read or all refuse.
        let results = [
            text(read_preprocessed(path)).map(drop),
            text(read_raw(path)).map(drop),
            text(read_image_metadata(path)).map(drop),
        ];
        match results.iter().find(|r| r.is_ok()) {
            Some(_) => Ok(()),
            None => results
                .into_iter()
                .find_map(Result::err)
                .map_or(Ok(()), Err),
        }
    });
}

#[test]
fn things_eeg2_raw_preprocessing() {
    use brainrecon_datasets::things_eeg2::{preprocess_raw, RawPreprocessing, ThingsEeg2};
    let seed_files = seeds("things_eeg2_raw", ".npy")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("raw_eeg_"))
        .collect::<Vec<_>>();
    fuzz("things_eeg2_raw", &seed_files, ".npy", |path| {
        // The mutated recording as both halves of a one-session subject: sizes read from it
        // (samples, sfreq, events) drive the epochs and the resampling.
        let root = path.parent().unwrap().join("case-tree");
        let session = root.join("eeg_dataset/raw_data/sub-01/ses-01");
        std::fs::create_dir_all(&session).unwrap();
        for half in ["training", "test"] {
            std::fs::copy(path, session.join(format!("raw_eeg_{half}.npy"))).unwrap();
        }
        let set = text(ThingsEeg2::open(&root))?;
        text(preprocess_raw(&set, "sub-01", &RawPreprocessing::default()))
            .map(drop)
            .map_err(|message| {
                // A refusal names the copy it read, by its whole path.
                let copies =
                    ["training", "test"].map(|half| session.join(format!("raw_eeg_{half}.npy")));
                match copies
                    .iter()
                    .any(|c| message.contains(&*c.to_string_lossy()))
                {
                    true => format!("{} (through its copy): {message}", path.display()),
                    false => message,
                }
            })
    });
}

#[test]
fn bids_eeg_events() {
    use brainrecon_datasets::bids_eeg::image_events;
    // ds003825's onsets in samples, and the EDF/BDF runs' in seconds.
    let mut seed_files = seeds("ds003825", "_events.tsv");
    seed_files.extend(seeds("bids_eeg_edf", "_events.tsv"));
    fuzz("bids_eeg_events", &seed_files, ".tsv", |path| {
        let events = text(brainrecon_formats::events::Events::read(path))?;
        text(image_events(&events, 1000.0, 6_000)).map(drop)
    });
}

#[test]
fn edf_recordings() {
    use brainrecon_formats::edf;
    let mut seed_files = seeds("bids_eeg_edf", "_eeg.edf");
    seed_files.extend(seeds("bids_eeg_edf", "_eeg.bdf"));
    fuzz("edf", &seed_files, ".edf", |path| {
        text(edf::read(path)).map(drop)
    });
}

#[test]
fn fif_epochs() {
    use brainrecon_formats::fif;
    let seed_files = seeds("fif", ".fif");
    let fixtures = fixture_roots()[1].join("fif");
    fuzz("fif", &seed_files, ".fif", |path| {
        // A first part names its continuations: they lie beside the mutated copy.
        let dir = path.parent().unwrap();
        for name in ["preprocessed_P1-epo-1.fif", "preprocessed_P1-epo-2.fif"] {
            if !dir.join(name).exists() {
                std::fs::copy(fixtures.join(name), dir.join(name)).unwrap();
            }
        }
        text(fif::read_epochs(path)).map(drop)
    });
}

#[test]
fn freesurfer_surfaces_curv_and_patches() {
    use brainrecon_formats::fs_surface;
    fuzz(
        "fs-surface",
        &seeds("surface", "lh.white"),
        ".white",
        |path| text(fs_surface::read_surface(path)).map(drop),
    );
    let mut curv = seeds("surface", "lh.curv");
    curv.extend(seeds("surface", "lh.curv.old"));
    fuzz("fs-curv", &curv, ".curv", |path| {
        text(fs_surface::read_morph(path)).map(drop)
    });
    let mut patches = seeds("surface", ".patch.3d");
    patches.extend(seeds("annot", ".patch.3d"));
    fuzz("fs-patch", &patches, ".3d", |path| {
        text(fs_surface::read_patch(path)).map(drop)
    });
    fuzz("fs-annot", &seeds("annot", ".annot"), ".annot", |path| {
        text(fs_surface::read_annot(path, None)).map(drop)
    });
}

#[test]
fn mgh_and_mgz() {
    use brainrecon_formats::mgh;
    let mut seed_files = seeds("surface", ".mgh");
    seed_files.extend(seeds("surface", ".mgz"));
    fuzz("mgh", &seed_files, ".mgz", |path| {
        text(mgh::read_mgh(path)).map(drop)
    });
}

#[test]
fn gifti_files() {
    use brainrecon_formats::gifti;
    let mut seed_files = seeds("surface", ".gii");
    seed_files.extend(seeds("surface", ".gii.gz"));
    fuzz("gifti", &seed_files, ".gii", |path| {
        let file = text(gifti::read_gifti(path))?;
        let _ = file.surface(path);
        Ok(())
    });
}

#[test]
fn brainvision_headers() {
    use brainrecon_formats::brainvision;
    let seed_files = seeds("brainvision", ".vhdr");
    let fixtures = fixture_roots()[1].join("brainvision");
    fuzz("brainvision", &seed_files, ".vhdr", |path| {
        // The header names its data and marker files: they lie beside the mutated copy.
        let dir = path.parent().unwrap();
        for name in [
            "int16.eeg",
            "int16.vmrk",
            "float32.eeg",
            "float32.vmrk",
            "vectorized.eeg",
        ] {
            if !dir.join(name).exists() {
                std::fs::copy(fixtures.join(name), dir.join(name)).unwrap();
            }
        }
        // An error about the data or marker file names that file, by its whole path.
        brainvision::read(path).map(drop).map_err(|e| {
            let message = e.to_string();
            let names_companion = std::fs::read_dir(dir).unwrap().any(|entry| {
                let companion = entry.unwrap().path();
                companion != path && message.contains(&*companion.to_string_lossy())
            });
            match names_companion {
                true => format!("{} (through its companion file): {message}", path.display()),
                false => message,
            }
        })
    });
}

#[test]
fn pickles() {
    let seed_files = seeds("", ".pkl");
    fuzz("pickle", &seed_files, ".pkl", |path| {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        pickle::read(&bytes)
            .map(drop)
            .map_err(|e| format!("{}: {e}", path.display()))
    });
}

/// Bytes the reader may allocate for one generated pickle: a program holds at most 256 KB, so
/// anything near this is an amplification the budget must stop.
const PROGRAM_BUDGET: u64 = 64 << 20;

#[test]
fn pickle_programs() {
    use brainrecon_datasets::things_eeg2::{read_image_metadata, read_preprocessed};
    // Built opcode by opcode (pickle_program), 20 per mutated-file case: 3,000 in CI (a few
    // seconds), 240,000 in tools/fuzz.sh. A quarter are mutated after they are built, and a
    // quarter go behind np.save's header, so both of read_pickled's paths see them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.npy");
    let mut rng = Rng(seed() ^ 0x7069_636b_6c65);
    let (mut errors, mut failures) = (0usize, Vec::new());
    let (mut slowest, mut values) = (Duration::ZERO, 0usize);
    let total = 20 * cases();
    for case in 0..total {
        let mut bytes = pickle_program::program(&mut rng);
        let mut what = String::from("generated");
        if rng.below(4) == 0 {
            what = mutate(&mut rng, &mut bytes);
        }
        if rng.below(4) == 0 {
            let mut header =
                b"\x93NUMPY\x01\x00\x76\x00{'descr': '|O', 'fortran_order': False, 'shape': (), }"
                    .to_vec();
            header.resize(10 + 0x76 - 1, b' ');
            header.push(b'\n');
            header.extend_from_slice(&bytes);
            bytes = header;
        }
        std::fs::write(&path, &bytes).unwrap();
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let value = text(npy::read_pickled_within(&path, PROGRAM_BUDGET))?;
            values += 1;
            // The consumers that flatten what was read: each sizes its copy first.
            let consume = |v: &pickle::Value| {
                let _ = v.to_strings();
                if let pickle::Value::Array(a) = v {
                    let _ = a.to_f64();
                }
            };
            consume(&value);
            if let pickle::Value::Dict(pairs) = &value {
                pairs.iter().for_each(|(k, v)| {
                    consume(k);
                    consume(v);
                });
            }
            let results = [
                text(read_preprocessed(&path)).map(drop),
                text(read_image_metadata(&path)).map(drop),
            ];
            results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
        }));
        let took = started.elapsed();
        slowest = slowest.max(took);
        match verdict(outcome, &path, took) {
            Ok(refused) => errors += refused as usize,
            Err(failure) => {
                let kept = keep_crasher(
                    &format!("pickle-program-seed{}-case{case}.npy", seed()),
                    &bytes,
                );
                failures.push(format!(
                    "pickle-program case {case} ({what}): {failure} → {}",
                    kept.display()
                ));
            }
        }
    }
    eprintln!(
        "pickle-program: {total} cases, {values} read as values, {errors} refused with an \
         error, slowest {slowest:?}"
    );
    // A generator whose programs never read would test only the first opcodes.
    assert!(values * 10 >= total, "only {values} of {total} read");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn nifti_series_and_volumes() {
    let mut seed_files = seeds("runs/datatypes", ".nii");
    seed_files.extend(seeds("runs/ds003720", ".nii"));
    fuzz("nifti", &seed_files, ".nii", |path| {
        let header = text(nifti4d::read_header(path))?;
        text(nifti4d::for_each_volume(path, |_, _| Ok(())))?;
        if header.n_volumes == 1 {
            text(nifti_io::read_volume(path))?;
        }
        Ok(())
    });
}

#[test]
fn dicom_mosaics_enhanced_and_single_frame() {
    let mut seed_files = seeds("dicom/mosaic", ".dcm");
    seed_files.extend(seeds("dicom/enhanced", ".dcm"));
    seed_files.extend(seeds("dicom/slices", ".dcm").into_iter().take(2));
    fuzz("dicom", &seed_files, ".dcm", |path| {
        text(dicom::read_file(path)).map(drop)
    });
}

#[test]
fn nifti_gzipped() {
    fuzz("nifti-gz", &seeds("runs", ".nii.gz"), ".nii.gz", |path| {
        text(nifti4d::for_each_volume(path, |_, _| Ok(()))).map(drop)
    });
}

#[test]
fn cifti_dense_series() {
    fuzz(
        "cifti",
        &seeds("cifti", ".dtseries.nii"),
        ".dtseries.nii",
        |path| text(cifti::CiftiSeries::read(path)).map(drop),
    );
    fuzz(
        "cifti-dlabel",
        &seeds("cifti", ".dlabel.nii"),
        ".dlabel.nii",
        |path| text(cifti::CiftiLabels::read(path)).map(drop),
    );
}

#[test]
fn mat_v5_and_v73() {
    fuzz(
        "mat-v5",
        &seeds("runs/ds005531", "vset_100.mat"),
        ".mat",
        |path| text(mat::read_matrices(path, &["tvoxels"])).map(drop),
    );
    fuzz(
        "mat-v73",
        &seeds("runs/ds005531", "run-02.mat"),
        ".mat",
        |path| {
            let data = text(DataDt::open(path))?;
            text(data.rows(0, data.n_times.min(4))).map(drop)
        },
    );
}

#[test]
fn itk_transforms() {
    fuzz("itk-h5", &seeds("itk_warp", "_xfm.h5"), ".h5", |path| {
        let t = text(itk_transform::ItkTransform::read(path))?;
        t.map_ras([10.0, -20.0, 5.0]);
        Ok(())
    });
}

#[test]
fn events_tables() {
    fuzz("events", &seeds("runs", "_events.tsv"), ".tsv", |path| {
        let events = text(Events::read(path))?;
        let _ = events.numbers("onset");
        Ok(())
    });
}

#[test]
fn wav_audio() {
    fuzz("wav", &seeds("audio", ".wav"), ".wav", |path| {
        text(audio::decode::read_header(path))?;
        text(audio::read_audio(path)).map(drop)
    });
}

#[test]
fn png_images() {
    fuzz("png", &seeds("video/frames", ".png"), ".png", |path| {
        text(image::read_png(path)).map(drop)
    });
}

#[test]
fn mp4_video() {
    fuzz("mp4", &seeds("video", "baseline.mp4"), ".mp4", |path| {
        let video = text(video::open(path))?;
        let n = video.info().frames.min(2);
        text(video.frames(&(0..n).collect::<Vec<_>>())).map(drop)
    });
}
