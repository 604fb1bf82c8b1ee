//! The interactive page: self-contained, small enough, escaped, and carrying the meshes whole.

use brainrecon_core::text::base64_encode;
use brainrecon_cortex::colour::Scale;
use brainrecon_cortex::mesh::{Cortex, Hemi, SurfaceMap, VertexLabels};
use brainrecon_cortex::page::{base64_decode, page_html, DATA_ELEMENT_ID, GYRUS_GREY, SULCUS_GREY};
use brainrecon_cortex::template::{fsaverage5, FSAVERAGE5_VERTICES};
use serde_json::Value;

const NASTY: &str = "r </script><script>alert(\"x\")</script> 'q' & <!--";

/// Three maps (signed y coordinate with NaNs and a threshold, categorical quadrants, positive
/// x distance) and three regions, on fsaverage5.
fn sample(cortex: &Cortex) -> (Vec<SurfaceMap>, VertexLabels) {
    let per_hemi = |f: &dyn Fn(Hemi, usize, [f32; 3]) -> f64| -> [Vec<f64>; 2] {
        let mut out = [Vec::new(), Vec::new()];
        for (k, hemi) in Hemi::BOTH.into_iter().enumerate() {
            out[k] = cortex
                .hemi(hemi)
                .white
                .vertices
                .iter()
                .enumerate()
                .map(|(v, p)| f(hemi, v, *p))
                .collect();
        }
        out
    };
    let [yl, yr] = per_hemi(&|_, v, p| if v % 97 == 0 { f64::NAN } else { p[1] as f64 });
    let all_y: Vec<f64> = yl.iter().chain(&yr).copied().collect();
    let y_map = SurfaceMap {
        name: NASTY.into(),
        left: yl,
        right: yr,
        scale: Scale::symmetric(&all_y, Some(10.0)),
    };
    let [ql, qr] =
        per_hemi(&|_, _, p| f64::from(u8::from(p[1] > -20.0) * 2 + u8::from(p[2] > 10.0)));
    let quadrant = SurfaceMap {
        name: "quadrant".into(),
        left: ql,
        right: qr,
        scale: Scale::Categorical {
            names: vec![
                "posterior ventral".into(),
                "posterior dorsal".into(),
                "anterior ventral".into(),
                "anterior dorsal".into(),
            ],
        },
    };
    let [xl, xr] = per_hemi(&|_, _, p| p[0].abs() as f64);
    let all_x: Vec<f64> = xl.iter().chain(&xr).copied().collect();
    let x_map = SurfaceMap {
        name: "|x| (mm)".into(),
        left: xl,
        right: xr,
        scale: Scale::positive(&all_x, Some(30.0)),
    };
    let region = |p: [f32; 3]| -> i32 {
        if p[1] < -70.0 {
            1
        } else if p[2] > 40.0 {
            2
        } else if p[1] > 30.0 {
            3
        } else {
            0
        }
    };
    let labels = VertexLabels {
        name: "lobes-ish".into(),
        left: cortex
            .left
            .white
            .vertices
            .iter()
            .map(|p| region(*p))
            .collect(),
        right: cortex
            .right
            .white
            .vertices
            .iter()
            .map(|p| region(*p))
            .collect(),
        names: vec![
            (1, "occipital".into()),
            (2, "dorsal <b>\"top\"</b>".into()),
            (3, "frontal".into()),
        ],
    };
    (vec![y_map, quadrant, x_map], labels)
}

/// The page's JSON data block, parsed.
fn data_of(html: &str) -> Value {
    let open = format!("<script type=\"application/json\" id=\"{DATA_ELEMENT_ID}\">");
    let start = html.find(&open).expect("data block") + open.len();
    let end = start + html[start..].find("</script>").expect("data block's end");
    serde_json::from_str(&html[start..end]).expect("data block is JSON")
}

