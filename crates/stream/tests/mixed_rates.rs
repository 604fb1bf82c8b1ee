//! EDF and BDF files whose signals have different sample rates, written by pyEDFlib and
//! resampled by scipy (tools/fixtures/make_edf_mixed.py): the reader gives every chosen signal
//! at the highest rate among them.

mod common;

use brainrecon_stream::resample::HALF_WIDTH;
use brainrecon_stream::source::read_all;
use brainrecon_stream::{read_edf, EdfReader, Recording, SignalSelection, Source};
use common::{edited_copy, fixture, reference};

/// Column `c` of a `frames × channels` recording, as f64.
fn column(recording: &Recording, c: usize) -> Vec<f64> {
    recording.channel(c).iter().map(|&v| v as f64).collect()
}

/// Column `c` of a reference array of shape `shape`.
fn ref_column(values: &[f64], shape: &[usize], c: usize) -> Vec<f64> {
    (0..shape[0]).map(|t| values[t * shape[1] + c]).collect()
}

/// Largest |a − b| over frames `from..to`.
fn max_error(a: &[f64], b: &[f64], from: usize, to: usize) -> f64 {
    (from..to).map(|t| (a[t] - b[t]).abs()).fold(0.0, f64::max)
}

struct Expect {
    /// Largest error against scipy's FFT resampling, away from the edges (`edge` frames).
    scipy: f64,
    /// Largest error against the written function, away from the edges.
    analytic: f64,
    /// Largest error against the written function, edges included.
    analytic_edges: f64,
}

/// Checks every column of `name` read with all signals against the references.
fn check(name: &str, stem: &str, labels: &[&str], rate: f64, edge: usize, expect: &[Expect]) {
    let path = fixture(name);
    let recording = read_edf(&path, &SignalSelection::All).unwrap();
    assert_eq!(recording.labels(), labels);
    assert_eq!(recording.rate(), rate);
    let (shape, scipy) = reference(&format!("{stem}_scipy.npy"));
    let (_, analytic) = reference(&format!("{stem}_analytic.npy"));
    assert_eq!(recording.frames(), shape[0], "frames of {name}");
    assert_eq!(recording.channels(), shape[1]);
    let frames = shape[0];
    for (c, e) in expect.iter().enumerate() {
        let got = column(&recording, c);
        let want = ref_column(&scipy, &shape, c);
        let exact = ref_column(&analytic, &shape, c);
        let errors = [
            max_error(&got, &want, edge, frames - edge),
            max_error(&got, &exact, edge, frames - edge),
            max_error(&got, &exact, 0, frames),
        ];
        eprintln!("{name} {}: {errors:?}", labels[c]);
        assert!(
            errors[0] <= e.scipy && errors[1] <= e.analytic && errors[2] <= e.analytic_edges,
            "{name} {}: errors (scipy, analytic, analytic with edges) {errors:?}",
            labels[c]
        );
    }
}

#[test]
fn edf_signals_at_256_hz_are_resampled_to_the_ecg_s_512_hz() {
    // EEG ±250 uV in 16 bits: a step of 0.0076 uV; ECG ±2 mV: 6.1e-5 mV. pyEDFlib's
    // quantisation is off the written function by up to one step.
    let eeg = Expect {
        scipy: 2e-3,
        analytic: 0.015,
        analytic_edges: 0.5,
    };
    let ecg = Expect {
        scipy: 1e-6,
        analytic: 6.2e-5,
        analytic_edges: 6.2e-5,
    };
    check(
        "edf_rates.edf",
        "edf_rates",
        &["EEG Fz", "ECG", "EEG Cz"],
        512.0,
        2 * HALF_WIDTH,
        &[
            Expect { ..eeg },
            ecg,
            // A 40 Hz component: the outputs after the last sample are extrapolated.
            Expect {
                analytic_edges: 2.5,
                ..eeg
            },
        ],
    );
}

#[test]
fn bdf_signals_at_200_hz_are_resampled_to_256_hz() {
    // 24 bits: steps of 1e-3 uV (A1), 1.2e-5 mV (Flat), 1.2e-4 uV (A2); the native A2 and the
    // constant match to that, the 60 Hz sine to 1e-5 of its amplitude.
    // A 60 Hz sine at 200 Hz: the last outputs lie past the last sample, where no method
    // knows the signal; the edges are not compared.
    let a1 = Expect {
        scipy: 0.05,
        analytic: 0.05,
        analytic_edges: f64::INFINITY,
    };
    let flat = Expect {
        scipy: 1e-5,
        analytic: 2e-5,
        analytic_edges: 2e-5,
    };
    let a2 = Expect {
        scipy: 1e-5,
        analytic: 2e-4,
        analytic_edges: 2e-4,
    };
    // 24 input samples at 200 Hz are 31 output samples at 256 Hz.
    check(
        "bdf_rates.bdf",
        "bdf_rates",
        &["A1", "Flat", "A2"],
        256.0,
        31,
        &[a1, flat, a2],
    );
}

