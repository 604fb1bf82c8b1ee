//! MNE's epochs in FIF (`*-epo.fif`, split parts `*-epo-1.fif` …): the measurement info, the
//! epochs' samples, events, event_id, metadata, baseline, selection and drop log, as
//! `mne.read_epochs(path).get_data()` and its attributes give them. THINGS-MEG's preprocessed
//! data (OpenNeuro ds004212, `derivatives/preprocessed/preprocessed_P{n}-epo.fif`) is such a
//! file, split at 2 GB.
//!
//! **Tags.** A FIF file is a stream of tags, each a big-endian header — kind `i32`, type `u32`,
//! size `i32` (bytes of data), next `i32` (`0`: the next tag follows, `-1`: the last tag, `> 0`:
//! the next tag's byte offset) — followed by its data. `FIFF_BLOCK_START`/`FIFF_BLOCK_END` tags
//! (kinds 104/105, data: the block kind) nest the others into blocks. The first tag is the file
//! id (kind 100). Tags and blocks this reader does not use are skipped.
//!
//! **What MNE writes** (`mne/epochs.py` `_save_part`, `mne/_fiff/meas_info.py`):
//!
//! | block | tags read here |
//! |---|---|
//! | measurement info (101) | channel count (200), sampling rate (201), one channel record (203) per channel: 96 bytes, `scanno, logno, kind: i32; range, cal: f32; coil_type: i32; loc: 12 × f32; unit, unit_mul: i32; name: 16 bytes` |
//! | channel info (113), one per channel, written when a name passes 15 characters | kind (252), range (253), cal (254), coil type (350), unit (256), unit multiplier (257), full name (258) |
//! | bad channels (359) | names joined with `:` (3507) |
//! | projector item (314) | active flag (3560) |
//! | epochs (373) | first/last sample (208/209), the samples (302), baseline min/max (3568/3569), selection (3800), drop log (3801, JSON) |
//! | events (361), in the epochs block | events (3561: `n × 3` `i32`), event_id (206: `name:code;…`) |
//! | metadata (3811), in the epochs block | the DataFrame as JSON records (206) |
//! | reference (118), in the epochs block | role (115, `2` = next file), file name (118), file number (117) |
//!
//! **Samples.** Tag 302 holds a dense matrix (type `0x40000000 | 4` for float32, `| 5` for
//! float64): the values `[epochs, channels, times]` in C order, then the dimensions reversed
//! (`times, channels, epochs`) as `i32`, then the dimension count (3). MNE stores
//! `value / cal` and reads back `stored × cal` (`mne/epochs.py` `_read_one_epoch_file`); the
//! channel's `range` is not applied to epochs (it is written as 1 for float data), nor any
//! projector (see [`FifEpochs::projectors`]).
//!
//! **Split files.** A part that continues names the next in its reference block (role 2); MNE
//! names them `stem-epo.fif`, `stem-epo-1.fif`, `stem-epo-2.fif` … Parts are read in that order
//! and concatenated: epochs, events, selection and metadata rows; drop logs merged as MNE does.
//!
//! Every size read from a file is checked against the file's length and
//! [`limits::ARRAY_BYTES`] before anything is allocated; a truncated or corrupt file is an
//! error naming it, the tag and what was expected. Gzipped FIF (`.fif.gz`) is refused.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{DataError, Result};
use crate::limits;

const FILE_ID: i32 = 100;
const BLOCK_START: i32 = 104;
const BLOCK_END: i32 = 105;
const NCHAN: i32 = 200;
const SFREQ: i32 = 201;
const CH_INFO: i32 = 203;
const DESCRIPTION: i32 = 206;
const FIRST_SAMPLE: i32 = 208;
const LAST_SAMPLE: i32 = 209;
const REF_ROLE: i32 = 115;
const REF_FILE_NUM: i32 = 117;
const REF_FILE_NAME: i32 = 118;
const CH_KIND: i32 = 252;
const CH_RANGE: i32 = 253;
const CH_CAL: i32 = 254;
const CH_UNIT: i32 = 256;
const CH_UNIT_MUL: i32 = 257;
const CH_DACQ_NAME: i32 = 258;
const CH_COIL_TYPE: i32 = 350;
const EPOCH: i32 = 302;
const CH_NAME_LIST: i32 = 3507;
const PROJ_ITEM_ACTIVE: i32 = 3560;
const EVENT_LIST: i32 = 3561;
const BASELINE_MIN: [i32; 2] = [3568, 304];
const BASELINE_MAX: [i32; 2] = [3569, 305];
const EPOCHS_SELECTION: i32 = 3800;
const EPOCHS_DROP_LOG: i32 = 3801;

const B_MEAS: i32 = 100;
const B_MEAS_INFO: i32 = 101;
const B_CH_INFO: i32 = 113;
const B_REF: i32 = 118;
const B_PROJ_ITEM: i32 = 314;
const B_BAD_CHANNELS: i32 = 359;
const B_EVENTS: i32 = 361;
/// MNE's epochs block, and the kind MNE used before 0.11.
const B_EPOCHS: [i32; 2] = [373, 122];
const B_METADATA: i32 = 3811;

const T_INT: u32 = 3;
const T_FLOAT: u32 = 4;
const T_DOUBLE: u32 = 5;
const T_STRING: u32 = 10;
const T_CH_INFO_STRUCT: u32 = 30;
const T_MATRIX: u32 = 0x4000_0000;

const ROLE_NEXT_FILE: i32 = 2;
/// Blocks nest a few levels deep in MNE's files; deeper nesting is corruption.
const MAX_DEPTH: usize = 64;
/// MNE refuses to split epochs into more than 100 files.
const MAX_PARTS: usize = 100;

/// One channel's record (`info['chs'][k]`).
#[derive(Debug, Clone, PartialEq)]
pub struct FifChannel {
    /// Channel name (`ch_name`, e.g. `MEG0113`).
    pub name: String,
    /// FIFF channel kind: 1 MEG, 301 reference MEG, 2 EEG, 3 stimulus, 202 EOG, 302 EMG,
    /// 402 ECG, 502 misc …
    pub kind: i32,
    /// FIFF coil type (e.g. 3012 for a Vectorview planar gradiometer, 1 for EEG).
    pub coil_type: i32,
    /// Stored as float32 in the file; not applied to epochs.
    pub range: f32,
    /// Stored as float32; a sample is `stored × cal`.
    pub cal: f32,
    /// FIFF unit: 112 T, 201 T/m, 107 V, −1 none …
    pub unit: i32,
    /// Power of ten of the unit.
    pub unit_mul: i32,
}

