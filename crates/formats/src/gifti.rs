//! GIFTI (`.surf.gii`, `.func.gii`, `.shape.gii`, `.label.gii`, and `.gii.gz`), as nibabel's
//! `gifti` reads it: fMRIPrep's surfaces and surface-space BOLD, nilearn's fsaverage meshes.
//!
//! ```text
//! <GIFTI NumberOfDataArrays="N">  <MetaData>…  <LabelTable><Label Key Red Green Blue Alpha>name
//!   <DataArray Intent DataType ArrayIndexingOrder Dimensionality Dim0 … Encoding Endian>
//!     <MetaData>…  <CoordinateSystemTransformMatrix><MatrixData>16 numbers
//!     <Data>  ASCII numbers | Base64Binary | GZipBase64Binary (base64 of a zlib stream)
//! ```
//! A `.gii.gz` is the whole XML gzipped (nilearn's meshes), recognised by its magic bytes.
//! Arrays are returned in row-major order whatever their `ArrayIndexingOrder` (ASCII data are
//! taken row by row, as nibabel writes and reads them). External data
//! files (`ExternalFileBinary`) are read beside the GIFTI file, as nibabel reads them. Sizes declared by `Dim*` are checked
//! against the limits before anything is allocated, and decompression stops at that size.

use std::io::Read;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::fs_surface::Surface;
use crate::limits;

/// NIFTI_INTENT_POINTSET: vertex coordinates.
pub const INTENT_POINTSET: &str = "NIFTI_INTENT_POINTSET";
/// NIFTI_INTENT_TRIANGLE: faces.
pub const INTENT_TRIANGLE: &str = "NIFTI_INTENT_TRIANGLE";

/// One `<DataArray>`.
#[derive(Clone, Debug, PartialEq)]
pub struct DataArray {
    /// `Intent` (`NIFTI_INTENT_POINTSET`, `NIFTI_INTENT_TRIANGLE`, `NIFTI_INTENT_SHAPE`,
    /// `NIFTI_INTENT_TIME_SERIES`, `NIFTI_INTENT_LABEL`, …).
    pub intent: String,
    /// `DataType` (`NIFTI_TYPE_FLOAT32`, …).
    pub data_type: String,
    /// `Dim0`, `Dim1`, ...: the array's shape (`Dimensionality` of them).
    pub dims: Vec<usize>,
    /// The values in row-major order (integers exact).
    pub data: Vec<f64>,
    /// The array's `<MetaData>` name–value pairs, in file order.
    pub meta: Vec<(String, String)>,
    /// `CoordinateSystemTransformMatrix` (row-major 4 × 4), when present.
    pub transform: Option<[[f64; 4]; 4]>,
}

/// A `<Label>` of the label table.
#[derive(Clone, Debug, PartialEq)]
pub struct GiftiLabel {
    /// The label's `Key` (the value a label array stores).
    pub key: i64,
    /// The label's name (the element's text).
    pub name: String,
    /// Red, green, blue, alpha in [0, 1] (absent ones 0, alpha 1).
    pub rgba: [f64; 4],
}

/// A GIFTI file.
#[derive(Clone, Debug, PartialEq)]
pub struct Gifti {
    /// The file's `<MetaData>` name–value pairs, in file order.
    pub meta: Vec<(String, String)>,
    /// The `<LabelTable>`, in file order (empty when absent).
    pub labels: Vec<GiftiLabel>,
    /// The `<DataArray>`s, in file order.
    pub arrays: Vec<DataArray>,
}

/// Reads a GIFTI file (gzipped or not).
pub fn read_gifti(path: &Path) -> Result<Gifti> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_gifti_bytes(path, &raw)
}

