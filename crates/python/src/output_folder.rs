//! Core's output-folder protocol ([`brainrecon_core::fs::OutputDir`]) for the Python layer,
//! so that a folder Python writes (`brainrecon.glm.GLM_single`'s `outputdir`) is staged,
//! locked and moved into place exactly as the CLI's are.

use std::path::PathBuf;

use brainrecon_core::fs::{sync_dir, OutputDir};
use pyo3::prelude::*;
use pyo3::types::PyAny;

use crate::errors;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<OutputFolder>()?;
    Ok(())
}

/// An output folder being written: files go into `path` (`<out>.partial`, beside `out`)
/// until `commit()` moves it to `out`, replacing an earlier output whole; `abort()` removes
/// it and leaves `out` as it was. While open, `.<out name>.lock` beside `out` is held, so a
/// second writer of the same folder is refused (ValueError naming the folder and the lock).
///
/// As a context manager it commits when the block ends normally and aborts when it raises.
/// Files written into `path` should be flushed to disk (`os.fsync`) before the commit; the
/// commit flushes the folder's entries.
#[pyclass(module = "brainrecon._native")]
pub struct OutputFolder {
    /// None once committed or aborted.
    dir: Option<OutputDir>,
}

impl OutputFolder {
    fn open(&self) -> PyResult<&OutputDir> {
        self.dir.as_ref().ok_or_else(|| {
            errors::value("this output folder is already committed or aborted".to_string())
        })
    }
}

#[pymethods]
impl OutputFolder {
    /// Starts `out` afresh: takes its lock and makes a new, empty `<out>.partial` (an earlier
    /// one is removed). Raises ValueError when another process is writing `out`, OSError when
    /// the folder cannot be made.
    #[new]
    fn new(out: PathBuf) -> PyResult<Self> {
        let dir = OutputDir::create(&out).map_err(errors::data)?;
        Ok(OutputFolder { dir: Some(dir) })
    }

    /// The staging folder, `<out>.partial`, where the files are written.
    #[getter]
    fn path(&self) -> PyResult<PathBuf> {
        Ok(self.open()?.path().to_path_buf())
    }

    /// The final folder.
    #[getter]
    fn out(&self) -> PyResult<PathBuf> {
        Ok(self.open()?.out().to_path_buf())
    }

    /// Moves the staging folder to `out` (an earlier `out` is replaced whole) and releases the
    /// lock; returns `out`.
    fn commit(&mut self) -> PyResult<PathBuf> {
        self.open()?;
        let dir = self.dir.take().expect("checked open above");
        sync_dir(dir.path());
        dir.commit().map_err(errors::data)
    }

    /// Removes the staging folder and releases the lock; `out` stays as it was. Does nothing
    /// once committed or aborted.
    fn abort(&mut self) {
        if let Some(dir) = self.dir.take() {
            dir.abort();
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Commits when the block ended normally, aborts when it raised (the exception goes on).
    #[pyo3(signature = (exc_type, _exc_value, _traceback))]
    fn __exit__(
        &mut self,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if exc_type.is_some() {
            self.abort();
        } else if self.dir.is_some() {
            self.commit()?;
        }
        Ok(false)
    }
}