impl FifChannel {
    /// The channel type as MNE's `get_channel_types()` names it (`mag`, `grad`, `ref_meg`,
    /// `eeg`, `stim`, `eog`, `emg`, `ecg`, `misc`, `resp`, …); `other` for kinds not listed.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            1 if self.unit == 201 => "grad",
            1 => "mag",
            301 => "ref_meg",
            2 => "eeg",
            3 => "stim",
            202 => "eog",
            302 => "emg",
            402 => "ecg",
            502 => "misc",
            602 => "resp",
            702 => "syst",
            802 => "seeg",
            803 => "bio",
            900 => "ias",
            902 => "ecog",
            910 => "hbo",
            1001 => "fnirs_cw_amplitude",
            _ => "other",
        }
    }
}

/// How the samples were stored (MNE's `fmt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredAs {
    /// `fmt='single'`, MNE's default.
    Float32,
    /// `fmt='double'`.
    Float64,
}

/// One metadata column (pandas' `epochs.metadata[name]`) as text: strings as they are, numbers
/// as JSON writes them (`1760.0`, `3`), `None` for a null (pandas' NaN or None).
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataColumn {
    /// Column name.
    pub name: String,
    /// One value per epoch, in epoch order.
    pub values: Vec<Option<String>>,
}

/// The epochs' metadata: MNE stores the DataFrame as JSON records
/// (`metadata.reset_index().to_json(orient="records")`), one text per part.
#[derive(Debug, Clone, PartialEq)]
pub struct FifMetadata {
    /// The stored JSON of each part, in order.
    pub texts: Vec<String>,
    /// The DataFrame's index (the `index` field, which MNE makes the index), one per epoch;
    /// empty when the records have none.
    pub index: Vec<Option<String>>,
    /// Columns in the DataFrame's order, each with one value per epoch.
    pub columns: Vec<MetadataColumn>,
}

impl FifMetadata {
    /// The values of column `name`, one per epoch.
    pub fn column(&self, name: &str) -> Option<&[Option<String>]> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.values.as_slice())
    }
}

/// Epochs read from one FIF file and its continuation parts.
#[derive(Debug, Clone, PartialEq)]
pub struct FifEpochs {
    /// Every channel in the file's order (bad ones included, as `get_data()` returns them).
    pub channels: Vec<FifChannel>,
    /// Names of the channels marked bad (`info['bads']`).
    pub bads: Vec<String>,
    /// Samples per second.
    pub sfreq: f64,
    /// The first sample's index relative to the event (`round(tmin × sfreq)`).
    pub first_sample: i64,
    /// `first_sample / sfreq` in seconds (`epochs.tmin`).
    pub tmin: f64,
    /// Samples per epoch (`last − first + 1`).
    pub n_times: usize,
    /// float32 `[epochs, channels, times]`, C order, in the channels' units (T, V, …) after
    /// calibration: `stored × cal`, computed in float64 as MNE does and rounded to float32.
    /// Empty when read with [`read_epochs_with`].
    pub data: Vec<f32>,
    /// How the first part stored its samples.
    pub stored_as: StoredAs,
    /// `[sample, previous value, code]` per epoch (`epochs.events`).
    pub events: Vec<[i64; 3]>,
    /// `(name, code)` pairs in the file's order (`epochs.event_id`).
    pub event_id: Vec<(String, i64)>,
    /// `(bmin, bmax)` in seconds when the file records a baseline (`epochs.baseline`).
    pub baseline: Option<(Option<f64>, Option<f64>)>,
    /// The epochs' metadata (`epochs.metadata`), when the file has any.
    pub metadata: Option<FifMetadata>,
    /// Each kept epoch's index among the epochs first made (`epochs.selection`).
    pub selection: Vec<i64>,
    /// Why each epoch first made was dropped (empty: kept), merged over the parts as MNE does
    /// (`epochs.drop_log`); empty when the file has none.
    pub drop_log: Vec<Vec<String>>,
    /// Active flag of each SSP projector in the info. MNE's `read_epochs(proj=True)` applies
    /// inactive ones on reading; this reader returns the samples as stored, which equal
    /// `get_data()` whenever none is inactive (THINGS-MEG's files have no projectors).
    pub projectors: Vec<bool>,
    /// The parts read, in order.
    pub files: Vec<PathBuf>,
}

impl FifEpochs {
    /// Channel names in order (`epochs.ch_names`).
    pub fn ch_names(&self) -> Vec<&str> {
        self.channels.iter().map(|c| c.name.as_str()).collect()
    }

    /// Number of epochs.
    pub fn n_epochs(&self) -> usize {
        self.events.len()
    }

    /// Sample times in seconds (`epochs.times`): `(first_sample + i) / sfreq`.
    pub fn times(&self) -> Vec<f64> {
        (0..self.n_times)
            .map(|i| (self.first_sample + i as i64) as f64 / self.sfreq)
            .collect()
    }

    /// One epoch's samples `[channels, times]` (panics when `epoch` is out of range or the data
    /// were not kept).
    pub fn epoch(&self, epoch: usize) -> &[f32] {
        let size = self.channels.len() * self.n_times;
        &self.data[epoch * size..(epoch + 1) * size]
    }
}

/// Reads the epochs of `path` and every part it continues into, with their samples.
///
/// Fails, naming the file, the tag and what was expected, on a file that is not FIF, is
/// truncated or corrupt, lacks the measurement info or the epochs, stores samples other than a
/// float32/float64 `[epochs, channels, times]` matrix, names a next part that is missing, or
/// whose parts disagree on channels, sampling rate or times.
pub fn read_epochs(path: &Path) -> Result<FifEpochs> {
    let (mut epochs, parts) = open_chain(path)?;
    // open_chain bounded epochs × channels × times by limits::ARRAY_BYTES.
    let mut data = Vec::with_capacity(epochs.n_epochs() * epochs.channels.len() * epochs.n_times);
    convert(&parts, &mut |_, samples| {
        data.extend_from_slice(samples);
        Ok(())
    })?;
    epochs.data = data;
    Ok(epochs)
}

/// Reads the epochs of `path` (and its parts) like [`read_epochs`], handing each epoch's
/// calibrated samples `[channels, times]` to `visit(index, samples)` instead of keeping them:
/// THINGS-MEG's 27,048 epochs of one participant take 8 GB as float32. The returned
/// [`FifEpochs::data`] is empty.
pub fn read_epochs_with(
    path: &Path,
    mut visit: impl FnMut(usize, &[f32]) -> Result<()>,
) -> Result<FifEpochs> {
    let (epochs, parts) = open_chain(path)?;
    convert(&parts, &mut visit)?;
    Ok(epochs)
}

