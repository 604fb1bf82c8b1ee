//! BrainVision files written by pybv 0.7.6 against what MNE 1.13.2 reads from them
//! (tools/fixtures/brainvision.py): INT_16 with per-channel resolutions and a channel in mV,
//! IEEE_FLOAT_32, a vectorized copy; channel names with an escaped comma; markers as MNE's
//! annotations. Broken headers and data files are errors naming the file and the field.

use brainrecon_formats::brainvision::read;
use brainrecon_formats::npy;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/brainvision")
        .join(name)
}

#[test]
fn samples_units_and_markers_match_mne() {
    for name in ["int16", "float32", "vectorized"] {
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
        assert_eq!(rec.markers.len(), annotations.len());
        for (m, a) in rec.markers.iter().zip(annotations) {
            assert_eq!(m.label(), a["description"].as_str().unwrap());
            let onset = m.sample as f64 / rec.sfreq;
            assert!((onset - a["onset"].as_f64().unwrap()).abs() < 1e-9);
            let duration = m.points as f64 / rec.sfreq;
            assert!((duration - a["duration"].as_f64().unwrap()).abs() < 1e-9);
        }
    }
    let rec = read(&fixture("int16.vhdr")).unwrap();
    assert_eq!(rec.channels[4].unit, "mV");
    assert_eq!(rec.channels[2].resolution, 0.5);
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
    check(
        &header.replace("SamplingInterval=2000.0", "SamplingInterval=-1"),
        "SamplingInterval",
    );
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
