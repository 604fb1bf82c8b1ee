//! MinD-Video's preprocessed CC2017 arrays, read one clip at a time.

use brainrecon_datasets::cc2017::mindvideo::{self, MindVideoFmri, MindVideoFrames};
use brainrecon_formats::npy;

#[test]
fn mindvideo_arrays_are_read_one_clip_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    // (segments 2, trs 3, frames 6, h 5, w 4, 3)
    let shape = [2usize, 3, 6, 5, 4, 3];
    let data: Vec<u8> = (0..shape.iter().product::<usize>())
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let path = mindvideo::video_path(dir.path(), mindvideo::Split::Train, 3);
    assert!(path.ends_with("video_train_256_3hz.npy"));
    npy::write(&path, &shape, &data).unwrap();
    let frames = MindVideoFrames::open(&path).unwrap();
    assert_eq!(frames.dims(), (2, 3, 6, 5, 4));
    let clip = frames.clip(1, 2).unwrap();
    assert_eq!(clip.len(), 6);
    let per = 5 * 4 * 3;
    let start = (3 + 2) * 6 * per;
    for (j, f) in clip.iter().enumerate() {
        assert_eq!(f.pixels, &data[start + j * per..start + (j + 1) * per]);
    }
    let err = frames.clip(2, 0).err().unwrap().to_string();
    assert!(
        err.contains("video_train_256_3hz.npy") && err.contains("below 2"),
        "{err}"
    );

    // fMRI (segments 2, trs 3, voxels 7) in float32 and float64.
    let values: Vec<f64> = (0..42).map(|i| i as f64 * 0.25 - 3.0).collect();
    let f32_path = mindvideo::fmri_path(dir.path(), mindvideo::Split::Test, 1);
    assert!(f32_path.ends_with("fmri_test_subject1.npy"));
    let as_f32: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    npy::write(&f32_path, &[2, 3, 7], &as_f32).unwrap();
    let f64_path = dir.path().join("fmri_train_subject2.npy");
    npy::write(&f64_path, &[2, 3, 7], &values).unwrap();
    for path in [&f32_path, &f64_path] {
        let fmri = MindVideoFmri::open(path).unwrap();
        assert_eq!(fmri.dims(), (2, 3, 7));
        assert_eq!(fmri.volume(1, 1).unwrap(), &as_f32[28..35]);
        assert_eq!(fmri.segment(1).unwrap(), &as_f32[21..42]);
    }
    let wrong = dir.path().join("flat.npy");
    npy::write(&wrong, &[6, 7], &as_f32).unwrap();
    let err = MindVideoFmri::open(&wrong).err().unwrap().to_string();
    assert!(
        err.contains("flat.npy") && err.contains("(segments, trs, voxels)"),
        "{err}"
    );
    let err = MindVideoFrames::open(&wrong).err().unwrap().to_string();
    assert!(err.contains("flat.npy"), "{err}");
}
