//! Volumes from a single-frame export (one DICOM file per slice: GE, Philips, Siemens XA in
//! its interoperability mode). Slices are grouped by the volume the scanner says they belong
//! to (TemporalPositionIdentifier, else AcquisitionNumber; else a new volume starts when a
//! slice position repeats). A volume is handed over as soon as it has all its slices: their
//! number is given, or learnt from the first volume, which is complete when a slice of the
//! next one arrives. A volume overtaken by a later one with slices missing is reported, not
//! stacked.

use brainrecon_formats::dicom::slices::{stack_files, DicomSlice};
use brainrecon_formats::dicom::DicomVolume;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the assembler hands over.
#[derive(Debug)]
pub enum Assembled {
    /// A whole volume; `files` in arrival order, the last one completed it.
    Volume {
        files: Vec<PathBuf>,
        volume: Box<DicomVolume>,
    },
    /// A volume that cannot be stacked (slices missing, or uneven positions): why.
    Refused { files: Vec<PathBuf>, error: String },
}

impl Assembled {
    /// The file whose arrival completed (or closed) the volume.
    pub fn last_file(&self) -> Option<&PathBuf> {
        match self {
            Assembled::Volume { files, .. } | Assembled::Refused { files, .. } => files.last(),
        }
    }
}

/// Which volume a slice belongs to: its series (in order of appearance) and the scanner's
/// volume key, or a counter of repeated positions.
type GroupKey = (usize, i64);

/// Groups single-frame files into volumes as they arrive.
#[derive(Debug, Default)]
pub struct SliceAssembler {
    slices_per_volume: Option<usize>,
    series: Vec<String>,
    open: BTreeMap<GroupKey, Vec<(PathBuf, DicomSlice)>>,
    /// For series without volume keys: the current volume's number.
    counter: i64,
    /// The group handed over last.
    last_closed: Option<GroupKey>,
}

impl SliceAssembler {
    /// `slices_per_volume`: known in advance (hands the first volume over without waiting for
    /// the second), or `None` to learn it.
    pub fn new(slices_per_volume: Option<usize>) -> SliceAssembler {
        SliceAssembler {
            slices_per_volume,
            ..SliceAssembler::default()
        }
    }

    /// Slices per volume, once given or learnt.
    pub fn slices_per_volume(&self) -> Option<usize> {
        self.slices_per_volume
    }

    /// Takes one slice; returns the volumes it completed or closed, oldest first.
    pub fn push(&mut self, path: PathBuf, slice: DicomSlice) -> Vec<Assembled> {
        let key = self.key_of(&slice);
        self.open.entry(key).or_default().push((path, slice));
        let mut out = Vec::new();
        let overtaken: Vec<GroupKey> = self.open.range(..key).map(|(k, _)| *k).collect();
        for old in overtaken {
            let files = self.open.remove(&old).unwrap_or_default();
            if self.slices_per_volume.is_none() {
                self.slices_per_volume = Some(files.len());
            }
            out.push(self.close(files));
        }
        if self.open.get(&key).map(Vec::len) == self.slices_per_volume {
            let files = self.open.remove(&key).unwrap_or_default();
            out.push(self.close(files));
            self.last_closed = Some(key);
        }
        out
    }

    /// The volumes still open when the session ends: stacked if whole, else reported.
    pub fn finish(&mut self) -> Vec<Assembled> {
        let open = std::mem::take(&mut self.open);
        open.into_values().map(|files| self.close(files)).collect()
    }

    fn key_of(&mut self, slice: &DicomSlice) -> GroupKey {
        let series = match self
            .series
            .iter()
            .position(|s| *s == slice.series.series_uid)
        {
            Some(i) => i,
            None => {
                self.series.push(slice.series.series_uid.clone());
                self.series.len() - 1
            }
        };
        if let Some(volume) = slice.volume_key() {
            return (series, volume);
        }
        let current = (series, self.counter);
        let repeats = self.open.get(&current).is_some_and(|files| {
            files
                .iter()
                .any(|(_, s)| same_position(s.slice.position, slice.slice.position))
        });
        let handed_over = self.last_closed == Some(current) && !self.open.contains_key(&current);
        if repeats || handed_over {
            self.counter += 1;
        }
        (series, self.counter)
    }

