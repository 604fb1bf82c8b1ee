//! Stimulus video reading against ffmpeg's decode (fixtures from tools/fixtures/video_fixtures.py),
//! frame folders, frame choice at 3 Hz, clip outputs and bad input.

use brainrecon_formats::image::{read_png, RgbImage};
use brainrecon_formats::video::{
    self, resample_indices, tr_clip_times, write_gif, write_png_frames, Video, YuvFrame,
};
use std::io::Read;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/video")
        .join(name)
}

fn gunzip(name: &str) -> Vec<u8> {
    let file = std::fs::File::open(fixture(name)).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn meta(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture(&format!("{name}.json"))).unwrap()).unwrap()
}

fn mp4(name: &str) -> video::Mp4Video {
    match video::open(&fixture(&format!("{name}.mp4"))).unwrap() {
        Video::Mp4(v) => v,
        Video::Folder(_) => panic!("an MP4 opened as a folder"),
    }
}

/// ffmpeg's yuv420p frames, concatenated Y, U, V planes per frame.
fn reference_yuv(name: &str, w: usize, h: usize) -> Vec<YuvFrame> {
    let bytes = gunzip(&format!("{name}.yuv.gz"));
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let per = w * h + 2 * cw * ch;
    assert_eq!(bytes.len() % per, 0);
    bytes
        .chunks_exact(per)
        .map(|f| YuvFrame {
            width: w,
            height: h,
            y: f[..w * h].to_vec(),
            u: f[w * h..w * h + cw * ch].to_vec(),
            v: f[w * h + cw * ch..].to_vec(),
        })
        .collect()
}

/// Decodes every frame and compares with ffmpeg: YUV exactly (H.264 decoding is bit-exact by
/// the standard), RGB within BT.601 limited-range conversion rounding.
fn check_against_ffmpeg(name: &str, profile: u8, exact: bool) {
    let m = meta(name);
    let video = mp4(name);
    let info = *video.info();
    let n = m["frames"].as_u64().unwrap() as usize;
    assert_eq!((info.frames, info.width, info.height), (n, 70, 46));
    if !exact {
        return check_close_to_ffmpeg(name, &video, n);
    }
    assert!((info.fps - 30.0).abs() < 1e-9, "fps {}", info.fps);
    assert_eq!(video.profile(), profile);

    let all: Vec<usize> = (0..n).collect();
    let ours = video.yuv_frames(&all).unwrap();
    let theirs = reference_yuv(name, 70, 46);
    assert_eq!(theirs.len(), n);
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!(a == b, "{name}: frame {i} differs from ffmpeg's decode");
    }

    let rgb = gunzip(&format!("{name}.rgb24.gz"));
    let rgb_frames: Vec<usize> = m["rgb_frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let per = 70 * 46 * 3;
    let mut worst = 0u8;
    let mut total = 0u64;
    for (k, &i) in rgb_frames.iter().enumerate() {
        let ours = ours[i].to_rgb();
        for (a, b) in ours.pixels.iter().zip(&rgb[k * per..(k + 1) * per]) {
            let d = a.abs_diff(*b);
            worst = worst.max(d);
            total += d as u64;
        }
    }
    // Ours rounds the BT.601 formula; ffmpeg's table-driven converter truncates (its values
    // are about 1 lower on average): a difference of up to 3, mostly 0 or 1.
    assert!(
        worst <= 3,
        "{name}: RGB differs from ffmpeg's by up to {worst}"
    );
    let mean = total as f64 / (rgb_frames.len() * per) as f64;
    assert!(mean < 1.3, "{name}: mean RGB difference {mean}");
}

#[test]
fn high_profile_with_b_frames_matches_ffmpeg() {
    check_against_ffmpeg("high", 100, true);
}

