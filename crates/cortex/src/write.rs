//! Maps written for other viewers: one `.func.gii` per hemisphere (pycortex, nilearn,
//! Workbench, FreeView read GIFTI) and one `.dscalar.nii` of both (Workbench, nibabel), each
//! map a named array over every vertex (NaN where the map has no value).

use crate::mesh::{Cortex, Hemi, SurfaceMap};
use brainrecon_core::error::Result;
use brainrecon_core::fs::write_bytes_atomic;
use brainrecon_formats::cifti::{write_dense_scalars, BrainModel, ModelType};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// GIFTI's name of a hemisphere's structure.
fn structure(hemi: Hemi) -> (&'static str, &'static str) {
    match hemi {
        Hemi::Left => ("CortexLeft", "CIFTI_STRUCTURE_CORTEX_LEFT"),
        Hemi::Right => ("CortexRight", "CIFTI_STRUCTURE_CORTEX_RIGHT"),
    }
}

/// The `.func.gii` text of `maps` on one hemisphere: one float32 array per map, zlib-compressed
/// base64 little-endian (what nibabel writes by default), named in its metadata.
pub fn func_gifti(hemi: Hemi, maps: &[&SurfaceMap]) -> String {
    let (primary, _) = structure(hemi);
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE GIFTI SYSTEM \"http://www.nitrc.org/frs/download.php/115/gifti.dtd\">\n\
         <GIFTI Version=\"1.0\" NumberOfDataArrays=\"{}\">\n\
         <MetaData><MD><Name><![CDATA[AnatomicalStructurePrimary]]></Name>\
         <Value><![CDATA[{primary}]]></Value></MD></MetaData>\n<LabelTable/>\n",
        maps.len()
    );
    for map in maps {
        let values = map.values(hemi);
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&bytes).expect("writing to memory");
        let packed = z.finish().expect("writing to memory");
        let _ = write!(
            xml,
            "<DataArray Intent=\"NIFTI_INTENT_NONE\" DataType=\"NIFTI_TYPE_FLOAT32\" \
             ArrayIndexingOrder=\"RowMajorOrder\" Dimensionality=\"1\" Dim0=\"{n}\" \
             Encoding=\"GZipBase64Binary\" Endian=\"LittleEndian\" ExternalFileName=\"\" \
             ExternalFileOffset=\"\">\n<MetaData><MD><Name><![CDATA[Name]]></Name>\
             <Value>{name}</Value></MD></MetaData>\n<Data>{data}</Data>\n</DataArray>\n",
            n = values.len(),
            name = brainrecon_core::text::escape_html(&map.name),
            data = brainrecon_core::text::base64_encode(&packed),
        );
    }
    xml.push_str("</GIFTI>\n");
    xml
}

/// Writes `maps` as `{stem}_hemi-L.func.gii`, `{stem}_hemi-R.func.gii` and
/// `{stem}.dscalar.nii` in `dir`, atomically; returns the three paths.
pub fn write_maps(
    dir: &Path,
    stem: &str,
    cortex: &Cortex,
    maps: &[&SurfaceMap],
) -> Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    for hemi in Hemi::BOTH {
        let path = dir.join(format!("{stem}_hemi-{}.func.gii", hemi.bids()));
        write_bytes_atomic(&path, func_gifti(hemi, maps).as_bytes())?;
        written.push(path);
    }
    let [nl, nr] = cortex.n_vertices();
    let model = |hemi: Hemi, offset: usize, n: usize| BrainModel {
        index_offset: offset,
        index_count: n,
        model_type: ModelType::Surface,
        brain_structure: structure(hemi).1.into(),
        surface_number_of_vertices: Some(n),
        vertex_indices: (0..n).collect(),
        voxel_indices_ijk: Vec::new(),
    };
    let models = [model(Hemi::Left, 0, nl), model(Hemi::Right, nl, nr)];
    let names: Vec<String> = maps.iter().map(|m| m.name.clone()).collect();
    let data: Vec<f32> = maps
        .iter()
        .flat_map(|m| m.left.iter().chain(&m.right).map(|&v| v as f32))
        .collect();
    let path = dir.join(format!("{stem}.dscalar.nii"));
    write_dense_scalars(&path, &names, &models, None, &data)?;
    written.push(path);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::colour::Scale;
    use crate::template::fsaverage5;
    use brainrecon_formats::cifti::read_dense_scalars;
    use brainrecon_formats::gifti::read_gifti;

    #[test]
    fn maps_read_back_from_gifti_and_cifti() {
        let cortex = fsaverage5().unwrap();
        let [nl, nr] = cortex.n_vertices();
        let map = |name: &str, k: f64| SurfaceMap {
            name: name.into(),
            left: (0..nl)
                .map(|v| if v % 7 == 0 { f64::NAN } else { k * v as f64 })
                .collect(),
            right: (0..nr).map(|v| -k * v as f64).collect(),
            scale: Scale::positive(&[1.0], None),
        };
        let (a, b) = (map("test r", 0.5), map("split R² <band> & \"x\"", 2.0));
        let dir = tempfile::tempdir().unwrap();
        let paths = write_maps(dir.path(), "maps", &cortex, &[&a, &b]).unwrap();
        let left = read_gifti(&paths[0]).unwrap();
        assert_eq!(left.arrays.len(), 2);
        assert_eq!(left.arrays[1].data[3], 6.0);
        assert!(left.arrays[0].data[7].is_nan());
        assert!(left.arrays[1]
            .meta
            .contains(&("Name".into(), b.name.clone())));
        let right = read_gifti(&paths[1]).unwrap();
        assert_eq!(right.arrays[0].data[nr - 1], -0.5 * (nr - 1) as f64);
        let (names, models, data) = read_dense_scalars(&paths[2]).unwrap();
        assert_eq!(names, vec![a.name.clone(), b.name.clone()]);
        assert_eq!(models[1].index_offset, nl);
        assert_eq!(data[nl + nr + 4], 8.0);
        assert_eq!(data[nl + 2], -1.0);
    }
}
