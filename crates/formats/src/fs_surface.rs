//! FreeSurfer's surface files as `recon-all` writes them and NSD ships them
//! (`nsddata/freesurfer/subjXX/surf/`): triangle meshes (`lh.white`, `lh.pial`, `lh.inflated`,
//! `lh.sphere`), per-vertex morphometry (`lh.curv`, `lh.sulc`, `lh.thickness`) and patches
//! (`lh.full.flat.patch.3d`), read as nibabel's `freesurfer.io` and FreeSurfer's `read_patch.m`
//! read them.
//!
//! ```text
//! triangle surface  FF FF FE, "created by …\n\n", vertices: i32, faces: i32,
//!                   vertices × 3 f32, faces × 3 i32 (0-based), then optional volume info
//!                   ("valid = 1", …, "cras = x y z": the surface's RAS is tkregister RAS,
//!                   scanner RAS = tkregister RAS + cras)
//! curv (new)        FF FF FF, vertices: i32, faces: i32, values per vertex: i32 (1),
//!                   vertices × f32
//! curv (old)        vertices: 3 bytes, faces: 3 bytes, vertices × i16 (value × 100)
//! patch (new)       -1: i32, points: i32, points × (index: i32, x, y, z: f32); index > 0 is
//!                   vertex index − 1, index < 0 is vertex −index − 1 on the cut's border
//! patch (old)       points: i32 (≥ 0), points × (index: i32, x, y, z: i16 in 1/100 mm)
//! annotation        vertices: i32, vertices × (vertex: i32, value: i32), has colour table:
//!                   i32, then either (old) entries: i32 > 0, name length: i32, name,
//!                   entries × (length: i32, name, r, g, b, t: i32), or (new) -2: i32,
//!                   max index: i32, name length: i32, name, entries: i32,
//!                   entries × (index: i32, length: i32, name, r, g, b, t: i32);
//!                   a vertex's value is r + g·2⁸ + b·2¹⁶ of its entry
//! ```
//! The `.annot` layout is FreeSurfer's `MRISreadAnnotation`, read as nibabel's `read_annot`.
//! Everything is big-endian. A patch holds no faces: they are the full surface's faces whose
//! three vertices are all in the patch ([`Patch::faces`]). Counts read from a file are checked
//! against its length and the limits before anything is allocated.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::limits;

const TRIANGLE_MAGIC: u32 = 0x00FF_FFFE;
const CURV_MAGIC: u32 = 0x00FF_FFFF;
/// Rows a version-2 colour table may claim: it is allocated whole before its entries are read,
/// so a 40-byte file could otherwise ask for gigabytes.
const MAX_CTAB_ROWS: usize = 1 << 20;

/// A triangle mesh.
#[derive(Clone, Debug, PartialEq)]
pub struct Surface {
    /// [vertices, 3], mm (tkregister RAS for FreeSurfer's own surfaces).
    pub vertices: Vec<[f32; 3]>,
    /// [faces, 3], 0-based vertex indices.
    pub faces: Vec<[u32; 3]>,
    /// The volume info's `cras` (scanner RAS = surface RAS + cras), when the file has one.
    pub c_ras: Option<[f64; 3]>,
}

/// A patch of a surface: some of its vertices with new coordinates (a flat map's x, y).
#[derive(Clone, Debug, PartialEq)]
pub struct Patch {
    /// The surface's vertex of each point.
    pub vertices: Vec<u32>,
    /// [points, 3]: the point's coordinates in the patch (z = 0 on a flat patch).
    pub coords: Vec<[f32; 3]>,
    /// Whether the point lies on the border of the cut.
    pub border: Vec<bool>,
}

/// A surface atlas (`lh.aparc.annot`, HCP-MMP1 on fsaverage): one region per vertex and the
/// regions' colour table, as nibabel's `freesurfer.read_annot` returns them.
#[derive(Clone, Debug, PartialEq)]
pub struct Annotation {
    /// `[vertices]`: the row of [`Annotation::ctab`] of each vertex's region; -1 where the
    /// vertex has no region (value 0, or a value that no entry has).
    pub labels: Vec<i32>,
    /// [entries, 5]: red, green, blue, transparency (0–255) and the packed value
    /// r + g·2⁸ + b·2¹⁶ that the file stores per vertex. Rows the file leaves out are zero.
    pub ctab: Vec<[i32; 5]>,
    /// The region names, in the file's order (nibabel's `names`; for the usual files, whose
    /// entries come in index order, row `i` of `ctab` is named `names[i]`).
    pub names: Vec<String>,
    /// The row of `ctab` that each of `names` describes.
    pub name_rows: Vec<usize>,
}

