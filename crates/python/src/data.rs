//! The prepared subject (brainrecon-datasets): metadata, ROI resolution and the layout of each
//! `.npy` file, so that Python maps the arrays with `numpy.memmap` instead of reading them.

use std::io::Read;
use std::path::{Path, PathBuf};

use brainrecon_core::DataError;
use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions, ZScore};
use brainrecon_datasets::prepared::{PreparedSubject, Split};
use brainrecon_formats::npy;
use brainrecon_simulate::{simulate, OutputLayout, SimulateOptions};
use numpy::PyArray1;
use pyo3::prelude::*;

use crate::errors;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Subject>()?;
    m.add_function(wrap_pyfunction!(npy_layout, m)?)?;
    m.add_function(wrap_pyfunction!(nsd_prepare, m)?)?;
    m.add_function(wrap_pyfunction!(simulate_subject, m)?)?;
    Ok(())
}

/// An ROI: its name, its atlas and its columns in the atlas' betas (`None`: all of them).
type RoiColumns<'py> = (String, String, Option<Bound<'py, PyArray1<i64>>>);

/// A `.npy` file's dtype, shape and data offset, after checking that the file holds them.
type Layout = (String, Vec<usize>, usize);

/// Reads and checks the header of `path`; with `expected`, the dtype must be that one.
fn layout(path: &Path, expected: Option<(&str, &str)>) -> Result<Layout, DataError> {
    brainrecon_core::error::require_file(path, "a NumPy .npy file")?;
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len() as usize;
    // headers are at most a few KB (format 2.0 allows more: read until it is complete)
    let mut bytes = Vec::new();
    let mut want = 4096;
    let header = loop {
        bytes.resize(want.min(file_len), 0);
        file.read_exact(&mut bytes[..])
            .map_err(|e| DataError::io(path, e))?;
        match npy::parse_header(path, &bytes) {
            Ok(h) => break h,
            Err(_) if want < file_len => {
                want *= 16;
                file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
            }
            Err(e) => return Err(e),
        }
    };
    if header.fortran_order {
        return Err(DataError::format(
            path,
            "NumPy .npy",
            "a Fortran-ordered array cannot be memory-mapped in C order; save it in C order",
        ));
    }
    if let Some((descr, name)) = expected {
        if header.descr != descr {
            return Err(DataError::invalid(
                path,
                "dtype",
                format!("{name} ('{descr}')"),
                &header.descr,
            ));
        }
    }
    let item = match header.descr.get(1..) {
        Some("f4" | "i4" | "u4") => 4,
        Some("f8" | "i8" | "u8") => 8,
        Some("i2" | "u2") => 2,
        Some("u1" | "i1" | "b1") => 1,
        _ => {
            return Err(DataError::invalid(
                path,
                "dtype",
                "a little-endian numeric dtype",
                &header.descr,
            ))
        }
    };
    let needed = header.data_offset + header.len() * item;
    if file_len < needed {
        return Err(DataError::format(
            path,
            "NumPy .npy",
            format!("truncated: {file_len} bytes, the header promises {needed}"),
        ));
    }
    Ok((header.descr, header.shape, header.data_offset))
}

/// `(dtype, shape, offset)` of a `.npy` file, for `numpy.memmap`.
#[pyfunction]
#[pyo3(signature = (path, dtype=None, dtype_name=None))]
fn npy_layout(path: PathBuf, dtype: Option<&str>, dtype_name: Option<&str>) -> PyResult<Layout> {
    let expected = dtype.map(|d| (d, dtype_name.unwrap_or(d)));
    layout(&path, expected).map_err(errors::data)
}

fn parse_split(text: &str) -> PyResult<Split> {
    match text {
        "train" => Ok(Split::Train),
        "train_averaged" => Ok(Split::TrainAveraged),
        "test" => Ok(Split::Test),
        other => Err(errors::value(format!(
            "split: expected 'train', 'train_averaged' or 'test', found '{other}'"
        ))),
    }
}

/// A prepared subject directory (`brainrecon nsd prepare`'s output).
#[pyclass(module = "brainrecon._native", frozen)]
struct Subject {
    inner: PreparedSubject,
}

#[pymethods]
impl Subject {
    #[new]
    fn open(path: PathBuf) -> PyResult<Self> {
        let inner = PreparedSubject::open(&path).map_err(errors::data)?;
        Ok(Subject { inner })
    }