/// OpenH264's temporal direct prediction in B-frames is not bit-exact: the frames it touches
/// drift by a few levels until the next IDR picture.
fn check_close_to_ffmpeg(name: &str, video: &video::Mp4Video, n: usize) {
    let ours = video.yuv_frames(&(0..n).collect::<Vec<_>>()).unwrap();
    let theirs = reference_yuv(name, 70, 46);
    let (mut worst, mut sum, mut count, mut exact_frames) = (0u8, 0u64, 0u64, 0);
    for (a, b) in ours.iter().zip(&theirs) {
        let planes = [(&a.y, &b.y), (&a.u, &b.u), (&a.v, &b.v)];
        let mut same = true;
        for (p, q) in planes {
            for (x, y) in p.iter().zip(q.iter()) {
                let d = x.abs_diff(*y);
                worst = worst.max(d);
                sum += d as u64;
                count += 1;
                same &= d == 0;
            }
        }
        exact_frames += same as usize;
    }
    println!(
        "{name}: {exact_frames}/{n} frames exact, max |diff| {worst}, mean {:.4}",
        sum as f64 / count as f64
    );
    assert!(
        exact_frames >= 1 && worst <= 12,
        "{name}: max |diff| {worst}"
    );
    assert!(
        (sum as f64 / count as f64) < 0.1,
        "{name}: mean |diff| too large"
    );
}

#[test]
fn high_profile_with_temporal_direct_is_close_to_ffmpeg() {
    check_against_ffmpeg("high_temporal", 100, false);
}

#[test]
fn baseline_matches_ffmpeg() {
    check_against_ffmpeg("baseline", 66, true);
}

#[test]
fn random_access_equals_sequential_decoding() {
    let video = mp4("high");
    let all: Vec<usize> = (0..60).collect();
    let sequential = video.yuv_frames(&all).unwrap();
    // Backwards, repeated, across groups of pictures and the scene cut.
    let asked = [59, 37, 5, 5, 24, 23, 0, 48];
    let picked = video.yuv_frames(&asked).unwrap();
    for (frame, &i) in picked.iter().zip(&asked) {
        assert!(
            *frame == sequential[i],
            "frame {i} differs when decoded alone"
        );
    }
    let via_open = video::open(&fixture("high.mp4")).unwrap();
    assert_eq!(via_open.frame(37).unwrap(), sequential[37].to_rgb());
    let mut visited = Vec::new();
    via_open
        .visit_frames(&asked, |i, frame| {
            assert_eq!(frame, sequential[i].to_rgb());
            visited.push(i);
            Ok(())
        })
        .unwrap();
    assert_eq!(visited, vec![0, 5, 23, 24, 37, 48, 59]);
}

#[test]
fn open_groups_of_pictures_decode_from_the_idr_picture() {
    check_against_ffmpeg("open_gop", 100, true);
    let video = mp4("open_gop");
    let all = video.yuv_frames(&(0..40).collect::<Vec<_>>()).unwrap();
    // Frames of the later groups, each asked alone: decoding must start at the IDR picture.
    for i in [39, 13, 12, 11, 25] {
        assert!(
            video.yuv_frames(&[i]).unwrap()[0] == all[i],
            "frame {i} asked alone"
        );
    }
}

#[test]
fn three_hertz_picks_every_tenth_frame() {
    let video = video::open(&fixture("high.mp4")).unwrap();
    let info = *video.info();
    assert_eq!(resample_indices(&info, 3.0), vec![0, 10, 20, 30, 40, 50]);
    assert_eq!(resample_indices(&info, 7.0).len(), 14);
    let times = tr_clip_times(0, 2.0, 6);
    let indices = video::indices_at_times(video.path(), &info, &times).unwrap();
    assert_eq!(indices, vec![0, 10, 20, 30, 40, 50]);
    let clip = video.frames_at_times(&times).unwrap();
    let resampled = video.resampled(3.0).unwrap();
    assert_eq!(clip, resampled);
    assert_eq!(clip[3], video.frame(30).unwrap());
    // The second TR of a 2-s video does not exist: the error names the file and the lengths.
    let err = video
        .frames_at_times(&tr_clip_times(1, 2.0, 6))
        .unwrap_err()
        .to_string();
    assert!(err.contains("high.mp4"), "{err}");
    assert!(err.contains("a frame at 2.000 s"), "{err}");
    assert!(err.contains("2.000 s (60 frames at 30 fps)"), "{err}");
    let err = video.frames(&[60]).unwrap_err().to_string();
    assert!(
        err.contains("frame index") && err.contains("below 60"),
        "{err}"
    );
}

