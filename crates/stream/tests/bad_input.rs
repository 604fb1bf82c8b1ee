//! Bad input: every error names the file (or stream), the field and what was expected, and no
//! reader panics on damaged data.

mod common;

use brainrecon_stream::source::read_all;
use brainrecon_stream::{
    open, open_raw, read_csv, read_edf, read_npy, read_nwb, LatentMapper, OpenOptions, RawFormat,
    RawReader, SignalSelection, SkipReason, StreamError, Window,
};
use common::{edited_copy, fixture, reference};
use std::path::Path;

#[track_caller]
fn message(result: Result<impl Sized, StreamError>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{text:?} does not mention {part:?}");
    }
}

#[test]
fn raw_with_a_wrong_channel_count_names_the_expected_multiple() {
    // 600 bytes of 3-channel int16 frames read as 7 channels: frames of 14 bytes.
    let text = message(open_raw(&fixture("raw_i16.bin"), RawFormat::I16, 7, 100.0));
    assert_mentions(
        &text,
        &[
            "raw_i16.bin",
            "size",
            "a multiple of 14 bytes",
            "7 channels",
            "600 bytes",
        ],
    );
    // 1600 bytes of 4-channel float32 read as 3 channels.
    let text = message(open_raw(&fixture("raw_f32.bin"), RawFormat::F32, 3, 100.0));
    assert_mentions(
        &text,
        &["raw_f32.bin", "a multiple of 12 bytes", "4 bytes over"],
    );
}

#[test]
fn truncated_raw_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_copy(dir.path(), "raw_i16.bin", |b| {
        b.pop();
    });
    let text = message(open_raw(&path, RawFormat::I16, 3, 100.0));
    assert_mentions(
        &text,
        &["raw_i16.bin", "a multiple of 6 bytes", "599 bytes"],
    );
}

#[test]
fn truncated_raw_stream_is_an_error_after_its_whole_frames() {
    let mut bytes = std::fs::read(fixture("raw_i16.bin")).unwrap();
    bytes.truncate(599);
    let mut reader = RawReader::new(
        std::io::Cursor::new(bytes),
        "<stdin>",
        RawFormat::I16,
        3,
        100.0,
    )
    .unwrap();
    let text = message(read_all(&mut reader, Path::new("<stdin>")));
    assert_mentions(
        &text,
        &[
            "<stdin>",
            "whole frames of 6 bytes",
            "5 bytes of a partial frame after 99 frames",
        ],
    );
}

#[test]
fn raw_parameters_are_checked() {
    let text = message(open_raw(&fixture("raw_i16.bin"), RawFormat::I16, 0, 100.0));
    assert_mentions(&text, &["channels", "at least 1"]);
    let text = message(open_raw(
        &fixture("raw_i16.bin"),
        RawFormat::I16,
        3,
        f64::NAN,
    ));
    assert_mentions(&text, &["rate", "above 0 Hz"]);
    let text = message(open_raw(
        Path::new("/nonexistent/x.bin"),
        RawFormat::I16,
        3,
        10.0,
    ));
    assert_mentions(&text, &["/nonexistent/x.bin"]);
}

#[test]
fn truncated_edf_header_names_the_expected_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_copy(dir.path(), "edf3.edf", |b| b.truncate(100));
    let text = message(read_edf(&path, &SignalSelection::All));
    assert_mentions(
        &text,
        &["edf3.edf", "header", "at least 256 bytes", "100 bytes"],
    );

    let path = edited_copy(dir.path(), "edf3.edf", |b| b.truncate(600));
    let text = message(read_edf(&path, &SignalSelection::All));
    assert_mentions(
        &text,
        &[
            "edf3.edf",
            "header",
            "1024 bytes for 3 signals",
            "600 bytes",
        ],
    );
}

#[test]
fn truncated_edf_data_names_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_copy(dir.path(), "edf3.edf", |b| {
        b.truncate(b.len() - 10);
    });
    let text = message(read_edf(&path, &SignalSelection::All));
    assert_mentions(
        &text,
        &["edf3.edf", "data records", "3 data records × 768 bytes"],
    );
}