    fn close(&self, files: Vec<(PathBuf, DicomSlice)>) -> Assembled {
        let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
        let expected = self.slices_per_volume.unwrap_or(files.len());
        if files.len() != expected {
            return Assembled::Refused {
                files: paths,
                error: format!(
                    "a volume of {} slices where the series has {expected} (a slice missing or written twice)",
                    files.len()
                ),
            };
        }
        match stack_files(&files) {
            Ok(volume) => Assembled::Volume {
                files: paths,
                volume: Box::new(volume),
            },
            Err(error) => Assembled::Refused {
                files: paths,
                error: error.to_string(),
            },
        }
    }
}

fn same_position(a: [f64; 3], b: [f64; 3]) -> bool {
    (0..3).all(|i| (a[i] - b[i]).abs() < 1e-3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brainrecon_formats::dicom::slices::{PlacedSlice, Plane};
    use brainrecon_formats::dicom::SeriesPosition;

    fn slice(volume: Option<i64>, k: usize) -> DicomSlice {
        DicomSlice {
            plane: Plane {
                rows: 2,
                columns: 2,
                row_direction: [1.0, 0.0, 0.0],
                column_direction: [0.0, 1.0, 0.0],
                row_spacing: 2.0,
                column_spacing: 2.0,
            },
            slice: PlacedSlice {
                position: [0.0, 0.0, 3.0 * k as f64],
                values: vec![k as f32; 4],
            },
            nominal_spacing: Some(3.0),
            series: SeriesPosition {
                series_uid: "1.2.3".into(),
                series_number: Some(1),
                acquisition_number: volume,
                instance_number: None,
                acquisition_time: None,
            },
            temporal_position: None,
        }
    }

    fn feed(
        assembler: &mut SliceAssembler,
        slices: impl IntoIterator<Item = DicomSlice>,
    ) -> Vec<Assembled> {
        let mut out = Vec::new();
        for (i, s) in slices.into_iter().enumerate() {
            out.extend(assembler.push(PathBuf::from(format!("IM{i:03}")), s));
        }
        out
    }

    #[test]
    fn the_first_volume_teaches_the_slice_count_then_volumes_come_at_their_last_slice() {
        let mut assembler = SliceAssembler::new(None);
        let first = feed(&mut assembler, (0..4).map(|k| slice(Some(1), k)));
        assert!(first.is_empty(), "the count is not known yet");
        let out = assembler.push("next".into(), slice(Some(2), 0));
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], Assembled::Volume { volume, .. } if volume.shape == [2, 2, 4]));
        assert_eq!(assembler.slices_per_volume(), Some(4));
        let out = feed(&mut assembler, (1..4).rev().map(|k| slice(Some(2), k)));
        assert_eq!(out.len(), 1, "complete at its fourth slice, in any order");
        match &out[0] {
            Assembled::Volume { volume, .. } => assert_eq!(volume.values[..4], [0.0; 4]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_volume_with_a_slice_missing_is_refused_when_overtaken() {
        let mut assembler = SliceAssembler::new(Some(3));
        let mut out = feed(&mut assembler, [0, 2].map(|k| slice(Some(1), k)));
        out.extend(feed(&mut assembler, (0..3).map(|k| slice(Some(2), k))));
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], Assembled::Refused { error, .. } if error.contains("2 slices")));
        assert!(matches!(&out[1], Assembled::Volume { .. }));
    }

    #[test]
    fn without_volume_keys_a_repeated_position_starts_the_next_volume() {
        let mut assembler = SliceAssembler::new(None);
        let out = feed(
            &mut assembler,
            (0..3)
                .chain(0..3)
                .chain(0..3)
                .chain(0..1)
                .map(|k| slice(None, k)),
        );
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|a| matches!(a, Assembled::Volume { .. })));
        let rest = assembler.finish();
        assert!(matches!(&rest[0], Assembled::Refused { .. }), "{rest:?}");
    }
}
