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
    /// A whole volume; `files` in arrival order, the last one completed it. `number`: the
    /// scanner's number of the volume (TemporalPositionIdentifier or AcquisitionNumber), when
    /// its slices carry one.
    Volume {
        /// The slice files, in arrival order.
        files: Vec<PathBuf>,
        /// The stacked volume.
        volume: Box<DicomVolume>,
        /// The scanner's number of the volume, when known.
        number: Option<i64>,
    },
    /// A volume that cannot be stacked (slices missing, or uneven positions): why.
    Refused {
        /// The slice files it had, in arrival order.
        files: Vec<PathBuf>,
        /// Why it was refused.
        error: String,
    },
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
    /// Whether the groups are the scanner's volume numbers (else counters).
    numbered: bool,
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
        self.numbered = slice.volume_key().is_some();
        let key = self.key_of(&slice);
        self.open.entry(key).or_default().push((path, slice));
        let mut out = Vec::new();
        // Numbered slices of two volumes can arrive interleaved (an export writing in
        // parallel, a poll that stalled): a volume is closed unfinished only once a slice two
        // volumes later arrives, not at the first slice of the next.
        let lag = i64::from(self.numbered);
        let limit = (key.0, key.1.saturating_sub(lag));
        let overtaken: Vec<GroupKey> = self.open.range(..limit).map(|(k, _)| *k).collect();
        for old in overtaken {
            let files = self.open.remove(&old).unwrap_or_default();
            if self.slices_per_volume.is_none() {
                self.slices_per_volume = Some(files.len());
            }
            out.push(self.close(old, files));
        }
        let complete: Vec<GroupKey> = self
            .open
            .iter()
            .filter(|(_, files)| Some(files.len()) == self.slices_per_volume)
            .map(|(k, _)| *k)
            .collect();
        for done in complete {
            let files = self.open.remove(&done).unwrap_or_default();
            out.push(self.close(done, files));
            self.last_closed = Some(done);
        }
        out
    }

    /// The volumes still open when the session ends: stacked if whole, else reported.
    pub fn finish(&mut self) -> Vec<Assembled> {
        let open = std::mem::take(&mut self.open);
        open.into_iter()
            .map(|(key, files)| self.close(key, files))
            .collect()
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

    fn close(&self, key: GroupKey, files: Vec<(PathBuf, DicomSlice)>) -> Assembled {
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
                number: self.numbered.then_some(key.1),
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
        // Volume 2's first slice does not close volume 1 (slices of two volumes may come
        // interleaved); volume 3's does.
        assert!(assembler.push("next".into(), slice(Some(2), 0)).is_empty());
        let out = assembler.push("after".into(), slice(Some(3), 0));
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
    fn a_volume_with_a_slice_missing_is_refused_when_overtaken_twice() {
        let mut assembler = SliceAssembler::new(Some(3));
        let mut out = feed(&mut assembler, [0, 2].map(|k| slice(Some(1), k)));
        out.extend(feed(&mut assembler, (0..3).map(|k| slice(Some(2), k))));
        assert_eq!(out.len(), 1);
        assert!(matches!(
            &out[0],
            Assembled::Volume {
                number: Some(2),
                ..
            }
        ));
        out.extend(feed(&mut assembler, [slice(Some(3), 0)]));
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[1], Assembled::Refused { error, .. } if error.contains("2 slices")));
    }

    #[test]
    fn interleaved_volumes_are_each_stacked_whole() {
        // Two volumes' slices arrive mixed (a stalled poll; random file names), then two more.
        let mut assembler = SliceAssembler::new(None);
        let mut order: Vec<DicomSlice> = Vec::new();
        for k in 0..4 {
            order.push(slice(Some(1), k));
        }
        for k in 0..4 {
            order.push(slice(Some(3), 3 - k));
            order.push(slice(Some(2), k));
        }
        for k in 0..4 {
            order.push(slice(Some(4), k));
        }
        let out = feed(&mut assembler, order);
        let mut numbers: Vec<Option<i64>> = out
            .iter()
            .map(|a| match a {
                Assembled::Volume { number, .. } => *number,
                Assembled::Refused { error, .. } => panic!("refused: {error}"),
            })
            .collect();
        // Each handed over when whole (3 before 2 here); the follower orders them by number.
        numbers.sort();
        assert_eq!(numbers, [Some(1), Some(2), Some(3), Some(4)]);
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
