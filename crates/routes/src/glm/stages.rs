//! A GLM folder's finished stages on disk (`<out>/.stages/`), so that an interrupted fit resumes from
//! the last stage it finished: TYPEA, TYPEB, GLMdenoise.
//!
//! ```text
//! <out>/.stages/fit.json       what the stages belong to (settings, voxels, trials)
//! <out>/.stages/<stage>.f64    "brainrecon-glm-stage 1\n", the arrays' lengths as a JSON
//!                              list and "\n", then the arrays as little-endian f64
//! ```
//! Each file lands atomically; the folder goes once `glm.json` is written.

use brainrecon_core::fs::{read_json, remove_dir_atomic, write_bytes_atomic, write_json_atomic};
use brainrecon_core::DataError;
use brainrecon_glm::stages::{StageStore, Step};
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"brainrecon-glm-stage 1\n";

/// The stage store of a GLM folder: `<out>/.stages/`, which survives a killed process.
pub struct DirStages {
    dir: PathBuf,
    /// The stages taken from an interrupted fit.
    pub resumed: Vec<&'static str>,
    /// The first stage that could not be kept, and why.
    pub failed: Option<String>,
}

impl DirStages {
    /// The stages of `out`, kept if they belong to the fit `identity` names, else cleared.
    pub fn open(out: &Path, identity: &serde_json::Value) -> Result<Self, DataError> {
        let dir = out.join(".stages");
        let same = read_json::<serde_json::Value>(&dir.join("fit.json"))
            .ok()
            .as_ref()
            == Some(identity);
        if !same {
            remove_dir_atomic(&dir)?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        if !same {
            write_json_atomic(&dir.join("fit.json"), identity)?;
        }
        Ok(DirStages {
            dir,
            resumed: Vec::new(),
            failed: None,
        })
    }

    /// Removes the folder once the fit is written (whole: a kill while removing leaves no part
    /// of it in the output).
    pub fn finish(self) -> Result<(), DataError> {
        remove_dir_atomic(&self.dir)
    }

    fn file(&self, step: Step) -> PathBuf {
        self.dir.join(format!("{}.f64", step.name()))
    }
}

/// The arrays of a stage file, if it is whole.
fn parse(bytes: &[u8]) -> Option<Vec<Vec<f64>>> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let end = rest.iter().position(|&b| b == b'\n')?;
    let lengths: Vec<usize> = serde_json::from_slice(&rest[..end]).ok()?;
    let data = &rest[end + 1..];
    let total = lengths
        .iter()
        .try_fold(0usize, |sum, &n| sum.checked_add(n))?;
    if total.checked_mul(8)? != data.len() {
        return None;
    }
    let mut values = data
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")));
    Some(
        lengths
            .iter()
            .map(|&n| values.by_ref().take(n).collect())
            .collect(),
    )
}

impl StageStore for DirStages {
    fn load(&mut self, step: Step) -> Option<Vec<Vec<f64>>> {
        let arrays = parse(&std::fs::read(self.file(step)).ok()?)?;
        self.resumed.push(step.name());
        Some(arrays)
    }

    fn save(&mut self, step: Step, arrays: &[&[f64]]) {
        let lengths: Vec<usize> = arrays.iter().map(|a| a.len()).collect();
        let mut bytes = MAGIC.to_vec();
        bytes.extend(serde_json::to_vec(&lengths).expect("lengths serialise"));
        bytes.push(b'\n');
        for value in arrays.iter().flat_map(|a| a.iter()) {
            bytes.extend(value.to_le_bytes());
        }
        if let Err(e) = write_bytes_atomic(&self.file(step), &bytes) {
            self.failed.get_or_insert(format!("{}: {e}", step.name()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_read_back_and_broken_files_are_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let identity = serde_json::json!({"voxels": 3});
        let mut stages = DirStages::open(dir.path(), &identity).unwrap();
        stages.save(Step::OnOff, &[&[1.0, -2.5, f64::NAN], &[], &[7.0]]);
        let back = stages.load(Step::OnOff).unwrap();
        assert_eq!(back[0][..2], [1.0, -2.5]);
        assert!(back[0][2].is_nan() && back[1].is_empty() && back[2] == [7.0]);
        // Cut short (a copy that stopped), it is fitted again.
        let file = stages.file(Step::OnOff);
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 3]).unwrap();
        assert!(stages.load(Step::OnOff).is_none());
        // Another fit's stages are cleared.
        stages.save(Step::FitHrf, &[&[1.0]]);
        let other = DirStages::open(dir.path(), &serde_json::json!({"voxels": 4})).unwrap();
        assert!(!other.file(Step::FitHrf).exists());
    }
}