#[test]
fn bad_edf_fields_name_signal_and_field() {
    let dir = tempfile::tempdir().unwrap();
    // Physical minima start at 256 + (16 + 80 + 8) × 3 = 568; signal 2's is 8 bytes later.
    let path = edited_copy(dir.path(), "edf3.edf", |b| {
        b[576..584].copy_from_slice(b"abc     ")
    });
    let text = message(read_edf(&path, &SignalSelection::All));
    assert_mentions(
        &text,
        &[
            "edf3.edf",
            "signal 2 (Cz) physical minimum",
            "a number",
            "abc",
        ],
    );

    let path = edited_copy(dir.path(), "edf3.edf", |b| {
        b[0..8].copy_from_slice(b"1       ")
    });
    let text = message(read_edf(&path, &SignalSelection::All));
    assert_mentions(&text, &["edf3.edf", "version", "BIOSEMI"]);

    let path = edited_copy(dir.path(), "edf3.edf", |b| {
        b[184..192].copy_from_slice(b"999     ")
    });
    let text = message(read_edf(&path, &SignalSelection::All));
    assert_mentions(&text, &["header bytes", "1024", "999"]);

    // Digital maxima start at 256 + (16 + 80 + 8 + 8 + 8 + 8) × 3 = 640; signal 1's is out of range.
    let path = edited_copy(dir.path(), "edf3.edf", |b| {
        b[640..648].copy_from_slice(b"-40000  ")
    });
    let text = message(read_edf(&path, &SignalSelection::All));
    assert_mentions(
        &text,
        &["signal 1 (Fz) digital maximum", "-32768..=32767", "-40000"],
    );

    // Absurd counts are range errors, not overflows.
    let path = edited_copy(dir.path(), "edf3.edf", |b| {
        b[252..256].copy_from_slice(b"9e99")
    });
    assert_mentions(
        &message(read_edf(&path, &SignalSelection::All)),
        &["number of signals", "1..=9999"],
    );
    let path = edited_copy(dir.path(), "edf3.edf", |b| {
        b[236..244].copy_from_slice(b"9e99    ")
    });
    assert_mentions(
        &message(read_edf(&path, &SignalSelection::All)),
        &["number of data records"],
    );
    // Samples per record (block at 256 + 216 × 3 = 904) of 10^6: the declared records do not fit.
    let path = edited_copy(dir.path(), "edf3.edf", |b| {
        for at in [904, 912, 920] {
            b[at..at + 8].copy_from_slice(b"1000000 ");
        }
    });
    assert_mentions(
        &message(read_edf(&path, &SignalSelection::All)),
        &["data records", "3 data records ×"],
    );
    // 10^9 per 1-s record: a rate above the limit, refused from the header.
    let path = edited_copy(dir.path(), "edf3.edf", |b| {
        b[904..912].copy_from_slice(b"1e9     ");
    });
    assert_mentions(
        &message(read_edf(&path, &SignalSelection::All)),
        &["signal 1 (Fz) rate", "BRAINRECON_MAX_SAMPLE_RATE"],
    );

    // A record duration of 0 gives no sample rate.
    let path = edited_copy(dir.path(), "edf3.edf", |b| {
        b[244..252].copy_from_slice(b"0       ")
    });
    let text = message(read_edf(&path, &SignalSelection::All));
    assert_mentions(&text, &["data record duration", "above 0 seconds"]);
}

#[test]
fn edf_with_unknown_record_count_is_read_from_the_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_copy(dir.path(), "edf3.edf", |b| {
        b[236..244].copy_from_slice(b"-1      ")
    });
    let recording = read_edf(&path, &SignalSelection::All).unwrap();
    assert_eq!(recording.frames(), 3 * 128);
}

#[test]
fn damaged_files_give_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["edf3.edf", "bdf3.bdf", "edfplus_annot.edf", "edf_mixed.edf"] {
        let len = std::fs::metadata(fixture(name)).unwrap().len() as usize;
        for cut in (0..len).step_by(61) {
            let path = edited_copy(dir.path(), name, |b| b.truncate(cut));
            assert!(
                read_edf(&path, &SignalSelection::All).is_err(),
                "{name} cut at {cut}"
            );
        }
        // Garbage in every header field.
        for at in (0..len.min(1100)).step_by(7) {
            let path = edited_copy(dir.path(), name, |b| b[at] = b'~');
            let _ = read_edf(&path, &SignalSelection::All);
        }
    }
    // A cut NWB file either fails or, when the cut spares everything the series needs, reads
    // the same values: never wrong data.
    let whole = read_nwb(&fixture("series.nwb"), Some("ElectricalSeries")).unwrap();
    let len = std::fs::metadata(fixture("series.nwb")).unwrap().len() as usize;
    for cut in (0..len).step_by(499) {
        let path = edited_copy(dir.path(), "series.nwb", |b| b.truncate(cut));
        if let Ok(recording) = read_nwb(&path, Some("ElectricalSeries")) {
            assert_eq!(recording.data(), whole.data(), "nwb cut at {cut}");
        }
    }
    for cut in (0..200).step_by(13) {
        let path = edited_copy(dir.path(), "raw_f64.npy", |b| b.truncate(cut));
        assert!(read_npy(&path, 10.0).is_err(), "npy cut at {cut}");
    }
}