/// [`read_gifti`] of a file's bytes (gzipped or not), such as a file embedded in a binary;
/// `path` names it in errors.
pub fn parse_gifti_bytes(path: &Path, raw: &[u8]) -> Result<Gifti> {
    let xml = if raw.starts_with(&[0x1F, 0x8B]) {
        let limit = limits::ARRAY_BYTES.value();
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(raw)
            .take(limit.saturating_add(1))
            .read_to_end(&mut text)
            .map_err(|e| DataError::format(path, "GIFTI (gzipped)", e))?;
        limits::ARRAY_BYTES.check(path, "decompressed XML", text.len() as u64)?;
        std::borrow::Cow::Owned(text)
    } else {
        std::borrow::Cow::Borrowed(raw)
    };
    let text = std::str::from_utf8(brainrecon_core::text::bytes_without_bom(&xml))
        .map_err(|e| DataError::format(path, "GIFTI XML", format!("not UTF-8: {e}")))?;
    parse_gifti(path, text)
}

/// [`read_gifti`] of the XML text; `path` names it in errors.
pub fn parse_gifti(path: &Path, xml: &str) -> Result<Gifti> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options)
        .map_err(|e| DataError::format(path, "GIFTI XML", e))?;
    let root = doc.root_element();
    if root.tag_name().name() != "GIFTI" {
        return Err(DataError::invalid(
            path,
            "GIFTI XML root element",
            "<GIFTI>",
            format!("<{}>", root.tag_name().name()),
        ));
    }
    let mut gifti = Gifti {
        meta: Vec::new(),
        labels: Vec::new(),
        arrays: Vec::new(),
    };
    for node in root.children().filter(|n| n.is_element()) {
        match node.tag_name().name() {
            "MetaData" => gifti.meta = metadata(node),
            "LabelTable" => gifti.labels = label_table(path, node)?,
            "DataArray" => gifti
                .arrays
                .push(data_array(path, node, gifti.arrays.len())?),
            _ => {}
        }
    }
    Ok(gifti)
}

fn metadata(node: roxmltree::Node) -> Vec<(String, String)> {
    node.children()
        .filter(|n| n.has_tag_name("MD"))
        .map(|md| {
            let text = |name: &str| {
                md.children()
                    .find(|n| n.has_tag_name(name))
                    .map(|n| {
                        n.descendants()
                            .filter(|d| d.is_text())
                            .filter_map(|d| d.text())
                            .collect::<String>()
                    })
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            };
            (text("Name"), text("Value"))
        })
        .collect()
}

fn label_table(path: &Path, node: roxmltree::Node) -> Result<Vec<GiftiLabel>> {
    let mut labels = Vec::new();
    for label in node.children().filter(|n| n.has_tag_name("Label")) {
        // old Caret files write Index for Key
        let key_text = label
            .attribute("Key")
            .or_else(|| label.attribute("Index"))
            .unwrap_or("");
        let key: i64 = key_text.trim().parse().map_err(|_| {
            DataError::invalid(path, "<Label Key>", "an integer", format!("{key_text:?}"))
        })?;
        let colour = |name: &str, default: f64| -> Result<f64> {
            match label.attribute(name) {
                None => Ok(default),
                Some(t) => t.trim().parse().map_err(|_| {
                    DataError::invalid(
                        path,
                        format!("<Label {name}>"),
                        "a number",
                        format!("{t:?}"),
                    )
                }),
            }
        };
        labels.push(GiftiLabel {
            key,
            name: label.text().unwrap_or("").trim().to_string(),
            rgba: [
                colour("Red", 0.0)?,
                colour("Green", 0.0)?,
                colour("Blue", 0.0)?,
                colour("Alpha", 1.0)?,
            ],
        });
    }
    Ok(labels)
}

/// Bytes of one element of a GIFTI `DataType`, and how to read it.
#[derive(Clone, Copy)]
enum Element {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    F32,
    F64,
}

