//! NIfTI-1 readers against nibabel (fixtures of tools/fixtures/nifti_headers.py) and against
//! headers that disagree with their data.

use brainrecon_formats::nifti4d::for_each_volume;
use brainrecon_formats::nifti_io::{checked_header, read_volume, write_f32, Datatype, DATATYPES};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nifti")
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|x| match x.as_array() {
            Some(row) => row.iter().map(|y| y.as_f64().unwrap()).collect(),
            None => vec![x.as_f64().unwrap()],
        })
        .collect()
}

#[test]
fn scaling_and_affines_read_as_nibabel_reads_them() {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = expected.as_object().unwrap();
    assert_eq!(cases.len(), 4);
    for (name, want) in cases {
        let path = fixtures().join(name);
        let shape = floats(&want["shape"]);
        let mut values = Vec::new();
        let header = for_each_volume(&path, |_, v| {
            values.extend_from_slice(v);
            Ok(())
        })
        .unwrap();
        assert_eq!(values, floats(&want["values"]), "{name}: values");
        let affine: Vec<f64> = header.affine.iter().flatten().copied().collect();
        let want_affine = floats(&want["affine"]);
        for (a, b) in affine.iter().zip(&want_affine) {
            assert!(
                (a - b).abs() < 1e-5,
                "{name}: {affine:?} vs {want_affine:?}"
            );
        }
        if shape.len() == 3 {
            let volume = read_volume(&path).unwrap();
            assert_eq!(volume.values, values, "{name}: read_volume");
            assert_eq!(volume.affine, header.affine, "{name}: read_volume affine");
        }
    }
}

/// A 2×2×2 float32 `.nii` and its bytes (little-endian; datatype at byte 70, bitpix at 72).
fn float_file(dir: &Path) -> (PathBuf, Vec<u8>, Vec<f32>) {
    let path = dir.join("map.nii");
    let eye = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let values: Vec<f32> = (0..8).map(|i| i as f32 * 1.5 - 2.0).collect();
    write_f32(&path, [2, 2, 2], &eye, &values).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        &bytes[70..74],
        &[16, 0, 32, 0],
        "datatype float32, bitpix 32"
    );
    (path, bytes, values)
}

#[test]
fn every_datatype_code_reads_or_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes, values) = float_file(dir.path());
    let name = "map.nii";
    // every code: the one check decides, without a file (a file per code takes minutes)
    for code in i16::MIN..=i16::MAX {
        match Datatype::of(Path::new(name), code) {
            Ok(d) => assert!(DATATYPES.contains(&d) && d.code == code),
            Err(e) => {
                let text = e.to_string();
                assert!(!DATATYPES.iter().any(|d| d.code == code), "{code}");
                assert!(text.contains(name) && text.contains("datatype"), "{text}");
            }
        }
    }
    // NIfTI's listed codes and some unknown ones, through every reader
    let codes = [
        0,
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        255,
        256,
        512,
        768,
        1024,
        1280,
        1536,
        1792,
        2048,
        2304,
        -1,
        3,
        9999,
        i16::MIN,
        i16::MAX,
    ];
    for code in codes {
        let known = DATATYPES.iter().find(|d| d.code == code);
        // bitpix as written (32), and the datatype's own where it differs
        let mut bitpixes = vec![32i16];
        if let Some(d) = known.filter(|d| d.bytes != 4) {
            bitpixes.push(8 * d.bytes as i16);
        }
        for bitpix in bitpixes {
            let mut patched = bytes.clone();
            patched[70..72].copy_from_slice(&code.to_le_bytes());
            patched[72..74].copy_from_slice(&bitpix.to_le_bytes());
            std::fs::write(&path, &patched).unwrap();
            let result = read_volume(&path);
            let field = match known {
                None => "datatype",
                Some(d) if 8 * d.bytes as i16 != bitpix => "bitpix",
                // 8 values of 8 bytes do not fit the 32 bytes of data
                Some(d) if d.bytes == 8 => "data",
                Some(_) => "",
            };
            match result {
                Ok(volume) => {
                    assert!(field.is_empty(), "code {code} bitpix {bitpix} read");
                    assert_eq!(volume.values.len(), 8, "code {code}");
                    if code == 16 {
                        let want: Vec<f64> = values.iter().map(|&v| v as f64).collect();
                        assert_eq!(volume.values, want);
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    assert!(!field.is_empty(), "code {code} bitpix {bitpix}: {text}");
                    assert!(
                        text.contains(name) && text.contains(field),
                        "code {code} bitpix {bitpix}: {text}"
                    );
                }
            }
            // the 4-D reader and the bare header check agree
            let series = for_each_volume(&path, |_, _| Ok(()));
            assert_eq!(series.is_ok(), field.is_empty(), "code {code} (4-D)");
            if matches!(field, "datatype" | "bitpix") {
                let text = checked_header(&path).unwrap_err().to_string();
                assert!(text.contains(field), "{text}");
            }
        }
    }
    // the case seen in the wild: an RGBA32 code on what was a float32 image
    let mut rgba = bytes.clone();
    rgba[70..72].copy_from_slice(&2304i16.to_le_bytes());
    std::fs::write(&path, &rgba).unwrap();
    let text = read_volume(&path).unwrap_err().to_string();
    assert!(
        text.contains("datatype") && text.contains("RGBA32"),
        "{text}"
    );
}

