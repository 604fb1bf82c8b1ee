//! CIFTI-2 dense time series (`.dtseries.nii`), as the CC2017 video dataset and fMRIPrep
//! (`space-fsLR_den-91k_bold`) ship fMRI, and dense label files (`.dlabel.nii`: parcellations of
//! the grayordinates, [`CiftiLabels`]; a `CIFTI_INDEX_TYPE_LABELS` map in place of the series).
//!
//! A CIFTI-2 file is a single NIfTI-2 file (540-byte header, either byte order) whose header
//! extension of code 32 holds the CIFTI XML. The XML names what each matrix dimension indexes:
//! for a dense time series one `MatrixIndicesMap` of type `CIFTI_INDEX_TYPE_SERIES` (the time
//! points, with `SeriesStep` = TR) and one of type `CIFTI_INDEX_TYPE_BRAIN_MODELS` (the
//! grayordinates: surface vertices of each hemisphere, then subcortical voxels). The NIfTI
//! header stores CIFTI dimension 0 in `dim[5]` and dimension 1 in `dim[6]` (`dim[1..=4]` are 1,
//! `dim[0]` is 6) and, NIfTI being column-major, dimension 0 varies fastest in the file.
//! Workbench puts the series on dimension 0; the reader accepts either order and always hands
//! the data back as (time, grayordinates). [`write_dense_series`] writes the Workbench layout
//! (little-endian float32, series on dimension 0), which nibabel 5.4.2 reads back equal.

use crate::error::{DataError, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The NIfTI extension code of the CIFTI XML.
pub const CIFTI_EXTENSION_CODE: i32 = 32;
const NIFTI2_HEADER_SIZE: usize = 540;
const NIFTI1_HEADER_SIZE: i32 = 348;
/// Structures of the cortical surface models (the first 59,412 grayordinates of a
/// 91k-grayordinate file such as CC2017's).
pub const CORTEX: [&str; 2] = [
    "CIFTI_STRUCTURE_CORTEX_LEFT",
    "CIFTI_STRUCTURE_CORTEX_RIGHT",
];

/// Byte order of a NIfTI-2 header and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// Little-endian (`sizeof_hdr` reads 540 as little-endian).
    Little,
    /// Big-endian (`sizeof_hdr` reads 540 only byte-swapped).
    Big,
}

/// The NIfTI-2 header fields the reader uses, as stored on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Nifti2Header {
    /// Byte order of the file.
    pub endian: Endian,
    /// NIfTI datatype code (4 int16, 16 float32, 64 float64, ...).
    pub datatype: i16,
    /// `dim[0]` = number of dimensions, then the sizes; CIFTI's dimensions 0 and 1 are `dim[5]`,
    /// `dim[6]`.
    pub dim: [i64; 8],
    /// Byte offset of the data from the start of the file.
    pub vox_offset: i64,
    /// Data scaling slope (`value = stored · scl_slope + scl_inter`; 0 or non-finite means none, as
    /// nibabel).
    pub scl_slope: f64,
    /// Data scaling intercept.
    pub scl_inter: f64,
    /// 3002 for a dense time series (`NIFTI_INTENT_CONNECTIVITY_DENSE_SERIES`); not enforced.
    pub intent_code: i32,
}

/// The series map: time point `t` is at `(start + t * step) * 10^exponent` `unit`s.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesMap {
    /// Number of time points (`NumberOfSeriesPoints`).
    pub count: usize,
    /// `SeriesStart`, in units of 10^`exponent` `unit`.
    pub start: f64,
    /// `SeriesStep` (TR for a time series), in units of 10^`exponent` `unit`.
    pub step: f64,
    /// `SeriesExponent`: power of ten applied to `start` and `step`.
    pub exponent: i32,
    /// `SECOND`, `HERTZ`, `METER` or `RADIAN`.
    pub unit: String,
}

/// A brain model's kind (`ModelType` attribute of `BrainModel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelType {
    /// `CIFTI_MODEL_TYPE_SURFACE`: vertices of a surface mesh.
    Surface,
    /// `CIFTI_MODEL_TYPE_VOXELS`: voxels of the volume grid.
    Voxels,
}

/// One `BrainModel`: grayordinates `index_offset .. index_offset + index_count`.
#[derive(Debug, Clone, PartialEq)]
pub struct BrainModel {
    /// First grayordinate of the model (`IndexOffset`).
    pub index_offset: usize,
    /// Number of grayordinates of the model (`IndexCount`).
    pub index_count: usize,
    /// Surface vertices or volume voxels.
    pub model_type: ModelType,
    /// As in the file, e.g. `CIFTI_STRUCTURE_CORTEX_LEFT`.
    pub brain_structure: String,
    /// Surface models: vertices of the whole mesh.
    pub surface_number_of_vertices: Option<usize>,
    /// Surface models: the mesh vertex of each grayordinate.
    pub vertex_indices: Vec<usize>,
    /// Voxel models: the (i, j, k) voxel of each grayordinate.
    pub voxel_indices_ijk: Vec<[usize; 3]>,
}

/// The `Volume` element of the brain-models map (present when there are voxel models).
#[derive(Debug, Clone, PartialEq)]
pub struct CiftiVolume {
    /// Volume grid size (i, j, k) in voxels (`VolumeDimensions`).
    pub dimensions: [usize; 3],
    /// Row-major 4×4 voxel (i, j, k) → (x, y, z) in units of 10^meter_exponent m.
    pub ijk_to_xyz: [[f64; 4]; 4],
    /// `MeterExponent` of `TransformationMatrixVoxelIndicesIJKtoXYZ` (-3 for mm).
    pub meter_exponent: i32,
}

/// A CIFTI-2 dense time series held in memory.
#[derive(Debug, Clone)]
pub struct CiftiSeries {
    /// The file read.
    pub path: PathBuf,
    /// Its NIfTI-2 header.
    pub header: Nifti2Header,
    /// The time axis (`CIFTI_INDEX_TYPE_SERIES` map).
    pub series: SeriesMap,
    /// The CIFTI matrix dimension (0 or 1) the series runs along in the file.
    pub series_dimension: usize,
    /// In file order.
    pub brain_models: Vec<BrainModel>,
    /// The voxel grid of the voxel models, when there are any.
    pub volume: Option<CiftiVolume>,
    /// The CIFTI XML as stored (trailing padding removed).
    pub xml: String,
    n_grayordinates: usize,
    /// (time, grayordinates) row-major.
    data: Vec<f32>,
}

/// Columns of a [`CiftiSeries`] restricted to some brain structures.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Grayordinate index of each kept column, increasing.
    pub columns: Vec<usize>,
    /// The models kept, in file order (offsets still refer to the full file).
    pub models: Vec<BrainModel>,
    /// Number of time points (rows of `data`).
    pub n_time: usize,
    /// (time, columns) row-major.
    pub data: Vec<f32>,
}

/// One map of a dense label file: its name and its label table (key → name).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelMap {
    /// The map's `MapName`.
    pub name: String,
    /// Its label table: key → label name.
    pub labels: BTreeMap<i32, String>,
}