impl Element {
    fn of(name: &str) -> Option<Self> {
        Some(match name {
            "NIFTI_TYPE_UINT8" => Element::U8,
            "NIFTI_TYPE_INT8" => Element::I8,
            "NIFTI_TYPE_INT16" => Element::I16,
            "NIFTI_TYPE_UINT16" => Element::U16,
            "NIFTI_TYPE_INT32" => Element::I32,
            "NIFTI_TYPE_UINT32" => Element::U32,
            "NIFTI_TYPE_INT64" => Element::I64,
            "NIFTI_TYPE_FLOAT32" => Element::F32,
            "NIFTI_TYPE_FLOAT64" => Element::F64,
            _ => return None,
        })
    }

    fn bytes(self) -> usize {
        match self {
            Element::U8 | Element::I8 => 1,
            Element::I16 | Element::U16 => 2,
            Element::I32 | Element::U32 | Element::F32 => 4,
            Element::I64 | Element::F64 => 8,
        }
    }

    fn value(self, b: &[u8], big: bool) -> f64 {
        macro_rules! num {
            ($t:ty, $n:literal) => {{
                let mut a = [0u8; $n];
                a.copy_from_slice(&b[..$n]);
                (if big {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }) as f64
            }};
        }
        match self {
            Element::U8 => f64::from(b[0]),
            Element::I8 => f64::from(b[0] as i8),
            Element::I16 => num!(i16, 2),
            Element::U16 => num!(u16, 2),
            Element::I32 => num!(i32, 4),
            Element::U32 => num!(u32, 4),
            Element::I64 => num!(i64, 8),
            Element::F32 => num!(f32, 4),
            Element::F64 => num!(f64, 8),
        }
    }
}

