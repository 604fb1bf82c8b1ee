//! The streaming chunked HDF5 writer (the simulator's betas and stimuli files) read back by the
//! project's NSD reader, against the same values written whole by `hdf5-writer`.

use brainrecon_datasets::nsd::{H5Dataset, Layout};
use brainrecon_formats::nifti_io;
use brainrecon_formats::npy;
use brainrecon_simulate::h5stream::ChunkedWriter;
use brainrecon_simulate::{simulate, SimulateOptions};
use hdf5_writer::{DatasetBuilder, Hdf5Builder, WriteOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

fn write_whole<T: hdf5_writer::H5WriteElement>(path: &Path, shape: &[usize], values: &[T]) {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let bytes = Hdf5Builder::new()
        .dataset(DatasetBuilder::typed_data::<T>("data", shape, values).unwrap())
        .into_plan()
        .unwrap()
        .encode(WriteOptions::default())
        .unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn read_all(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let dataset = H5Dataset::open(path, "data", "test data").unwrap();
    let shape = dataset.shape();
    (shape.clone(), dataset.read_rows_f32(0, shape[0]).unwrap())
}

/// Betas-like rows: zeros outside a band (compressible), noise inside, extremes included.
fn betas_like(rows: usize, row_len: usize, rng: &mut ChaCha8Rng) -> Vec<i16> {
    let mut values = vec![0i16; rows * row_len];
    for (i, v) in values.iter_mut().enumerate() {
        let col = i % row_len;
        if col > row_len / 4 && col < 3 * row_len / 4 {
            *v = rng.gen_range(-2000..2000);
        }
    }
    values[row_len / 2] = i16::MIN;
    values[row_len / 2 + 1] = i16::MAX;
    values
}

#[test]
fn chunked_i16_reads_back_as_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // 150 one-row chunks: a two-level chunk B-tree (64 entries per node).
    for (rows, rows_per_chunk) in [(150, 1), (7, 3), (1, 1)] {
        let shape = [rows, 5, 6, 7];
        let values = betas_like(rows, 5 * 6 * 7, &mut rng);
        let streamed = dir.path().join(format!("streamed-{rows}.hdf5"));
        let mut writer =
            ChunkedWriter::<i16>::create(&streamed, "data", &shape, rows_per_chunk, Some(4))
                .unwrap();
        // Uneven pieces: the writer regroups rows into chunks.
        let mut first = 0;
        while first < rows {
            let take = (1 + first % 4).min(rows - first);
            writer
                .write_rows(&values[first * 210..(first + take) * 210])
                .unwrap();
            first += take;
        }
        writer.finish().unwrap();
        let whole = dir.path().join(format!("whole-{rows}.hdf5"));
        write_whole(&whole, &shape, &values);
        let (shape_s, read_s) = read_all(&streamed);
        let (shape_w, read_w) = read_all(&whole);
        assert_eq!(shape_s, shape.to_vec());
        assert_eq!(shape_s, shape_w);
        assert_eq!(read_s, read_w, "{rows} rows, {rows_per_chunk} per chunk");
        let expected: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        assert_eq!(read_s, expected);
        // A slice from the middle crosses chunk boundaries.
        let dataset = H5Dataset::open(&streamed, "data", "test data").unwrap();
        if rows > 3 {
            assert_eq!(
                dataset.read_rows_f32(2, 2).unwrap(),
                expected[2 * 210..4 * 210]
            );
        }
    }
}

#[test]
fn incompressible_and_uncompressed_chunks_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let shape = [9, 4, 4, 3];
    let values: Vec<u8> = (0..9 * 48).map(|_| rng.gen()).collect();
    // Random bytes do not deflate: those chunks are stored raw with the filter skipped.
    for deflate in [Some(9), None] {
        let path = dir.path().join(format!("u8-{deflate:?}.hdf5"));
        let mut writer = ChunkedWriter::<u8>::create(&path, "data", &shape, 2, deflate).unwrap();
        writer.write_rows(&values).unwrap();
        writer.finish().unwrap();
        let dataset = H5Dataset::open(&path, "data", "test data").unwrap();
        assert_eq!(dataset.read_rows_u8(0, 9).unwrap(), values);
        assert_eq!(dataset.read_rows_u8(3, 4).unwrap(), values[3 * 48..7 * 48]);
    }
}

