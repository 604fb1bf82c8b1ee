//! MNE epochs in FIF written by MNE 1.13.2 against what `mne.read_epochs` gives back
//! (tools/fixtures/things_meg_fif.py): THINGS-MEG-like float32 epochs split into three parts
//! (`preprocessed_P1-epo.fif`, `-epo-1.fif`, `-epo-2.fif`) and the same unsplit, float64 epochs with a long channel name and a baseline. Samples, channels,
//! events, event_id, metadata, selection; and broken files (truncated, a part missing, a size
//! corrupted) as errors naming the file.

use brainrecon_formats::fif::{read_epochs, read_epochs_with, StoredAs};
use brainrecon_formats::npy;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fif")
        .join(name)
}

fn expected(case: &str) -> Value {
    let text = std::fs::read_to_string(fixture(&format!("{case}.expected.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A little-endian float64 `.npy` (what the fixture script saves) as its shape and values.
fn read_f64_npy(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let header = npy::read_header(path).unwrap();
    assert_eq!(header.descr, "<f8");
    let bytes = std::fs::read(path).unwrap();
    let values = bytes[header.data_offset..]
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (header.shape, values)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Largest |ours − MNE's| over the largest |MNE's|, per channel (channels differ by 10^15 in
/// scale: tesla and trigger values), and the worst of them.
fn relative_error(got: &[f32], want: &[f64], epochs: usize, channels: usize, times: usize) -> f64 {
    let mut worst = 0f64;
    for c in 0..channels {
        let (mut diff, mut scale) = (0f64, 0f64);
        for e in 0..epochs {
            for t in 0..times {
                let i = (e * channels + c) * times + t;
                diff = diff.max((got[i] as f64 - want[i]).abs());
                scale = scale.max(want[i].abs());
            }
        }
        if scale > 0.0 {
            worst = worst.max(diff / scale);
        } else {
            assert_eq!(diff, 0.0, "channel {c} is all zeros in MNE's reading");
        }
    }
    worst
}

fn check_case(case: &str, first_file: &str, stored_as: StoredAs, tolerance: f64) {
    let meta = expected(case);
    let epochs = read_epochs(&fixture(first_file)).unwrap();
    let files: Vec<String> = epochs
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, strings(&meta["files"]), "{case}: parts read");
    assert_eq!(epochs.stored_as, stored_as, "{case}");
    assert_eq!(epochs.ch_names(), strings(&meta["ch_names"]), "{case}");
    let types: Vec<&str> = epochs.channels.iter().map(|c| c.type_name()).collect();
    assert_eq!(types, strings(&meta["ch_types"]), "{case}");
    for (c, cal) in epochs.channels.iter().zip(meta["cal"].as_array().unwrap()) {
        assert_eq!(
            c.cal as f64,
            cal.as_f64().unwrap(),
            "{case}: {} cal",
            c.name
        );
    }
    assert_eq!(epochs.bads, strings(&meta["bads"]), "{case}");
    assert_eq!(epochs.sfreq, meta["sfreq"].as_f64().unwrap(), "{case}");
    assert!(
        (epochs.tmin - meta["tmin"].as_f64().unwrap()).abs() < 1e-12,
        "{case}"
    );
    let times = meta["times"].as_array().unwrap();
    assert_eq!(epochs.n_times, times.len(), "{case}");
    for (ours, theirs) in epochs.times().iter().zip(times) {
        assert!((ours - theirs.as_f64().unwrap()).abs() < 1e-12, "{case}");
    }
    let events: Vec<[i64; 3]> = meta["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let e = e.as_array().unwrap();
            [0, 1, 2].map(|k| e[k].as_i64().unwrap())
        })
        .collect();
    assert_eq!(epochs.events, events, "{case}");
    let event_id: Vec<(String, i64)> = meta["event_id"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_i64().unwrap()))
        .collect();
    assert_eq!(epochs.event_id, event_id, "{case}");
    let selection: Vec<i64> = meta["selection"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(epochs.selection, selection, "{case}");
    match meta["baseline"].as_array() {
        None => assert_eq!(epochs.baseline, None, "{case}"),
        Some(b) => assert_eq!(
            epochs.baseline,
            Some((b[0].as_f64(), b[1].as_f64())),
            "{case}"
        ),
    }
    match meta["metadata"].as_object() {
        None => assert!(epochs.metadata.is_none(), "{case}"),
        Some(want) => {
            let got = epochs.metadata.as_ref().unwrap();
            let names: Vec<&str> = got.columns.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, strings(&want["columns"]), "{case}: metadata columns");
            for (r, row) in want["rows"].as_array().unwrap().iter().enumerate() {
                for (column, value) in got.columns.iter().zip(row.as_array().unwrap()) {
                    let ours = column.values[r].as_deref();
                    match value {
                        Value::Null => assert_eq!(ours, None, "{case} row {r} {}", column.name),
                        Value::String(s) => assert_eq!(ours, Some(s.as_str()), "{case}"),
                        Value::Number(n) => {
                            let ours: f64 = ours.unwrap().parse().unwrap();
                            assert_eq!(ours, n.as_f64().unwrap(), "{case} row {r} {}", column.name);
                        }
                        other => panic!("{case}: unexpected metadata value {other}"),
                    }
                }
            }
            assert_eq!(
                got.texts.len(),
                files.len(),
                "{case}: one JSON text per part"
            );
        }
    }
    let (shape, want) = read_f64_npy(&fixture(&format!("{case}.expected.npy")));
    let (n, c, t) = (epochs.n_epochs(), epochs.channels.len(), epochs.n_times);
    assert_eq!(shape, vec![n, c, t], "{case}");
    assert_eq!(epochs.data.len(), want.len(), "{case}");
    let error = relative_error(&epochs.data, &want, n, c, t);
    eprintln!("{case}: largest |ours - MNE| / largest |MNE| over channels = {error:.3e}");
    assert!(error < tolerance, "{case}: relative error {error}");
    // The visitor hands the same epochs in order.
    let mut seen = Vec::new();
    let header = read_epochs_with(&fixture(first_file), |i, samples| {
        assert_eq!(i, seen.len() / (c * t));
        seen.extend_from_slice(samples);
        Ok(())
    })
    .unwrap();
    assert!(header.data.is_empty());
    assert_eq!(seen, epochs.data, "{case}");
}

#[test]
fn split_float32_epochs_equal_mne() {
    check_case(
        "preprocessed_P1",
        "preprocessed_P1-epo.fif",
        StoredAs::Float32,
        1e-6,
    );
    let epochs = read_epochs(&fixture("preprocessed_P1-epo.fif")).unwrap();
    assert_eq!(epochs.files.len(), 3);
    // THINGS-MEG's ties: the event code is the THINGS image number (999999 for catch trials);
    // the metadata's trial_type tells exp, test and catch apart.
    let meta = epochs.metadata.as_ref().unwrap();
    let kinds = meta.column("trial_type").unwrap();
    assert_eq!(kinds[1].as_deref(), Some("test"));
    assert_eq!(kinds[3].as_deref(), Some("catch"));
    assert_eq!(epochs.events[3][2], 999999);
    assert_eq!(epochs.events[1][2], 6312);
    assert_eq!(
        meta.column("things_image_nr").unwrap()[1].as_deref(),
        Some("6312.0")
    );
    assert_eq!(meta.column("test_image_nr").unwrap()[0], None);
    // Epoch 10 of 11 was dropped before saving: the index and selection skip it.
    assert_eq!(meta.index.len(), epochs.n_epochs());
    assert_eq!(meta.index[9].as_deref(), Some("10"));
    assert_eq!(epochs.drop_log.len(), 11);
    assert_eq!(epochs.drop_log[9], vec!["MEG-JUMP".to_string()]);
    assert!(epochs
        .drop_log
        .iter()
        .all(|e| e.first().map(String::as_str) != Some("IGNORED")));
    assert!(epochs.projectors.is_empty());
    // The unsplit copy holds the same.
    let unsplit = read_epochs(&fixture("things_unsplit-epo.fif")).unwrap();
    assert_eq!(unsplit.data, epochs.data);
    assert_eq!(unsplit.events, epochs.events);
    assert_eq!(unsplit.metadata.unwrap().columns, meta.columns);
    assert_eq!(unsplit.drop_log, epochs.drop_log);
    // A continuation part alone is epochs of its own: the last ones.
    let last = read_epochs(&fixture("preprocessed_P1-epo-2.fif")).unwrap();
    assert_eq!(last.files.len(), 1);
    let skip = epochs.n_epochs() - last.n_epochs();
    assert!(skip > 0 && last.n_epochs() > 0);
    assert_eq!(last.events[..], epochs.events[skip..]);
    let per = epochs.channels.len() * epochs.n_times;
    assert_eq!(last.data[..], epochs.data[skip * per..]);
}

#[test]
fn unsplit_float32_epochs_equal_mne() {
    check_case(
        "things_unsplit",
        "things_unsplit-epo.fif",
        StoredAs::Float32,
        1e-6,
    );
}

#[test]
fn float64_epochs_with_a_long_channel_name_equal_mne() {
    check_case("double", "double-epo.fif", StoredAs::Float64, 1e-7);
    let epochs = read_epochs(&fixture("double-epo.fif")).unwrap();
    assert_eq!(epochs.channels[2].name, "UADC009-2104-eyetracker-x");
    assert_eq!(epochs.event_id[1], ("image:b".to_string(), 7));
}

/// Copies the split parts into a temporary folder.
fn split_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "preprocessed_P1-epo.fif",
        "preprocessed_P1-epo-1.fif",
        "preprocessed_P1-epo-2.fif",
    ] {
        std::fs::copy(fixture(name), dir.path().join(name)).unwrap();
    }
    let first = dir.path().join("preprocessed_P1-epo.fif");
    (dir, first)
}

/// Byte offset of the first tag of `kind` in a FIF file's bytes (tags follow each other).
fn tag_offset(bytes: &[u8], kind: i32) -> usize {
    let mut pos = 0;
    loop {
        let word = |i: usize| i32::from_be_bytes(bytes[pos + i..pos + i + 4].try_into().unwrap());
        if word(0) == kind {
            return pos;
        }
        pos += 16 + word(8) as usize;
    }
}

#[test]
fn a_missing_part_is_an_error_naming_it() {
    let (dir, first) = split_copy();
    std::fs::remove_file(dir.path().join("preprocessed_P1-epo-2.fif")).unwrap();
    let err = read_epochs(&first).unwrap_err().to_string();
    assert!(
        err.contains("preprocessed_P1-epo-1.fif") && err.contains("preprocessed_P1-epo-2.fif"),
        "{err}"
    );
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn truncated_files_are_errors_naming_the_file() {
    let (dir, first) = split_copy();
    let bytes = std::fs::read(fixture("preprocessed_P1-epo-1.fif")).unwrap();
    let part = dir.path().join("preprocessed_P1-epo-1.fif");
    // Cut inside the samples, right after a block's end, and inside a tag header.
    let data = tag_offset(&bytes, 302);
    for cut in [data + 1000, bytes.len() - 36, 10, 0] {
        std::fs::write(&part, &bytes[..cut]).unwrap();
        let err = read_epochs(&first).unwrap_err().to_string();
        assert!(
            err.contains("preprocessed_P1-epo-1.fif"),
            "cut at {cut}: {err}"
        );
        assert!(err.contains("truncated"), "cut at {cut}: {err}");
    }
}

#[test]
fn corrupt_sizes_are_errors_not_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad-epo.fif");
    let good = std::fs::read(fixture("double-epo.fif")).unwrap();
    let data = tag_offset(&good, 302);
    let cases: Vec<(usize, [u8; 4], &str)> = vec![
        // The samples' tag size: past the file's end, and negative.
        (data + 8, 0x7fff_fff0i32.to_be_bytes(), "FIFF_EPOCH"),
        (data + 8, (-8i32).to_be_bytes(), "FIFF_EPOCH"),
        // A stored dimension: epochs × 2^30.
        (
            data + 16 + good_size(&good, data) - 8,
            (1i32 << 30).to_be_bytes(),
            "dimensions",
        ),
        // The channel count.
        (
            tag_offset(&good, 200) + 16,
            100_000i32.to_be_bytes(),
            "FIFF_NCHAN",
        ),
        // The last sample: 2^31 − 1 samples per epoch.
        (
            tag_offset(&good, 209) + 16,
            i32::MAX.to_be_bytes(),
            "dimensions",
        ),
    ];
    for (at, value, field) in cases {
        let mut bytes = good.clone();
        bytes[at..at + 4].copy_from_slice(&value);
        std::fs::write(&path, &bytes).unwrap();
        let err = read_epochs(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad-epo.fif") && err.contains(field),
            "{field}: {err}"
        );
    }
    // Not FIF at all, and gzipped.
    std::fs::write(&path, b"\x1f\x8b\x08\x00 not really").unwrap();
    let err = read_epochs(&path).unwrap_err().to_string();
    assert!(err.contains("bad-epo.fif") && err.contains("gzip"), "{err}");
    std::fs::write(&path, [b'x'; 64]).unwrap();
    let err = read_epochs(&path).unwrap_err().to_string();
    assert!(
        err.contains("bad-epo.fif") && err.contains("first tag"),
        "{err}"
    );
}

/// The data size of the tag at `at`.
fn good_size(bytes: &[u8], at: usize) -> usize {
    i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize
}

#[test]
fn a_part_naming_itself_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("preprocessed_P1-epo.fif")).unwrap();
    let name = tag_offset(&bytes, 118);
    // The next part's name ("preprocessed_P1-epo-1.fif") made the file's own.
    bytes[name + 16..name + 41].copy_from_slice(b"preprocessed_P9-loops.fif");
    let path = dir.path().join("preprocessed_P9-loops.fif");
    std::fs::write(&path, &bytes).unwrap();
    let err = read_epochs(&path).unwrap_err().to_string();
    assert!(
        err.contains("preprocessed_P9-loops.fif") && err.contains("not read yet"),
        "{err}"
    );
}