fn data_array(path: &Path, node: roxmltree::Node, index: usize) -> Result<DataArray> {
    let field = |name: &str| format!("DataArray {index} {name}");
    let attr = |name: &str| node.attribute(name).unwrap_or("").trim();
    let data_type = attr("DataType").to_string();
    let element = Element::of(&data_type).ok_or_else(|| {
        DataError::invalid(
            path,
            field("DataType"),
            "NIFTI_TYPE_UINT8, INT32, FLOAT32 (or another NIfTI number type)",
            format!("{data_type:?}"),
        )
    })?;
    let rank: usize = attr("Dimensionality")
        .parse()
        .ok()
        .filter(|&r| (1..=6).contains(&r))
        .ok_or_else(|| {
            DataError::invalid(
                path,
                field("Dimensionality"),
                "1 to 6",
                format!("{:?}", attr("Dimensionality")),
            )
        })?;
    let mut dims = Vec::with_capacity(rank);
    for d in 0..rank {
        let name = format!("Dim{d}");
        let text = attr(&name);
        dims.push(
            text.parse::<usize>().map_err(|_| {
                DataError::invalid(path, field(&name), "a size", format!("{text:?}"))
            })?,
        );
    }
    let dims64: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
    let bytes = limits::array_bytes(path, &field("Dim*"), &dims64, element.bytes() as u64)?;
    let count = bytes as usize / element.bytes();
    // gifticlib 1.08 and nibabel also write and read the GIFTI_ENDIAN_* / GIFTI_ENCODING_*
    // spellings of these values.
    let big = match attr("Endian") {
        "BigEndian" | "GIFTI_ENDIAN_BIG" => true,
        "LittleEndian" | "GIFTI_ENDIAN_LITTLE" | "" => false,
        other => {
            return Err(DataError::invalid(
                path,
                field("Endian"),
                "BigEndian or LittleEndian",
                format!("{other:?}"),
            ))
        }
    };
    let column_major = match attr("ArrayIndexingOrder") {
        "RowMajorOrder" | "" => false,
        "ColumnMajorOrder" => true,
        other => {
            return Err(DataError::invalid(
                path,
                field("ArrayIndexingOrder"),
                "RowMajorOrder or ColumnMajorOrder",
                format!("{other:?}"),
            ))
        }
    };
    let text = node
        .children()
        .find(|n| n.has_tag_name("Data"))
        .and_then(|n| n.text())
        .unwrap_or("");
    let encoding = match attr("Encoding") {
        "GIFTI_ENCODING_ASCII" => "ASCII",
        "GIFTI_ENCODING_B64BIN" => "Base64Binary",
        "GIFTI_ENCODING_B64GZ" => "GZipBase64Binary",
        "GIFTI_ENCODING_EXTBIN" => "ExternalFileBinary",
        other => other,
    };
    let values: Vec<f64> = match encoding {
        "ASCII" => {
            let mut values = Vec::with_capacity(count);
            for token in text.split_whitespace() {
                if values.len() == count {
                    break;
                }
                let value = token.parse::<f64>().map_err(|_| {
                    DataError::invalid(path, field("Data"), "numbers", format!("{token:?}"))
                })?;
                // Stored as the array's type, as nibabel reads the text into it.
                values.push(match element {
                    Element::F32 => f64::from(value as f32),
                    _ => value,
                });
            }
            values
        }
        "Base64Binary" | "GZipBase64Binary" => {
            let decoded = base64(text).ok_or_else(|| {
                DataError::invalid(path, field("Data"), "base64 text", "other characters")
            })?;
            let raw = if encoding == "GZipBase64Binary" {
                let mut raw = Vec::with_capacity(bytes as usize);
                flate2::read::ZlibDecoder::new(&decoded[..])
                    .take(bytes)
                    .read_to_end(&mut raw)
                    .map_err(|e| {
                        DataError::format(
                            path,
                            "GIFTI data (zlib)",
                            format!("DataArray {index}: {e}"),
                        )
                    })?;
                raw
            } else {
                decoded
            };
            raw.chunks_exact(element.bytes())
                .take(count)
                .map(|b| element.value(b, big))
                .collect()
        }
        "ExternalFileBinary" => {
            let raw = external_data(
                path,
                &field,
                attr("ExternalFileName"),
                attr("ExternalFileOffset"),
                bytes,
            )?;
            raw.chunks_exact(element.bytes())
                .map(|b| element.value(b, big))
                .collect()
        }
        other => {
            return Err(DataError::invalid(
                path,
                field("Encoding"),
                "ASCII, Base64Binary or GZipBase64Binary",
                format!("{other:?}"),
            ))
        }
    };
    if values.len() != count {
        return Err(DataError::invalid(
            path,
            field("Data"),
            format!("{count} values for dims {dims:?}"),
            values.len().to_string(),
        ));
    }
    // nibabel writes and reads ASCII data row by row whatever the indexing order says (its
    // parser takes the text's rows); binary data follow the order
    let data = if column_major && rank > 1 && encoding != "ASCII" {
        to_row_major(&values, &dims)
    } else {
        values
    };
    let transform = node
        .children()
        .find(|n| n.has_tag_name("CoordinateSystemTransformMatrix"))
        .and_then(|t| t.children().find(|n| n.has_tag_name("MatrixData")))
        .and_then(|m| m.text())
        .and_then(|t| {
            let v: Vec<f64> = t
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 16).then(|| [0, 1, 2, 3].map(|r| [0, 1, 2, 3].map(|c| v[4 * r + c])))
        });
    Ok(DataArray {
        intent: attr("Intent").to_string(),
        data_type,
        dims,
        data,
        meta: node
            .children()
            .find(|n| n.has_tag_name("MetaData"))
            .map(metadata)
            .unwrap_or_default(),
        transform,
    })
}