fn buffer(data: &Value, name: &str) -> Vec<u8> {
    let text = data["buffers"][name]
        .as_str()
        .unwrap_or_else(|| panic!("buffer {name}"));
    base64_decode(text).unwrap_or_else(|| panic!("buffer {name} is base64"))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn fsaverage5_page_with_three_maps_is_small_escaped_and_complete() {
    let cortex = fsaverage5().unwrap();
    let (maps, labels) = sample(&cortex);
    let title = "Test \"page\" </script><b>bold</b> & 'more'";
    let html = page_html(&cortex, &maps, Some(&labels), title);
    if let Ok(path) = std::env::var("BRAINRECON_PAGE_OUT") {
        std::fs::write(&path, &html).unwrap();
    }

    // Size.
    assert!(html.len() < 5_000_000, "page is {} bytes", html.len());
    assert!(html.len() > 1_000_000, "page is only {} bytes", html.len());

    // Self-contained: no references out.
    let lower = html.to_ascii_lowercase();
    for needle in ["http://", "https://", "src=", "<link", "@import", "url("] {
        assert!(!lower.contains(needle), "page contains {needle}");
    }

    // Escaped: the names never close a script element or open markup.
    assert_eq!(html.matches("</script>").count(), 2);
    assert_eq!(lower.matches("<script").count(), 2);
    assert!(!html.contains("alert(\"x\")"));
    assert!(!html.contains("<b>"));
    assert!(html.contains(
        "<title>Test &quot;page&quot; &lt;/script&gt;&lt;b&gt;bold&lt;/b&gt; &amp; &#39;more&#39;</title>"
    ));

    // The data block holds the names unchanged and the sizes of everything.
    let data = data_of(&html);
    assert_eq!(data["title"], title);
    assert_eq!(data["maps"][0]["name"], NASTY);
    assert_eq!(data["maps"].as_array().unwrap().len(), 3);
    assert_eq!(data["labels"]["names"][1][1], "dorsal <b>\"top\"</b>");
    assert_eq!(data["has_flat"], true);
    for (k, hemi) in Hemi::BOTH.into_iter().enumerate() {
        let h = cortex.hemi(hemi);
        let meta = &data["hemis"][k];
        let name = hemi.bids();
        assert_eq!(meta["name"], name);
        assert_eq!(meta["vertices"], FSAVERAGE5_VERTICES);
        assert_eq!(meta["faces"], 20_480);
        let flat = h.flat.as_ref().unwrap();
        assert_eq!(meta["flat_faces"], flat.faces.len());

        let infl = f32s(&buffer(&data, &format!("{name}.inflated")));
        assert_eq!(infl.len(), 3 * FSAVERAGE5_VERTICES);
        let faces = u32s(&buffer(&data, &format!("{name}.faces")));
        let expected: Vec<u32> = h.inflated.faces.iter().flatten().copied().collect();
        assert_eq!(faces, expected);
        let flat_faces = u32s(&buffer(&data, &format!("{name}.flat_faces")));
        let expected: Vec<u32> = flat.faces.iter().flatten().copied().collect();
        assert_eq!(flat_faces, expected);
        let flat_xyz = f32s(&buffer(&data, &format!("{name}.flat")));
        assert_eq!(flat_xyz.len(), 3 * FSAVERAGE5_VERTICES);
        assert!(flat_xyz.iter().skip(2).step_by(3).all(|&z| z == 0.0));

        // Hemispheres do not overlap: left entirely left of right, in both layouts.
        let xs = |xyz: &[f32], faces: &[u32]| -> (f32, f32) {
            faces
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    let x = xyz[3 * v as usize];
                    (lo.min(x), hi.max(x))
                })
        };
        let (lo, hi) = xs(&infl, &faces);
        let (flo, fhi) = xs(&flat_xyz, &flat_faces);
        match hemi {
            Hemi::Left => assert!(hi < 0.0 && fhi < 0.0, "{hi} {fhi}"),
            Hemi::Right => assert!(lo > 0.0 && flo > 0.0, "{lo} {flo}"),
        }

        // Colours: the scale's where it draws, the curvature's grey where not.
        for (j, map) in maps.iter().enumerate() {
            let rgb = buffer(&data, &format!("{name}.map{j}.rgb"));
            assert_eq!(rgb.len(), 3 * FSAVERAGE5_VERTICES);
            let values = f32s(&buffer(&data, &format!("{name}.map{j}.values")));
            assert_eq!(values.len(), FSAVERAGE5_VERTICES);
            let mut greys = 0;
            for v in 0..FSAVERAGE5_VERTICES {
                let value = map.values(hemi)[v];
                let want = map.scale.colour(value).unwrap_or_else(|| {
                    greys += 1;
                    if h.curvature[v] > 0.0 {
                        SULCUS_GREY
                    } else {
                        GYRUS_GREY
                    }
                });
                assert_eq!(rgb[3 * v..3 * v + 3], want, "map {j} {name} vertex {v}");
                assert!(value.is_nan() && values[v].is_nan() || values[v] == value as f32);
            }
            if j == 0 {
                assert!(greys > FSAVERAGE5_VERTICES / 97, "map 0 has {greys} greys");
            }
        }
        let region = buffer(&data, &format!("{name}.labels"));
        assert_eq!(region.len(), 4 * FSAVERAGE5_VERTICES);
        assert_eq!(
            i32::from_le_bytes([region[0], region[1], region[2], region[3]]),
            labels.values(hemi)[0]
        );
    }
}

