//! The readers against references written and read back by third-party libraries
//! (pyEDFlib, pynwb, numpy): see tools/fixtures/stream_fixtures.py.

mod common;

use brainrecon_stream::edf::EdfKind;
use brainrecon_stream::source::read_all;
use brainrecon_stream::{
    open, open_raw, read_csv, read_edf, read_npy, read_nwb, EdfReader, Format, NwbReader,
    OpenOptions, RawFormat, RawReader, Recording, SignalSelection, Source,
};
use common::{fixture, reference};
use std::path::Path;

/// Asserts `got` (frames × channels) matches `want` within `tolerance(want, column)`.
fn assert_close(
    got: &Recording,
    want: &[f64],
    shape: &[usize],
    tolerance: impl Fn(f64, usize) -> f64,
) {
    assert_eq!(got.frames(), shape[0], "frames of {}", got.path().display());
    assert_eq!(
        got.channels(),
        shape[1],
        "channels of {}",
        got.path().display()
    );
    for (i, (&g, &w)) in got.data().iter().zip(want).enumerate() {
        let column = i % shape[1];
        let tol = tolerance(w, column);
        assert!(
            (g as f64 - w).abs() <= tol,
            "{}: frame {}, channel {column}: {g} vs {w} (tolerance {tol})",
            got.path().display(),
            i / shape[1]
        );
    }
}

/// f32 rounding of a value computed in f64, plus a hair for the scaling formula.
fn f32_rounding(w: f64) -> f64 {
    w.abs() * 1.2e-7 + 1e-9
}

fn check_edf(name: &str, stem: &str, labels: &[&str], rate: f64) {
    let path = fixture(name);
    let recording = read_edf(&path, &SignalSelection::All).unwrap();
    assert_eq!(recording.labels(), labels);
    assert_eq!(recording.rate(), rate);
    let (shape, physical) = reference(&format!("{stem}_physical.npy"));
    assert_close(&recording, &physical, &shape, |w, _| f32_rounding(w));
    // Against what was written: within one quantisation step (the writer's rounding).
    let (_, written) = reference(&format!("{stem}_written.npy"));
    let (_, step) = reference(&format!("{stem}_step.npy"));
    assert_close(&recording, &written, &shape, |w, c| {
        step[c] * 1.0001 + f32_rounding(w)
    });
}

#[test]
fn edf_physical_values_match_pyedflib() {
    check_edf("edf3.edf", "edf3", &["Fz", "Cz", "Temp"], 128.0);
    let reader = EdfReader::open(&fixture("edf3.edf"), &SignalSelection::All).unwrap();
    let header = reader.header();
    assert_eq!(header.kind, EdfKind::Edf);
    assert_eq!(header.record_duration, 1.0);
    assert_eq!(reader.records(), 3);
    assert_eq!(header.signals[2].unit, "degC");
    assert_eq!(header.signals[1].digital_min, -2048);
}

#[test]
fn bdf_24_bit_values_match_pyedflib() {
    check_edf("bdf3.bdf", "bdf3", &["A1", "A2", "Status"], 64.0);
    let reader = EdfReader::open(&fixture("bdf3.bdf"), &SignalSelection::All).unwrap();
    assert_eq!(reader.header().kind, EdfKind::Bdf);
    assert_eq!(reader.header().record_duration, 0.5);
    assert_eq!(reader.header().signals[0].samples_per_record, 32);
    assert_eq!(reader.records(), 4);
}

#[test]
fn edf_plus_annotation_signal_is_skipped() {
    let path = fixture("edfplus_annot.edf");
    let reader = EdfReader::open(&path, &SignalSelection::All).unwrap();
    assert_eq!(reader.header().signals.len(), 3);
    assert!(reader.header().signals[2].is_annotation());
    assert_eq!(reader.header().reserved, "EDF+C");
    assert_eq!(reader.chosen(), &[0, 1]);
    let recording = read_edf(&path, &SignalSelection::All).unwrap();
    assert_eq!(recording.labels(), vec!["EEG O1", "EEG O2"]);
    assert_eq!(recording.rate(), 100.0);
    let (shape, physical) = reference("edfplus_annot_physical.npy");
    assert_close(&recording, &physical, &shape, |w, _| f32_rounding(w));
}