#[test]
fn writer_holds_at_most_one_chunk_and_checks_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.hdf5");
    let mut writer = ChunkedWriter::<i16>::create(&path, "data", &[10, 3, 4], 4, Some(1)).unwrap();
    let row = [1i16; 12];
    for r in 0..10 {
        writer.write_rows(&row).unwrap();
        assert_eq!(writer.buffered_bytes(), ((r + 1) % 4) * 24);
    }
    let too_many = writer.write_rows(&row).unwrap_err().to_string();
    assert!(
        too_many.contains("rows.hdf5") && too_many.contains("10 rows"),
        "{too_many}"
    );
    let partial_row = writer.write_rows(&row[..5]).unwrap_err().to_string();
    assert!(partial_row.contains("whole rows of 12"), "{partial_row}");
    writer.finish().unwrap();

    // Unfinished: no file appears, not even a temporary.
    let short = dir.path().join("short.hdf5");
    let mut writer = ChunkedWriter::<i16>::create(&short, "data", &[10, 3, 4], 4, None).unwrap();
    writer.write_rows(&row).unwrap();
    let err = writer.finish().unwrap_err().to_string();
    assert!(
        err.contains("10 rows") && err.contains("1 written"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only rows.hdf5 should remain");
}

#[test]
fn simulated_betas_read_back_as_generated() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nsd");
    let mut opts = SimulateOptions::new(&root);
    opts.n_images = 30;
    opts.image_size = 20;
    opts.sessions = 2;
    opts.volume_shape = [13, 15, 11];
    let truth = simulate(&opts).unwrap().truth;
    let layout = Layout::new(&root, 1);
    // The truth keeps the generated int16 / 300 at the nsdgeneral voxels, in trial order.
    let psc = npy::read_f32(&root.join("truth/betas_psc.npy")).unwrap();
    let mask = nifti_io::read_volume(&layout.roi_mask("nsdgeneral")).unwrap();
    // nsdgeneral voxels in betas order (z, y, x with x fastest), as the truth lists them.
    let mut coords = Vec::new();
    for z in 0..11 {
        for y in 0..15 {
            for x in 0..13 {
                if mask.get(x, y, z) > 0.0 {
                    coords.push([x, y, z]);
                }
            }
        }
    }
    let n_visual = coords.len();
    assert!(n_visual > 50, "{n_visual} nsdgeneral voxels");
    assert_eq!(psc.shape, vec![90, n_visual]);
    let mut trial = 0;
    for (s, &session) in truth.sessions.iter().enumerate() {
        let betas = H5Dataset::open(&layout.betas(session), "betas", "betas").unwrap();
        let n = truth.trials_per_session[s];
        assert_eq!(betas.shape(), vec![n, 11, 15, 13]);
        let values = betas.read_rows_f32(0, n).unwrap();
        for t in 0..n {
            let volume = &values[t * 13 * 15 * 11..(t + 1) * 13 * 15 * 11];
            for (k, &[x, y, z]) in coords.iter().enumerate() {
                let stored = volume[(z * 15 + y) * 13 + x];
                assert_eq!(stored / 300.0, psc.data[trial * n_visual + k]);
            }
            // Outside the brain (mask −1) betas are 0, as in NSD's files.
            for z in 0..11 {
                for y in 0..15 {
                    for x in 0..13 {
                        if mask.get(x, y, z) < 0.0 {
                            assert_eq!(volume[(z * 15 + y) * 13 + x], 0.0);
                        }
                    }
                }
            }
            trial += 1;
        }
    }
    assert_eq!(trial, 90);
}