/// Reads everything of the epochs of `path` (and its parts) but the samples: channels, times,
/// events, event_id, metadata … ([`FifEpochs::data`] is empty). The files' structure is checked
/// as [`read_epochs`] checks it.
pub fn read_epochs_header(path: &Path) -> Result<FifEpochs> {
    open_chain(path).map(|(epochs, _)| epochs)
}

/// One part: its path, its bytes and what they hold.
type Opened = (PathBuf, Mmap, Part);

/// Reads `path` and the parts it names, all but the samples, and checks the samples of all
/// parts together against [`limits::ARRAY_BYTES`] (as float32).
fn open_chain(path: &Path) -> Result<(FifEpochs, Vec<Opened>)> {
    let mut parts: Vec<Opened> = Vec::new();
    let mut seen = HashSet::new();
    let mut current = path.to_path_buf();
    loop {
        let map = map_file(&current)?;
        let part = parse_part(&current, &map)?;
        let next = part.next.clone();
        seen.insert(current.clone());
        parts.push((current.clone(), map, part));
        let Some(next) = next else { break };
        if seen.contains(&next) || parts.len() >= MAX_PARTS {
            return Err(DataError::invalid(
                &current,
                "next part (FIFFB_REF, block 118)",
                format!("a part not read yet, at most {MAX_PARTS} parts"),
                next.display().to_string(),
            ));
        }
        if !next.is_file() {
            return Err(DataError::invalid(
                &current,
                "next part (FIFFB_REF, block 118)",
                format!("the split part {} beside it", next.display()),
                "no such file (a part of the split epochs is missing)",
            ));
        }
        current = next;
    }
    let (_, _, first) = &parts[0];
    let mut epochs = FifEpochs {
        channels: first.channels.clone(),
        bads: first.bads.clone(),
        sfreq: first.sfreq,
        first_sample: first.first_sample,
        tmin: first.first_sample as f64 / first.sfreq,
        n_times: first.n_times,
        data: Vec::new(),
        stored_as: first.samples.stored_as,
        events: first.events.clone(),
        event_id: first.event_id.clone(),
        baseline: first.baseline,
        metadata: None,
        selection: first.selection.clone(),
        drop_log: Vec::new(),
        projectors: first.projectors.clone(),
        files: parts.iter().map(|(p, _, _)| p.clone()).collect(),
    };
    for (file, _, part) in &parts[1..] {
        join_part(path, &mut epochs, file, part)?;
        if part.metadata.is_some() != first.metadata.is_some() {
            return Err(DataError::invalid(
                file,
                format!(
                    "metadata (FIFFB_MNE_METADATA, block 3811; a split part of {})",
                    path.display()
                ),
                format!(
                    "metadata {}, as in the first part",
                    if first.metadata.is_some() {
                        "present"
                    } else {
                        "absent"
                    }
                ),
                if part.metadata.is_some() {
                    "present"
                } else {
                    "absent"
                },
            ));
        }
    }
    limits::array_bytes(
        path,
        "epochs (FIFF_EPOCH, kind 302, all parts)",
        &[
            epochs.events.len() as u64,
            epochs.channels.len() as u64,
            epochs.n_times as u64,
        ],
        4,
    )?;
    let texts: Vec<(PathBuf, String)> = parts
        .iter()
        .filter_map(|(p, _, part)| part.metadata.clone().map(|t| (p.clone(), t)))
        .collect();
    if !texts.is_empty() {
        epochs.metadata = Some(parse_metadata(&texts, epochs.events.len())?);
    }
    let logs: Vec<(PathBuf, Vec<Vec<String>>)> = parts
        .iter()
        .filter_map(|(p, _, part)| part.drop_log.clone().map(|l| (p.clone(), l)))
        .collect();
    epochs.drop_log = merge_drop_logs(&logs)?;
    Ok((epochs, parts))
}

/// Hands every epoch of `parts`, in order, to `sink(index, samples)`: `stored × cal`, computed
/// in float64 as MNE does, as float32 `[channels, times]`.
fn convert(parts: &[Opened], sink: &mut dyn FnMut(usize, &[f32]) -> Result<()>) -> Result<()> {
    let mut index = 0usize;
    for (_, map, part) in parts {
        if part.events.is_empty() {
            // No samples back the sizes below.
            continue;
        }
        let per_epoch = part.channels.len() * part.n_times;
        let cals: Vec<f64> = part.channels.iter().map(|c| c.cal as f64).collect();
        let width = part.samples.stored_as.width();
        let mut buffer = vec![0f32; per_epoch];
        for e in 0..part.events.len() {
            // parse_part checked that the tag holds epochs × channels × times values.
            let start = part.samples.offset + e * per_epoch * width;
            let bytes = &map[start..start + per_epoch * width];
            for (c, &cal) in cals.iter().enumerate() {
                let row = &mut buffer[c * part.n_times..(c + 1) * part.n_times];
                let stored = &bytes[c * part.n_times * width..(c + 1) * part.n_times * width];
                match part.samples.stored_as {
                    StoredAs::Float32 => {
                        for (v, b) in row.iter_mut().zip(stored.chunks_exact(4)) {
                            let x = f32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                            *v = (x as f64 * cal) as f32;
                        }
                    }
                    StoredAs::Float64 => {
                        for (v, b) in row.iter_mut().zip(stored.chunks_exact(8)) {
                            let x = f64::from_be_bytes(b.try_into().expect("8 bytes"));
                            *v = (x * cal) as f32;
                        }
                    }
                }
            }
            sink(index, &buffer)?;
            index += 1;
        }
    }
    Ok(())
}

/// Appends `part` (read from `file`) to `epochs`, first read from `path`, after checking that
/// they describe the same channels and times.
fn join_part(path: &Path, epochs: &mut FifEpochs, file: &Path, part: &Part) -> Result<()> {
    let mismatch = |what: &str, expected: String, found: String| {
        DataError::invalid(
            file,
            format!("{what} (a split part of {})", path.display()),
            expected,
            found,
        )
    };
    let names = |c: &[FifChannel]| c.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    if names(&epochs.channels) != names(&part.channels) {
        return Err(mismatch(
            "channels",
            format!("the first part's {:?}", names(&epochs.channels)),
            format!("{:?}", names(&part.channels)),
        ));
    }
    if epochs.sfreq != part.sfreq {
        return Err(mismatch(
            "sampling rate (FIFF_SFREQ, kind 201)",
            epochs.sfreq.to_string(),
            part.sfreq.to_string(),
        ));
    }
    if (epochs.first_sample, epochs.n_times) != (part.first_sample, part.n_times) {
        return Err(mismatch(
            "first and last sample (kinds 208, 209)",
            format!("{} and {} samples", epochs.first_sample, epochs.n_times),
            format!("{} and {} samples", part.first_sample, part.n_times),
        ));
    }
    epochs.events.extend_from_slice(&part.events);
    epochs.selection.extend_from_slice(&part.selection);
    for (name, code) in &part.event_id {
        if !epochs.event_id.iter().any(|(n, _)| n == name) {
            epochs.event_id.push((name.clone(), *code));
        }
    }
    Ok(())
}

