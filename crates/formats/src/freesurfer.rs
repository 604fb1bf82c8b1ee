//! FreeSurfer's segmentation labels as fMRIPrep ships them: `*_desc-aparcaseg_dseg.nii.gz` and
//! `*_desc-aseg_dseg.nii.gz` volumes whose values are FreeSurferColorLUT indices, named by the
//! `desc-aparcaseg_dseg.tsv` table at the derivatives' root (BIDS dseg columns `index`, `name`).
//! Without the table, the names below: the Desikan–Killiany cortical labels (1000 + region for
//! the left hemisphere, 2000 + region for the right) and aseg's common subcortical labels.

use crate::error::{DataError, Result};
use crate::events::Events;
use std::collections::BTreeMap;
use std::path::Path;

/// Desikan–Killiany regions in aparc's order: the label of `ctx-lh-<region>` is 1000 + index.
pub const DK_REGIONS: [&str; 36] = [
    "unknown",
    "bankssts",
    "caudalanteriorcingulate",
    "caudalmiddlefrontal",
    "corpuscallosum",
    "cuneus",
    "entorhinal",
    "fusiform",
    "inferiorparietal",
    "inferiortemporal",
    "isthmuscingulate",
    "lateraloccipital",
    "lateralorbitofrontal",
    "lingual",
    "medialorbitofrontal",
    "middletemporal",
    "parahippocampal",
    "paracentral",
    "parsopercularis",
    "parsorbitalis",
    "parstriangularis",
    "pericalcarine",
    "postcentral",
    "posteriorcingulate",
    "precentral",
    "precuneus",
    "rostralanteriorcingulate",
    "rostralmiddlefrontal",
    "superiorfrontal",
    "superiorparietal",
    "superiortemporal",
    "supramarginal",
    "frontalpole",
    "temporalpole",
    "transversetemporal",
    "insula",
];

/// aseg's labels that an aparc+aseg volume keeps (FreeSurferColorLUT).
const ASEG: [(i32, &str); 42] = [
    (2, "Left-Cerebral-White-Matter"),
    (3, "Left-Cerebral-Cortex"),
    (4, "Left-Lateral-Ventricle"),
    (5, "Left-Inf-Lat-Vent"),
    (7, "Left-Cerebellum-White-Matter"),
    (8, "Left-Cerebellum-Cortex"),
    (10, "Left-Thalamus"),
    (11, "Left-Caudate"),
    (12, "Left-Putamen"),
    (13, "Left-Pallidum"),
    (14, "3rd-Ventricle"),
    (15, "4th-Ventricle"),
    (16, "Brain-Stem"),
    (17, "Left-Hippocampus"),
    (18, "Left-Amygdala"),
    (24, "CSF"),
    (26, "Left-Accumbens-area"),
    (28, "Left-VentralDC"),
    (30, "Left-vessel"),
    (31, "Left-choroid-plexus"),
    (41, "Right-Cerebral-White-Matter"),
    (42, "Right-Cerebral-Cortex"),
    (43, "Right-Lateral-Ventricle"),
    (44, "Right-Inf-Lat-Vent"),
    (46, "Right-Cerebellum-White-Matter"),
    (47, "Right-Cerebellum-Cortex"),
    (49, "Right-Thalamus"),
    (50, "Right-Caudate"),
    (51, "Right-Putamen"),
    (52, "Right-Pallidum"),
    (53, "Right-Hippocampus"),
    (54, "Right-Amygdala"),
    (58, "Right-Accumbens-area"),
    (60, "Right-VentralDC"),
    (62, "Right-vessel"),
    (63, "Right-choroid-plexus"),
    (77, "WM-hypointensities"),
    (85, "Optic-Chiasm"),
    (251, "CC_Posterior"),
    (252, "CC_Mid_Posterior"),
    (253, "CC_Central"),
    (254, "CC_Mid_Anterior"),
];

/// The cortical label of a region in one hemisphere (`left`: ctx-lh-, 1000 + index).
pub fn cortical_label(region: &str, left: bool) -> Option<i32> {
    let index = DK_REGIONS.iter().position(|r| *r == region)? as i32;
    Some(if left { 1000 } else { 2000 } + index)
}

/// FreeSurfer's name of a label value, from the built-in tables.
pub fn label_name(value: i32) -> Option<String> {
    let cortical = |base: i32, hemi: &str| {
        let region = DK_REGIONS.get(usize::try_from(value - base).ok()?)?;
        Some(format!("ctx-{hemi}-{region}"))
    };
    match value {
        1000..=1035 => cortical(1000, "lh"),
        2000..=2035 => cortical(2000, "rh"),
        _ => ASEG
            .iter()
            .find(|(v, _)| *v == value)
            .map(|(_, n)| n.to_string()),
    }
}

/// The Desikan–Killiany region of a cortical label (`ctx-lh-fusiform` → `fusiform`).
pub fn cortical_region(name: &str) -> Option<&str> {
    name.strip_prefix("ctx-lh-")
        .or_else(|| name.strip_prefix("ctx-rh-"))
}

/// A BIDS dseg table (`index`, `name` columns): label value → name.
pub fn read_label_table(path: &Path) -> Result<BTreeMap<i32, String>> {
    let table = Events::read(path)?;
    let index = table.integers("index")?;
    let names = table.text("name")?;
    let mut labels = BTreeMap::new();
    for (row, (value, name)) in index.iter().zip(&names).enumerate() {
        let (Some(value), Some(name)) = (value, name) else {
            return Err(DataError::invalid(
                path,
                format!("row {}", row + 1),
                "an index and a name",
                "n/a",
            ));
        };
        let value = i32::try_from(*value).map_err(|_| {
            DataError::invalid(
                path,
                format!("index (row {})", row + 1),
                "a label value that fits 32 bits",
                value.to_string(),
            )
        })?;
        labels.insert(value, name.to_string());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cortical_labels_follow_aparc_order() {
        assert_eq!(cortical_label("pericalcarine", true), Some(1021));
        assert_eq!(cortical_label("fusiform", false), Some(2007));
        assert_eq!(label_name(1024).as_deref(), Some("ctx-lh-precentral"));
        assert_eq!(label_name(2035).as_deref(), Some("ctx-rh-insula"));
        assert_eq!(
            label_name(41).as_deref(),
            Some("Right-Cerebral-White-Matter")
        );
        assert_eq!(label_name(1036), None);
        assert_eq!(cortical_region("ctx-rh-lingual"), Some("lingual"));
    }

    #[test]
    fn a_label_table_names_values_and_refuses_missing_cells() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desc-aparcaseg_dseg.tsv");
        std::fs::write(
            &path,
            "index\tname\n0\tUnknown\n1021\tctx-lh-pericalcarine\n",
        )
        .unwrap();
        let table = read_label_table(&path).unwrap();
        assert_eq!(table[&1021], "ctx-lh-pericalcarine");
        std::fs::write(&path, "index\tname\n7\tn/a\n").unwrap();
        let err = read_label_table(&path).unwrap_err().to_string();
        assert!(err.contains("row 1"), "{err}");
    }
}