/// A CIFTI-2 dense label file (`.dlabel.nii`: a parcellation of the grayordinates, such as
/// HCP's or FreeSurfer's on fsLR), held in memory.
#[derive(Debug, Clone)]
pub struct CiftiLabels {
    /// The file read.
    pub path: PathBuf,
    /// One per label map (row of the label dimension), in file order.
    pub maps: Vec<LabelMap>,
    /// The grayordinates' brain models, in file order.
    pub brain_models: Vec<BrainModel>,
    /// The voxel grid of the voxel models, when there are any.
    pub volume: Option<CiftiVolume>,
    n_grayordinates: usize,
    /// (maps, grayordinates) row-major label keys.
    keys: Vec<i32>,
}

impl CiftiLabels {
    /// Reads a `.dlabel.nii`: the label tables, the brain models and every map's keys.
    pub fn read(path: &Path) -> Result<Self> {
        let what = "a CIFTI-2 dense label file (.dlabel.nii)";
        let m = read_matrix(path, what, "CIFTI_INDEX_TYPE_LABELS")?;
        let RowMap::Labels(maps) = m.parsed.rows else {
            unreachable!("parse_xml returns the row map asked for")
        };
        if maps.len() != m.n_rows {
            return Err(DataError::invalid(
                path,
                "CIFTI XML NamedMap",
                format!(
                    "{} (the data's length along the labels dimension)",
                    m.n_rows
                ),
                maps.len().to_string(),
            ));
        }
        let (values, n_gray) = (m.data, m.n_gray);
        let mut keys = Vec::with_capacity(values.len());
        for (i, v) in values.into_iter().enumerate() {
            if v.fract() != 0.0 || !v.is_finite() || v.abs() > i32::MAX as f32 {
                return Err(DataError::invalid(
                    path,
                    format!("map {} grayordinate {}", i / n_gray, i % n_gray),
                    "an integer label key",
                    v.to_string(),
                ));
            }
            keys.push(v as i32);
        }
        Ok(CiftiLabels {
            path: path.to_path_buf(),
            maps,
            brain_models: m.parsed.models,
            volume: m.parsed.volume,
            n_grayordinates: n_gray,
            keys,
        })
    }

    /// Number of grayordinates (columns of each map).
    pub fn n_grayordinates(&self) -> usize {
        self.n_grayordinates
    }

    /// Map `map`'s keys, one per grayordinate.
    pub fn keys(&self, map: usize) -> &[i32] {
        &self.keys[map * self.n_grayordinates..(map + 1) * self.n_grayordinates]
    }
}

impl CiftiSeries {
    /// Reads a `.dtseries.nii`: header, CIFTI XML, and all data (converted to f32, with
    /// `scl_slope`/`scl_inter` applied as nibabel's `get_fdata` does).
    pub fn read(path: &Path) -> Result<Self> {
        let what = "a CIFTI-2 dense time series (.dtseries.nii)";
        let m = read_matrix(path, what, "CIFTI_INDEX_TYPE_SERIES")?;
        let RowMap::Series(series) = m.parsed.rows else {
            unreachable!("parse_xml returns the row map asked for")
        };
        Ok(CiftiSeries {
            path: path.to_path_buf(),
            header: m.header,
            series,
            series_dimension: m.parsed.row_dimension,
            brain_models: m.parsed.models,
            volume: m.parsed.volume,
            xml: m.xml,
            n_grayordinates: m.n_gray,
            data: m.data,
        })
    }

    /// Number of time points (`NumberOfSeriesPoints`).
    pub fn n_time(&self) -> usize {
        self.series.count
    }

    /// Number of grayordinates (columns of [`Self::data`]).
    pub fn n_grayordinates(&self) -> usize {
        self.n_grayordinates
    }

    /// (time, grayordinates) row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The repetition time in seconds (`SeriesStep · 10^SeriesExponent`), when the series unit
    /// is `SECOND`.
    pub fn tr_seconds(&self) -> Option<f64> {
        (self.series.unit == "SECOND").then(|| self.series.step * 10f64.powi(self.series.exponent))
    }

    /// The columns of the models whose structure is one of `structures`, in file order.
    /// Names are the file's (`CIFTI_STRUCTURE_CORTEX_LEFT`) or without the prefix
    /// (`CORTEX_LEFT`); a name that no model of the file has is an error.
    pub fn select(&self, structures: &[&str]) -> Result<Selection> {
        let wanted: Vec<String> = structures.iter().map(|s| full_structure_name(s)).collect();
        for (name, asked) in wanted.iter().zip(structures) {
            if !self.brain_models.iter().any(|m| &m.brain_structure == name) {
                let have: Vec<&str> = self
                    .brain_models
                    .iter()
                    .map(|m| m.brain_structure.as_str())
                    .collect();
                return Err(DataError::invalid(
                    &self.path,
                    "BrainModel BrainStructure",
                    format!("one of the file's structures {have:?}"),
                    *asked,
                ));
            }
        }
        let mut models: Vec<BrainModel> = self
            .brain_models
            .iter()
            .filter(|m| wanted.contains(&m.brain_structure))
            .cloned()
            .collect();
        models.sort_by_key(|m| m.index_offset);
        let columns: Vec<usize> = models
            .iter()
            .flat_map(|m| m.index_offset..m.index_offset + m.index_count)
            .collect();
        Ok(Selection {
            data: self.gather(&columns),
            n_time: self.n_time(),
            columns,
            models,
        })
    }

    /// Left and right cortical surface vertices ([`CORTEX`]).
    pub fn cortex(&self) -> Result<Selection> {
        self.select(&CORTEX)
    }

    fn gather(&self, columns: &[usize]) -> Vec<f32> {
        let g = self.n_grayordinates;
        let mut out = Vec::with_capacity(self.n_time() * columns.len());
        for row in self.data.chunks_exact(g) {
            out.extend(columns.iter().map(|&c| row[c]));
        }
        out
    }
}

/// A CIFTI file's matrix: header, XML, maps and the data as (rows, grayordinates) row-major.
struct Matrix {
    header: Nifti2Header,
    xml: String,
    parsed: ParsedXml,
    n_rows: usize,
    n_gray: usize,
    data: Vec<f32>,
}

/// The XML, its maps, the matrix's (rows, grayordinates) and its number of values, of a file
/// whose `bytes` run at least to its data: checked that the values can be counted, that a
/// series map's length is the rows', and that the brain models tile the grayordinates.
fn matrix_layout(
    path: &Path,
    bytes: &[u8],
    header: &Nifti2Header,
    row_kind: Option<&str>,
) -> Result<(String, ParsedXml, (usize, usize), usize)> {
    let (n0, n1) = matrix_shape(path, header)?;
    let n = n0.checked_mul(n1).ok_or_else(|| {
        DataError::invalid(
            path,
            "dim[5..=6]",
            "a matrix that fits in memory",
            format!("{n0} × {n1}"),
        )
    })?;
    let xml = cifti_xml(path, bytes, header)?;
    let parsed = parse_xml(path, &xml, row_kind)?;
    let (n_rows, n_gray) = if parsed.row_dimension == 0 {
        (n0, n1)
    } else {
        (n1, n0)
    };
    if let RowMap::Series(series) = &parsed.rows {
        check_series(path, series, n_rows)?;
    }
    check_models(path, &parsed.models, parsed.volume.as_ref(), n_gray)?;
    Ok((xml, parsed, (n_rows, n_gray), n))
}