fn map_file(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    // SAFETY: opened read-only; as with numpy's mmap_mode='r', changes made to the file by
    // others while it is read are the user's concern.
    unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))
}

impl StoredAs {
    fn width(self) -> usize {
        match self {
            StoredAs::Float32 => 4,
            StoredAs::Float64 => 8,
        }
    }
}

/// Where a part's samples lie.
#[derive(Debug, Clone, Copy)]
struct Samples {
    /// Byte offset of the first value in the file.
    offset: usize,
    stored_as: StoredAs,
}

/// One file's contents, samples left in place.
#[derive(Debug)]
struct Part {
    channels: Vec<FifChannel>,
    bads: Vec<String>,
    sfreq: f64,
    first_sample: i64,
    n_times: usize,
    samples: Samples,
    events: Vec<[i64; 3]>,
    event_id: Vec<(String, i64)>,
    baseline: Option<(Option<f64>, Option<f64>)>,
    metadata: Option<String>,
    selection: Vec<i64>,
    drop_log: Option<Vec<Vec<String>>>,
    projectors: Vec<bool>,
    next: Option<PathBuf>,
}

/// A tag: its header and data.
struct Tag<'a> {
    kind: i32,
    ty: u32,
    /// Byte offset of the header.
    pos: usize,
    data: &'a [u8],
}

/// A name for a tag in messages: its FIFF name when known, its kind and where it is.
fn tag_name(kind: i32) -> &'static str {
    match kind {
        FILE_ID => "FIFF_FILE_ID",
        BLOCK_START => "FIFF_BLOCK_START",
        BLOCK_END => "FIFF_BLOCK_END",
        NCHAN => "FIFF_NCHAN",
        SFREQ => "FIFF_SFREQ",
        CH_INFO => "FIFF_CH_INFO",
        DESCRIPTION => "FIFF_DESCRIPTION",
        FIRST_SAMPLE => "FIFF_FIRST_SAMPLE",
        LAST_SAMPLE => "FIFF_LAST_SAMPLE",
        REF_ROLE => "FIFF_REF_ROLE",
        REF_FILE_NUM => "FIFF_REF_FILE_NUM",
        REF_FILE_NAME => "FIFF_REF_FILE_NAME",
        CH_KIND => "FIFF_CH_KIND",
        CH_RANGE => "FIFF_CH_RANGE",
        CH_CAL => "FIFF_CH_CAL",
        CH_UNIT => "FIFF_CH_UNIT",
        CH_UNIT_MUL => "FIFF_CH_UNIT_MUL",
        CH_DACQ_NAME => "FIFF_CH_DACQ_NAME",
        CH_COIL_TYPE => "FIFF_CH_COIL_TYPE",
        EPOCH => "FIFF_EPOCH",
        CH_NAME_LIST => "FIFF_MNE_CH_NAME_LIST",
        PROJ_ITEM_ACTIVE => "FIFF_MNE_PROJ_ITEM_ACTIVE",
        EVENT_LIST => "FIFF_MNE_EVENT_LIST",
        3568 | 304 => "FIFF_MNE_BASELINE_MIN",
        3569 | 305 => "FIFF_MNE_BASELINE_MAX",
        EPOCHS_SELECTION => "FIFF_MNE_EPOCHS_SELECTION",
        EPOCHS_DROP_LOG => "FIFF_MNE_EPOCHS_DROP_LOG",
        _ => "tag",
    }
}

impl Tag<'_> {
    fn field(&self) -> String {
        format!(
            "{} (kind {}) at byte {}",
            tag_name(self.kind),
            self.kind,
            self.pos
        )
    }

    fn wrong(&self, path: &Path, expected: &str) -> DataError {
        DataError::invalid(
            path,
            self.field(),
            expected,
            format!("type {:#x} with {} bytes", self.ty, self.data.len()),
        )
    }

    fn int(&self, path: &Path) -> Result<i32> {
        match (self.ty, self.data) {
            (T_INT, &[a, b, c, d]) => Ok(i32::from_be_bytes([a, b, c, d])),
            _ => Err(self.wrong(path, "one int32 (type 3, 4 bytes)")),
        }
    }

    fn ints(&self, path: &Path) -> Result<Vec<i32>> {
        if self.ty != T_INT || self.data.len() % 4 != 0 {
            return Err(self.wrong(path, "int32 values (type 3, a multiple of 4 bytes)"));
        }
        Ok(self
            .data
            .chunks_exact(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn float(&self, path: &Path) -> Result<f64> {
        match (self.ty, self.data.len()) {
            (T_FLOAT, 4) => Ok(f32::from_be_bytes(self.data.try_into().expect("4")) as f64),
            (T_DOUBLE, 8) => Ok(f64::from_be_bytes(self.data.try_into().expect("8"))),
            _ => Err(self.wrong(
                path,
                "one float32 (type 4, 4 bytes) or float64 (type 5, 8 bytes)",
            )),
        }
    }

    fn string(&self, path: &Path) -> Result<String> {
        if self.ty != T_STRING {
            return Err(self.wrong(path, "a string (type 10)"));
        }
        Ok(fif_string(self.data))
    }
}

/// A FIF string: Latin-1, as MNE decodes it; MNE writes characters outside Latin-1 as XML
/// character references and unescapes them when it finds one of six digits (`&#NNNNNN;`).
fn fif_string(bytes: &[u8]) -> String {
    let text: String = bytes.iter().map(|&b| b as char).collect();
    let six_digit_reference = text.match_indices("&#").any(|(i, _)| {
        let rest = &text.as_bytes()[i + 2..];
        rest.len() >= 7 && rest[..6].iter().all(u8::is_ascii_hexdigit) && rest[6] == b';'
    });
    if six_digit_reference {
        unescape_references(&text)
    } else {
        text
    }
}

/// Replaces numeric character references (`&#233;`, `&#xE9;`) by their characters.
fn unescape_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("&#") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let (digits, radix) = match after.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16),
            None => (after, 10),
        };
        let end = digits
            .find(|c: char| !c.is_digit(radix))
            .unwrap_or(digits.len());
        let decoded = (end > 0 && digits[end..].starts_with(';'))
            .then(|| u32::from_str_radix(&digits[..end], radix).ok())
            .flatten()
            .and_then(char::from_u32);
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &digits[end + 1..];
            }
            None => {
                out.push_str("&#");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Reads the tag whose header starts at `pos`.
fn tag_at<'a>(path: &Path, bytes: &'a [u8], pos: usize) -> Result<(Tag<'a>, i32)> {
    let header = bytes.get(pos..).and_then(|b| b.get(..16)).ok_or_else(|| {
        DataError::invalid(
            path,
            format!("tag header at byte {pos}"),
            "16 bytes (kind, type, size, next)",
            format!("{} bytes (file truncated)", bytes.len().saturating_sub(pos)),
        )
    })?;
    let word = |i: usize| [header[i], header[i + 1], header[i + 2], header[i + 3]];
    let kind = i32::from_be_bytes(word(0));
    let ty = u32::from_be_bytes(word(4));
    let size = i32::from_be_bytes(word(8));
    let next = i32::from_be_bytes(word(12));
    let field = || format!("{} (kind {kind}) at byte {pos}", tag_name(kind));
    let size = usize::try_from(size).map_err(|_| {
        DataError::invalid(path, field(), "a data size of 0 or more", size.to_string())
    })?;
    let start = pos + 16;
    let end = start.checked_add(size).filter(|&end| end <= bytes.len());
    let Some(end) = end else {
        return Err(DataError::invalid(
            path,
            field(),
            format!("{size} bytes of data"),
            format!(
                "{} bytes left in the file (file truncated or size corrupt)",
                bytes.len() - start
            ),
        ));
    };
    let tag = Tag {
        kind,
        ty,
        pos,
        data: &bytes[start..end],
    };
    Ok((tag, next))
}

