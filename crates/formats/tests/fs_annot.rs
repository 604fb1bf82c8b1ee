//! FreeSurfer annotations (new and old colour tables, a sparse table) against nibabel 5.4.2's
//! read_annot, and old-format patches as FreeSurfer's MRISreadPatchNoRemove reads them, on
//! tools/fixtures/freesurfer_annot.py's files. Then every cut of each file and hostile counts.

use brainrecon_formats::fs_surface::{parse_annot, read_annot, read_patch};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/annot")
}

fn expected() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir().join("expected.json")).unwrap()).unwrap()
}

fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|x| match x.as_array() {
            Some(row) => row.iter().map(|y| y.as_i64().unwrap()).collect(),
            None => vec![x.as_i64().unwrap()],
        })
        .collect()
}

#[test]
fn annotations_equal_nibabel_in_both_colour_table_formats() {
    let want = expected();
    for name in ["lh.new.annot", "lh.old.annot", "lh.sparse.annot"] {
        let w = &want[name];
        let n = w["labels"].as_array().unwrap().len();
        let annot = read_annot(&dir().join(name), Some(n)).unwrap();
        let labels: Vec<i64> = annot.labels.iter().map(|&l| l as i64).collect();
        assert_eq!(labels, ints(&w["labels"]), "{name} labels");
        let ctab: Vec<i64> = annot.ctab.iter().flatten().map(|&c| c as i64).collect();
        assert_eq!(ctab, ints(&w["ctab"]), "{name} ctab");
        let names: Vec<&str> = w["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(annot.names, names, "{name} names");
        // a surface of another size is refused, naming the file
        let err = read_annot(&dir().join(name), Some(n + 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains(name) && err.contains("vertex count"), "{err}");
    }
}

#[test]
fn old_format_patches_read_as_freesurfer_reads_them() {
    let want = &expected()["lh.old.patch.3d"];
    let patch = read_patch(&dir().join("lh.old.patch.3d")).unwrap();
    let vertices: Vec<i64> = patch.vertices.iter().map(|&v| v as i64).collect();
    assert_eq!(vertices, ints(&want["vertices"]));
    let coords: Vec<f64> = patch.coords.iter().flatten().map(|&c| c as f64).collect();
    let want_coords: Vec<f64> = want["coords"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|c| c.as_f64().unwrap()))
        .collect();
    assert_eq!(coords, want_coords);
    let border: Vec<bool> = want["border"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_bool().unwrap())
        .collect();
    assert_eq!(patch.border, border);
    // a first word below -1 is neither format
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.patch");
    std::fs::write(&path, (-2i32).to_be_bytes()).unwrap();
    let err = read_patch(&path).unwrap_err().to_string();
    assert!(
        err.contains("bad.patch") && err.contains("version"),
        "{err}"
    );
}

#[test]
fn cut_and_hostile_annotations_are_errors_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "lh.new.annot",
        "lh.old.annot",
        "lh.sparse.annot",
        "lh.old.patch.3d",
    ] {
        let bytes = std::fs::read(dir().join(name)).unwrap();
        for cut in 0..bytes.len() {
            let path = tmp.path().join(name);
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let result = if name.ends_with("annot") {
                read_annot(&path, None).map(|_| ())
            } else {
                read_patch(&path).map(|_| ())
            };
            let err = result.expect_err(&format!("{name} cut at {cut} read"));
            assert!(err.to_string().contains(name), "{name} cut at {cut}: {err}");
        }
    }
    let header = |n: i32| {
        let mut b = n.to_be_bytes().to_vec();
        b.extend(0i32.to_be_bytes());
        b.extend(0i32.to_be_bytes());
        b
    };
    // a vertex count of 2^31 − 1 in an 12-byte file; a vertex index past the count
    let err = parse_annot(Path::new("huge.annot"), &header(i32::MAX))
        .unwrap_err()
        .to_string();
    assert!(err.contains("vertex count"), "{err}");
    let mut bad = 1i32.to_be_bytes().to_vec();
    bad.extend(5i32.to_be_bytes());
    bad.extend(7i32.to_be_bytes());
    let err = parse_annot(Path::new("bad.annot"), &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("vertex values") && err.contains("5"), "{err}");
    // a version-2 table claiming 2^31 − 1 rows is refused before it is allocated
    let mut table = 0i32.to_be_bytes().to_vec();
    for word in [1, -2, i32::MAX, 0, 0] {
        table.extend(word.to_be_bytes());
    }
    let err = parse_annot(Path::new("rows.annot"), &table)
        .unwrap_err()
        .to_string();
    assert!(err.contains("colour table max index"), "{err}");
    // an unknown table version; an entry index outside the table
    let mut version = 0i32.to_be_bytes().to_vec();
    for word in [1i32, -3] {
        version.extend(word.to_be_bytes());
    }
    let err = parse_annot(Path::new("v.annot"), &version)
        .unwrap_err()
        .to_string();
    assert!(err.contains("colour table version"), "{err}");
    let mut outside = 0i32.to_be_bytes().to_vec();
    for word in [1i32, -2, 2, 0, 1, 5, 0] {
        outside.extend(word.to_be_bytes());
    }
    outside.extend([0u8; 16]);
    let err = parse_annot(Path::new("o.annot"), &outside)
        .unwrap_err()
        .to_string();
    assert!(err.contains("entry index") && err.contains("5"), "{err}");
}
