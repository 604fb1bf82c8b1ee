//! Each bad input ends with one error that names the file and what was expected, and leaves no output.

use brainrecon_core::DataError;
use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions, ZScore};
use brainrecon_datasets::nsd::Layout;
use brainrecon_formats::mat::{encode_doubles, read_matrices};
use brainrecon_formats::nifti_io;
use brainrecon_simulate::{simulate, SimulateOptions};
use hdf5_writer::{DatasetBuilder, Hdf5Builder, WriteOptions};
use std::path::{Path, PathBuf};

struct Case {
    _dir: tempfile::TempDir,
    root: PathBuf,
    out: PathBuf,
    layout: Layout,
}

fn case() -> Case {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nsd");
    let mut opts = SimulateOptions::new(&root);
    opts.n_images = 30;
    opts.image_size = 16;
    opts.volume_shape = [12, 14, 10];
    simulate(&opts).unwrap();
    let out = dir.path().join("prepared");
    let layout = Layout::new(&root, 1);
    Case {
        _dir: dir,
        root,
        out,
        layout,
    }
}

fn run(case: &Case, sessions: Option<Vec<usize>>) -> DataError {
    let err = prepare(&PrepareOptions {
        nsd_root: case.root.clone(),
        subject: 1,
        out: case.out.clone(),
        sessions,
        atlases: vec!["nsdgeneral".into(), "streams".into()],
        zscore: ZScore::Session,
        average_train: false,
        image_size: None,
        progress: false,
    })
    .unwrap_err();
    let parent = case.out.parent().unwrap();
    assert!(!case.out.exists(), "output left behind after: {err}");
    assert!(
        !parent.join("prepared.partial").exists(),
        "staging left behind after: {err}"
    );
    err
}