/// The extended record of one channel (block 113): fields that replace the 96-byte record's.
#[derive(Default)]
struct ChannelUpdate {
    name: Option<String>,
    kind: Option<i32>,
    range: Option<f32>,
    cal: Option<f32>,
    coil_type: Option<i32>,
    unit: Option<i32>,
    unit_mul: Option<i32>,
}

/// A reference block's contents (block 118).
#[derive(Default)]
struct Reference {
    role: Option<i32>,
    name: Option<String>,
    number: Option<i32>,
}

/// Everything gathered while walking one file's tags.
#[derive(Default)]
struct Scan {
    meas_info_blocks: usize,
    nchan: Option<i32>,
    sfreq: Option<f64>,
    channels: Vec<FifChannel>,
    updates: Vec<ChannelUpdate>,
    bads: Option<String>,
    projectors: Vec<bool>,
    events: Option<Vec<i32>>,
    event_id: Option<String>,
    metadata: Option<String>,
    epochs_blocks: usize,
    first: Option<i32>,
    last: Option<i32>,
    epoch_tag: Option<(usize, u32, usize, usize)>,
    bmin: Option<f64>,
    bmax: Option<f64>,
    selection: Option<Vec<i32>>,
    drop_log: Option<String>,
    reference: Option<Reference>,
    next_name: Option<NextName>,
}

enum NextName {
    Name(String),
    Number(i32),
}

fn parse_part(path: &Path, bytes: &[u8]) -> Result<Part> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(DataError::format(
            path,
            "FIF",
            "the file is gzip-compressed (.fif.gz); decompress it first",
        ));
    }
    // The kind first: a file that is not FIF should say so, not that a size is wrong.
    let kind = bytes
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    if kind.is_some_and(|k| k != FILE_ID) {
        return Err(DataError::invalid(
            path,
            "first tag",
            "the FIF file id (kind 100): is this a FIF file?",
            format!("kind {}", kind.unwrap_or_default()),
        ));
    }
    // An empty or cut file id is truncation.
    tag_at(path, bytes, 0)?;
    let mut scan = Scan::default();
    let mut stack: Vec<i32> = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let (tag, next) = tag_at(path, bytes, pos)?;
        let end = pos + 16 + tag.data.len();
        match tag.kind {
            BLOCK_START => {
                let block = tag.int(path)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(DataError::invalid(
                        path,
                        tag.field(),
                        format!("blocks nested at most {MAX_DEPTH} deep"),
                        "deeper nesting (file corrupt)",
                    ));
                }
                stack.push(block);
                scan.start_block(&stack);
            }
            BLOCK_END => {
                let block = tag.int(path)?;
                if stack.last() != Some(&block) {
                    return Err(DataError::invalid(
                        path,
                        tag.field(),
                        match stack.last() {
                            Some(open) => format!("the end of the open block {open}"),
                            None => "no block end outside blocks".to_string(),
                        },
                        format!("the end of block {block}"),
                    ));
                }
                scan.end_block(&stack);
                stack.pop();
            }
            _ => scan.tag(path, &stack, &tag)?,
        }
        pos = match next {
            0 => end,
            -1 => break,
            n if n as usize >= end => n as usize,
            n => {
                return Err(DataError::invalid(
                    path,
                    format!("next of {}", tag.field()),
                    format!("0, -1 or a byte offset past the tag's end ({end})"),
                    n.to_string(),
                ))
            }
        };
    }
    if !stack.is_empty() {
        return Err(DataError::invalid(
            path,
            "blocks",
            "every block closed by the file's end",
            format!("blocks {stack:?} still open (file truncated)"),
        ));
    }
    scan.finish(path, bytes)
}

impl Scan {
    fn start_block(&mut self, stack: &[i32]) {
        match stack.last() {
            Some(&B_CH_INFO) => self.updates.push(ChannelUpdate::default()),
            Some(&B_MEAS_INFO) => self.meas_info_blocks += 1,
            Some(&B_PROJ_ITEM) => self.projectors.push(false),
            Some(&B_REF) => self.reference = Some(Reference::default()),
            Some(b) if B_EPOCHS.contains(b) => self.epochs_blocks += 1,
            _ => {}
        }
    }

    /// At a reference block's end: MNE takes the first that names a next file (role 2, or no
    /// role), by name, else by number.
    fn end_block(&mut self, stack: &[i32]) {
        if stack.last() != Some(&B_REF) {
            return;
        }
        let Some(reference) = self.reference.take() else {
            return;
        };
        if self.next_name.is_some() || reference.role.is_some_and(|r| r != ROLE_NEXT_FILE) {
            return;
        }
        self.next_name = match (reference.name, reference.number) {
            (Some(name), _) => Some(NextName::Name(name)),
            (None, Some(number)) => Some(NextName::Number(number)),
            (None, None) => None,
        };
    }