/// Reads a CIFTI-2 file whose maps are `row_kind` by brain models (checked to tile the data).
fn read_matrix(path: &Path, what: &str, row_kind: &str) -> Result<Matrix> {
    crate::error::require_file(path, what)?;
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let header = parse_header(path, &bytes)?;
    let (xml, parsed, (n_rows, n_gray), n) = matrix_layout(path, &bytes, &header, Some(row_kind))?;
    let raw = decode(path, &bytes, &header, n)?;
    let data = to_time_major(raw, n_rows, n_gray, parsed.row_dimension == 0);
    Ok(Matrix {
        header,
        xml,
        parsed,
        n_rows,
        n_gray,
        data,
    })
}

fn full_structure_name(name: &str) -> String {
    if name.starts_with("CIFTI_STRUCTURE_") {
        name.to_string()
    } else {
        format!("CIFTI_STRUCTURE_{name}")
    }
}

/// Endian-aware reads from a byte buffer (bounds are checked by the callers).
struct Reader<'a> {
    bytes: &'a [u8],
    endian: Endian,
}

impl Reader<'_> {
    fn take<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.bytes[at..at + N]);
        if self.endian == Endian::Big {
            a.reverse();
        }
        a
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.take(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.take(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.take(at))
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.take(at))
    }
}

/// Detects the byte order from `sizeof_hdr` and reads the NIfTI-2 fields (offsets of the
/// NIfTI-2 standard).
fn parse_header(path: &Path, bytes: &[u8]) -> Result<Nifti2Header> {
    if bytes.len() < 4 {
        return Err(DataError::invalid(
            path,
            "NIfTI-2 header",
            "540 bytes",
            format!("a {}-byte file", bytes.len()),
        ));
    }
    let size_le = i32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let size_be = i32::from_be_bytes(bytes[0..4].try_into().unwrap());
    let endian = if size_le == NIFTI2_HEADER_SIZE as i32 {
        Endian::Little
    } else if size_be == NIFTI2_HEADER_SIZE as i32 {
        Endian::Big
    } else if size_le == NIFTI1_HEADER_SIZE || size_be == NIFTI1_HEADER_SIZE {
        return Err(DataError::invalid(
            path,
            "sizeof_hdr",
            "540 (CIFTI-2 is stored in NIfTI-2)",
            "348 (a NIfTI-1 file)",
        ));
    } else {
        return Err(DataError::invalid(
            path,
            "sizeof_hdr",
            "540 (a NIfTI-2 file)",
            size_le.to_string(),
        ));
    };
    if bytes.len() < NIFTI2_HEADER_SIZE {
        return Err(DataError::invalid(
            path,
            "NIfTI-2 header",
            "540 bytes",
            format!("a truncated {}-byte file", bytes.len()),
        ));
    }
    let magic = &bytes[4..8];
    if magic != b"n+2\0" {
        let what = if magic == b"ni2\0" {
            "\"ni2\" (a .hdr/.img pair, which CIFTI does not use)".to_string()
        } else {
            format!("{:?}", String::from_utf8_lossy(magic))
        };
        return Err(DataError::invalid(
            path,
            "magic",
            "\"n+2\" (single-file NIfTI-2)",
            what,
        ));
    }
    let r = Reader { bytes, endian };
    let mut dim = [0i64; 8];
    for (i, d) in dim.iter_mut().enumerate() {
        *d = r.i64(16 + 8 * i);
    }
    Ok(Nifti2Header {
        endian,
        datatype: r.i16(12),
        dim,
        vox_offset: r.i64(168),
        scl_slope: r.f64(176),
        scl_inter: r.f64(184),
        intent_code: r.i32(504),
    })
}

/// (length of CIFTI dimension 0, length of CIFTI dimension 1) from `dim[5]`, `dim[6]`.
fn matrix_shape(path: &Path, h: &Nifti2Header) -> Result<(usize, usize)> {
    let d = h.dim;
    if d[0] != 6 {
        let found = if d[0] == 7 {
            "7 (a 3-D CIFTI matrix)".to_string()
        } else {
            d[0].to_string()
        };
        return Err(DataError::invalid(
            path,
            "dim[0]",
            "6 (a 2-D CIFTI matrix: series × grayordinates)",
            found,
        ));
    }
    if d[1..=4].iter().any(|&v| v != 1) {
        return Err(DataError::invalid(
            path,
            "dim[1..=4]",
            "[1, 1, 1, 1] (CIFTI keeps its dimensions in dim[5] and up)",
            format!("{:?}", &d[1..=4]),
        ));
    }
    let len = |i: usize| -> Result<usize> {
        usize::try_from(d[i])
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                DataError::invalid(
                    path,
                    format!("dim[{i}]"),
                    "a positive length",
                    d[i].to_string(),
                )
            })
    };
    Ok((len(5)?, len(6)?))
}

/// The text of the first extension with code 32.
fn cifti_xml(path: &Path, bytes: &[u8], h: &Nifti2Header) -> Result<String> {
    let r = Reader {
        bytes,
        endian: h.endian,
    };
    let end = usize::try_from(h.vox_offset).unwrap_or(usize::MAX);
    if end > bytes.len() || end < NIFTI2_HEADER_SIZE + 4 {
        return Err(DataError::invalid(
            path,
            "vox_offset",
            format!("an offset between 544 and the file size {}", bytes.len()),
            h.vox_offset.to_string(),
        ));
    }
    let no_extension = || {
        DataError::invalid(
            path,
            "NIfTI extensions",
            "a CIFTI extension (code 32) holding the CIFTI XML",
            "none",
        )
    };
    if bytes[NIFTI2_HEADER_SIZE] == 0 {
        return Err(no_extension());
    }
    let mut at = NIFTI2_HEADER_SIZE + 4;
    while at + 8 <= end {
        let esize = r.i32(at);
        let ecode = r.i32(at + 4);
        let size = usize::try_from(esize)
            .ok()
            .filter(|&s| s >= 8 && at + s <= end);
        let Some(size) = size else {
            return Err(DataError::invalid(
                path,
                format!("extension at byte {at}: esize"),
                format!("at least 8 and within vox_offset {end}"),
                esize.to_string(),
            ));
        };
        if ecode == CIFTI_EXTENSION_CODE {
            let content = &bytes[at + 8..at + size];
            let trimmed = match content.iter().rposition(|&b| b != 0) {
                Some(last) => &content[..=last],
                None => &[][..],
            };
            return String::from_utf8(trimmed.to_vec())
                .map_err(|e| DataError::format(path, "CIFTI XML", format!("not UTF-8 text: {e}")));
        }
        at += size;
    }
    Err(no_extension())
}

/// What the matrix dimension that is not the brain models indexes.
enum RowMap {
    Series(SeriesMap),
    Labels(Vec<LabelMap>),
    /// The maps' names.
    Scalars(Vec<String>),
}

struct ParsedXml {
    rows: RowMap,
    /// The CIFTI dimension (0 or 1) the rows run along.
    row_dimension: usize,
    models: Vec<BrainModel>,
    volume: Option<CiftiVolume>,
}

/// The row maps a file can hold beside its brain models: time series, labels, scalars.
const ROW_KINDS: [&str; 3] = [
    "CIFTI_INDEX_TYPE_SERIES",
    "CIFTI_INDEX_TYPE_LABELS",
    "CIFTI_INDEX_TYPE_SCALARS",
];

