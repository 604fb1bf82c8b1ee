//! The CIFTI-2 dense time series reader against nibabel: tools/fixtures/cifti_fixtures.py wrote
//! small `.dtseries.nii` files with nibabel's cifti2 API (float32 little-endian, float64
//! big-endian with a SeriesExponent, int16 with scl_slope/scl_inter, and the series on the
//! second CIFTI dimension) and saved what `nib.load` reads back. Then bad input: corrupted
//! copies made here must be refused with the file, the field and what was expected.

use brainrecon_formats::cifti::{CiftiSeries, Endian, ModelType, CORTEX};
use serde_json::Value;
use std::path::{Path, PathBuf};

const CASES: [&str; 4] = ["f32_le", "f64_be", "i16_scaled", "transposed"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cifti")
}

fn file(case: &str) -> PathBuf {
    fixtures().join(format!("{case}.dtseries.nii"))
}

fn reference(case: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(format!("{case}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn usize_list(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// nibabel's float64 values as the f32 the reader hands back, bit for bit.
fn expected_rows(reference: &Value) -> Vec<Vec<u32>> {
    reference["time_by_grayordinate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| (x.as_f64().unwrap() as f32).to_bits())
                .collect()
        })
        .collect()
}

fn check_header(case: &str, cifti: &CiftiSeries, r: &Value) {
    let h = &cifti.header;
    let endian = if r["endianness"] == "big" {
        Endian::Big
    } else {
        Endian::Little
    };
    assert_eq!(h.endian, endian, "{case}");
    assert_eq!(h.datatype as i64, r["datatype"].as_i64().unwrap(), "{case}");
    let dim: Vec<i64> = r["dim"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(h.dim.to_vec(), dim, "{case}");
    assert_eq!(h.vox_offset, r["vox_offset"].as_i64().unwrap(), "{case}");
    assert_eq!(
        h.intent_code as i64,
        r["intent_code"].as_i64().unwrap(),
        "{case}"
    );
    assert_eq!(h.scl_slope, r["scl_slope"].as_f64().unwrap(), "{case}");
    assert_eq!(h.scl_inter, r["scl_inter"].as_f64().unwrap(), "{case}");
}

fn check_series(case: &str, cifti: &CiftiSeries, r: &Value) {
    let s = &r["series"];
    assert_eq!(
        cifti.series_dimension,
        usize_list(&s["dimension"])[0],
        "{case}"
    );
    assert_eq!(cifti.series.count, s["count"].as_u64().unwrap() as usize);
    assert_eq!(cifti.series.start, s["start"].as_f64().unwrap());
    assert_eq!(cifti.series.step, s["step"].as_f64().unwrap());
    assert_eq!(
        cifti.series.exponent as i64,
        s["exponent"].as_i64().unwrap()
    );
    assert_eq!(cifti.series.unit, s["unit"].as_str().unwrap());
    let step = s["step"].as_f64().unwrap() * 10f64.powi(s["exponent"].as_i64().unwrap() as i32);
    let tr = cifti.tr_seconds().unwrap();
    assert!(
        (tr - step).abs() < 1e-12 && (tr - 2.0).abs() < 1e-12,
        "{case}: TR {tr}"
    );
}

fn check_models(case: &str, cifti: &CiftiSeries, r: &Value) {
    let models = r["brain_models"].as_array().unwrap();
    assert_eq!(cifti.brain_models.len(), models.len(), "{case}");
    for (m, e) in cifti.brain_models.iter().zip(models) {
        assert_eq!(m.index_offset, e["index_offset"].as_u64().unwrap() as usize);
        assert_eq!(m.index_count, e["index_count"].as_u64().unwrap() as usize);
        assert_eq!(m.brain_structure, e["brain_structure"].as_str().unwrap());
        let surface = e["model_type"] == "CIFTI_MODEL_TYPE_SURFACE";
        let kind = if surface {
            ModelType::Surface
        } else {
            ModelType::Voxels
        };
        assert_eq!(m.model_type, kind);
        if surface {
            let n = e["surface_number_of_vertices"].as_u64().map(|n| n as usize);
            assert_eq!(m.surface_number_of_vertices, n);
            assert_eq!(m.vertex_indices, usize_list(&e["vertex_indices"]));
        } else {
            let ijk: Vec<[usize; 3]> = e["voxel_indices_ijk"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| usize_list(v).try_into().unwrap())
                .collect();
            assert_eq!(m.voxel_indices_ijk, ijk);
        }
    }
    let vol = cifti.volume.as_ref().expect("a Volume element");
    let v = &r["volume"];
    assert_eq!(vol.dimensions.to_vec(), usize_list(&v["dimensions"]));
    assert_eq!(
        vol.meter_exponent as i64,
        v["meter_exponent"].as_i64().unwrap()
    );
    for (i, row) in v["ijk_to_xyz"].as_array().unwrap().iter().enumerate() {
        for (j, x) in row.as_array().unwrap().iter().enumerate() {
            assert_eq!(
                vol.ijk_to_xyz[i][j],
                x.as_f64().unwrap(),
                "{case} [{i}][{j}]"
            );
        }
    }
}

#[test]
fn reads_what_nibabel_reads() {
    for case in CASES {
        let r = reference(case);
        let cifti = CiftiSeries::read(&file(case)).unwrap();
        check_header(case, &cifti, &r);
        check_series(case, &cifti, &r);
        check_models(case, &cifti, &r);
        let rows = expected_rows(&r);
        assert_eq!(cifti.n_time(), rows.len(), "{case}");
        assert_eq!(cifti.n_grayordinates(), rows[0].len(), "{case}");
        let ours: Vec<u32> = cifti.data().iter().map(|v| v.to_bits()).collect();
        assert_eq!(
            ours,
            rows.concat(),
            "{case}: data differs from nibabel's get_fdata"
        );
    }
}

#[test]
fn every_layout_holds_the_same_matrix() {
    // The float32 files in either dimension order hold one matrix; the float64 one rounds to it.
    let a = CiftiSeries::read(&file("f32_le")).unwrap();
    for case in ["transposed", "f64_be"] {
        let b = CiftiSeries::read(&file(case)).unwrap();
        assert_eq!(a.data(), b.data(), "{case}");
    }
}

/// The grayordinates of the reference's models with these structures, in file order.
fn reference_columns(r: &Value, structures: &[&str]) -> Vec<usize> {
    let mut columns = Vec::new();
    for m in r["brain_models"].as_array().unwrap() {
        if structures.contains(&m["brain_structure"].as_str().unwrap()) {
            let offset = m["index_offset"].as_u64().unwrap() as usize;
            columns.extend(offset..offset + m["index_count"].as_u64().unwrap() as usize);
        }
    }
    columns
}

#[test]
fn cortex_and_select_return_the_structures_columns() {
    for case in CASES {
        let r = reference(case);
        let rows = expected_rows(&r);
        let cifti = CiftiSeries::read(&file(case)).unwrap();
        let asked: [(&[&str], Vec<&str>); 3] = [
            (&CORTEX, CORTEX.to_vec()),
            (&["THALAMUS_LEFT"], vec!["CIFTI_STRUCTURE_THALAMUS_LEFT"]),
            (
                &["CIFTI_STRUCTURE_AMYGDALA_RIGHT", "CORTEX_LEFT"],
                vec![
                    "CIFTI_STRUCTURE_AMYGDALA_RIGHT",
                    "CIFTI_STRUCTURE_CORTEX_LEFT",
                ],
            ),
        ];
        for (names, full) in asked {
            let sel = if names == CORTEX {
                cifti.cortex().unwrap()
            } else {
                cifti.select(names).unwrap()
            };
            let columns = reference_columns(&r, &full);
            assert!(!columns.is_empty());
            assert_eq!(sel.columns, columns, "{case} {names:?}");
            assert_eq!(sel.n_time, rows.len());
            let expected: Vec<u32> = rows
                .iter()
                .flat_map(|row| columns.iter().map(|&c| row[c]))
                .collect();
            let got: Vec<u32> = sel.data.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, expected, "{case} {names:?}");
            assert!(sel
                .models
                .iter()
                .all(|m| full.contains(&m.brain_structure.as_str())));
        }
    }
}

/// A copy of a fixture with `edit` applied, in `dir`.
fn corrupted(dir: &Path, case: &str, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(file(case)).unwrap();
    edit(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Replaces `from` by `to` (same length, so offsets stay valid) once in the XML.
fn replace_once(bytes: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from} not in the fixture"));
    bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
}

fn refusal(path: &Path) -> String {
    let err = CiftiSeries::read(path).expect_err("a corrupted file must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "no file in: {msg}"
    );
    msg
}

#[test]
fn refuses_corrupted_files_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let truncated = corrupted(d, "f32_le", "truncated.dtseries.nii", |b| {
        b.truncate(b.len() - 10)
    });
    let msg = refusal(&truncated);
    assert!(msg.contains("data") && msg.contains("truncated"), "{msg}");
    assert!(msg.contains(&format!("{} bytes", 7 * 14 * 4)), "{msg}");

    let be_truncated = corrupted(d, "f64_be", "be.dtseries.nii", |b| b.truncate(b.len() - 1));
    assert!(refusal(&be_truncated).contains("truncated"));

    // The right cortex claims 5 grayordinates but lists 4 vertices.
    let count = corrupted(d, "f32_le", "count.dtseries.nii", |b| {
        replace_once(b, "IndexCount=\"4\"", "IndexCount=\"5\"")
    });
    let msg = refusal(&count);
    assert!(
        msg.contains("CORTEX_RIGHT IndexCount") && msg.contains("4 indices"),
        "{msg}"
    );

    let overlap = corrupted(d, "f32_le", "overlap.dtseries.nii", |b| {
        replace_once(b, "IndexOffset=\"5\"", "IndexOffset=\"4\"")
    });
    let msg = refusal(&overlap);
    assert!(
        msg.contains("IndexOffset") && msg.contains("overlap"),
        "{msg}"
    );

    // dim[6] (grayordinates) 15 while the models cover 14: checked before reading data.
    let cover = corrupted(d, "f32_le", "cover.dtseries.nii", |b| {
        b[16 + 6 * 8..16 + 7 * 8].copy_from_slice(&15i64.to_le_bytes())
    });
    let msg = refusal(&cover);
    assert!(
        msg.contains("covering the data's 15 grayordinates"),
        "{msg}"
    );

    let series = corrupted(d, "f32_le", "series.dtseries.nii", |b| {
        replace_once(
            b,
            "NumberOfSeriesPoints=\"7\"",
            "NumberOfSeriesPoints=\"8\"",
        )
    });
    let msg = refusal(&series);
    assert!(
        msg.contains("NumberOfSeriesPoints") && msg.contains("expected 7"),
        "{msg}"
    );

    let xml = corrupted(d, "f32_le", "xml.dtseries.nii", |b| {
        replace_once(b, "</CIFTI>", "</CIFTX>")
    });
    let msg = refusal(&xml);
    assert!(msg.contains("CIFTI XML"), "{msg}");

    // Extension code 32 → 33: no CIFTI extension left.
    let no_ext = corrupted(d, "f32_le", "noext.dtseries.nii", |b| {
        b[548..552].copy_from_slice(&33i32.to_le_bytes())
    });
    let msg = refusal(&no_ext);
    assert!(msg.contains("code 32"), "{msg}");
}

#[test]
fn refuses_nifti1_and_missing_files() {
    // A NIfTI-1 file written by nibabel (the runs fixtures).
    let nifti1 = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/tests/fixtures/runs/datatypes/int16_scaled.nii");
    let msg = refusal(&nifti1);
    assert!(
        msg.contains("sizeof_hdr") && msg.contains("NIfTI-1"),
        "{msg}"
    );

    let missing = fixtures().join("absent.dtseries.nii");
    let msg = refusal(&missing);
    assert!(msg.contains("not found"), "{msg}");

    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.dtseries.nii");
    std::fs::write(&short, &std::fs::read(file("f32_le")).unwrap()[..300]).unwrap();
    assert!(refusal(&short).contains("NIfTI-2 header"));

    let unknown = dir.path().join("unknown.dtseries.nii");
    let mut b = std::fs::read(file("f32_le")).unwrap();
    b[12..14].copy_from_slice(&1536i16.to_le_bytes());
    std::fs::write(&unknown, b).unwrap();
    let msg = refusal(&unknown);
    assert!(msg.contains("datatype") && msg.contains("1536"), "{msg}");

    // Absurd lengths in dim[5] and dim[6] (their product overflows): an error, not a panic.
    let huge = dir.path().join("huge.dtseries.nii");
    let mut b = std::fs::read(file("f32_le")).unwrap();
    b[56..64].copy_from_slice(&(1i64 << 40).to_le_bytes());
    b[64..72].copy_from_slice(&(1i64 << 40).to_le_bytes());
    std::fs::write(&huge, b).unwrap();
    let msg = refusal(&huge);
    assert!(
        msg.contains("NumberOfSeriesPoints") || msg.contains("dim[5..=6]"),
        "{msg}"
    );

    let r = CiftiSeries::read(&file("f32_le")).unwrap();
    let err = r.select(&["CEREBELLUM"]).unwrap_err().to_string();
    assert!(
        err.contains("f32_le.dtseries.nii") && err.contains("CEREBELLUM"),
        "{err}"
    );
}

/// The layout helper on an empty-file copy of the documented tree (the file names come from
/// the dataset authors' code; no real CC2017 files were available to check them).
#[test]
fn cc2017_layout_lists_segments_and_repetitions() {
    use brainrecon_formats::cifti::cc2017::{run_path, runs, Split};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let fmri = root.join("subject2/fmri");
    for (prefix, segments, reps) in [("seg", 18, 2), ("test", 5, 10)] {
        for k in 1..=segments {
            let folder = fmri.join(format!("{prefix}{k}/cifti"));
            std::fs::create_dir_all(&folder).unwrap();
            for r in 1..=reps {
                std::fs::write(
                    folder.join(format!("{prefix}{k}_{r}_Atlas.dtseries.nii")),
                    b"",
                )
                .unwrap();
            }
        }
    }
    let train = runs(root, 2, Split::Train).unwrap();
    assert_eq!(train.len(), 36);
    assert_eq!((train[3].segment, train[3].repetition), (2, 2));
    assert!(train[3]
        .path
        .ends_with("subject2/fmri/seg2/cifti/seg2_2_Atlas.dtseries.nii"));
    let test = runs(root, 2, Split::Test).unwrap();
    assert_eq!(test.len(), 50);
    assert!(test[49]
        .path
        .ends_with("subject2/fmri/test5/cifti/test5_10_Atlas.dtseries.nii"));

    let gone = run_path(root, 2, Split::Test, 3, 7);
    std::fs::remove_file(&gone).unwrap();
    let msg = runs(root, 2, Split::Test).unwrap_err().to_string();
    assert!(msg.contains(&gone.display().to_string()), "{msg}");
    assert!(
        msg.contains("test segment 3 repetition 7") && msg.contains("1 of the 50"),
        "{msg}"
    );
    assert!(runs(root, 2, Split::Train).is_ok());

    let msg = runs(root, 1, Split::Train).unwrap_err().to_string();
    assert!(
        msg.contains("subject1") && msg.contains("CC2017 subject folder"),
        "{msg}"
    );
}

/// A dense label file (`.dlabel.nii`) written by nibabel 5.4.2 (tools/fixtures/cifti_dlabel.py):
/// two label maps over two cortex surface models and a voxel model.
#[test]
fn dense_labels_read_as_nibabel_reads_them_and_write_back_equal() {
    use brainrecon_formats::cifti::{write_dense_labels, CiftiLabels};
    let path = fixtures().join("parcels.dlabel.nii");
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("parcels.dlabel.json")).unwrap(),
    )
    .unwrap();
    let labels = CiftiLabels::read(&path).unwrap();
    assert_eq!(
        labels.n_grayordinates() as u64,
        r["n_grayordinates"].as_u64().unwrap()
    );
    assert_eq!(labels.maps.len(), 2);
    for (map, expected) in labels.maps.iter().zip(r["maps"].as_array().unwrap()) {
        assert_eq!(map.name, expected["name"].as_str().unwrap());
        let table = expected["labels"].as_object().unwrap();
        assert_eq!(map.labels.len(), table.len());
        for (key, name) in table {
            assert_eq!(
                map.labels[&key.parse::<i32>().unwrap()],
                name.as_str().unwrap()
            );
        }
    }
    for (m, keys) in r["keys"].as_array().unwrap().iter().enumerate() {
        let keys: Vec<i32> = keys
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_i64().unwrap() as i32)
            .collect();
        assert_eq!(labels.keys(m), keys.as_slice(), "map {m}");
    }
    let structures: Vec<&str> = labels
        .brain_models
        .iter()
        .map(|m| m.brain_structure.as_str())
        .collect();
    assert_eq!(
        structures,
        r["structures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(labels.brain_models[2].model_type, ModelType::Voxels);
    let vertices: Vec<usize> = labels.brain_models[..2]
        .iter()
        .flat_map(|m| m.vertex_indices.clone())
        .collect();
    let expected: Vec<usize> = r["vertex"].as_array().unwrap()[..75]
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(vertices, expected);
    let voxels: Vec<[usize; 3]> = r["voxel"].as_array().unwrap()[75..]
        .iter()
        .map(|v| std::array::from_fn(|i| v[i].as_u64().unwrap() as usize))
        .collect();
    assert_eq!(labels.brain_models[2].voxel_indices_ijk, voxels);

    // Written back and read again: the same tables, models and keys.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.dlabel.nii");
    let keys: Vec<i32> = (0..2).flat_map(|m| labels.keys(m).to_vec()).collect();
    write_dense_labels(
        &copy,
        &labels.maps,
        &labels.brain_models,
        labels.volume.as_ref(),
        &keys,
    )
    .unwrap();
    let again = CiftiLabels::read(&copy).unwrap();
    assert_eq!(again.maps, labels.maps);
    assert_eq!(again.brain_models, labels.brain_models);
    assert_eq!(again.keys(1), labels.keys(1));
    // A dense time series is not a label file, and the other way round.
    let err = CiftiLabels::read(&file("f32_le")).unwrap_err().to_string();
    assert!(err.contains("CIFTI_INDEX_TYPE_LABELS"), "{err}");
    assert!(CiftiSeries::read(&path).is_err());
}

/// `read_layout` gives what the full reader gives from the header and XML alone.
#[test]
fn the_layout_is_read_without_the_data() {
    use brainrecon_formats::cifti::read_layout;
    for case in ["f32_le", "f64_be", "i16_scaled", "transposed"] {
        let full = CiftiSeries::read(&file(case)).unwrap();
        let layout = read_layout(&file(case)).unwrap();
        assert_eq!(layout.models, full.brain_models, "{case}");
        assert_eq!(layout.volume, full.volume, "{case}");
        assert_eq!(layout.series.as_ref(), Some(&full.series), "{case}");
        assert_eq!(layout.n_grayordinates, full.n_grayordinates(), "{case}");
        assert_eq!(layout.tr_seconds(), full.tr_seconds(), "{case}");
    }
    let labels = read_layout(&fixtures().join("parcels.dlabel.nii")).unwrap();
    assert!(labels.series.is_none());
    assert_eq!(labels.models.len(), 3);
}