fn write_h5<T: hdf5_writer::H5WriteElement>(
    path: &Path,
    name: &str,
    shape: Vec<u64>,
    values: &[T],
) {
    let bytes = Hdf5Builder::new()
        .dataset(DatasetBuilder::typed_data::<T>(name, shape, values).unwrap())
        .into_plan()
        .unwrap()
        .encode(WriteOptions::default())
        .unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn assert_names(err: &DataError, file: &str, expectation: &str) {
    let text = err.to_string();
    assert!(text.contains(file), "message should name {file}: {text}");
    assert!(
        text.contains(expectation),
        "message should say '{expectation}': {text}"
    );
}

#[test]
fn missing_file() {
    let case = case();
    std::fs::remove_file(case.layout.responses()).unwrap();
    let err = run(&case, None);
    assert!(matches!(err, DataError::Missing { .. }));
    assert_names(&err, "responses.tsv", "expected");
}

#[test]
fn wrong_dataset_name() {
    let case = case();
    write_h5::<i16>(&case.layout.betas(2), "data", vec![2, 2], &[1, 2, 3, 4]);
    assert_names(
        &run(&case, None),
        "betas_session02.hdf5",
        "a dataset named 'betas'",
    );
}

#[test]
fn wrong_dataset_shape() {
    let case = case();
    write_h5::<i16>(
        &case.layout.betas(1),
        "betas",
        vec![30, 10, 14, 13],
        &vec![0i16; 30 * 10 * 14 * 13],
    );
    assert_names(
        &run(&case, None),
        "betas_session01.hdf5",
        "(trials, Z, Y, X)",
    );
}

#[test]
fn truncated_hdf5() {
    let case = case();
    let path = case.layout.betas(3);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_names(&run(&case, None), "betas_session03.hdf5", "HDF5");
}

#[test]
fn mask_shape_differs_from_betas() {
    let case = case();
    let affine = [
        [1.8, 0.0, 0.0, 0.0],
        [0.0, 1.8, 0.0, 0.0],
        [0.0, 0.0, 1.8, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let shape = [12, 14, 11];
    let mut values = vec![0i16; 12 * 14 * 11];
    values[100] = 1;
    for atlas in ["nsdgeneral", "streams"] {
        nifti_io::write_i16(&case.layout.roi_mask(atlas), shape, &affine, &values).unwrap();
    }
    let err = run(&case, None);
    assert_names(&err, "betas_session01.hdf5", "to match the mask");
    assert_names(&err, "nsdgeneral.nii.gz", "(X, Y, Z)");
}

#[test]
fn nan_betas() {
    let case = case();
    let path = case.layout.betas(2);
    let shape: Vec<u64> = {
        let file = hdf5_reader::Hdf5File::open(&path).unwrap();
        file.dataset("betas").unwrap().shape().to_vec()
    };
    let n: u64 = shape.iter().product();
    write_h5::<f32>(&path, "betas", shape, &vec![f32::NAN; n as usize]);
    assert_names(
        &run(&case, None),
        "betas_session02.hdf5",
        "finite values inside the ROIs",
    );
}

#[test]
fn subject_without_shared_images() {
    let case = case();
    let path = case.layout.expdesign();
    let m = read_matrices(&path, &["masterordering", "sharedix", "subjectim"]).unwrap();
    let nothing_seen = brainrecon_formats::mat::Matrix {
        rows: 1,
        cols: 1,
        values: vec![999.0],
    };
    std::fs::write(
        &path,
        encode_doubles(&[
            ("masterordering", &m[0]),
            ("sharedix", &nothing_seen),
            ("subjectim", &m[2]),
        ]),
    )
    .unwrap();
    assert_names(
        &run(&case, None),
        "nsd_expdesign.mat",
        "shared images that subj01 saw",
    );
}

#[test]
fn session_out_of_range() {
    let case = case();
    let err = run(&case, Some(vec![1, 7]));
    assert_names(&err, "responses.tsv", "sessions this subject has (1-3)");
    assert!(err.to_string().contains("session 7"));
}

#[test]
fn missing_betas_session_file() {
    let case = case();
    std::fs::remove_file(case.layout.betas(2)).unwrap();
    assert_names(&run(&case, None), "betas_session02.hdf5", "NSD betas");
}

#[test]
fn mask_affine_with_nan_is_refused_before_anything_is_written() {
    let case = case();
    let shape = [12, 14, 10];
    let mut values = vec![0i16; 12 * 14 * 10];
    values[100] = 1;
    let affine = [
        [f64::NAN, 0.0, 0.0, 0.0],
        [0.0, 1.8, 0.0, 0.0],
        [0.0, 0.0, f64::INFINITY, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    nifti_io::write_i16(&case.layout.roi_mask("nsdgeneral"), shape, &affine, &values).unwrap();
    // `run` also checks that neither the output nor its staging folder was left.
    let err = run(&case, None);
    assert_names(&err, "nsdgeneral.nii.gz", "finite");
    assert!(err.to_string().contains("srow"), "{err}");
}

/// A simulated subject of 30 images (16 px, 12 × 14 × 10 voxels) prepared at `dir/subject`.
fn small_prepared_subject(dir: &Path) -> PathBuf {
    let root = dir.join("subject");
    let mut opts = SimulateOptions::new(&root);
    opts.n_images = 30;
    opts.image_size = 16;
    opts.volume_shape = [12, 14, 10];
    opts.layout = brainrecon_simulate::OutputLayout::Prepared;
    simulate(&opts).unwrap();
    root
}

#[test]
fn images_npy_of_another_shape_names_the_expected_one() {
    use brainrecon_datasets::prepared::PreparedSubject;
    let dir = tempfile::tempdir().unwrap();
    let root = small_prepared_subject(dir.path());
    let path = root.join("stimuli/images.npy");
    let ids = PreparedSubject::open(&root).unwrap().images().unwrap().ids;
    for shape in [vec![ids.len(), 16, 16, 4], vec![ids.len(), 16, 48]] {
        let n: usize = shape.iter().product();
        brainrecon_formats::npy::write(&path, &shape, &vec![0u8; n]).unwrap();
        let err = PreparedSubject::open(&root)
            .unwrap()
            .images()
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("images.npy") && err.contains("[n, h, w, 3]"),
            "{err}"
        );
    }
}

#[test]
fn hdf5_rows_above_the_array_limit_are_refused_before_reading() {
    let case = case();
    let betas =
        brainrecon_datasets::nsd::H5Dataset::open(&case.layout.betas(1), "betas", "betas").unwrap();
    assert!(betas.read_rows_f32(0, 1).is_ok());
    for count in [1usize << 40, usize::MAX] {
        let err = betas.read_rows_f32(1, count).unwrap_err().to_string();
        assert!(
            err.contains("betas_session01.hdf5") && err.contains("rows"),
            "{err}"
        );
    }
    let err = betas.read_rows_f32(0, 1 << 40).unwrap_err().to_string();
    assert!(err.contains("BRAINRECON_MAX_ARRAY_BYTES"), "{err}");
}

/// What the command fuzzing found in prepared subjects, kept as regression cases: NaN betas,
/// and stimulus ids that are negative or out of order (the images are found by binary search).
#[test]
fn nan_betas_and_bad_stimulus_ids_of_a_prepared_subject_are_named() {
    use brainrecon_datasets::prepared::{PreparedSubject, Split};
    let dir = tempfile::tempdir().unwrap();
    let root = small_prepared_subject(dir.path());
    let subject = PreparedSubject::open(&root).unwrap();
    let roi = subject.roi("nsdgeneral").unwrap();
    let betas = root.join("betas/nsdgeneral/test.npy");
    let mut test = brainrecon_formats::npy::read_f32(&betas).unwrap();
    test.data[test.shape[1] + 4] = f32::INFINITY;
    brainrecon_formats::npy::write(&betas, &test.shape, &test.data).unwrap();
    let err = subject.betas(&roi, Split::Test).err().unwrap().to_string();
    for needle in ["test.npy", "finite betas", "inf"] {
        assert!(err.contains(needle), "{needle}: {err}");
    }

    let ids_path = root.join("stimuli/ids.npy");
    let ids = brainrecon_formats::npy::read_i64(&ids_path).unwrap();
    let mut negative = ids.data.clone();
    negative[1] = -1;
    let mut unordered = ids.data.clone();
    unordered.swap(0, 1);
    for (values, needle) in [(negative, "an id ≥ 0"), (unordered, "increasing order")] {
        brainrecon_formats::npy::write(&ids_path, &ids.shape, &values).unwrap();
        let err = PreparedSubject::open(&root)
            .unwrap()
            .images()
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("ids.npy") && err.contains(needle), "{err}");
    }
}
