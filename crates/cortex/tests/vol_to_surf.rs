//! A volume sampled at a surface's vertices against nilearn 0.14.1's `vol_to_surf`
//! (`interpolation="linear"`; tools/fixtures/vol_to_surf.py): along the normals (radius 3 and
//! 5, with a mask) and between the pial and white surfaces (with a mask), on a mesh partly
//! outside the volume, a NaN voxel and an oblique affine.

use brainrecon_cortex::surface_sampling::{vol_to_surf, Sampling, Volume};

fn points(v: &serde_json::Value) -> Vec<[f32; 3]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let p = p.as_array().unwrap();
            [0, 1, 2].map(|d| p[d].as_f64().unwrap() as f32)
        })
        .collect()
}

#[test]
fn textures_equal_nilearn() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vol_to_surf.json");
    let f: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let (outer, inner) = (points(&f["outer"]), points(&f["inner"]));
    let faces: Vec<[u32; 3]> = f["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let t = t.as_array().unwrap();
            [0, 1, 2].map(|d| t[d].as_u64().unwrap() as u32)
        })
        .collect();
    let dims: Vec<usize> = f["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f32> = f["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().map_or(f32::NAN, |x| x as f32))
        .collect();
    let mask: Vec<bool> = f["mask"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_bool().unwrap())
        .collect();
    let rows = f["affine"].as_array().unwrap();
    let affine = [0, 1, 2, 3].map(|r| [0, 1, 2, 3].map(|c| rows[r][c].as_f64().unwrap()));
    let volume = Volume {
        data: &data,
        dims: [dims[0], dims[1], dims[2]],
        affine: &affine,
    };
    for case in f["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let sampling = match case["kind"].as_str().unwrap() {
            "line" => Sampling::Line {
                radius: case["radius"].as_f64().unwrap(),
            },
            _ => Sampling::Depth { inner: &inner },
        };
        let n = case["n_samples"].as_u64().unwrap() as usize;
        let m = case["masked"].as_bool().unwrap().then_some(&mask[..]);
        let got = vol_to_surf(&volume, &outer, &faces, sampling, n, m).unwrap();
        let want = case["texture"].as_array().unwrap();
        assert_eq!(got.len(), want.len());
        let mut nan = 0;
        for (v, (g, w)) in got.iter().zip(want).enumerate() {
            match w.as_f64() {
                None => {
                    assert!(g.is_nan(), "{name}: vertex {v} is {g}, nilearn NaN");
                    nan += 1;
                }
                Some(w) => assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "{name}: vertex {v} is {g}, nilearn {w}"
                ),
            }
        }
        assert!(nan < got.len(), "{name}: all NaN");
    }
    // a volume whose values disagree with its dims, or an inner surface of another mesh
    let short = Volume {
        data: &data[1..],
        ..volume
    };
    assert!(vol_to_surf(
        &short,
        &outer,
        &faces,
        Sampling::Line { radius: 3.0 },
        10,
        None
    )
    .is_none());
    let depth = Sampling::Depth { inner: &inner[1..] };
    assert!(vol_to_surf(&volume, &outer, &faces, depth, 10, None).is_none());
}
