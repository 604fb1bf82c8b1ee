//! BrainVision files written by pybv 0.7.6 against what MNE 1.13.2 reads from them
//! (tools/fixtures/brainvision.py): INT_16 with per-channel resolutions and a channel in mV,
//! IEEE_FLOAT_32, a vectorized copy; channel names with an escaped comma; markers as MNE's
//! annotations, including markers before the first sample and channel lines without a unit.
//! Broken headers and data files are errors naming the file and the field.

use brainrecon_formats::brainvision::read;
use brainrecon_formats::npy;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/brainvision")
        .join(name)
}

/// The recording `name` against MNE's reading of it: channel names, rate, values (to 1e-6
/// of each channel's largest) and markers as MNE's annotations, in MNE's order.
fn matches_mne(name: &str) -> brainrecon_formats::brainvision::BrainVision {
    let rec = read(&fixture(&format!("{name}.vhdr"))).unwrap();
    let want = npy::read_f32(&fixture(&format!("{name}.expected.npy"))).unwrap();
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(&format!("{name}.expected.json"))).unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = rec.channels.iter().map(|c| c.name.as_str()).collect();
    let want_names: Vec<&str> = meta["ch_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(names, want_names, "{name}");
    assert_eq!(rec.sfreq, meta["sfreq"].as_f64().unwrap());
    assert_eq!(want.shape, vec![rec.channels.len(), rec.samples], "{name}");
    for c in 0..rec.channels.len() {
        let row = &rec.data[c * rec.samples..(c + 1) * rec.samples];
        let expected = &want.data[c * rec.samples..(c + 1) * rec.samples];
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        for (got, &w) in row.iter().zip(expected) {
            assert!(
                (got - w as f64).abs() <= 1e-6 * scale,
                "{name} channel {c}: {got} against MNE's {w}"
            );
        }
    }
    let annotations = meta["annotations"].as_array().unwrap();
    assert_eq!(rec.markers.len(), annotations.len(), "{name}");
    for (m, a) in rec.markers.iter().zip(annotations) {
        assert_eq!(m.label(), a["description"].as_str().unwrap());
        let onset = m.sample as f64 / rec.sfreq;
        assert!((onset - a["onset"].as_f64().unwrap()).abs() < 1e-9);
        let duration = m.points as f64 / rec.sfreq;
        assert!((duration - a["duration"].as_f64().unwrap()).abs() < 1e-9);
    }
    rec
}

#[test]
fn samples_units_and_markers_match_mne() {
    for name in ["int16", "float32", "vectorized"] {
        matches_mne(name);
    }
    let rec = read(&fixture("int16.vhdr")).unwrap();
    assert_eq!(rec.channels[4].unit, "mV");
    assert_eq!(rec.channels[2].resolution, 0.5);
}

#[test]
fn markers_before_the_first_sample_and_channels_without_units_read_as_mne_reads_them() {
    // Markers at position 0 (logged before the first sample) and past the end, clipped or left
    // out as MNE 1.13 does; Ch1, Ch2 and Ch4 without a unit read in µV.
    let rec = matches_mne("marker_at_zero");
    let units: Vec<&str> = rec.channels.iter().map(|c| c.unit.as_str()).collect();
    assert_eq!(units, ["µV", "µV", "µV", "µV", "mV"]);
    assert_eq!(rec.channels[3].resolution, 1.0);
    let zero: Vec<(&str, i64, usize, usize)> = rec
        .markers
        .iter()
        .filter(|m| m.sample == 0)
        .map(|m| (m.description.as_str(), m.position, m.sample, m.points))
        .collect();
    assert_eq!(
        zero,
        [
            ("Earlier", -2, 0, 2),
            ("Impedance", 0, 0, 0),
            ("Long", 0, 0, 4)
        ]
    );
    assert!(!rec.markers.iter().any(|m| m.description == "Zero length"));
    assert_eq!(rec.markers.last().unwrap().sample, rec.samples);
}

#[test]
fn broken_headers_and_data_files_name_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let header = std::fs::read_to_string(fixture("int16.vhdr")).unwrap();
    for name in ["int16.eeg", "int16.vmrk"] {
        std::fs::copy(fixture(name), dir.path().join(name)).unwrap();
    }
    let check = |text: &str, field: &str| {
        let path = dir.path().join("case.vhdr");
        std::fs::write(&path, text).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(
            err.contains("case.vhdr") && err.contains(field),
            "{field}: {err}"
        );
    };
    check(
        &header.replace("NumberOfChannels=5", "NumberOfChannels=99999"),
        "NumberOfChannels",
    );
    check(&header.replace("INT_16", "INT_64"), "BinaryFormat");
    check(
        &header.replace("DataFormat=BINARY", "DataFormat=ASCII"),
        "DataFormat",
    );
    // Intervals giving no rate, or one past the limit (1e-300 µs is 1e306 Hz; 0.0001 µs is
    // 1e10 Hz, which would size epochs and resampling at tens of gigabytes).
    for interval in ["-1", "0", "NaN", "inf", "1e-300", "0.0001", "x"] {
        check(
            &header.replace(
                "SamplingInterval=2000.0",
                &format!("SamplingInterval={interval}"),
            ),
            "SamplingInterval",
        );
    }
    check(&header.replace("Ch5=EOG,,0.001,mV\n", ""), "Ch5");
    check(&header.replace("Brain Vision", "Not Vision"), "first line");
    // Six channels do not divide the data file's 10,000 bytes into whole samples.
    let six = header
        .replace("NumberOfChannels=5", "NumberOfChannels=6")
        .replace("Ch5=EOG,,0.001,mV", "Ch5=EOG,,0.001,mV\nCh6=X,,1,µV");
    let path = dir.path().join("case.vhdr");
    std::fs::write(&path, six).unwrap();
    let err = read(&path).unwrap_err().to_string();
    assert!(
        err.contains("int16.eeg") && err.contains("whole samples"),
        "{err}"
    );
    // A marker whose position is not a number.
    let markers = std::fs::read_to_string(fixture("int16.vmrk")).unwrap();
    std::fs::write(
        dir.path().join("int16.vmrk"),
        markers.replace(",351,", ",x,"),
    )
    .unwrap();
    std::fs::write(&path, &header).unwrap();
    let err = read(&path).unwrap_err().to_string();
    assert!(
        err.contains("int16.vmrk") && err.contains("Mk2 position"),
        "{err}"
    );
}
