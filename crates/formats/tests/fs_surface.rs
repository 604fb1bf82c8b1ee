//! FreeSurfer's surfaces, curv files and patches, and MGH/MGZ arrays, against nibabel 5.4.2 on
//! tools/fixtures/surface_formats.py's files: coordinates, faces, the volume info's cras,
//! new and old curv values, the patch's points and the faces on it, and MGH arrays of every
//! type nibabel reads (gzipped or not, per-vertex maps, a volume with frames) with their
//! affines. Then hostile bytes: cut files, huge counts, a patch of another surface.

use brainrecon_formats::fs_surface::{parse_surface, read_morph, read_patch, read_surface};
use brainrecon_formats::mgh::read_mgh;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/surface")
}

fn expected() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir().join("expected.json")).unwrap()).unwrap()
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
fn surfaces_curv_and_patches_equal_nibabel() {
    let want = expected();
    let white = read_surface(&dir().join("lh.white")).unwrap();
    let coords: Vec<f64> = white.vertices.iter().flatten().map(|&c| c as f64).collect();
    assert_eq!(coords, floats(&want["lh.white"]["coords"]));
    let faces: Vec<f64> = white.faces.iter().flatten().map(|&i| i as f64).collect();
    assert_eq!(faces, floats(&want["lh.white"]["faces"]));
    assert_eq!(
        white.c_ras.unwrap().to_vec(),
        floats(&want["lh.white"]["cras"])
    );

    for name in ["lh.curv", "lh.curv.old"] {
        let values: Vec<f64> = read_morph(&dir().join(name))
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        assert_eq!(values, floats(&want[name]), "{name}");
    }

    let path = dir().join("lh.flat.patch.3d");
    let patch = read_patch(&path).unwrap();
    let p = &want["lh.flat.patch.3d"];
    let vertices: Vec<f64> = patch.vertices.iter().map(|&v| v as f64).collect();
    assert_eq!(vertices, floats(&p["vertices"]));
    let coords: Vec<f64> = patch.coords.iter().flatten().map(|&c| c as f64).collect();
    assert_eq!(coords, floats(&p["coords"]));
    let border: Vec<bool> = p["border"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_bool().unwrap())
        .collect();
    assert_eq!(patch.border, border);
    let on: Vec<f64> = patch
        .faces(&white, &path)
        .unwrap()
        .iter()
        .flatten()
        .map(|&i| i as f64)
        .collect();
    assert_eq!(on, floats(&p["faces_on_white"]));
    let by_vertex = patch.coords_by_vertex(white.vertices.len());
    assert!(by_vertex[3].is_none() && by_vertex[0] == Some(patch.coords[0]));
}

#[test]
fn mgh_arrays_of_every_type_equal_nibabel() {
    let want = expected();
    for name in [
        "lh.map.mgz",
        "lh.streams.mgh",
        "volume.mgz",
        "frames.mgh",
        "bytes.mgz",
        "uint16.mgh",
    ] {
        let path = dir().join(name);
        let mgh = read_mgh(&path).unwrap();
        let w = &want[name];
        let dims: Vec<f64> = mgh.dims.iter().map(|&d| d as f64).collect();
        assert_eq!(dims, floats(&w["dims"]), "{name}");
        assert_eq!(mgh.type_code as i64, w["type_code"].as_i64().unwrap());
        assert_eq!(mgh.data, floats(&w["values"]), "{name}");
        let affine: Vec<f64> = mgh.affine.iter().flatten().copied().collect();
        for (a, b) in affine.iter().zip(floats(&w["affine"])) {
            assert!((a - b).abs() < 1e-5, "{name}: affine {affine:?}");
        }
        let per_vertex = mgh.per_vertex(&path);
        assert_eq!(per_vertex.is_ok(), mgh.dims[1..] == [1, 1, 1], "{name}");
    }
    let err = read_mgh(&dir().join("volume.mgz"))
        .unwrap()
        .per_vertex(Path::new("volume.mgz"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("volume.mgz") && err.contains("[4, 5, 6, 1]"),
        "{err}"
    );
}

#[test]
fn cut_and_hostile_files_are_errors_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let white = std::fs::read(dir().join("lh.white")).unwrap();
    // every cut of the surface, the curv, the patch and an MGH: an error (or, past the faces,
    // a surface without its volume info), never a panic
    for (name, bytes) in [
        ("lh.white", white.clone()),
        ("lh.curv", std::fs::read(dir().join("lh.curv")).unwrap()),
        (
            "lh.flat.patch.3d",
            std::fs::read(dir().join("lh.flat.patch.3d")).unwrap(),
        ),
        (
            "frames.mgh",
            std::fs::read(dir().join("frames.mgh")).unwrap(),
        ),
        ("bytes.mgz", std::fs::read(dir().join("bytes.mgz")).unwrap()),
    ] {
        for cut in (0..bytes.len()).step_by(7) {
            let path = tmp.path().join(name);
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let result = match name {
                "lh.white" => read_surface(&path).map(|_| ()),
                "lh.curv" => read_morph(&path).map(|_| ()),
                "lh.flat.patch.3d" => read_patch(&path).map(|_| ()),
                _ => read_mgh(&path).map(|_| ()),
            };
            if let Err(e) = result {
                assert!(e.to_string().contains(name), "{name} cut at {cut}: {e}");
            } else {
                // past the data only the optional footers are cut: the surface's volume
                // info, the MGH's scan parameters (284-byte header + 24 int16 values)
                let whole = match name {
                    "lh.white" => cut > 12 * 12 + 20 * 12,
                    "frames.mgh" => cut >= 284 + 24 * 2,
                    _ => false,
                };
                assert!(whole, "{name} cut at {cut} read");
            }
        }
    }
    // a face count of 2^31 − 1
    let mut huge = white.clone();
    let stamp_end = 3 + huge[3..].windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    huge[stamp_end + 4..stamp_end + 8].copy_from_slice(&i32::MAX.to_be_bytes());
    let err = parse_surface(Path::new("lh.white"), &huge)
        .unwrap_err()
        .to_string();
    assert!(err.contains("face count"), "{err}");
    // a face naming a vertex past the count
    let mut bad_face = white.clone();
    let faces_at = stamp_end + 8 + 12 * 12;
    bad_face[faces_at..faces_at + 4].copy_from_slice(&12i32.to_be_bytes());
    let err = parse_surface(Path::new("lh.white"), &bad_face)
        .unwrap_err()
        .to_string();
    assert!(err.contains("face 0") && err.contains("below 12"), "{err}");
    // an MGH claiming 2^31 voxels is refused before anything is allocated
    let mut mgh = std::fs::read(dir().join("frames.mgh")).unwrap();
    mgh[4..8].copy_from_slice(&i32::MAX.to_be_bytes());
    let path = tmp.path().join("huge.mgh");
    std::fs::write(&path, &mgh).unwrap();
    let err = read_mgh(&path).unwrap_err().to_string();
    assert!(err.contains("huge.mgh") && err.contains("dims"), "{err}");
    // a patch of another surface: its vertices pass the surface's count
    let path = dir().join("lh.flat.patch.3d");
    let patch = read_patch(&path).unwrap();
    let mut small = read_surface(&dir().join("lh.white")).unwrap();
    small.vertices.truncate(8);
    small.faces.retain(|f| f.iter().all(|&v| v < 8));
    let err = patch.faces(&small, &path).unwrap_err().to_string();
    assert!(
        err.contains("lh.flat.patch.3d") && err.contains("8 vertices"),
        "{err}"
    );
}