/// Finds the row map (`row_kind`, or any of [`ROW_KINDS`] when none) and the brain-models map.
fn parse_xml(path: &Path, xml: &str, row_kind: Option<&str>) -> Result<ParsedXml> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options)
        .map_err(|e| DataError::format(path, "CIFTI XML", e))?;
    let root = doc.root_element();
    if root.tag_name().name() != "CIFTI" {
        return Err(DataError::invalid(
            path,
            "CIFTI XML root element",
            "<CIFTI>",
            format!("<{}>", root.tag_name().name()),
        ));
    }
    let version = root.attribute("Version").unwrap_or("");
    if !version.starts_with('2') {
        return Err(DataError::invalid(path, "CIFTI Version", "2", version));
    }
    let matrix = child(path, root, "Matrix")?;
    let mut rows = None;
    let mut brain = None;
    let (wanted, file_kind) = match row_kind {
        Some("CIFTI_INDEX_TYPE_LABELS") => {
            ("one CIFTI_INDEX_TYPE_LABELS map", "a dense label file")
        }
        Some("CIFTI_INDEX_TYPE_SCALARS") => {
            ("one CIFTI_INDEX_TYPE_SCALARS map", "a dense scalar file")
        }
        Some(_) => ("one CIFTI_INDEX_TYPE_SERIES map", "a dense time series"),
        None => ("one series, labels or scalars map", "a CIFTI-2 file"),
    };
    let is_row_map = |k: &str| row_kind.map_or(ROW_KINDS.contains(&k), |r| r == k);
    for map in matrix
        .children()
        .filter(|n| n.has_tag_name("MatrixIndicesMap"))
    {
        let dims: Vec<usize> = attr_list(path, map, "AppliesToMatrixDimension")?;
        let kind = map.attribute("IndicesMapToDataType").unwrap_or("");
        match (kind, dims.as_slice()) {
            (k, [d]) if is_row_map(k) && rows.is_none() => rows = Some((*d, map, k)),
            ("CIFTI_INDEX_TYPE_BRAIN_MODELS", [d]) if brain.is_none() => brain = Some((*d, map)),
            _ => {
                return Err(DataError::invalid(
                    path,
                    "CIFTI XML MatrixIndicesMap",
                    format!(
                        "{wanted} and one CIFTI_INDEX_TYPE_BRAIN_MODELS map, \
                         each for one dimension ({file_kind})"
                    ),
                    format!("{kind} for dimensions {dims:?}"),
                ))
            }
        }
    }
    let (Some((row_dimension, row_map, found)), Some((brain_dimension, brain_map))) = (rows, brain)
    else {
        return Err(DataError::invalid(
            path,
            "CIFTI XML MatrixIndicesMap",
            format!("{wanted} and a CIFTI_INDEX_TYPE_BRAIN_MODELS map"),
            "fewer maps",
        ));
    };
    if row_dimension > 1 || brain_dimension != 1 - row_dimension {
        return Err(DataError::invalid(
            path,
            "CIFTI XML AppliesToMatrixDimension",
            "0 and 1 (one map each)",
            format!("rows {row_dimension}, brain models {brain_dimension}"),
        ));
    }
    let volume = match brain_map.children().find(|n| n.has_tag_name("Volume")) {
        Some(v) => Some(parse_volume(path, v)?),
        None => None,
    };
    let models = brain_map
        .children()
        .filter(|n| n.has_tag_name("BrainModel"))
        .enumerate()
        .map(|(i, m)| parse_model(path, i, m))
        .collect::<Result<Vec<_>>>()?;
    let rows = match found {
        "CIFTI_INDEX_TYPE_LABELS" => RowMap::Labels(parse_labels(path, row_map)?),
        "CIFTI_INDEX_TYPE_SCALARS" => RowMap::Scalars(
            row_map
                .children()
                .filter(|n| n.has_tag_name("NamedMap"))
                .map(|n| {
                    let name = n.children().find(|c| c.has_tag_name("MapName"));
                    name.and_then(|c| c.text()).unwrap_or("").trim().to_string()
                })
                .collect(),
        ),
        _ => RowMap::Series(parse_series(path, row_map)?),
    };
    Ok(ParsedXml {
        rows,
        row_dimension,
        models,
        volume,
    })
}

/// The `NamedMap`s of a labels map: each map's name and label table.
fn parse_labels(path: &Path, map: roxmltree::Node) -> Result<Vec<LabelMap>> {
    let mut maps = Vec::new();
    for named in map.children().filter(|n| n.has_tag_name("NamedMap")) {
        let name = named
            .children()
            .find(|n| n.has_tag_name("MapName"))
            .and_then(|n| n.text())
            .unwrap_or("")
            .trim()
            .to_string();
        let table = child(path, named, "LabelTable")?;
        let mut labels = BTreeMap::new();
        for label in table.children().filter(|n| n.has_tag_name("Label")) {
            let key: i32 = attr(path, label, "Key", "an integer")?;
            labels.insert(key, label.text().unwrap_or("").trim().to_string());
        }
        maps.push(LabelMap { name, labels });
    }
    Ok(maps)
}

fn child<'a, 'i>(
    path: &Path,
    node: roxmltree::Node<'a, 'i>,
    name: &str,
) -> Result<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|n| n.has_tag_name(name))
        .ok_or_else(|| {
            DataError::invalid(
                path,
                format!("CIFTI XML <{}>", node.tag_name().name()),
                format!("a <{name}> element"),
                "none",
            )
        })
}

/// A required attribute parsed as `T`.
fn attr<T: std::str::FromStr>(
    path: &Path,
    node: roxmltree::Node,
    name: &str,
    what: &str,
) -> Result<T> {
    let field = || format!("CIFTI XML <{}> {name}", node.tag_name().name());
    let text = node
        .attribute(name)
        .ok_or_else(|| DataError::invalid(path, field(), what, "no such attribute"))?;
    text.trim()
        .parse()
        .map_err(|_| DataError::invalid(path, field(), what, text))
}

/// A comma-separated attribute (AppliesToMatrixDimension, VolumeDimensions).
fn attr_list<T: std::str::FromStr>(
    path: &Path,
    node: roxmltree::Node,
    name: &str,
) -> Result<Vec<T>> {
    let field = || format!("CIFTI XML <{}> {name}", node.tag_name().name());
    let text = node.attribute(name).unwrap_or("");
    text.split(',')
        .map(|s| s.trim().parse())
        .collect::<std::result::Result<Vec<T>, _>>()
        .map_err(|_| DataError::invalid(path, field(), "comma-separated integers", text))
}

/// Whitespace-separated numbers in an element's text (VertexIndices, VoxelIndicesIJK, the
/// transformation matrix).
fn text_numbers<T: std::str::FromStr>(
    path: &Path,
    node: roxmltree::Node,
    field: &str,
) -> Result<Vec<T>> {
    node.text()
        .unwrap_or("")
        .split_whitespace()
        .map(|s| {
            s.parse()
                .map_err(|_| DataError::invalid(path, field, "whitespace-separated numbers", s))
        })
        .collect()
}

fn parse_series(path: &Path, map: roxmltree::Node) -> Result<SeriesMap> {
    let unit: String = attr(path, map, "SeriesUnit", "SECOND, HERTZ, METER or RADIAN")?;
    if !["SECOND", "HERTZ", "METER", "RADIAN"].contains(&unit.as_str()) {
        return Err(DataError::invalid(
            path,
            "CIFTI XML <MatrixIndicesMap> SeriesUnit",
            "SECOND, HERTZ, METER or RADIAN",
            unit,
        ));
    }
    Ok(SeriesMap {
        count: attr(path, map, "NumberOfSeriesPoints", "a non-negative integer")?,
        start: attr(path, map, "SeriesStart", "a number")?,
        step: attr(path, map, "SeriesStep", "a number")?,
        exponent: attr(path, map, "SeriesExponent", "an integer")?,
        unit,
    })
}