#[test]
fn edf_signals_of_one_rate_can_be_chosen() {
    let path = fixture("edf_mixed.edf");
    // All signals: ECG (64 Hz) is resampled to the 128 Hz of Fp1 and Fp2, which stay as read
    // (tests/mixed_rates.rs checks resampled values).
    let all = read_edf(&path, &SignalSelection::All).unwrap();
    assert_eq!(all.rate(), 128.0);
    assert_eq!(all.labels(), vec!["Fp1", "Fp2", "ECG"]);
    let (shape, physical) = reference("edf_mixed_fp_physical.npy");
    assert_eq!(all.frames(), shape[0]);
    for c in 0..2 {
        for (t, got) in all.channel(c).iter().enumerate() {
            let want = physical[t * 2 + c];
            assert!((*got as f64 - want).abs() <= f32_rounding(want), "{c}, {t}");
        }
    }
    let (_, ecg_physical) = reference("edf_mixed_ecg_physical.npy");
    let ecg_resampled = all.channel(2);
    for (t, want) in ecg_physical.iter().enumerate() {
        // Every second 128 Hz sample sits on a 64 Hz one.
        let got = ecg_resampled[2 * t] as f64;
        assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "{t}");
    }

    let labels = SignalSelection::Labels(vec!["Fp1".into(), "Fp2".into()]);
    let fp = read_edf(&path, &labels).unwrap();
    assert_eq!(fp.rate(), 128.0);
    assert_close(&fp, &physical, &shape, |w, _| f32_rounding(w));

    let ecg = read_edf(&path, &SignalSelection::Rate(64.0)).unwrap();
    assert_eq!(ecg.labels(), vec!["ECG"]);
    assert_eq!(ecg.rate(), 64.0);
    let (shape, physical) = reference("edf_mixed_ecg_physical.npy");
    assert_close(&ecg, &physical, &shape, |w, _| f32_rounding(w));

    let mixed = SignalSelection::Labels(vec!["Fp1".into(), "ECG".into()]);
    let both = read_edf(&path, &mixed).unwrap();
    assert_eq!(both.rate(), 128.0);
    assert_eq!(both.channel(1), all.channel(2));
    let err = read_edf(&path, &SignalSelection::Labels(vec!["Pz".into()]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"Pz\"") && err.contains("Fp1, Fp2, ECG"),
        "{err}"
    );
    let err = read_edf(&path, &SignalSelection::Rate(100.0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("100 Hz") && err.contains("128 Hz"), "{err}");
}

#[test]
fn edf_reads_the_same_in_any_chunk_size() {
    let path = fixture("edf3.edf");
    let whole = read_edf(&path, &SignalSelection::All).unwrap();
    for step in [1, 5, 100, 1000] {
        let mut reader = EdfReader::open(&path, &SignalSelection::All).unwrap();
        let mut data = Vec::new();
        while let Some(chunk) = reader.next_chunk(step).unwrap() {
            assert!(chunk.frames() <= step);
            data.extend(chunk.data);
        }
        assert_eq!(data, whole.data(), "chunks of {step}");
    }
}

#[test]
fn nwb_series_match_pynwb_data_in_units() {
    let path = fixture("series.nwb");
    let err = read_nwb(&path, None).unwrap_err().to_string();
    assert!(
        err.contains("series.nwb") && err.contains("ElectricalSeries, ts_series"),
        "{err}"
    );

    let series = read_nwb(&path, Some("ElectricalSeries")).unwrap();
    assert_eq!(series.rate(), 200.0);
    assert_eq!(
        series.labels(),
        vec!["electrode 0", "electrode 1", "electrode 2", "electrode 3"]
    );
    let (shape, units) = reference("nwb_electrical_units.npy");
    assert_close(&series, &units, &shape, |w, _| f32_rounding(w));

    let ts = read_nwb(&path, Some("ts_series")).unwrap();
    assert!((ts.rate() - 100.0).abs() < 1e-9, "{}", ts.rate());
    assert_eq!(ts.labels(), vec!["electrode 0", "electrode 2"]);
    let (shape, units) = reference("nwb_ts_units.npy");
    assert_close(&ts, &units, &shape, |w, _| f32_rounding(w));

    let reader = NwbReader::open(&path, Some("/acquisition/ElectricalSeries")).unwrap();
    assert_eq!(reader.frames(), 400);
    assert_eq!(
        brainrecon_stream::nwb::electrical_series(&path).unwrap(),
        vec!["ElectricalSeries", "ts_series"]
    );
}