    /// `subject.json` as a JSON string.
    fn meta_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner.meta).map_err(|e| errors::value(e.to_string()))
    }

    /// Every ROI name with its voxel count.
    fn roi_counts(&self) -> std::collections::BTreeMap<String, usize> {
        self.inner.roi_counts()
    }

    /// `(name, atlas, columns)`: the atlas whose betas hold the ROI and the ROI's columns in
    /// them (`None`: all of them).
    fn roi<'py>(&self, py: Python<'py>, name: &str) -> PyResult<RoiColumns<'py>> {
        let roi = self.inner.roi(name).map_err(errors::data)?;
        let columns = roi.columns.map(|c| {
            let c: Vec<i64> = c.into_iter().map(|v| v as i64).collect();
            PyArray1::from_vec(py, c)
        });
        Ok((roi.name, roi.atlas, columns))
    }

    /// Path and layout of the betas of `atlas` in `split`, checked to be float32 (rows, voxels).
    fn betas_layout(&self, atlas: &str, split: &str) -> PyResult<(PathBuf, Layout)> {
        let split = parse_split(split)?;
        let path = self.inner.betas_path(atlas, split);
        if split == Split::TrainAveraged && !path.exists() {
            return Err(errors::data(DataError::Missing {
                path,
                what: "train betas averaged over repeats: prepare with --average-train".into(),
            }));
        }
        let found = layout(&path, Some(("<f4", "float32"))).map_err(errors::data)?;
        if found.1.len() != 2 {
            return Err(errors::data(DataError::invalid(
                &path,
                "shape",
                "(rows, voxels)",
                format!("{:?}", found.1),
            )));
        }
        Ok((path, found))
    }

    /// Stimulus ids (0-based 73k) of the rows of `split`.
    fn row_ids<'py>(&self, py: Python<'py>, split: &str) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let ids = self
            .inner
            .row_ids(parse_split(split)?)
            .map_err(errors::data)?;
        Ok(PyArray1::from_vec(
            py,
            ids.into_iter().map(|v| v as i64).collect(),
        ))
    }

    /// Captions per stimulus id.
    fn captions(&self) -> PyResult<std::collections::BTreeMap<usize, Vec<String>>> {
        self.inner.captions().map_err(errors::data)
    }

    #[getter]
    fn root(&self) -> PathBuf {
        self.inner.root.clone()
    }
}

/// `brainrecon nsd prepare`: NSD as downloaded → a prepared subject. Returns the report (JSON).
#[pyfunction]
#[pyo3(signature = (nsd_root, subject, out, sessions=None, rois=None, zscore="session",
    average_train=false, image_size=None, progress=true))]
#[allow(clippy::too_many_arguments)]
fn nsd_prepare(
    py: Python<'_>,
    nsd_root: PathBuf,
    subject: &str,
    out: PathBuf,
    sessions: Option<&str>,
    rois: Option<Vec<String>>,
    zscore: &str,
    average_train: bool,
    image_size: Option<usize>,
    progress: bool,
) -> PyResult<String> {
    let zscore = match zscore {
        "session" => ZScore::Session,
        "none" => ZScore::None,
        other => {
            return Err(errors::value(format!(
                "zscore: expected 'session' or 'none', found '{other}'"
            )))
        }
    };
    if image_size == Some(0) {
        return Err(errors::value("image_size: expected a positive size"));
    }
    let subject = brainrecon_datasets::nsd::parse_subject(subject).map_err(errors::data)?;
    let sessions = sessions
        .map(brainrecon_datasets::nsd::parse_sessions)
        .transpose()
        .map_err(errors::data)?;
    let atlases = rois.unwrap_or_else(|| {
        ["nsdgeneral", "streams", "prf-visualrois"]
            .map(String::from)
            .to_vec()
    });
    let options = PrepareOptions {
        nsd_root,
        subject,
        out,
        sessions,
        atlases,
        zscore,
        average_train,
        image_size,
        progress,
    };
    let report = py.detach(|| prepare(&options)).map_err(errors::data)?;
    serde_json::to_string(&report).map_err(|e| errors::value(e.to_string()))
}

/// `brainrecon simulate`: a synthetic subject, as an NSD tree or (`prepared`) a prepared subject.
#[pyfunction]
#[pyo3(signature = (out, n_images=300, seed=0, layout="prepared", image_size=64, sessions=3))]
fn simulate_subject(
    py: Python<'_>,
    out: PathBuf,
    n_images: usize,
    seed: u64,
    layout: &str,
    image_size: usize,
    sessions: usize,
) -> PyResult<PathBuf> {
    let mut options = SimulateOptions::new(&out);
    options.n_images = n_images;
    options.seed = seed;
    options.image_size = image_size;
    options.sessions = sessions;
    options.layout = match layout {
        "prepared" => OutputLayout::Prepared,
        "nsd" => OutputLayout::Nsd,
        other => {
            return Err(errors::value(format!(
                "layout: expected 'prepared' or 'nsd', found '{other}'"
            )))
        }
    };
    let simulated = py.detach(|| simulate(&options)).map_err(errors::data)?;
    Ok(simulated.out)
}