#[test]
fn frame_folder_reads_sorted_frames_with_its_sidecar() {
    let dir = fixture("frames");
    let video = video::open(&dir).unwrap();
    let info = *video.info();
    assert_eq!(
        (info.frames, info.fps, info.width, info.height),
        (4, 8.0, 70, 46)
    );
    let frames = video.frames(&[3, 0]).unwrap();
    assert_eq!(frames[0], read_png(&dir.join("frame_003.png")).unwrap());
    assert_eq!(frames[1], read_png(&dir.join("frame_000.png")).unwrap());
    // 0.5 s at 8 fps: at 2 Hz only t = 0 lies before the end; at 4 Hz frames 0 and 2.
    assert_eq!(resample_indices(&info, 2.0), vec![0]);
    assert_eq!(resample_indices(&info, 4.0), vec![0, 2]);
    let err = video::open_with_fps(&dir, Some(25.0))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("frames.json") && err.contains("fps"), "{err}");
}

#[test]
fn jpeg_folder_needs_a_rate_and_decodes_like_libjpeg() {
    let dir = fixture("jpeg");
    let err = video::open(&dir).err().unwrap().to_string();
    assert!(
        err.contains("jpeg") && err.contains("fps") && err.contains("frames.json"),
        "{err}"
    );
    let video = video::open_with_fps(&dir, Some(30.0)).unwrap();
    assert_eq!(video.info().frames, 2);
    let reference = gunzip("jpeg.rgb24.gz");
    let ours: Vec<u8> = video
        .frames(&[0, 1])
        .unwrap()
        .into_iter()
        .flat_map(|f| f.pixels)
        .collect();
    assert_eq!(ours.len(), reference.len());
    // Two IDCTs (jpeg-decoder's and libjpeg's islow) agree to a level or two.
    let worst = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(worst <= 2, "JPEG differs from libjpeg by {worst}");
}

#[test]
fn empty_folder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "no frames here").unwrap();
    let err = video::open_with_fps(dir.path(), Some(30.0))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    assert!(err.contains("PNG or JPEG frame files"), "{err}");
}

#[test]
fn bad_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Not H.264: MPEG-4 Part 2 in an MP4.
    let err = video::open(&fixture("other.mp4"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("other.mp4") && err.contains("H.264") && err.contains("'mp4v'"),
        "{err}"
    );
    // Not an MP4 at all.
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "these are not video bytes at all, just text").unwrap();
    let err = video::open(&text).err().unwrap().to_string();
    assert!(err.contains("notes.mp4") && err.contains("MP4"), "{err}");
    // Truncated with the index at the end: the index is gone.
    let high = std::fs::read(fixture("high.mp4")).unwrap();
    let cut = dir.path().join("cut_high.mp4");
    std::fs::write(&cut, &high[..high.len() / 2]).unwrap();
    let err = video::open(&cut).err().unwrap().to_string();
    assert!(
        err.contains("cut_high.mp4") && err.contains("truncated"),
        "{err}"
    );
    // Truncated with the index first: the samples it lists are past the end.
    let baseline = std::fs::read(fixture("baseline.mp4")).unwrap();
    let cut = dir.path().join("cut_baseline.mp4");
    std::fs::write(&cut, &baseline[..baseline.len() * 2 / 3]).unwrap();
    let err = video::open(&cut).err().unwrap().to_string();
    assert!(
        err.contains("cut_baseline.mp4") && err.contains("truncated"),
        "{err}"
    );
    // A missing file.
    let err = video::open(&dir.path().join("absent.mp4"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("absent.mp4") && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn corrupt_sample_table_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("high.mp4")).unwrap();
    // Overwrite the stsz entry count with a huge number.
    let at = bytes.windows(4).position(|w| w == b"stsz").unwrap();
    let mut bad = bytes.clone();
    bad[at + 12..at + 16].copy_from_slice(&u32::MAX.to_be_bytes());
    let path = dir.path().join("bad_stsz.mp4");
    std::fs::write(&path, &bad).unwrap();
    let err = video::open(&path).err().unwrap().to_string();
    assert!(
        err.contains("bad_stsz.mp4") && err.contains("stsz"),
        "{err}"
    );
    // Garbage in the coded pictures: decoding fails with the file named or yields pictures,
    // never a panic.
    let mdat = bytes.windows(4).position(|w| w == b"mdat").unwrap();
    let mut garbled = bytes.clone();
    for (k, b) in garbled[mdat + 40..mdat + 1500].iter_mut().enumerate() {
        *b ^= (k as u8).wrapping_mul(37) | 1;
    }
    let path = dir.path().join("garbled.mp4");
    std::fs::write(&path, &garbled).unwrap();
    match video::open(&path) {
        Ok(v) => {
            if let Err(e) = v.frames(&(0..60).collect::<Vec<_>>()) {
                assert!(e.to_string().contains("garbled.mp4"), "{e}");
            }
        }
        Err(e) => assert!(e.to_string().contains("garbled.mp4"), "{e}"),
    }
}