    /// Whether the innermost open block is the file's first epochs block (MNE reads that one).
    fn in_epochs(&self, stack: &[i32]) -> bool {
        self.epochs_blocks == 1 && stack.last().is_some_and(|b| B_EPOCHS.contains(b))
    }

    fn tag(&mut self, path: &Path, stack: &[i32], tag: &Tag) -> Result<()> {
        let inner = stack.last().copied();
        let in_meas = stack.contains(&B_MEAS);
        match (inner, tag.kind) {
            (Some(B_MEAS_INFO), NCHAN) if in_meas => self.nchan = Some(tag.int(path)?),
            (Some(B_MEAS_INFO), SFREQ) if in_meas => self.sfreq = Some(tag.float(path)?),
            (Some(B_MEAS_INFO), CH_INFO) if in_meas => {
                self.channels.push(channel_record(path, tag)?)
            }
            (Some(B_CH_INFO), kind) => {
                let update = self
                    .updates
                    .last_mut()
                    .expect("pushed at the block's start");
                match kind {
                    CH_DACQ_NAME => update.name = Some(tag.string(path)?),
                    CH_KIND => update.kind = Some(tag.int(path)?),
                    CH_RANGE => update.range = Some(tag.float(path)? as f32),
                    CH_CAL => update.cal = Some(tag.float(path)? as f32),
                    CH_COIL_TYPE => update.coil_type = Some(tag.int(path)?),
                    CH_UNIT => update.unit = Some(tag.int(path)?),
                    CH_UNIT_MUL => update.unit_mul = Some(tag.int(path)?),
                    _ => {}
                }
            }
            (Some(B_BAD_CHANNELS), CH_NAME_LIST) => self.bads = Some(tag.string(path)?),
            (Some(B_PROJ_ITEM), PROJ_ITEM_ACTIVE) => {
                let active = tag.int(path)? != 0;
                *self
                    .projectors
                    .last_mut()
                    .expect("pushed at the block's start") = active;
            }
            (Some(B_EVENTS), EVENT_LIST) if self.events.is_none() => {
                self.events = Some(tag.ints(path)?)
            }
            (Some(B_EVENTS), DESCRIPTION) if self.event_id.is_none() => {
                self.event_id = Some(tag.string(path)?)
            }
            (Some(B_METADATA), DESCRIPTION) if self.metadata.is_none() => {
                self.metadata = Some(tag.string(path)?)
            }
            (Some(B_REF), kind) => {
                let reference = self.reference.get_or_insert_with(Reference::default);
                match kind {
                    REF_ROLE => reference.role = Some(tag.int(path)?),
                    REF_FILE_NAME => reference.name = Some(tag.string(path)?),
                    REF_FILE_NUM => reference.number = Some(tag.int(path)?),
                    _ => {}
                }
            }
            (_, kind) if self.in_epochs(stack) => match kind {
                FIRST_SAMPLE => self.first = Some(tag.int(path)?),
                LAST_SAMPLE => self.last = Some(tag.int(path)?),
                EPOCH => self.epoch_tag = Some(epoch_matrix(path, tag)?),
                k if BASELINE_MIN.contains(&k) => self.bmin = Some(tag.float(path)?),
                k if BASELINE_MAX.contains(&k) => self.bmax = Some(tag.float(path)?),
                EPOCHS_SELECTION => self.selection = Some(tag.ints(path)?),
                EPOCHS_DROP_LOG => self.drop_log = Some(tag.string(path)?),
                _ => {}
            },
            _ => {}
        }
        Ok(())
    }

