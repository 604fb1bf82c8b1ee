//! The streaming HDF5 writer's memory stays at one chunk while it writes a file many times
//! larger. Alone in its test binary so that no other test moves the process's peak RSS.

use brainrecon_datasets::nsd::H5Dataset;
use brainrecon_simulate::h5stream::ChunkedWriter;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Peak resident set size of this process so far, in KiB (`VmHWM` in /proc/self/status).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_file_larger_than_memory_growth_is_streamed() {
    let Some(before) = peak_rss_kib() else {
        eprintln!("no /proc/self/status: skipping the memory check");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.hdf5");
    // 96 chunks of 40 × 41 × 42 int16 (138 KB each): 13 MB raw, mostly noise so that it
    // compresses to about the same; one chunk's data is generated at a time.
    let (rows, row_len) = (96, 40 * 41 * 42);
    let mut writer =
        ChunkedWriter::<i16>::create(&path, "betas", &[rows, 40, 41, 42], 1, Some(1)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut row = vec![0i16; row_len];
    let mut sum = 0i64;
    for _ in 0..rows {
        row.iter_mut().for_each(|v| *v = rng.gen());
        sum += row.iter().map(|&v| v as i64).sum::<i64>();
        writer.write_rows(&row).unwrap();
        assert!(writer.buffered_bytes() < row_len * 2);
    }
    writer.finish().unwrap();
    let after = peak_rss_kib().unwrap();
    let file_kib = std::fs::metadata(&path).unwrap().len() / 1024;
    assert!(file_kib > 12_000, "file is {file_kib} KiB");
    // Buffering the file (or its raw data) would add ≥ 13 MB; one chunk plus the
    // compressor's and the output buffer's state is ~2 MB.
    let growth = after.saturating_sub(before);
    assert!(
        growth < 6_000,
        "peak RSS grew by {growth} KiB while writing a {file_kib} KiB file"
    );
    // And the file holds what was written.
    let dataset = H5Dataset::open(&path, "betas", "test").unwrap();
    let mut read_sum = 0i64;
    for first in (0..rows).step_by(16) {
        read_sum += dataset
            .read_rows_f32(first, 16)
            .unwrap()
            .iter()
            .map(|&v| v as i64)
            .sum::<i64>();
    }
    assert_eq!(read_sum, sum);
}