fn gradient(w: usize, h: usize, t: usize) -> RgbImage {
    let pixels = (0..h * w)
        .flat_map(|i| {
            let (r, c) = (i / w, i % w);
            [
                (r * 20) as u8,
                (c * 15 + t * 30) as u8,
                ((r + c + t) * 9) as u8,
            ]
        })
        .collect();
    RgbImage::new(h, w, pixels)
}

#[test]
fn clips_round_trip_through_png_frames_and_gif() {
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<RgbImage> = (0..6).map(|t| gradient(9, 7, t)).collect();
    let folder = dir.path().join("clip_000");
    write_png_frames(&folder, &frames, 3.0).unwrap();
    let back = video::open(&folder).unwrap();
    assert_eq!(back.info().fps, 3.0);
    assert_eq!(back.frames(&(0..6).collect::<Vec<_>>()).unwrap(), frames);

    let gif_path = dir.path().join("clip_000.gif");
    write_gif(&gif_path, &frames, 3.0).unwrap();
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options
        .read_info(std::fs::File::open(&gif_path).unwrap())
        .unwrap();
    let mut count = 0;
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        assert_eq!((frame.width, frame.height, frame.delay), (9, 7, 33));
        count += 1;
    }
    assert_eq!(count, 6);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "temporary files left: {names:?}"
    );
    let err = write_gif(&dir.path().join("none.gif"), &[], 3.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("none.gif") && err.contains("at least one frame"),
        "{err}"
    );
}

#[test]
fn mp4_clips_round_trip_through_the_encoder_and_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<RgbImage> = (0..12).map(|t| moving_square(64, 48, t)).collect();
    let stem = dir.path().join("clip_007");
    video::write_clip(
        &stem,
        &frames,
        3.0,
        &[video::ClipFormat::Mp4, video::ClipFormat::Gif],
    )
    .unwrap();
    let back = video::open(&stem.with_extension("mp4")).unwrap();
    let info = *back.info();
    assert_eq!((info.frames, info.width, info.height), (12, 64, 48));
    assert!((info.fps - 3.0).abs() < 1e-9, "fps {}", info.fps);
    let decoded = back.frames(&(0..12).collect::<Vec<_>>()).unwrap();
    for (i, (a, b)) in decoded.iter().zip(&frames).enumerate() {
        let mse = a
            .pixels
            .iter()
            .zip(&b.pixels)
            .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
            .sum::<f64>()
            / a.pixels.len() as f64;
        let psnr = 10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10();
        assert!(psnr > 35.0, "frame {i}: PSNR {psnr:.1} dB");
    }
    assert!(stem.with_extension("gif").exists());
    let err = video::write_mp4(
        &dir.path().join("odd.mp4"),
        &[moving_square(63, 48, 0)],
        3.0,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("odd.mp4") && err.contains("even width and height"),
        "{err}"
    );
}

/// A red square moving over a ground graded from top to bottom.
fn moving_square(w: usize, h: usize, t: usize) -> RgbImage {
    let pixels = (0..h * w)
        .flat_map(|i| {
            let (r, c) = (i / w, i % w);
            // Steps of 2 pixels keep the square's colour edges on 4:2:0 chroma-block borders.
            let inside = (c + 40 - 2 * t) % w < 14 && (10..30).contains(&r);
            if inside {
                [220, 60, 40]
            } else {
                [40, 100 + (r * 2) as u8, 150]
            }
        })
        .collect();
    RgbImage::new(h, w, pixels)
}