fn parse_volume(path: &Path, node: roxmltree::Node) -> Result<CiftiVolume> {
    let dims: Vec<usize> = attr_list(path, node, "VolumeDimensions")?;
    let Ok(dimensions) = <[usize; 3]>::try_from(dims.as_slice()) else {
        return Err(DataError::invalid(
            path,
            "CIFTI XML <Volume> VolumeDimensions",
            "3 integers",
            format!("{dims:?}"),
        ));
    };
    let tm = child(path, node, "TransformationMatrixVoxelIndicesIJKtoXYZ")?;
    let field = "CIFTI XML <TransformationMatrixVoxelIndicesIJKtoXYZ>";
    let values: Vec<f64> = text_numbers(path, tm, field)?;
    if values.len() != 16 {
        return Err(DataError::invalid(
            path,
            field,
            "16 numbers (a row-major 4×4 matrix)",
            format!("{} numbers", values.len()),
        ));
    }
    let mut ijk_to_xyz = [[0.0; 4]; 4];
    for (i, v) in values.iter().enumerate() {
        ijk_to_xyz[i / 4][i % 4] = *v;
    }
    Ok(CiftiVolume {
        dimensions,
        ijk_to_xyz,
        meter_exponent: attr(path, tm, "MeterExponent", "an integer")?,
    })
}

fn parse_model(path: &Path, i: usize, node: roxmltree::Node) -> Result<BrainModel> {
    let field = |what: &str| format!("CIFTI XML <BrainModel> #{i} {what}");
    let model_type = match node.attribute("ModelType") {
        Some("CIFTI_MODEL_TYPE_SURFACE") => ModelType::Surface,
        Some("CIFTI_MODEL_TYPE_VOXELS") => ModelType::Voxels,
        other => {
            return Err(DataError::invalid(
                path,
                field("ModelType"),
                "CIFTI_MODEL_TYPE_SURFACE or CIFTI_MODEL_TYPE_VOXELS",
                other.unwrap_or("no such attribute"),
            ))
        }
    };
    let mut model = BrainModel {
        index_offset: attr(path, node, "IndexOffset", "a non-negative integer")?,
        index_count: attr(path, node, "IndexCount", "a non-negative integer")?,
        model_type,
        brain_structure: attr(path, node, "BrainStructure", "a CIFTI_STRUCTURE_* name")?,
        surface_number_of_vertices: None,
        vertex_indices: Vec::new(),
        voxel_indices_ijk: Vec::new(),
    };
    match model_type {
        ModelType::Surface => {
            model.surface_number_of_vertices = Some(attr(
                path,
                node,
                "SurfaceNumberOfVertices",
                "a positive integer",
            )?);
            let list = child(path, node, "VertexIndices")?;
            model.vertex_indices = text_numbers(path, list, &field("VertexIndices"))?;
        }
        ModelType::Voxels => {
            let list = child(path, node, "VoxelIndicesIJK")?;
            let flat: Vec<usize> = text_numbers(path, list, &field("VoxelIndicesIJK"))?;
            if flat.len() % 3 != 0 {
                return Err(DataError::invalid(
                    path,
                    field("VoxelIndicesIJK"),
                    "i j k triples",
                    format!("{} numbers", flat.len()),
                ));
            }
            model.voxel_indices_ijk = flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
        }
    }
    Ok(model)
}

fn check_series(path: &Path, series: &SeriesMap, n_time: usize) -> Result<()> {
    if series.count != n_time {
        return Err(DataError::invalid(
            path,
            "CIFTI XML NumberOfSeriesPoints",
            format!("{n_time} (the data's length along the series dimension)"),
            series.count.to_string(),
        ));
    }
    Ok(())
}

/// The models must tile `0..n_gray` exactly, and each list must match its count and lie in
/// its surface or volume.
fn check_models(
    path: &Path,
    models: &[BrainModel],
    volume: Option<&CiftiVolume>,
    n_gray: usize,
) -> Result<()> {
    let mut order: Vec<&BrainModel> = models.iter().collect();
    order.sort_by_key(|m| m.index_offset);
    let mut next = 0usize;
    for m in order {
        let name = &m.brain_structure;
        if m.index_offset != next {
            let (expected, found) = if m.index_offset < next {
                ("ranges that do not overlap", "an overlap")
            } else {
                ("ranges without gaps", "a gap")
            };
            return Err(DataError::invalid(
                path,
                format!("BrainModel {name} IndexOffset"),
                format!("{next} ({expected})"),
                format!("{} ({found})", m.index_offset),
            ));
        }
        check_model_lists(path, m, volume)?;
        next = m.index_offset.saturating_add(m.index_count);
    }
    if next != n_gray {
        return Err(DataError::invalid(
            path,
            "BrainModel IndexOffset/IndexCount",
            format!("models covering the data's {n_gray} grayordinates"),
            format!("models covering {next}"),
        ));
    }
    Ok(())
}

fn check_model_lists(path: &Path, m: &BrainModel, volume: Option<&CiftiVolume>) -> Result<()> {
    let name = &m.brain_structure;
    let listed = match m.model_type {
        ModelType::Surface => m.vertex_indices.len(),
        ModelType::Voxels => m.voxel_indices_ijk.len(),
    };
    if listed != m.index_count {
        return Err(DataError::invalid(
            path,
            format!("BrainModel {name} IndexCount"),
            format!("the {listed} indices the model lists"),
            m.index_count.to_string(),
        ));
    }
    if let Some(n) = m.surface_number_of_vertices {
        if let Some(v) = m.vertex_indices.iter().find(|&&v| v >= n) {
            return Err(DataError::invalid(
                path,
                format!("BrainModel {name} VertexIndices"),
                format!("vertices below SurfaceNumberOfVertices {n}"),
                v.to_string(),
            ));
        }
    }
    if m.model_type == ModelType::Voxels {
        let Some(vol) = volume else {
            return Err(DataError::invalid(
                path,
                format!("BrainModel {name}"),
                "a <Volume> element in the brain-models map (voxel models need one)",
                "none",
            ));
        };
        let d = vol.dimensions;
        if let Some(v) = m
            .voxel_indices_ijk
            .iter()
            .find(|v| (0..3).any(|a| v[a] >= d[a]))
        {
            return Err(DataError::invalid(
                path,
                format!("BrainModel {name} VoxelIndicesIJK"),
                format!("voxels inside VolumeDimensions {d:?}"),
                format!("{v:?}"),
            ));
        }
    }
    Ok(())
}