/// A big-endian cursor over a file's bytes that names the file in its errors.
struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(path: &'a Path, bytes: &'a [u8]) -> Self {
        Reader {
            path,
            bytes,
            pos: 0,
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(DataError::invalid(
                self.path,
                field,
                format!("{n} more bytes"),
                format!("{} (the file is cut short)", self.remaining()),
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u24(&mut self, field: &str) -> Result<u32> {
        let b = self.take(3, field)?;
        Ok(u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]))
    }

    fn i32(&mut self, field: &str) -> Result<i32> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-prefixed name (`length: i32`, then `length` bytes, NUL padding dropped).
    fn name(&mut self, field: &str) -> Result<String> {
        let n = self.count(field, 1)?;
        let bytes = self.take(n, field)?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
    }

    /// A count: non-negative, and `count × bytes_each` no more than the bytes left.
    fn count(&mut self, field: &str, bytes_each: usize) -> Result<usize> {
        let n = self.i32(field)?;
        self.count_of(n as i64, field, bytes_each)
    }

    fn count_of(&self, n: i64, field: &str, bytes_each: usize) -> Result<usize> {
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(bytes_each).map(|bytes| (n, bytes)))
            .filter(|&(_, bytes)| bytes <= self.remaining());
        match fits {
            Some((n, _)) => {
                limits::array_bytes(self.path, field, &[n as u64], bytes_each as u64)?;
                Ok(n)
            }
            None => Err(DataError::invalid(
                self.path,
                field,
                format!(
                    "a count whose {bytes_each}-byte records fit in the {} bytes left",
                    self.remaining()
                ),
                n.to_string(),
            )),
        }
    }

    fn f32s(&mut self, n: usize, field: &str) -> Result<Vec<f32>> {
        let bytes = self.take(n * 4, field)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Bytes up to and including the next `\n` (or to the end).
    fn line(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        self.pos += n;
        &rest[..n]
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// Reads a FreeSurfer triangle surface (`lh.white`, `lh.inflated`, …).
pub fn read_surface(path: &Path) -> Result<Surface> {
    parse_surface(path, &read_bytes(path)?)
}

/// [`read_surface`] of bytes already in memory; `path` names them in errors.
pub fn parse_surface(path: &Path, bytes: &[u8]) -> Result<Surface> {
    let mut r = Reader::new(path, bytes);
    let magic = r.u24("magic number")?;
    if magic != TRIANGLE_MAGIC {
        return Err(DataError::invalid(
            path,
            "magic number",
            "FF FF FE (a FreeSurfer triangle surface)",
            format!("{magic:06X}"),
        ));
    }
    // the "created by" stamp ends with two newlines
    r.line();
    r.line();
    let n_vertices = r.i32("vertex count")?;
    let n_faces = r.i32("face count")?;
    let n_vertices = r.count_of(n_vertices as i64, "vertex count", 12)?;
    let coords = r.f32s(n_vertices * 3, "vertex coordinates")?;
    let n_faces = r.count_of(n_faces as i64, "face count", 12)?;
    let mut faces = Vec::with_capacity(n_faces);
    for f in 0..n_faces {
        let mut face = [0u32; 3];
        for v in &mut face {
            let index = r.i32("faces")?;
            *v = u32::try_from(index)
                .ok()
                .filter(|&i| (i as usize) < n_vertices)
                .ok_or_else(|| {
                    DataError::invalid(
                        path,
                        format!("face {f}"),
                        format!("vertex indices below {n_vertices}"),
                        index.to_string(),
                    )
                })?;
        }
        faces.push(face);
    }
    let vertices = coords.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    Ok(Surface {
        vertices,
        faces,
        c_ras: volume_info_cras(&bytes[r.pos..]),
    })
}

/// The `cras` line of the volume info after the faces, if there is one that reads.
fn volume_info_cras(tail: &[u8]) -> Option<[f64; 3]> {
    let text = std::str::from_utf8(tail.get(4..)?).ok()?;
    let line = text.lines().find(|l| l.trim_start().starts_with("cras"))?;
    let values: Vec<f64> = line
        .split_once('=')?
        .1
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    match values[..] {
        [x, y, z] if values.iter().all(|v| v.is_finite()) => Some([x, y, z]),
        _ => None,
    }
}

/// Reads per-vertex values in FreeSurfer's curv format (`lh.curv`, `lh.sulc`,
/// `lh.thickness`), new or old.
pub fn read_morph(path: &Path) -> Result<Vec<f32>> {
    parse_morph(path, &read_bytes(path)?)
}

/// [`read_morph`] of bytes already in memory.
pub fn parse_morph(path: &Path, bytes: &[u8]) -> Result<Vec<f32>> {
    let mut r = Reader::new(path, bytes);
    let first = r.u24("magic number")?;
    if first == CURV_MAGIC {
        let n = r.i32("vertex count")?;
        let _faces = r.i32("face count")?;
        let per_vertex = r.i32("values per vertex")?;
        if per_vertex != 1 {
            return Err(DataError::invalid(
                path,
                "values per vertex",
                "1",
                per_vertex.to_string(),
            ));
        }
        let n = r.count_of(n as i64, "vertex count", 4)?;
        return r.f32s(n, "values");
    }
    // the old format: the first three bytes are the vertex count
    let _faces = r.u24("face count")?;
    let n = r.count_of(first as i64, "vertex count (old curv format)", 2)?;
    let bytes = r.take(n * 2, "values")?;
    Ok(bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_be_bytes([b[0], b[1]])) / 100.0)
        .collect())
}

/// Reads a FreeSurfer patch (`lh.full.flat.patch.3d`).
pub fn read_patch(path: &Path) -> Result<Patch> {
    parse_patch(path, &read_bytes(path)?)
}

/// [`read_patch`] of bytes already in memory: the new format (first word -1, float
/// coordinates) or the old one FreeSurfer still reads (first word the point count, coordinates
/// as int16 hundredths of a millimetre).
pub fn parse_patch(path: &Path, bytes: &[u8]) -> Result<Patch> {
    let mut r = Reader::new(path, bytes);
    let first = r.i32("version")?;
    let old = first >= 0;
    let n = match first {
        -1 => r.count("point count", 16)?,
        n if n >= 0 => r.count_of(i64::from(n), "point count (old patch format)", 10)?,
        other => {
            return Err(DataError::invalid(
                path,
                "version",
                "-1 (a FreeSurfer patch) or a point count ≥ 0 (the old patch format)",
                other.to_string(),
            ))
        }
    };
    let mut patch = Patch {
        vertices: Vec::with_capacity(n),
        coords: Vec::with_capacity(n),
        border: Vec::with_capacity(n),
    };
    for p in 0..n {
        let index = r.i32("points")?;
        let xyz = if old {
            let b = r.take(6, "points")?;
            b.chunks_exact(2)
                .map(|c| f32::from(i16::from_be_bytes([c[0], c[1]])) / 100.0)
                .collect()
        } else {
            r.f32s(3, "points")?
        };
        let (vertex, border) = match index {
            i if i > 0 => (i - 1, false),
            i if i < 0 => (-(i + 1), true),
            _ => return Err(DataError::invalid(
                path,
                format!("point {p}"),
                "a vertex index other than 0 (indices are stored from 1, negated on the border)",
                "0",
            )),
        };
        patch.vertices.push(vertex as u32);
        patch.coords.push([xyz[0], xyz[1], xyz[2]]);
        patch.border.push(border);
    }
    Ok(patch)
}

/// Reads a FreeSurfer annotation (`lh.aparc.annot`, `lh.HCP-MMP1.annot`): old- or new-format
/// colour table. `vertices` is the surface's vertex count when known: the file's count must
/// equal it.
///
/// # Errors
/// [`DataError`] naming the file and field: cut short, a count past the file's length or the
/// limits, a vertex index outside the count, a colour-table version other than 2, an entry
/// index outside the table, or a vertex count other than `vertices`.
pub fn read_annot(path: &Path, vertices: Option<usize>) -> Result<Annotation> {
    let annotation = parse_annot(path, &read_bytes(path)?)?;
    if let Some(n) = vertices {
        if annotation.labels.len() != n {
            return Err(DataError::invalid(
                path,
                "vertex count",
                format!("{n} (the surface's)"),
                annotation.labels.len().to_string(),
            ));
        }
    }
    Ok(annotation)
}

/// [`read_annot`] of bytes already in memory.
pub fn parse_annot(path: &Path, bytes: &[u8]) -> Result<Annotation> {
    let mut r = Reader::new(path, bytes);
    let n = r.count("vertex count", 8)?;
    // Values are placed by the vertex each pair names; every file FreeSurfer writes lists the
    // vertices in order, which is all nibabel reads.
    let mut values = vec![0i32; n];
    for _ in 0..n {
        let vertex = r.i32("vertex values")?;
        let value = r.i32("vertex values")?;
        let slot = usize::try_from(vertex)
            .ok()
            .and_then(|v| values.get_mut(v))
            .ok_or_else(|| {
                DataError::invalid(
                    path,
                    "vertex values",
                    format!("vertex indices below {n}"),
                    vertex.to_string(),
                )
            })?;
        *slot = value;
    }
    if r.remaining() == 0 || r.i32("colour table flag")? == 0 {
        return Err(DataError::invalid(
            path,
            "colour table flag",
            "1 and a colour table (nibabel refuses an annotation without one too)",
            "none",
        ));
    }
    let entries = r.i32("colour table entries")?;
    let (mut ctab, names, name_rows) = if entries > 0 {
        let n = r.count_of(i64::from(entries), "colour table entries", 20)?;
        let _table_file = r.name("colour table file name")?;
        let mut ctab = Vec::with_capacity(n);
        let mut names = Vec::with_capacity(n);
        for _ in 0..n {
            names.push(r.name("colour table entry name")?);
            ctab.push(rgbt(&mut r)?);
        }
        (ctab, names, (0..n).collect())
    } else {
        if entries != -2 {
            return Err(DataError::invalid(
                path,
                "colour table version",
                "-2 (version 2) or a positive entry count (the old format)",
                entries.to_string(),
            ));
        }
        let rows = r.i32("colour table max index")?;
        let rows = usize::try_from(rows)
            .ok()
            .filter(|&n| n <= MAX_CTAB_ROWS)
            .ok_or_else(|| {
                DataError::invalid(
                    path,
                    "colour table max index",
                    format!("0 to {MAX_CTAB_ROWS} (FreeSurferColorLUT's largest index is 14175)"),
                    rows.to_string(),
                )
            })?;
        let _table_file = r.name("colour table file name")?;
        let listed = r.count("colour table entries", 24)?;
        let mut ctab = vec![[0i32; 5]; rows];
        let mut names = Vec::with_capacity(listed);
        let mut name_rows = Vec::with_capacity(listed);
        for _ in 0..listed {
            let index = r.i32("colour table entry index")?;
            names.push(r.name("colour table entry name")?);
            let row = usize::try_from(index)
                .ok()
                .and_then(|i| ctab.get_mut(i))
                .ok_or_else(|| {
                    DataError::invalid(
                        path,
                        "colour table entry index",
                        format!("an index below the table's max index {rows}"),
                        index.to_string(),
                    )
                })?;
            *row = rgbt(&mut r)?;
            name_rows.push(index as usize);
        }
        (ctab, names, name_rows)
    };
    for row in &mut ctab {
        row[4] = row[0]
            .wrapping_add(row[1].wrapping_mul(1 << 8))
            .wrapping_add(row[2].wrapping_mul(1 << 16));
    }
    // A vertex's row is the entry with its value; the lowest row wins where two share one.
    let mut by_value: Vec<(i32, usize)> = ctab.iter().enumerate().map(|(i, e)| (e[4], i)).collect();
    by_value.sort_unstable();
    let labels = values
        .iter()
        .map(|&v| {
            if v == 0 {
                return -1;
            }
            match by_value.binary_search_by(|&(value, _)| value.cmp(&v)) {
                Ok(k) => {
                    let first = by_value[..k].partition_point(|&(value, _)| value < v);
                    by_value[first].1 as i32
                }
                Err(_) => -1,
            }
        })
        .collect();
    Ok(Annotation {
        labels,
        ctab,
        names,
        name_rows,
    })
}

/// One colour table entry's red, green, blue and transparency; the packed value is set later.
fn rgbt(r: &mut Reader) -> Result<[i32; 5]> {
    let mut entry = [0i32; 5];
    for c in &mut entry[..4] {
        *c = r.i32("colour table entry colour")?;
    }
    Ok(entry)
}

impl Patch {
    /// The faces of `surface` whose three vertices are all in the patch (pycortex's and
    /// FreeSurfer's rule), refusing a patch of another surface: a vertex past the surface's
    /// count. `path` names the patch in the error.
    pub fn faces(&self, surface: &Surface, path: &Path) -> Result<Vec<[u32; 3]>> {
        let n = surface.vertices.len();
        let mut inside = vec![false; n];
        for &v in &self.vertices {
            let slot = inside.get_mut(v as usize).ok_or_else(|| {
                DataError::invalid(
                    path,
                    "points",
                    format!("vertices of the surface ({n} vertices): a patch of this surface"),
                    format!("vertex {v}"),
                )
            })?;
            *slot = true;
        }
        Ok(surface
            .faces
            .iter()
            .filter(|f| f.iter().all(|&v| inside[v as usize]))
            .copied()
            .collect())
    }

    /// The patch's coordinates per vertex of a `n`-vertex surface (None off the patch).
    pub fn coords_by_vertex(&self, n: usize) -> Vec<Option<[f32; 3]>> {
        let mut out = vec![None; n];
        for (&v, &c) in self.vertices.iter().zip(&self.coords) {
            if let Some(slot) = out.get_mut(v as usize) {
                *slot = Some(c);
            }
        }
        out
    }
}