#[test]
fn signals_of_one_rate_are_read_unchanged_and_kept_where_positions_coincide() {
    let path = fixture("edf_rates.edf");
    let all = read_edf(&path, &SignalSelection::All).unwrap();
    // The two EEG signals alone share 256 Hz: nothing is resampled.
    for selection in [
        SignalSelection::Labels(vec!["EEG Fz".into(), "EEG Cz".into()]),
        SignalSelection::Indices(vec![0, 2]),
        SignalSelection::Rate(256.0),
    ] {
        let reader = EdfReader::open(&path, &selection).unwrap();
        assert!(reader.resampled().is_empty(), "{selection:?}");
        let eeg = read_edf(&path, &selection).unwrap();
        assert_eq!(eeg.rate(), 256.0);
        assert_eq!(eeg.labels(), vec!["EEG Fz", "EEG Cz"]);
        assert_eq!(eeg.frames(), 3 * 256);
        // Every second sample at 512 Hz sits on a 256 Hz sample, and keeps its value.
        for (c, all_c) in [(0, 0), (1, 2)] {
            let native = column(&eeg, c);
            let resampled = column(&all, all_c);
            for (t, v) in native.iter().enumerate() {
                let r = resampled[2 * t];
                assert!((r - v).abs() <= v.abs() * 2e-7 + 1e-9, "{t}: {r} vs {v}");
            }
        }
    }
    // ECG with one EEG signal: the EEG is resampled to 512 Hz, in the order asked for.
    let reader = EdfReader::open(&path, &SignalSelection::Indices(vec![1, 0])).unwrap();
    assert_eq!(reader.resampled(), vec![0]);
    assert_eq!(reader.rate(), 512.0);
    let pair = read_edf(&path, &SignalSelection::Indices(vec![1, 0])).unwrap();
    assert_eq!(pair.labels(), vec!["ECG", "EEG Fz"]);
    assert_eq!(pair.channel(0), all.channel(1));
    assert_eq!(pair.channel(1), all.channel(0));

    let err = read_edf(&path, &SignalSelection::Indices(vec![3]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("edf_rates.edf")
            && err.contains("signals")
            && err.contains("below 3")
            && err.contains("EEG Fz, ECG, EEG Cz"),
        "{err}"
    );
}

#[test]
fn reading_in_pieces_gives_the_same_samples() {
    for name in ["edf_rates.edf", "bdf_rates.bdf"] {
        let path = fixture(name);
        let whole = read_edf(&path, &SignalSelection::All).unwrap();
        let mut reader = EdfReader::open(&path, &SignalSelection::All).unwrap();
        let mut data = Vec::new();
        for size in [1usize, 7, 300, 2, 64].iter().cycle() {
            match reader.next_chunk(*size).unwrap() {
                Some(chunk) => {
                    assert!(chunk.frames() >= 1 && chunk.frames() <= *size, "{name}");
                    data.extend_from_slice(&chunk.data);
                }
                None => break,
            }
        }
        assert_eq!(data, whole.data(), "{name}");
        // Ended sources stay ended.
        assert!(reader.next_chunk(10).unwrap().is_none());
        let mut again = EdfReader::open(&path, &SignalSelection::All).unwrap();
        let recording = read_all(&mut again, &path).unwrap();
        assert_eq!(recording.data(), whole.data());
    }
}

fn message(path: &std::path::Path) -> String {
    read_edf(path, &SignalSelection::All)
        .map(|_| "no error".to_string())
        .unwrap_or_else(|e| e.to_string())
}

#[test]
fn bad_rates_and_record_sizes_are_errors_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    // Samples per record start at 256 + 216 × 3 = 904; ECG (signal 2) is 8 bytes later.
    let path = edited_copy(dir.path(), "edf_rates.edf", |b| {
        b[912..920].copy_from_slice(b"0       ")
    });
    let err = message(&path);
    assert!(
        err.contains("edf_rates.edf")
            && err.contains("signal 2 (ECG) samples per data record")
            && err.contains("found 0"),
        "{err}"
    );
    // A record that claims more samples than the file holds.
    let path = edited_copy(dir.path(), "edf_rates.edf", |b| {
        b[912..920].copy_from_slice(b"999     ")
    });
    let err = message(&path);
    assert!(
        err.contains("edf_rates.edf")
            && err.contains("data records")
            && err.contains("3 data records × 3022 bytes"),
        "{err}"
    );
    // No record duration: no rate.
    let path = edited_copy(dir.path(), "bdf_rates.bdf", |b| {
        b[244..252].copy_from_slice(b"0       ")
    });
    let err = message(&path);
    assert!(
        err.contains("bdf_rates.bdf") && err.contains("data record duration"),
        "{err}"
    );
    // Cut anywhere, or with garbage in any header byte: an error or a reading, never a panic.
    for name in ["edf_rates.edf", "bdf_rates.bdf"] {
        let len = std::fs::metadata(fixture(name)).unwrap().len() as usize;
        for cut in (0..len).step_by(97) {
            let path = edited_copy(dir.path(), name, |b| b.truncate(cut));
            assert!(
                read_edf(&path, &SignalSelection::All).is_err(),
                "{name} cut at {cut}"
            );
        }
        for at in (0..1024).step_by(5) {
            let path = edited_copy(dir.path(), name, |b| b[at] = b'1');
            let _ = read_edf(&path, &SignalSelection::All);
        }
    }
}