/// The `n` stored values as f32, in file order, scaled like nibabel
/// ([`crate::nifti_io::effective_scaling`]: the product in f64, then rounded once). The
/// datatypes are the NIfTI-1 readers' ([`crate::nifti_io::DATATYPES`]), with `bitpix` checked
/// against them.
fn decode(path: &Path, bytes: &[u8], h: &Nifti2Header, n: usize) -> Result<Vec<f32>> {
    let datatype = crate::nifti_io::Datatype::of(path, h.datatype)?;
    let width = datatype.bytes;
    let bitpix = Reader {
        bytes,
        endian: h.endian,
    }
    .i16(14);
    if bitpix as usize != 8 * width {
        return Err(DataError::invalid(
            path,
            "bitpix",
            format!(
                "{} (datatype {} {})",
                8 * width,
                datatype.code,
                datatype.name
            ),
            bitpix.to_string(),
        ));
    }
    let start = h.vox_offset as usize;
    let needed = n.saturating_mul(width);
    let have = bytes.len() - start;
    if have < needed {
        return Err(DataError::invalid(
            path,
            "data",
            format!("{needed} bytes after vox_offset {start} ({n} values)"),
            format!("{have} bytes (truncated file)"),
        ));
    }
    let scaling = crate::nifti_io::effective_scaling(path, h.scl_slope, h.scl_inter)?;
    let big = h.endian == Endian::Big;
    let mut values = Vec::with_capacity(n);
    let mut chunk = Vec::new();
    for raw in bytes[start..start + needed].chunks(width << 14) {
        chunk.clear();
        datatype.decode_into(raw, big, scaling, &mut chunk);
        values.extend(chunk.iter().map(|&v| v as f32));
    }
    Ok(values)
}

