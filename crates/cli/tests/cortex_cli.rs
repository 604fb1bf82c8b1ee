//! `brainrecon cortex draw` on a FreeSurfer subject folder laid out as NSD and fMRIPrep ship
//! them (tools/fixtures/freesurfer_subject.py): the values at the vertices equal nilearn's
//! vol_to_surf, the fsaverage5 maps follow the subject's sphere.reg, NSD's streams atlas is
//! read, and bad surfaces are refused naming the file.

mod common;

use common::{ok, p, user_error};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/freesurfer")
}

fn expected() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap()
}

/// The single map of `dir/maps_hemi-{L,R}.func.gii`, per hemisphere.
fn drawn(dir: &Path) -> [Vec<f64>; 2] {
    ["L", "R"].map(|h| {
        let g = brainrecon_formats::gifti::read_gifti(&dir.join(format!("maps_hemi-{h}.func.gii")))
            .unwrap();
        assert_eq!(g.arrays.len(), 1);
        g.arrays[0].data.clone()
    })
}

#[test]
fn subject_surfaces_sample_as_nilearn_and_fsaverage_follows_sphere_reg() {
    let dir = tempfile::tempdir().unwrap();
    let subject = fixtures().join("subj");
    let volume = fixtures().join("volume.nii.gz");
    let out = dir.path().join("native");
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "cortex",
        "draw",
        "--volume",
        p(&volume),
        "--cortex",
        p(&subject),
        "--out",
        p(&out),
        "--json",
    ]))
    .unwrap();
    assert!(json["how"].as_str().unwrap().contains("c_ras"), "{json}");
    let expected = expected();
    let native = drawn(&out);
    let mut checked = 0;
    for (values, hemi) in native.iter().zip(["lh", "rh"]) {
        let want = expected["hemispheres"][hemi]["vol_to_surf"]
            .as_array()
            .unwrap();
        assert_eq!(values.len(), want.len());
        for (v, (got, w)) in values.iter().zip(want).enumerate() {
            match w.as_f64() {
                Some(w) => {
                    assert!(
                        (got - w).abs() < 1e-5 * (1.0 + w.abs()),
                        "{hemi} {v}: {got} vs {w}"
                    );
                    checked += 1;
                }
                None => assert!(got.is_nan(), "{hemi} {v}: {got} vs NaN"),
            }
        }
    }
    assert!(checked > 250, "{checked} vertices with a value");
    let cortex: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("cortex.json")).unwrap()).unwrap();
    assert_eq!(
        cortex["labels"], "streams",
        "NSD's label/?h.streams.mgz is outlined"
    );
    assert_eq!(cortex["vertices"], serde_json::json!([162, 162]));
    for file in ["volume.png", "viewer.html", "maps.dscalar.nii"] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let page = std::fs::read_to_string(out.join("viewer.html")).unwrap();
    assert!(
        page.contains("ventral") && page.contains("lateral"),
        "region names in the page"
    );

    // The same volume on fsaverage5 through the subject's sphere.reg.
    let group = dir.path().join("fsaverage5");
    ok(&[
        "cortex",
        "draw",
        "--volume",
        p(&volume),
        "--cortex",
        &format!("fsaverage5:{}", subject.display()),
        "--out",
        p(&group),
    ]);
    let on_fsaverage = drawn(&group);
    for (h, hemi) in ["lh", "rh"].iter().enumerate() {
        let nearest = expected["hemispheres"][hemi]["fsaverage5_nearest"]
            .as_array()
            .unwrap();
        assert_eq!(on_fsaverage[h].len(), 10_242);
        for (v, n) in nearest.iter().enumerate() {
            let source = native[h][n.as_u64().unwrap() as usize];
            let got = on_fsaverage[h][v];
            assert!(
                got == source || (got.is_nan() && source.is_nan()),
                "{hemi} fsaverage5 vertex {v}: {got} vs the subject's {source}"
            );
        }
    }
}