#[test]
fn gifti_in_every_encoding_equals_nibabel() {
    use brainrecon_formats::gifti::read_gifti;
    let want = expected();
    for name in [
        "lh.white.surf.gii",
        "lh.white.surf.gii.gz",
        "lh.func.gii",
        "lh.label.gii",
    ] {
        let path = dir().join(name);
        let gifti = read_gifti(&path).unwrap();
        let w = &want[name];
        let arrays = w["arrays"].as_array().unwrap();
        assert_eq!(gifti.arrays.len(), arrays.len(), "{name}");
        for (got, a) in gifti.arrays.iter().zip(arrays) {
            assert_eq!(got.intent, a["intent"].as_str().unwrap(), "{name}");
            let dims: Vec<f64> = got.dims.iter().map(|&d| d as f64).collect();
            assert_eq!(dims, floats(&a["dims"]), "{name}");
            assert_eq!(got.data, floats(&a["values"]), "{name} {}", got.intent);
            match (&got.transform, a["transform"].is_null()) {
                (Some(t), false) => {
                    let t: Vec<f64> = t.iter().flatten().copied().collect();
                    assert_eq!(t, floats(&a["transform"]), "{name}");
                }
                // nibabel drops a transform of no space (NIFTI_XFORM_UNKNOWN, the identity)
                (None, true) => {}
                (Some(t), true) => {
                    assert!(
                        (0..4).all(|r| (0..4).all(|c| t[r][c] == f64::from(u8::from(r == c)))),
                        "{name}: transform {t:?} where nibabel has none"
                    );
                }
                (None, false) => panic!("{name}: no transform, nibabel {}", a["transform"]),
            }
        }
        let labels = w["labels"].as_array().unwrap();
        assert_eq!(gifti.labels.len(), labels.len(), "{name}");
        for (got, l) in gifti.labels.iter().zip(labels) {
            assert_eq!(got.key, l["key"].as_i64().unwrap());
            assert_eq!(got.name, l["name"].as_str().unwrap());
            let rgba = got.rgba.to_vec();
            assert_eq!(rgba, floats(&l["rgba"]), "{name} {}", got.name);
        }
        for (key, value) in w["meta"].as_object().unwrap() {
            assert!(
                gifti
                    .meta
                    .contains(&(key.clone(), value.as_str().unwrap().to_string())),
                "{name}: {key}"
            );
        }
    }
    // the GIFTI mesh is the FreeSurfer one
    let path = dir().join("lh.white.surf.gii.gz");
    let mesh = read_gifti(&path).unwrap().surface(&path).unwrap();
    let white = read_surface(&dir().join("lh.white")).unwrap();
    assert_eq!((mesh.vertices, mesh.faces), (white.vertices, white.faces));
    // a func file has no mesh; a cut file or a bad encoding names the file
    let func = dir().join("lh.func.gii");
    let err = read_gifti(&func)
        .unwrap()
        .surface(&func)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lh.func.gii") && err.contains("POINTSET"),
        "{err}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&func).unwrap();
    for (what, bad) in [
        ("cut", text[..text.len() / 2].to_string()),
        (
            "encoding",
            text.replacen("Encoding=\"ASCII\"", "Encoding=\"Morse\"", 1),
        ),
        (
            "dims",
            text.replacen("Dim0=\"12\"", "Dim0=\"4000000000000\"", 1),
        ),
        (
            "base64",
            text.replacen("Encoding=\"Base64Binary\"", "Encoding=\"ASCII\"", 1),
        ),
    ] {
        let path = tmp.path().join(format!("{what}.func.gii"));
        std::fs::write(&path, bad).unwrap();
        let err = read_gifti(&path).unwrap_err().to_string();
        assert!(err.contains(&format!("{what}.func.gii")), "{what}: {err}");
    }
}