    fn finish(self, path: &Path, bytes: &[u8]) -> Result<Part> {
        let missing = |what: &str| {
            DataError::invalid(
                path,
                what,
                "present in the file",
                "absent (not MNE epochs?)",
            )
        };
        if self.meas_info_blocks != 1 {
            return Err(DataError::invalid(
                path,
                "measurement info (FIFFB_MEAS_INFO, block 101)",
                "exactly one block",
                format!("{} blocks", self.meas_info_blocks),
            ));
        }
        let nchan = self
            .nchan
            .ok_or_else(|| missing("channel count (FIFF_NCHAN, kind 200)"))?;
        if nchan < 1 || nchan as usize != self.channels.len() {
            return Err(DataError::invalid(
                path,
                "channel count (FIFF_NCHAN, kind 200)",
                format!(
                    "at least 1, and one channel record (kind 203) each: {}",
                    self.channels.len()
                ),
                nchan.to_string(),
            ));
        }
        let sfreq = self
            .sfreq
            .ok_or_else(|| missing("sampling rate (FIFF_SFREQ, kind 201)"))?;
        limits::sample_rate(path, "sampling rate (FIFF_SFREQ, kind 201)", sfreq)?;
        let mut channels = self.channels;
        if !self.updates.is_empty() && self.updates.len() != channels.len() {
            return Err(DataError::invalid(
                path,
                "extended channel records (FIFFB_CH_INFO, block 113)",
                format!("one per channel: {}", channels.len()),
                self.updates.len().to_string(),
            ));
        }
        // Long names are written truncated to 15 characters in the records; bad channels are
        // listed by the truncated names and renamed with them.
        let mut renames = Vec::new();
        for (channel, update) in channels.iter_mut().zip(self.updates) {
            if let Some(name) = update.name {
                if name != channel.name {
                    renames.push((channel.name.clone(), name.clone()));
                }
                channel.name = name;
            }
            channel.kind = update.kind.unwrap_or(channel.kind);
            channel.range = update.range.unwrap_or(channel.range);
            channel.cal = update.cal.unwrap_or(channel.cal);
            channel.coil_type = update.coil_type.unwrap_or(channel.coil_type);
            channel.unit = update.unit.unwrap_or(channel.unit);
            channel.unit_mul = update.unit_mul.unwrap_or(channel.unit_mul);
        }
        let bads = match self.bads.as_deref() {
            None | Some("") => Vec::new(),
            Some(list) => list
                .split(':')
                .map(|name| {
                    let name = name.replace("{COLON}", ":");
                    renames
                        .iter()
                        .find(|(short, _)| *short == name)
                        .map_or(name, |(_, long)| long.clone())
                })
                .collect(),
        };

        if self.epochs_blocks == 0 {
            return Err(missing("epochs (FIFFB_MNE_EPOCHS, block 373)"));
        }
        let first = self
            .first
            .ok_or_else(|| missing("first sample (FIFF_FIRST_SAMPLE, kind 208)"))?;
        let last = self
            .last
            .ok_or_else(|| missing("last sample (FIFF_LAST_SAMPLE, kind 209)"))?;
        if last < first {
            return Err(DataError::invalid(
                path,
                "last sample (FIFF_LAST_SAMPLE, kind 209)",
                format!("at least the first sample {first}"),
                last.to_string(),
            ));
        }
        let n_times = (last as i64 - first as i64 + 1) as usize;
        let events = events_of(path, self.events.as_deref())?;
        let (offset, ty, count, dims_at) = self
            .epoch_tag
            .ok_or_else(|| missing("epochs data (FIFF_EPOCH, kind 302)"))?;
        let dims: Vec<i32> = (0..3)
            .map(|i| {
                let b = &bytes[dims_at + 4 * i..dims_at + 4 * i + 4];
                i32::from_be_bytes([b[0], b[1], b[2], b[3]])
            })
            .collect();
        // The dimensions are stored reversed: times, channels, epochs.
        let want = [n_times as i64, channels.len() as i64, events.len() as i64];
        let got = [dims[0] as i64, dims[1] as i64, dims[2] as i64];
        if got != want {
            return Err(DataError::invalid(
                path,
                format!(
                    "epochs data dimensions (FIFF_EPOCH, kind 302) at byte {}",
                    offset - 16
                ),
                format!(
                    "[{} epochs (events), {} channels, {} times (first to last sample)]",
                    want[2], want[1], want[0]
                ),
                format!("[{}, {}, {}]", got[2], got[1], got[0]),
            ));
        }
        let stored_as = match ty {
            T_FLOAT => StoredAs::Float32,
            _ => StoredAs::Float64,
        };
        let values = want.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
        if values != Some(count as u64) {
            return Err(DataError::invalid(
                path,
                format!("epochs data (FIFF_EPOCH, kind 302) at byte {}", offset - 16),
                format!("{} × {} × {} values", want[2], want[1], want[0]),
                format!("{count} values"),
            ));
        }
        let event_id = match &self.event_id {
            Some(text) => parse_event_id(path, text)?,
            // MNE names each code after itself when the file has no mapping.
            None => {
                let mut codes: Vec<i64> = events.iter().map(|e| e[2]).collect();
                codes.sort_unstable();
                codes.dedup();
                codes.into_iter().map(|c| (c.to_string(), c)).collect()
            }
        };
        let selection: Vec<i64> = match self.selection {
            Some(s) => s.into_iter().map(i64::from).collect(),
            None => (0..events.len() as i64).collect(),
        };
        if selection.len() != events.len() {
            return Err(DataError::invalid(
                path,
                "selection (FIFF_MNE_EPOCHS_SELECTION, kind 3800)",
                format!("one index per epoch: {}", events.len()),
                selection.len().to_string(),
            ));
        }
        let drop_log = match &self.drop_log {
            None => None,
            Some(text) => Some(serde_json::from_str::<Vec<Vec<String>>>(text).map_err(|e| {
                DataError::invalid(
                    path,
                    "drop log (FIFF_MNE_EPOCHS_DROP_LOG, kind 3801)",
                    "a JSON list of lists of strings",
                    e.to_string(),
                )
            })?),
        };
        let baseline =
            (self.bmin.is_some() || self.bmax.is_some()).then_some((self.bmin, self.bmax));
        let next = match self.next_name {
            None => None,
            Some(next) => Some(next_part(path, next)?),
        };
        Ok(Part {
            channels,
            bads,
            sfreq,
            first_sample: first as i64,
            n_times,
            samples: Samples { offset, stored_as },
            events,
            event_id,
            baseline,
            metadata: self.metadata,
            selection,
            drop_log,
            projectors: self.projectors,
            next,
        })
    }
}

/// A 96-byte channel record (tag 203).
fn channel_record(path: &Path, tag: &Tag) -> Result<FifChannel> {
    if tag.ty != T_CH_INFO_STRUCT || tag.data.len() != 96 {
        return Err(tag.wrong(path, "a channel record (type 30, 96 bytes)"));
    }
    let d = tag.data;
    let int = |at: usize| i32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
    let float = |at: usize| f32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
    let name = &d[80..96];
    let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(16)];
    Ok(FifChannel {
        name: fif_string(name),
        kind: int(8),
        range: float(12),
        cal: float(16),
        coil_type: int(20),
        unit: int(72),
        unit_mul: int(76),
    })
}

/// Checks the samples' tag (302) and returns (offset of the first value, element type, values,
/// offset of the three stored dimensions).
fn epoch_matrix(path: &Path, tag: &Tag) -> Result<(usize, u32, usize, usize)> {
    let element = tag.ty & 0xFFFF;
    let width = match (tag.ty & 0xFFFF_0000, element) {
        (T_MATRIX, T_FLOAT) => 4,
        (T_MATRIX, T_DOUBLE) => 8,
        _ => {
            return Err(tag.wrong(
                path,
                "a dense float32 or float64 matrix (type 0x40000004 or 0x40000005)",
            ))
        }
    };
    let n = tag.data.len();
    let ndim = match n.checked_sub(4) {
        Some(at) => i32::from_be_bytes(tag.data[at..n].try_into().expect("4 bytes")),
        None => return Err(tag.wrong(path, "a matrix ending in its dimension count")),
    };
    if ndim != 3 || n < 16 {
        return Err(DataError::invalid(
            path,
            format!("dimension count of {}", tag.field()),
            "3 ([epochs, channels, times])",
            format!("{ndim} (in a {n}-byte tag)"),
        ));
    }
    let values = n - 16;
    if values % width != 0 {
        return Err(tag.wrong(path, "whole values before the dimensions"));
    }
    let data_start = tag.pos + 16;
    Ok((data_start, element, values / width, data_start + values))
}

/// The event list (3561): `n × 3` int32, C order.
fn events_of(path: &Path, list: Option<&[i32]>) -> Result<Vec<[i64; 3]>> {
    let Some(list) = list else {
        // MNE reads a file without events as no epochs.
        return Ok(Vec::new());
    };
    if list.len() % 3 != 0 {
        return Err(DataError::invalid(
            path,
            "events (FIFF_MNE_EVENT_LIST, kind 3561)",
            "a multiple of 3 values (sample, previous value, code)",
            format!("{} values", list.len()),
        ));
    }
    let mut events: Vec<[i64; 3]> = list
        .chunks_exact(3)
        .map(|e| [e[0] as i64, e[1] as i64, e[2] as i64])
        .collect();
    // MNE replaces negative samples by 1, 2, … (with a warning).
    if events.iter().any(|e| e[0] < 0) {
        for (i, e) in events.iter_mut().enumerate() {
            e[0] = i as i64 + 1;
        }
    }
    Ok(events)
}