#[test]
fn nwb_reads_the_same_in_any_chunk_size() {
    let path = fixture("series.nwb");
    let whole = read_nwb(&path, Some("ElectricalSeries")).unwrap();
    let mut reader = NwbReader::open(&path, Some("ElectricalSeries")).unwrap();
    let mut data = Vec::new();
    while let Some(chunk) = reader.next_chunk(33).unwrap() {
        data.extend(chunk.data);
    }
    assert_eq!(data, whole.data());
}

#[test]
fn csv_matches_numpy_savetxt() {
    let (shape, table) = reference("table.npy");
    let with_header = read_csv(&fixture("table.csv"), 50.0).unwrap();
    assert_eq!(with_header.labels(), vec!["alpha", "beta", "gamma"]);
    assert_close(&with_header, &table, &shape, |w, _| f32_rounding(w));
    let without = read_csv(&fixture("table_noheader.csv"), 50.0).unwrap();
    assert_eq!(without.labels(), vec!["ch0", "ch1", "ch2"]);
    assert_eq!(without.data(), with_header.data());
}

fn read_raw(path: &Path, format: RawFormat, channels: usize) -> Recording {
    let mut reader = open_raw(path, format, channels, 100.0).unwrap();
    read_all(&mut reader, path).unwrap()
}

#[test]
fn raw_files_match_numpy_exactly() {
    let (shape, values) = reference("raw_i16.npy");
    let raw = read_raw(&fixture("raw_i16.bin"), RawFormat::I16, 3);
    assert_close(&raw, &values, &shape, |_, _| 0.0);

    let (shape, values) = reference("raw_f32.npy");
    let raw = read_raw(&fixture("raw_f32.bin"), RawFormat::F32, 4);
    assert_close(&raw, &values, &shape, |_, _| 0.0);
}

#[test]
fn raw_reader_over_any_read_matches_the_file() {
    let bytes = std::fs::read(fixture("raw_f32.bin")).unwrap();
    let mut reader = RawReader::new(
        std::io::Cursor::new(bytes),
        "<stdin>",
        RawFormat::F32,
        4,
        100.0,
    )
    .unwrap();
    let streamed = read_all(&mut reader, Path::new("<stdin>")).unwrap();
    let file = read_raw(&fixture("raw_f32.bin"), RawFormat::F32, 4);
    assert_eq!(streamed.data(), file.data());
    assert!(reader.next_chunk(10).unwrap().is_none());
}

#[test]
fn npy_files_match_the_raw_frames() {
    let i16s = read_npy(&fixture("raw_i16.npy"), 100.0).unwrap();
    assert_eq!(
        i16s.data(),
        read_raw(&fixture("raw_i16.bin"), RawFormat::I16, 3).data()
    );
    let f32s = read_npy(&fixture("raw_f32.npy"), 100.0).unwrap();
    let f64s = read_npy(&fixture("raw_f64.npy"), 100.0).unwrap();
    let raw = read_raw(&fixture("raw_f32.bin"), RawFormat::F32, 4);
    assert_eq!(f32s.data(), raw.data());
    assert_eq!(f64s.data(), raw.data());
    assert_eq!(f64s.channels(), 4);
    // A 1-D array is one channel.
    let table = read_npy(&fixture("bdf3_step.npy"), 1.0).unwrap();
    assert_eq!((table.frames(), table.channels()), (3, 1));
}

#[test]
fn open_picks_the_format_from_the_extension() {
    let options = OpenOptions {
        rate: Some(50.0),
        ..OpenOptions::default()
    };
    let mut csv = open(&fixture("table.csv"), &options).unwrap();
    assert_eq!((csv.channels(), csv.rate()), (3, 50.0));
    assert!(csv.next_chunk(10).unwrap().is_some());
    let edf = open(&fixture("bdf3.bdf"), &OpenOptions::default()).unwrap();
    assert_eq!(edf.rate(), 64.0);
    let nwb = open(
        &fixture("series.nwb"),
        &OpenOptions {
            series: Some("ts_series".into()),
            ..OpenOptions::default()
        },
    )
    .unwrap();
    assert_eq!(nwb.channels(), 2);
    let raw = open(
        &fixture("raw_i16.bin"),
        &OpenOptions {
            format: Some(Format::Raw(RawFormat::I16)),
            channels: Some(3),
            rate: Some(10.0),
            ..OpenOptions::default()
        },
    )
    .unwrap();
    assert_eq!(raw.channels(), 3);
    assert_eq!(Format::from_path(Path::new("x.BDF")), Some(Format::Edf));
    assert_eq!(Format::from_path(Path::new("x.bin")), None);
}