/// File order (CIFTI dimension 0 fastest) → (time, grayordinates) row-major.
fn to_time_major(raw: Vec<f32>, n_time: usize, n_gray: usize, series_first: bool) -> Vec<f32> {
    if !series_first {
        // Grayordinates vary fastest: already one time point per row.
        return raw;
    }
    let mut out = vec![0f32; raw.len()];
    for (g, column) in raw.chunks_exact(n_time).enumerate() {
        for (t, &v) in column.iter().enumerate() {
            out[t * n_gray + g] = v;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// NIfTI-2's magic of a single file: `n+2\0` then the `\r\n\032\n` transfer check.
const NIFTI2_MAGIC: [u8; 8] = *b"n+2\0\r\n\x1a\n";
/// `NIFTI_INTENT_CONNECTIVITY_DENSE_SERIES`.
pub const INTENT_DENSE_SERIES: i32 = 3002;

/// Writes a CIFTI-2 dense time series as Workbench lays it out: little-endian NIfTI-2, float32,
/// the series on CIFTI dimension 0 (`dim[5]`, fastest in the file), the brain models on
/// dimension 1, `scl_slope` 1. `data` is (time, grayordinates) row-major; the models must tile
/// the grayordinates as [`CiftiSeries::read`] checks. Written atomically.
pub fn write_dense_series(
    path: &Path,
    series: &SeriesMap,
    models: &[BrainModel],
    volume: Option<&CiftiVolume>,
    data: &[f32],
) -> Result<()> {
    let rows = format!(
        "<MatrixIndicesMap AppliesToMatrixDimension=\"0\" IndicesMapToDataType=\"CIFTI_INDEX_TYPE_SERIES\" \
         NumberOfSeriesPoints=\"{}\" SeriesExponent=\"{}\" SeriesStart=\"{}\" SeriesStep=\"{}\" SeriesUnit=\"{}\"/>\n",
        series.count, series.exponent, series.start, series.step, series.unit
    );
    let kind = (INTENT_DENSE_SERIES, "ConnDenseSeries");
    write_matrix(path, &rows, kind, series.count, models, volume, data)
}

/// `NIFTI_INTENT_CONNECTIVITY_DENSE_SCALARS`.
pub const INTENT_DENSE_SCALARS: i32 = 3006;

/// Writes a CIFTI-2 dense scalar file (`.dscalar.nii`, maps such as R² over the
/// grayordinates, as Workbench shows them): the named maps on dimension 0, the brain models on
/// dimension 1, float32. `data` is (maps, grayordinates) row-major. Written atomically.
pub fn write_dense_scalars(
    path: &Path,
    names: &[String],
    models: &[BrainModel],
    volume: Option<&CiftiVolume>,
    data: &[f32],
) -> Result<()> {
    let maps: Vec<(&str, Option<&BTreeMap<i32, String>>)> =
        names.iter().map(|n| (n.as_str(), None)).collect();
    let rows = named_maps_xml("CIFTI_INDEX_TYPE_SCALARS", &maps);
    let kind = (INTENT_DENSE_SCALARS, "ConnDenseScalar");
    write_matrix(path, &rows, kind, names.len(), models, volume, data)
}

/// A dense scalar file: the maps' names, the brain models and (maps, grayordinates) values.
pub fn read_dense_scalars(path: &Path) -> Result<(Vec<String>, Vec<BrainModel>, Vec<f32>)> {
    let what = "a CIFTI-2 dense scalar file (.dscalar.nii)";
    let m = read_matrix(path, what, "CIFTI_INDEX_TYPE_SCALARS")?;
    let RowMap::Scalars(names) = m.parsed.rows else {
        unreachable!("parse_xml returns the row map asked for")
    };
    if names.len() != m.n_rows {
        return Err(DataError::invalid(
            path,
            "CIFTI XML NamedMap",
            format!(
                "{} (the data's length along the scalars dimension)",
                m.n_rows
            ),
            names.len().to_string(),
        ));
    }
    Ok((names, m.parsed.models, m.data))
}

/// What a CIFTI file holds, from its header and XML only (the data is not read).
#[derive(Debug, Clone)]
pub struct CiftiLayout {
    /// The brain models, in file order.
    pub models: Vec<BrainModel>,
    /// The voxel grid of the voxel models, when there are any.
    pub volume: Option<CiftiVolume>,
    /// Dense time series: the series map, checked against the matrix's size.
    pub series: Option<SeriesMap>,
    /// Number of grayordinates (the brain-models dimension's length).
    pub n_grayordinates: usize,
}

impl CiftiLayout {
    /// The repetition time in seconds of a dense time series whose unit is `SECOND`.
    pub fn tr_seconds(&self) -> Option<f64> {
        let s = self.series.as_ref()?;
        (s.unit == "SECOND").then(|| s.step * 10f64.powi(s.exponent))
    }
}

/// Reads a CIFTI file's header and XML (series, label or scalar maps by brain models), checking
/// the maps against the matrix's size, without reading its data: a run's length and
/// grayordinates before its hundreds of megabytes.
pub fn read_layout(path: &Path) -> Result<CiftiLayout> {
    use std::io::Read;
    crate::error::require_file(path, "a CIFTI-2 file")?;
    let read_prefix = |bytes: u64| {
        let mut prefix = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(bytes).read_to_end(&mut prefix))
            .map(|_| prefix)
            .map_err(|e| DataError::io(path, e))
    };
    let header = parse_header(path, &read_prefix(NIFTI2_HEADER_SIZE as u64)?)?;
    let length = std::fs::metadata(path)
        .map_err(|e| DataError::io(path, e))?
        .len();
    let end = u64::try_from(header.vox_offset)
        .unwrap_or(u64::MAX)
        .min(length);
    let (_, parsed, (_, n_gray), _) = matrix_layout(path, &read_prefix(end)?, &header, None)?;
    let series = match parsed.rows {
        RowMap::Series(series) => Some(series),
        _ => None,
    };
    Ok(CiftiLayout {
        models: parsed.models,
        volume: parsed.volume,
        series,
        n_grayordinates: n_gray,
    })
}

/// The brain models (and volume) of a CIFTI file of any kind, from its header and XML only.
pub fn read_brain_models(path: &Path) -> Result<(Vec<BrainModel>, Option<CiftiVolume>)> {
    let layout = read_layout(path)?;
    Ok((layout.models, layout.volume))
}

/// `NIFTI_INTENT_CONNECTIVITY_DENSE_LABELS`.
pub const INTENT_DENSE_LABELS: i32 = 3007;

/// Writes a CIFTI-2 dense label file (`.dlabel.nii`) as Workbench lays it out: the label maps
/// on dimension 0, the brain models on dimension 1, float32 keys. `keys` is (maps,
/// grayordinates) row-major. Written atomically.
pub fn write_dense_labels(
    path: &Path,
    maps: &[LabelMap],
    models: &[BrainModel],
    volume: Option<&CiftiVolume>,
    keys: &[i32],
) -> Result<()> {
    let named: Vec<(&str, Option<&BTreeMap<i32, String>>)> = maps
        .iter()
        .map(|m| (m.name.as_str(), Some(&m.labels)))
        .collect();
    let rows = named_maps_xml("CIFTI_INDEX_TYPE_LABELS", &named);
    let data: Vec<f32> = keys.iter().map(|&k| k as f32).collect();
    let kind = (INTENT_DENSE_LABELS, "ConnDenseLabel");
    write_matrix(path, &rows, kind, maps.len(), models, volume, &data)
}

/// Dimension 0's map of named maps (`kind` SCALARS or LABELS), each with its label table when
/// it has one.
fn named_maps_xml(kind: &str, maps: &[(&str, Option<&BTreeMap<i32, String>>)]) -> String {
    let escape = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut rows = format!(
        "<MatrixIndicesMap AppliesToMatrixDimension=\"0\" IndicesMapToDataType=\"{kind}\">\n"
    );
    for (name, labels) in maps {
        rows += &format!("<NamedMap>\n<MapName>{}</MapName>\n", escape(name));
        if let Some(labels) = labels {
            rows += "<LabelTable>\n";
            for (key, label) in labels.iter() {
                rows += &format!(
                    "<Label Key=\"{key}\" Red=\"1\" Green=\"1\" Blue=\"1\" Alpha=\"1\">{}</Label>\n",
                    escape(label)
                );
            }
            rows += "</LabelTable>\n";
        }
        rows += "</NamedMap>\n";
    }
    rows + "</MatrixIndicesMap>\n"
}

/// Writes a CIFTI-2 matrix: `rows` (the XML of dimension 0's map, `n_rows` long) by the brain
/// models, `data` (rows, grayordinates) row-major, little-endian float32 with the rows fastest
/// in the file.
fn write_matrix(
    path: &Path,
    rows: &str,
    (intent, intent_name): (i32, &str),
    n_rows: usize,
    models: &[BrainModel],
    volume: Option<&CiftiVolume>,
    data: &[f32],
) -> Result<()> {
    let n_gray: usize = models.iter().map(|m| m.index_count).sum();
    if n_rows == 0 || n_gray == 0 || data.len() != n_rows * n_gray {
        return Err(DataError::invalid(
            path,
            "data",
            format!("{n_rows} × {n_gray} values (rows × grayordinates), neither zero"),
            format!("{} values", data.len()),
        ));
    }
    check_models(path, models, volume, n_gray)?;
    let xml = matrix_xml(rows, models, volume);
    // The extension: esize, ecode, the XML, zero padding to a multiple of 16 bytes.
    let esize = (8 + xml.len() + 1).div_ceil(16) * 16;
    let vox_offset = NIFTI2_HEADER_SIZE + 4 + esize;
    let header = nifti2_header([n_rows, n_gray], vox_offset, intent, intent_name);
    brainrecon_core::fs::write_atomic(path, |w| {
        use std::io::Write;
        w.write_all(&header)?;
        w.write_all(&[1, 0, 0, 0])?;
        w.write_all(&(esize as i32).to_le_bytes())?;
        w.write_all(&CIFTI_EXTENSION_CODE.to_le_bytes())?;
        w.write_all(xml.as_bytes())?;
        w.write_all(&vec![0u8; esize - 8 - xml.len()])?;
        // File order: grayordinate-major, rows fastest.
        let mut column = Vec::with_capacity(n_rows * 4);
        for g in 0..n_gray {
            column.clear();
            for t in 0..n_rows {
                column.extend_from_slice(&data[t * n_gray + g].to_le_bytes());
            }
            w.write_all(&column)?;
        }
        Ok(())
    })
}

/// The 540-byte little-endian NIfTI-2 header of a float32 (n0, n1) CIFTI matrix.
fn nifti2_header(
    [n0, n1]: [usize; 2],
    vox_offset: usize,
    intent: i32,
    intent_name: &str,
) -> Vec<u8> {
    let mut h = vec![0u8; NIFTI2_HEADER_SIZE];
    let mut put = |at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &(NIFTI2_HEADER_SIZE as i32).to_le_bytes());
    put(4, &NIFTI2_MAGIC);
    put(12, &16i16.to_le_bytes()); // datatype float32
    put(14, &32i16.to_le_bytes()); // bitpix
    let dim: [i64; 8] = [6, 1, 1, 1, 1, n0 as i64, n1 as i64, 1];
    for (i, d) in dim.iter().enumerate() {
        put(16 + 8 * i, &d.to_le_bytes());
    }
    for i in 0..8 {
        put(104 + 8 * i, &1f64.to_le_bytes()); // pixdim
    }
    put(168, &(vox_offset as i64).to_le_bytes());
    put(176, &1f64.to_le_bytes()); // scl_slope
    put(504, &intent.to_le_bytes());
    put(508, intent_name.as_bytes());
    h
}

/// The CIFTI-2 XML of a matrix: `rows` (dimension 0's map) then the brain models on
/// dimension 1. Numbers are written in Rust's shortest round-trip form, so they read back
/// exactly.
fn matrix_xml(rows: &str, models: &[BrainModel], volume: Option<&CiftiVolume>) -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CIFTI Version=\"2\">\n<Matrix>\n",
    );
    x += rows;
    x += "<MatrixIndicesMap AppliesToMatrixDimension=\"1\" IndicesMapToDataType=\"CIFTI_INDEX_TYPE_BRAIN_MODELS\">\n";
    if let Some(v) = volume {
        let d = v.dimensions;
        let matrix: Vec<String> = v
            .ijk_to_xyz
            .iter()
            .flatten()
            .map(|m| m.to_string())
            .collect();
        x += &format!(
            "<Volume VolumeDimensions=\"{},{},{}\">\n<TransformationMatrixVoxelIndicesIJKtoXYZ MeterExponent=\"{}\">{}</TransformationMatrixVoxelIndicesIJKtoXYZ>\n</Volume>\n",
            d[0], d[1], d[2], v.meter_exponent, matrix.join(" ")
        );
    }
    for m in models {
        x += &brain_model_xml(m);
    }
    x += "</MatrixIndicesMap>\n</Matrix>\n</CIFTI>\n";
    x
}

