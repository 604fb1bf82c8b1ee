//! Whether a dataset was written by `brainrecon simulate`: reports then draw its maps on a
//! template stretched over its brain, since a simulated brain has no anatomy of its own.

use std::path::Path;

/// True when `root`'s `dataset_description.json` names `brainrecon simulate` in `GeneratedBy`
/// (the BIDS simulators), or `root/truth/truth.json` exists (every simulator writes its truth
/// there; no shipped dataset has that file).
pub fn is_simulated(root: &Path) -> bool {
    if root.join("truth").join("truth.json").is_file() {
        return true;
    }
    let Ok(text) = std::fs::read_to_string(root.join("dataset_description.json")) else {
        return false;
    };
    let Ok(json) =
        serde_json::from_str::<serde_json::Value>(brainrecon_core::text::without_bom(&text))
    else {
        return false;
    };
    json["GeneratedBy"].as_array().is_some_and(|by| {
        by.iter().any(|g| {
            g["Name"]
                .as_str()
                .is_some_and(|n| n.starts_with("brainrecon simulate"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_by_or_truth_marks_a_simulation() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_simulated(dir.path()));
        std::fs::write(
            dir.path().join("dataset_description.json"),
            r#"{"Name": "x", "GeneratedBy": [{"Name": "fMRIPrep"}]}"#,
        )
        .unwrap();
        assert!(!is_simulated(dir.path()));
        std::fs::write(
            dir.path().join("dataset_description.json"),
            r#"{"GeneratedBy": [{"Name": "brainrecon simulate --kind movie"}]}"#,
        )
        .unwrap();
        assert!(is_simulated(dir.path()));
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir(other.path().join("truth")).unwrap();
        std::fs::write(other.path().join("truth/truth.json"), "{}").unwrap();
        assert!(is_simulated(other.path()));
    }
}