/// `name:code;name:code…`; a name may hold `:` (the code follows the last one).
fn parse_event_id(path: &Path, text: &str) -> Result<Vec<(String, i64)>> {
    let mut out: Vec<(String, i64)> = Vec::new();
    for item in text.split(';') {
        let parsed = item
            .rsplit_once(':')
            .and_then(|(name, code)| Some((name, code.trim().parse::<i64>().ok()?)));
        let Some((name, code)) = parsed else {
            return Err(DataError::invalid(
                path,
                "event_id (FIFF_DESCRIPTION, kind 206, in the events block)",
                "name:code pairs joined by ';'",
                format!("{item:?}"),
            ));
        };
        // A repeated name keeps its last code, as a Python dict does.
        match out.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = code,
            None => out.push((name.to_string(), code)),
        }
    }
    Ok(out)
}

/// The next part's path: beside `path`, by the name stored, or else as MNE derives it from the
/// part number (`stem-epo.fif` → `stem-epo-1.fif`, `stem-epo-1.fif` → `stem-epo-2.fif`).
fn next_part(path: &Path, next: NextName) -> Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let name = match next {
        NextName::Name(name) => name,
        NextName::Number(number) => {
            let base = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dot = base.find('.').unwrap_or(base.len());
            let stem = &base[..dot];
            let ext = base.get(dot + 1..).unwrap_or("");
            let numbered = stem.rfind('-').filter(|&dash| {
                let digits = &stem[dash + 1..];
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            });
            match numbered {
                Some(dash) => format!("{}-{number}.{ext}", &stem[..dash]),
                None => format!("{stem}-{number}.{ext}"),
            }
        }
    };
    let plain = !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..";
    if !plain {
        return Err(DataError::invalid(
            path,
            "next part's name (FIFF_REF_FILE_NAME, kind 118)",
            "a file name beside this file",
            format!("{name:?}"),
        ));
    }
    Ok(dir.join(name))
}

/// One JSON record with its keys in order (serde_json's maps sort them).
struct Record(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Record;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object (one metadata row)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Record, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    fields.push(entry);
                }
                Ok(Record(fields))
            }
        }
        d.deserialize_map(Visit)
    }
}

fn value_text(value: serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// The parts' metadata records as one table: columns in first-seen order, a value per epoch.
fn parse_metadata(texts: &[(PathBuf, String)], n_epochs: usize) -> Result<FifMetadata> {
    let field = "metadata (FIFF_DESCRIPTION, kind 206, in FIFFB_MNE_METADATA)";
    let mut names: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<(usize, Option<String>)>> = Vec::new();
    let mut index = Vec::new();
    let mut has_index = false;
    for (path, text) in texts {
        let records: Vec<Record> = serde_json::from_str(text).map_err(|e| {
            DataError::invalid(path, field, "a JSON list of records", e.to_string())
        })?;
        for Record(fields) in records {
            let mut row = Vec::with_capacity(fields.len());
            let mut row_index = None;
            for (name, value) in fields {
                if name == "index" {
                    has_index = true;
                    row_index = value_text(value);
                    continue;
                }
                let column = match names.iter().position(|n| *n == name) {
                    Some(k) => k,
                    None => {
                        names.push(name);
                        names.len() - 1
                    }
                };
                row.push((column, value_text(value)));
            }
            index.push(row_index);
            rows.push(row);
        }
    }
    if rows.len() != n_epochs {
        return Err(DataError::invalid(
            &texts[0].0,
            field,
            format!("one record per epoch: {n_epochs}"),
            format!("{} records", rows.len()),
        ));
    }
    let mut columns: Vec<MetadataColumn> = names
        .into_iter()
        .map(|name| MetadataColumn {
            name,
            values: vec![None; n_epochs],
        })
        .collect();
    for (r, row) in rows.into_iter().enumerate() {
        for (column, value) in row {
            columns[column].values[r] = value;
        }
    }
    Ok(FifMetadata {
        texts: texts.iter().map(|(_, t)| t.clone()).collect(),
        index: if has_index { index } else { Vec::new() },
        columns,
    })
}

/// MNE's merge of split parts' drop logs: each part logs every epoch first made, marking
/// those in other parts `IGNORED`; an entry takes the first part's reason that is not.
fn merge_drop_logs(logs: &[(PathBuf, Vec<Vec<String>>)]) -> Result<Vec<Vec<String>>> {
    let Some((_, first)) = logs.first() else {
        return Ok(Vec::new());
    };
    let mut merged = first.clone();
    for (path, log) in &logs[1..] {
        if log.len() != merged.len() {
            return Err(DataError::invalid(
                &logs[0].0,
                format!(
                    "drop log (FIFF_MNE_EPOCHS_DROP_LOG, kind 3801) of its split part {}",
                    path.display()
                ),
                format!(
                    "an entry per epoch first made, as the first part: {}",
                    merged.len()
                ),
                log.len().to_string(),
            ));
        }
        for (entry, other) in merged.iter_mut().zip(log) {
            let ignored = |e: &Vec<String>| e.len() == 1 && e[0] == "IGNORED";
            if ignored(entry) && !ignored(other) {
                *entry = other.clone();
            }
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_split_at_the_last_colon() {
        let path = Path::new("x-epo.fif");
        let parsed = parse_event_id(path, "image/a:5;image:b:7;999999:999999").unwrap();
        assert_eq!(
            parsed,
            vec![
                ("image/a".to_string(), 5),
                ("image:b".to_string(), 7),
                ("999999".to_string(), 999999)
            ]
        );
        let err = parse_event_id(path, "a:1;b").unwrap_err().to_string();
        assert!(
            err.contains("x-epo.fif") && err.contains("event_id"),
            "{err}"
        );
    }

    #[test]
    fn next_parts_are_named_as_mne_names_them() {
        let p = Path::new("/d/preprocessed_P1-epo.fif");
        let by_number = |path: &str, n| next_part(Path::new(path), NextName::Number(n)).unwrap();
        assert_eq!(
            by_number("/d/preprocessed_P1-epo.fif", 1),
            Path::new("/d/preprocessed_P1-epo-1.fif")
        );
        assert_eq!(
            by_number("/d/preprocessed_P1-epo-1.fif", 2),
            Path::new("/d/preprocessed_P1-epo-2.fif")
        );
        assert!(next_part(p, NextName::Name("../etc/x.fif".into())).is_err());
    }

    #[test]
    fn strings_unescape_references_only_as_mne_does() {
        assert_eq!(fif_string(b"caf\xe9"), "caf\u{e9}");
        assert_eq!(fif_string(b"&#000956;V"), "\u{3bc}V");
        // No six-digit reference: left as written.
        assert_eq!(fif_string(b"&#956;V"), "&#956;V");
    }
}