#[test]
fn nan_scaling_means_none_and_a_bad_intercept_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes, values) = float_file(dir.path());
    let raw: Vec<f64> = values.iter().map(|&v| v as f64).collect();
    // scl_slope at byte 112, scl_inter at 116
    for (slope, inter, want) in [
        (f32::NAN, f32::NAN, Some((1.0, 0.0))),
        (0.0, 7.0, Some((1.0, 0.0))),
        (f32::INFINITY, 1.0, Some((1.0, 0.0))),
        (2.0, 0.5, Some((2.0, 0.5))),
        (2.0, f32::NAN, None),
    ] {
        let mut patched = bytes.clone();
        patched[112..116].copy_from_slice(&slope.to_le_bytes());
        patched[116..120].copy_from_slice(&inter.to_le_bytes());
        std::fs::write(&path, &patched).unwrap();
        match want {
            Some((s, i)) => {
                let scaled: Vec<f64> = raw.iter().map(|v| v * s + i).collect();
                assert_eq!(
                    read_volume(&path).unwrap().values,
                    scaled,
                    "{slope} {inter}"
                );
                let mut seen = Vec::new();
                for_each_volume(&path, |_, v| {
                    seen.extend_from_slice(v);
                    Ok(())
                })
                .unwrap();
                assert_eq!(seen, scaled);
            }
            None => {
                let text = read_volume(&path).unwrap_err().to_string();
                assert!(
                    text.contains("map.nii") && text.contains("scl_inter"),
                    "{text}"
                );
                assert!(for_each_volume(&path, |_, _| Ok(())).is_err());
            }
        }
    }
}

#[test]
fn a_qform_that_is_not_a_rotation_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut bytes, _) = float_file(dir.path());
    // qform_code 1 at byte 252, sform_code 0 at 254, quatern_b/c/d from 256
    bytes[252..254].copy_from_slice(&1i16.to_le_bytes());
    bytes[254..256].copy_from_slice(&0i16.to_le_bytes());
    for (i, q) in [0.9f32, 0.5, 0.1].iter().enumerate() {
        bytes[256 + 4 * i..260 + 4 * i].copy_from_slice(&q.to_le_bytes());
    }
    std::fs::write(&path, &bytes).unwrap();
    let text = read_volume(&path).unwrap_err().to_string();
    assert!(
        text.contains("map.nii") && text.contains("qform_code 1"),
        "{text}"
    );
}