fn brain_model_xml(m: &BrainModel) -> String {
    let join = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(" ");
    let (kind, extra, body) = match m.model_type {
        ModelType::Surface => (
            "CIFTI_MODEL_TYPE_SURFACE",
            format!(
                " SurfaceNumberOfVertices=\"{}\"",
                m.surface_number_of_vertices.unwrap_or(0)
            ),
            format!(
                "<VertexIndices>{}</VertexIndices>",
                join(&mut m.vertex_indices.iter().map(|v| v.to_string()))
            ),
        ),
        ModelType::Voxels => (
            "CIFTI_MODEL_TYPE_VOXELS",
            String::new(),
            format!(
                "<VoxelIndicesIJK>{}</VoxelIndicesIJK>",
                m.voxel_indices_ijk
                    .iter()
                    .map(|[i, j, k]| format!("{i} {j} {k}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        ),
    };
    format!(
        "<BrainModel IndexOffset=\"{}\" IndexCount=\"{}\" ModelType=\"{kind}\" BrainStructure=\"{}\"{extra}>\n{body}\n</BrainModel>\n",
        m.index_offset, m.index_count, m.brain_structure
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_major_transposes_series_first_layout() {
        // Two grayordinates, three time points, time fastest in the file.
        let raw = vec![1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
        assert_eq!(
            to_time_major(raw.clone(), 3, 2, true),
            vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0]
        );
        assert_eq!(to_time_major(raw.clone(), 3, 2, false), raw);
    }

    #[test]
    fn structure_names_accept_short_form() {
        assert_eq!(full_structure_name("CORTEX_LEFT"), CORTEX[0]);
        assert_eq!(full_structure_name(CORTEX[1]), CORTEX[1]);
    }

    #[test]
    fn scaling_follows_nibabel_rules() {
        let p = Path::new("x.dtseries.nii");
        let scaling = crate::nifti_io::effective_scaling;
        assert_eq!(scaling(p, f64::NAN, 5.0).unwrap(), (1.0, 0.0));
        assert_eq!(scaling(p, 0.0, 5.0).unwrap(), (1.0, 0.0));
        assert_eq!(scaling(p, 2.0, 5.0).unwrap(), (2.0, 5.0));
        let err = scaling(p, 2.0, f64::NAN).unwrap_err().to_string();
        assert!(
            err.contains("x.dtseries.nii") && err.contains("scl_inter"),
            "{err}"
        );
    }
}

/// The CC2017 dataset's file layout (Wen et al. 2018, "video_fmri_dataset"): per subject,
/// training segments `subjectN/fmri/segK/cifti/segK_R_Atlas.dtseries.nii` (K = 1..=18, R = 1..=2)
/// and test segments `subjectN/fmri/testK/cifti/testK_R_Atlas.dtseries.nii` (K = 1..=5,
/// R = 1..=10).
///
/// Taken from the dataset authors' processing code and the published description; not checked
/// against the real files here. Also from that code but NOT applied by this module (it is by
/// `brainrecon_datasets::cc2017`): the runs hold 245 volumes (training, test1) or 246
/// (test2..test5), of which the authors keep 240 (dropping the first 1 or 2 and the last 4).
pub mod cc2017 {
    use crate::error::{DataError, Result};
    use std::path::{Path, PathBuf};

    /// Training segments (`seg1` .. `seg18`).
    pub const TRAIN_SEGMENTS: usize = 18;
    /// Times each training segment was shown.
    pub const TRAIN_REPETITIONS: usize = 2;
    /// Test segments (`test1` .. `test5`).
    pub const TEST_SEGMENTS: usize = 5;
    /// Times each test segment was shown.
    pub const TEST_REPETITIONS: usize = 10;

    /// The design's two splits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Split {
        /// `segK` folders: 18 segments shown twice.
        Train,
        /// `testK` folders: 5 segments shown ten times.
        Test,
    }

    impl Split {
        /// The folder prefix: `seg` or `test`.
        pub fn prefix(self) -> &'static str {
            match self {
                Split::Train => "seg",
                Split::Test => "test",
            }
        }

        /// `train` or `test`: the split's name in tables (the video route's captions).
        pub fn name(self) -> &'static str {
            match self {
                Split::Train => "train",
                Split::Test => "test",
            }
        }

        /// The split named [`Split::name`].
        pub fn from_name(name: &str) -> Option<Self> {
            [Split::Train, Split::Test]
                .into_iter()
                .find(|s| s.name() == name)
        }

        /// (segments, repetitions) of the published design.
        pub fn design(self) -> (usize, usize) {
            match self {
                Split::Train => (TRAIN_SEGMENTS, TRAIN_REPETITIONS),
                Split::Test => (TEST_SEGMENTS, TEST_REPETITIONS),
            }
        }
    }

    /// One recording: a segment (1-based) seen for the `repetition`-th time (1-based).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Run {
        /// Training or test.
        pub split: Split,
        /// Segment number, 1-based (`segK`, `testK`).
        pub segment: usize,
        /// Repetition of the segment, 1-based (the `_R_` of the file name).
        pub repetition: usize,
        /// `.../cifti/<folder>_<R>_Atlas.dtseries.nii`.
        pub path: PathBuf,
    }

    /// `<root>/subject<subject>/fmri`.
    pub fn fmri_dir(root: &Path, subject: usize) -> PathBuf {
        root.join(format!("subject{subject}")).join("fmri")
    }

    /// Where a run's file lies (whether or not it exists).
    pub fn run_path(
        root: &Path,
        subject: usize,
        split: Split,
        segment: usize,
        rep: usize,
    ) -> PathBuf {
        let folder = format!("{}{segment}", split.prefix());
        fmri_dir(root, subject)
            .join(&folder)
            .join("cifti")
            .join(format!("{folder}_{rep}_Atlas.dtseries.nii"))
    }

    /// Every run of the published design for one subject and split, segment-major
    /// (segment 1 repetitions 1.., segment 2 ...). Any missing file is an error naming the
    /// first one missing and how many are.
    pub fn runs(root: &Path, subject: usize, split: Split) -> Result<Vec<Run>> {
        let (segments, repetitions) = split.design();
        runs_in(root, subject, split, segments, repetitions)
    }

    /// As [`runs`] for a design of `segments` × `repetitions` (a smaller simulated dataset).
    pub fn runs_in(
        root: &Path,
        subject: usize,
        split: Split,
        segments: usize,
        repetitions: usize,
    ) -> Result<Vec<Run>> {
        let dir = fmri_dir(root, subject);
        if !dir.is_dir() {
            return Err(DataError::Missing {
                path: dir,
                what: format!(
                    "the CC2017 subject folder (subject{subject}/fmri under the dataset root)"
                ),
            });
        }
        // Counts come from design.json: a product that wraps would loop for ever.
        let total = (segments as u64).saturating_mul(repetitions as u64);
        crate::limits::VOLUMES.check(&dir, "segments × repetitions", total)?;
        let mut runs = Vec::with_capacity(total as usize);
        let mut missing = Vec::new();
        for segment in 1..=segments {
            for repetition in 1..=repetitions {
                let path = run_path(root, subject, split, segment, repetition);
                if !path.is_file() {
                    missing.push((segment, repetition, path.clone()));
                }
                runs.push(Run {
                    split,
                    segment,
                    repetition,
                    path,
                });
            }
        }
        if let Some((segment, repetition, path)) = missing.first().cloned() {
            return Err(DataError::Missing {
                path,
                what: format!(
                    "the CIFTI file of {} segment {segment} repetition {repetition} \
                     ({} of the {} {segments}×{repetitions} files are missing)",
                    split.prefix(),
                    missing.len(),
                    segments * repetitions,
                ),
            });
        }
        Ok(runs)
    }
}