#[test]
fn page_without_maps_labels_or_flat_still_builds() {
    let mut cortex = fsaverage5().unwrap();
    cortex.left.flat = None;
    let html = page_html(&cortex, &[], None, "curvature only");
    let data = data_of(&html);
    assert_eq!(data["has_flat"], false);
    assert!(data["labels"].is_null());
    assert_eq!(data["maps"].as_array().unwrap().len(), 0);
    assert!(data["buffers"].get("L.flat").is_none());
    assert_eq!(buffer(&data, "R.curv").len(), 3 * FSAVERAGE5_VERTICES);
}

#[test]
fn base64_round_trips_float_buffers() {
    let values: Vec<f32> = (0..1001)
        .map(|i| (i as f32 * 0.37).sin() * 1e3)
        .chain([f32::NAN, f32::INFINITY, -0.0])
        .collect();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let back = f32s(&base64_decode(&base64_encode(&bytes)).unwrap());
    assert_eq!(back.len(), values.len());
    for (a, b) in values.iter().zip(&back) {
        assert_eq!(a.to_bits(), b.to_bits());
    }
}

/// Opens the sample page in headless Chromium with `#selftest` (data sizes, hover picking in
/// several views and on the flat maps, something drawn) and reads the verdict from the title.
/// Chromium comes from `BRAINRECON_CHROMIUM` or PATH (tools/test.sh installs Debian's); where
/// there is none the test says it was skipped, and fails in CI.
#[test]
fn page_self_test_passes_in_chromium() {
    let chromium = match brainrecon_testkit::find_chromium() {
        Ok(path) => path,
        Err(why) => return brainrecon_testkit::cannot_run("the viewer page's self-test", &why),
    };
    let cortex = fsaverage5().unwrap();
    let (maps, labels) = sample(&cortex);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("page.html");
    std::fs::write(&path, page_html(&cortex, &maps, Some(&labels), "self-test")).unwrap();
    for hash in ["selftest", "selftest&renderer=2d"] {
        let out = std::process::Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=10000",
                "--window-size=1200,800",
                "--dump-dom",
            ])
            .arg(format!("file://{}#{hash}", path.display()))
            .output()
            .expect("run chromium");
        let dom = String::from_utf8_lossy(&out.stdout);
        let title = dom
            .split("<title>")
            .nth(1)
            .and_then(|t| t.split("</title>").next())
            .unwrap_or("");
        assert!(title.starts_with("SELFTEST PASS"), "#{hash}: {title}");
    }
}