/// The `bytes` bytes of an `ExternalFileBinary` array: `name` (relative to the GIFTI file's
/// folder, as nibabel resolves it) from byte `offset`.
fn external_data(
    path: &Path,
    field: &dyn Fn(&str) -> String,
    name: &str,
    offset: &str,
    bytes: u64,
) -> Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    if name.is_empty() {
        return Err(DataError::invalid(
            path,
            field("ExternalFileName"),
            "the name of the file holding the data",
            "none",
        ));
    }
    let offset: u64 = match offset {
        "" => 0,
        text => text.parse().map_err(|_| {
            DataError::invalid(
                path,
                field("ExternalFileOffset"),
                "a byte offset",
                format!("{text:?}"),
            )
        })?,
    };
    let external = path.parent().unwrap_or(Path::new("")).join(name);
    let mut file = std::fs::File::open(&external).map_err(|e| DataError::io(&external, e))?;
    let length = file
        .metadata()
        .map_err(|e| DataError::io(&external, e))?
        .len();
    if offset.checked_add(bytes).is_none_or(|end| end > length) {
        return Err(DataError::invalid(
            &external,
            "length",
            format!(
                "{bytes} bytes from byte {offset} ({} of {})",
                field("ExternalFileOffset"),
                path.display()
            ),
            format!("{length} bytes"),
        ));
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| DataError::io(&external, e))?;
    let mut raw = Vec::with_capacity(bytes as usize);
    file.take(bytes)
        .read_to_end(&mut raw)
        .map_err(|e| DataError::io(&external, e))?;
    Ok(raw)
}

/// Values stored first index fastest, reordered last index fastest.
fn to_row_major(values: &[f64], dims: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0; values.len()];
    let rank = dims.len();
    let mut index = vec![0usize; rank];
    for &v in values {
        // `index` runs first index fastest, as the values are stored
        let mut row_major = 0;
        for d in 0..rank {
            row_major = row_major * dims[d] + index[d];
        }
        out[row_major] = v;
        for d in 0..rank {
            index[d] += 1;
            if index[d] < dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

/// Standard base64 (RFC 4648, padding optional), whitespace ignored; None on other characters.
fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

impl Gifti {
    /// The first array of `intent`.
    pub fn array(&self, intent: &str) -> Option<&DataArray> {
        self.arrays.iter().find(|a| a.intent == intent)
    }

    /// The mesh of a `.surf.gii`: its POINTSET [vertices, 3] and TRIANGLE [faces, 3] arrays,
    /// faces checked against the vertices (`path` names the file in errors).
    pub fn surface(&self, path: &Path) -> Result<Surface> {
        let missing = |intent: &str| {
            DataError::invalid(
                path,
                "DataArray Intent",
                format!("an array of {intent}"),
                "none",
            )
        };
        let points = self
            .array(INTENT_POINTSET)
            .ok_or_else(|| missing(INTENT_POINTSET))?;
        let triangles = self
            .array(INTENT_TRIANGLE)
            .ok_or_else(|| missing(INTENT_TRIANGLE))?;
        let shape = |a: &DataArray, what: &str| -> Result<usize> {
            match a.dims[..] {
                [n, 3] => Ok(n),
                _ => Err(DataError::invalid(
                    path,
                    format!("{} dims", a.intent),
                    format!("[{what}, 3]"),
                    format!("{:?}", a.dims),
                )),
            }
        };
        let n = shape(points, "vertices")?;
        shape(triangles, "faces")?;
        let vertices = points
            .data
            .chunks_exact(3)
            .map(|c| [c[0] as f32, c[1] as f32, c[2] as f32])
            .collect();
        let mut faces = Vec::with_capacity(triangles.data.len() / 3);
        for (f, c) in triangles.data.chunks_exact(3).enumerate() {
            let mut face = [0u32; 3];
            for (slot, &v) in face.iter_mut().zip(c) {
                if !(v >= 0.0 && v < n as f64 && v.fract() == 0.0) {
                    return Err(DataError::invalid(
                        path,
                        format!("{INTENT_TRIANGLE} face {f}"),
                        format!("vertex indices below {n}"),
                        v.to_string(),
                    ));
                }
                *slot = v as u32;
            }
            faces.push(face);
        }
        Ok(Surface {
            vertices,
            faces,
            c_ras: None,
        })
    }
}