#[test]
fn csv_bad_cell_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_copy(dir.path(), "table.csv", |b| {
        let text = String::from_utf8(b.clone()).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let mut cells: Vec<String> = lines[4].split(',').map(String::from).collect();
        cells[1] = "1.2.3".into();
        lines[4] = cells.join(",");
        *b = (lines.join("\n") + "\n").into_bytes();
    });
    let text = message(read_csv(&path, 50.0));
    assert_mentions(
        &text,
        &["table.csv", "line 5, column 2", "a number", "\"1.2.3\""],
    );

    let path = edited_copy(dir.path(), "table.csv", |b| {
        b.extend_from_slice(b"1.0,2.0\n")
    });
    let text = message(read_csv(&path, 50.0));
    assert_mentions(&text, &["table.csv", "line 62", "3 columns", "2 columns"]);
}

#[test]
fn npy_with_an_unsupported_shape_or_dtype_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cube.npy");
    brainrecon_formats::npy::write::<f32>(&path, &[2, 2, 2], &[0.0; 8]).unwrap();
    assert_mentions(
        &message(read_npy(&path, 10.0)),
        &["cube.npy", "shape", "(samples, channels)"],
    );
    let path = dir.path().join("bytes.npy");
    brainrecon_formats::npy::write::<u8>(&path, &[4, 2], &[0; 8]).unwrap();
    assert_mentions(
        &message(read_npy(&path, 10.0)),
        &["bytes.npy", "dtype", "|u1"],
    );
}

#[test]
fn nwb_problems_name_the_series() {
    let path = fixture("series.nwb");
    let text = message(read_nwb(&path, Some("nope")));
    assert_mentions(
        &text,
        &[
            "series.nwb",
            "/acquisition/nope",
            "ElectricalSeries, ts_series",
        ],
    );
    let text = message(read_nwb(&fixture("edf3.edf"), None));
    assert_mentions(&text, &["edf3.edf", "HDF5"]);
}

#[test]
fn open_needs_a_format_and_parameters() {
    let text = message(open(&fixture("raw_i16.bin"), &OpenOptions::default()));
    assert_mentions(&text, &["format", "raw_i16.bin"]);
    let text = message(open(&fixture("table.csv"), &OpenOptions::default()));
    assert_mentions(&text, &["rate", "CSV"]);
    let text = message(open(Path::new("missing.edf"), &OpenOptions::default()));
    assert_mentions(&text, &["missing.edf"]);
}

fn fixture_window() -> Window {
    let (shape, values) = reference("window.npy");
    let data = values.iter().map(|&v| v as f32).collect();
    Window::new(0, (0..shape[1]).collect(), shape[0], data).unwrap()
}

#[test]
fn nan_and_flat_channels_are_skipped_with_warnings() {
    let mut window = fixture_window();
    let channels = window.channels.len();
    window.data[17 * channels + 1] = f32::NAN;
    window.data[18 * channels + 1] = f32::INFINITY;
    for t in 0..window.samples {
        window.data[t * channels + 3] = 4.25;
    }
    let mapper = LatentMapper::new([4, 8, 8], 1).unwrap();
    let latent = mapper.latent(&window).unwrap();
    assert_eq!(latent.warnings.len(), 2);
    assert_eq!(latent.warnings[0].channel, 1);
    assert_eq!(
        latent.warnings[0].reason,
        SkipReason::NonFinite { count: 2 }
    );
    assert_eq!(latent.warnings[1].channel, 3);
    assert!(matches!(latent.warnings[1].reason, SkipReason::Flat { .. }));
    assert_mentions(
        &latent.warnings[1].to_string(),
        &["channel 3 skipped", "flat"],
    );
    assert!(latent.values.iter().all(|v| v.is_finite()));
}

#[test]
fn all_nan_window_is_an_error_saying_why() {
    let mut window = fixture_window();
    window.start = 1234;
    window.data.iter_mut().for_each(|v| *v = f32::NAN);
    let mapper = LatentMapper::new([4, 8, 8], 1).unwrap();
    let text = message(mapper.latent(&window));
    assert_mentions(
        &text,
        &[
            "window at sample 1234",
            "no usable channel",
            "all 5 channels skipped",
            "5 with NaN",
        ],
    );
}