#[test]
fn fsaverage5_maps_drawn_again_from_their_dscalar_file() {
    let dir = tempfile::tempdir().unwrap();
    let volume = fixtures().join("volume.nii.gz");
    let first = dir.path().join("mni");
    ok(&["cortex", "draw", "--volume", p(&volume), "--out", p(&first)]);
    let cortex: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("cortex.json")).unwrap()).unwrap();
    assert_eq!(
        cortex["cortex"], "fsaverage5",
        "auto draws a lone volume on fsaverage5"
    );
    let again = dir.path().join("again");
    ok(&[
        "cortex",
        "draw",
        "--volume",
        p(&first.join("maps.dscalar.nii")),
        "--out",
        p(&again),
    ]);
    let (a, b) = (drawn(&first), drawn(&again));
    for h in 0..2 {
        assert_eq!(a[h].len(), 10_242);
        let finite = a[h].iter().filter(|v| v.is_finite()).count();
        assert!(finite > 3_000, "{finite} vertices inside the volume");
        for (x, y) in a[h].iter().zip(&b[h]) {
            assert!(x == y || (x.is_nan() && y.is_nan()), "{x} vs {y}");
        }
    }
    // A dense scalar file on another mesh is refused, naming it and the mesh it wants.
    let other = dir.path().join("other.dscalar.nii");
    let model = |structure: &str, offset: usize| brainrecon_formats::cifti::BrainModel {
        index_offset: offset,
        index_count: 2,
        model_type: brainrecon_formats::cifti::ModelType::Surface,
        brain_structure: structure.into(),
        surface_number_of_vertices: Some(32_492),
        vertex_indices: vec![0, 1],
        voxel_indices_ijk: Vec::new(),
    };
    brainrecon_formats::cifti::write_dense_scalars(
        &other,
        &["r".to_string()],
        &[
            model("CIFTI_STRUCTURE_CORTEX_LEFT", 0),
            model("CIFTI_STRUCTURE_CORTEX_RIGHT", 2),
        ],
        None,
        &[0.1, 0.2, 0.3, 0.4],
    )
    .unwrap();
    let e = user_error(&[
        "cortex",
        "draw",
        "--volume",
        p(&other),
        "--out",
        p(&dir.path().join("x")),
    ]);
    assert!(
        e.contains("other.dscalar.nii") && e.contains("10242") && e.contains("32492"),
        "{e}"
    );
    // Files drawn together must share their brain models (one placement serves them all).
    let both = format!(
        "{},{}",
        first.join("maps.dscalar.nii").display(),
        other.display()
    );
    let e = user_error(&[
        "cortex",
        "draw",
        "--volume",
        &both,
        "--out",
        p(&dir.path().join("y")),
    ]);
    assert!(
        e.contains("other.dscalar.nii") && e.contains("brain models of"),
        "{e}"
    );
    assert!(!dir.path().join("y").exists());
}

#[test]
fn bad_surfaces_and_options_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let volume = fixtures().join("volume.nii.gz");
    let copy = |name: &str| -> PathBuf {
        let to = dir.path().join(name);
        for sub in ["surf", "label"] {
            std::fs::create_dir_all(to.join(sub)).unwrap();
            for entry in std::fs::read_dir(fixtures().join("subj").join(sub)).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), to.join(sub).join(entry.file_name())).unwrap();
            }
        }
        to
    };
    let draw = |cortex: &Path, out: &str| {
        user_error(&[
            "cortex",
            "draw",
            "--volume",
            p(&volume),
            "--cortex",
            p(cortex),
            "--out",
            p(&dir.path().join(out)),
        ])
    };
    // A pial surface with another vertex count than the white one.
    let short = copy("short");
    let icosahedron =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../formats/tests/fixtures/surface/lh.white");
    std::fs::copy(&icosahedron, short.join("surf/lh.pial")).unwrap();
    let e = draw(&short, "o1");
    assert!(e.contains("lh.pial") && e.contains("162"), "{e}");
    // A flat patch of another surface.
    let patched = copy("patched");
    std::fs::copy(
        fixtures().join("other.flat.patch.3d"),
        patched.join("surf/rh.full.flat.patch.3d"),
    )
    .unwrap();
    let e = draw(&patched, "o2");
    assert!(
        e.contains("rh.full.flat.patch.3d") && e.contains("patch of this surface"),
        "{e}"
    );
    // A corrupt atlas.
    let corrupt = copy("corrupt");
    std::fs::write(
        corrupt.join("label/lh.streams.mgz"),
        b"\x1f\x8b\x08\x00 not gzip",
    )
    .unwrap();
    let e = draw(&corrupt, "o3");
    assert!(e.contains("lh.streams.mgz"), "{e}");
    // A missing folder, and a kind that is none of the three.
    let e = draw(&dir.path().join("nowhere"), "o4");
    assert!(e.contains("nowhere") && e.contains("lh.white"), "{e}");
    let e = user_error(&[
        "cortex",
        "draw",
        "--volume",
        p(&volume),
        "--kind",
        "hot",
        "--out",
        p(&dir.path().join("o5")),
    ]);
    assert!(e.contains("--kind") && e.contains("categorical"), "{e}");
    // A second map on another grid (shifted by a millimetre).
    let mut shifted = brainrecon_formats::nifti_io::read_volume(&volume).unwrap();
    shifted.affine[0][3] += 1.0;
    let moved = dir.path().join("moved.nii.gz");
    let values: Vec<f32> = shifted.values.iter().map(|&v| v as f32).collect();
    brainrecon_formats::nifti_io::write_f32(&moved, shifted.shape, &shifted.affine, &values)
        .unwrap();
    let both = format!("{},{}", volume.display(), moved.display());
    let e = user_error(&[
        "cortex",
        "draw",
        "--volume",
        &both,
        "--out",
        p(&dir.path().join("o6")),
    ]);
    assert!(
        e.contains("moved.nii.gz") && e.contains("the grid of"),
        "{e}"
    );
    for out in ["o1", "o2", "o3", "o4", "o5", "o6"] {
        assert!(
            !dir.path().join(out).exists(),
            "{out}: nothing half-written"
        );
    }
}
