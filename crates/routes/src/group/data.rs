//! Rows of betas and features as the group's solvers take them, and the prepared subject a
//! space writes (pooled or adapted).

use super::{SpaceMeta, TargetBlock, SHARED_ATLAS};
use crate::decode::decoders::{image_targets, Target};
use crate::decode::features::{feature_paths, FeatureKind};
use crate::error::{Result, RouteError};
use brainrecon_align::streamed::RowBlocks;
use brainrecon_datasets::prepared::{
    AtlasMeta, LabelMeta, PreparedSubject, Roi, Split, SubjectMeta, Writer,
};
use brainrecon_formats::npy;
use faer::Mat;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Betas of some rows of a subject: `x` (rows × voxels) and the stimulus id of each row.
pub struct Rows {
    /// The 0-based 73k stimulus id of each row.
    pub ids: Vec<usize>,
    /// Betas `[rows, voxels]` (or coordinates `[rows, k]` once in a space).
    pub x: Mat<f64>,
}

impl Rows {
    /// Rows whose index passes `keep`, in order.
    pub fn select(&self, keep: impl Fn(usize, usize) -> bool) -> Rows {
        let picked: Vec<usize> = (0..self.ids.len())
            .filter(|&r| keep(r, self.ids[r]))
            .collect();
        Rows {
            ids: picked.iter().map(|&r| self.ids[r]).collect(),
            x: Mat::from_fn(picked.len(), self.x.ncols(), |i, j| self.x[(picked[i], j)]),
        }
    }

    /// Rows of `self` then `other`.
    pub fn stack(&self, other: &Rows) -> Rows {
        assert_eq!(self.x.ncols(), other.x.ncols(), "stacked rows' voxels");
        let n = self.ids.len();
        Rows {
            ids: self.ids.iter().chain(&other.ids).copied().collect(),
            x: Mat::from_fn(n + other.ids.len(), self.x.ncols(), |i, j| {
                if i < n {
                    self.x[(i, j)]
                } else {
                    other.x[(i - n, j)]
                }
            }),
        }
    }
}

/// All rows of one split of a subject's ROI.
pub fn split_rows(subject: &PreparedSubject, roi: &Roi, split: Split) -> Result<Rows> {
    let betas = subject.betas(roi, split)?;
    let ids = subject.row_ids(split)?;
    if ids.len() != betas.rows {
        return Err(RouteError::mismatch(
            &subject.betas_path(&roi.atlas, split),
            "rows",
            format!("{} rows, one per stimulus id", ids.len()),
            betas.rows,
        ));
    }
    let x = Mat::from_fn(betas.rows, betas.voxels, |i, j| {
        betas.values[i * betas.voxels + j] as f64
    });
    Ok(Rows { ids, x })
}

/// Rows `start .. start + len` of one split of a subject's ROI (`[len, voxels]`, f32 → f64),
/// read through a mapping opened for this call only, so the pages read do not stay resident.
/// The same values as those rows of [`split_rows`].
///
/// Errors: the betas file missing or not `(rows, voxels)`, the range past its rows, the ROI's
/// columns past its voxels, or a non-finite beta (naming the file, row and voxel).
pub fn split_rows_block(
    subject: &PreparedSubject,
    roi: &Roi,
    split: Split,
    start: usize,
    len: usize,
) -> Result<Mat<f64>> {
    let path = subject.betas_path(&roi.atlas, split);
    let mapped = npy::MappedF32::open(&path)?;
    let (rows, cols) = match mapped.shape() {
        [r, c] => (*r, *c),
        other => {
            return Err(RouteError::mismatch(
                &path,
                "shape",
                "(rows, voxels)",
                format!("{other:?}"),
            ))
        }
    };
    if start + len > rows {
        return Err(RouteError::mismatch(
            &path,
            "rows",
            format!("at least {} rows", start + len),
            rows,
        ));
    }
    let voxels = roi.columns.as_ref().map_or(cols, |c| c.len());
    if roi
        .columns
        .as_ref()
        .is_some_and(|c| c.last().is_some_and(|&last| last >= cols))
    {
        return Err(RouteError::mismatch(
            &path,
            "shape",
            format!("the voxel columns of ROI {}", roi.name),
            format!("{:?}", mapped.shape()),
        ));
    }
    let mut x = Mat::<f64>::zeros(len, voxels);
    for i in 0..len {
        let row = mapped.row(start + i);
        for j in 0..voxels {
            let v = match &roi.columns {
                Some(c) => row[c[j]],
                None => row[j],
            };
            if !v.is_finite() {
                return Err(RouteError::mismatch(
                    &path,
                    "values",
                    "finite betas (columns: the ROI's voxels)",
                    format!("{v} at row {}, voxel {j}", start + i),
                ));
            }
            x[(i, j)] = v as f64;
        }
    }
    Ok(x)
}

/// [`target_scaling`] of the stacked raw features of several row sets (each a subject and the
/// ids of its rows, stacked in order), read `block_rows` rows at a time: the same sums in the
/// same order, so the same numbers, without the stacked matrix.
pub fn target_scaling_blocks(
    parts: &[(&PreparedSubject, &[usize])],
    kinds: &[String],
    widths: &[usize],
    block_rows: usize,
) -> Result<(Vec<f64>, Vec<TargetBlock>)> {
    let d: usize = widths.iter().sum();
    let n_total: usize = parts.iter().map(|(_, ids)| ids.len()).sum();
    let n = n_total.max(1) as f64;
    // The start of an f64 sum, as `Iterator::sum` starts it.
    let zero: f64 = std::iter::empty::<f64>().sum();
    let each_block = |f: &mut dyn FnMut(&Mat<f64>)| -> Result<()> {
        for (subject, ids) in parts {
            for chunk in ids.chunks(block_rows.max(1)) {
                f(&feature_rows(subject, kinds, chunk)?);
            }
        }
        Ok(())
    };
    let mut sums = vec![zero; d];
    each_block(&mut |y| {
        for (j, sum) in sums.iter_mut().enumerate() {
            for i in 0..y.nrows() {
                *sum += y[(i, j)];
            }
        }
    })?;
    let mean: Vec<f64> = sums.iter().map(|s| s / n).collect();
    let mut squares = vec![zero; d];
    each_block(&mut |y| {
        for (j, sum) in squares.iter_mut().enumerate() {
            for i in 0..y.nrows() {
                *sum += (y[(i, j)] - mean[j]).powi(2);
            }
        }
    })?;
    let mut blocks = Vec::new();
    let mut offset = 0;
    for (kind, &width) in kinds.iter().zip(widths) {
        let total: f64 = (offset..offset + width).map(|j| squares[j] / n).sum();
        blocks.push(TargetBlock {
            kind: kind.clone(),
            width,
            scale: if total > 0.0 { 1.0 / total.sqrt() } else { 1.0 },
        });
        offset += width;
    }
    Ok((mean, blocks))
}

/// The session of each train row, from `trials.tsv` (its `train` rows follow train.npy's).
pub fn train_sessions(subject: &PreparedSubject) -> Result<Vec<usize>> {
    let path = subject.path("trials.tsv");
    let text = brainrecon_core::text::read_text(&path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
    let column = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| {
            RouteError::mismatch(
                &path,
                "header",
                format!("a column '{name}'"),
                header.join(" "),
            )
        })
    };
    let (session_col, split_col) = (column("session")?, column("split")?);
    let mut sessions = Vec::new();
    for (i, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.get(split_col) != Some(&"train") {
            continue;
        }
        let session = fields
            .get(session_col)
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| {
                RouteError::mismatch(&path, format!("line {}", i + 2), "a session number", line)
            })?;
        sessions.push(session);
    }
    Ok(sessions)
}

/// Raw features of `ids` (rows × Σ widths, blocks in `kinds` order) from a subject's
/// features folder.
pub fn feature_rows(
    subject: &PreparedSubject,
    kinds: &[String],
    ids: &[usize],
) -> Result<Mat<f64>> {
    let mut blocks = Vec::new();
    for kind in kinds {
        let kind = FeatureKind::parse(kind)?;
        let targets = image_targets(subject, &Target::Features(kind), &subject.path("features"))?;
        let width = targets.width();
        let values = targets.gather(ids)?;
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            return Err(RouteError::mismatch(
                &targets.source,
                "values",
                "finite features",
                format!(
                    "{} at image {} (value {})",
                    values[at],
                    ids[at / width.max(1)],
                    at % width.max(1)
                ),
            ));
        }
        blocks.push((width, values));
    }
    let d: usize = blocks.iter().map(|b| b.0).sum();
    let mut y = Mat::zeros(ids.len(), d);
    let mut offset = 0;
    for (width, values) in blocks {
        for i in 0..ids.len() {
            for j in 0..width {
                y[(i, offset + j)] = values[i * width + j] as f64;
            }
        }
        offset += width;
    }
    Ok(y)
}

/// Scaled targets: `(y − mean) · scale_block`, per block.
pub fn scale_targets(y: &Mat<f64>, mean: &[f64], blocks: &[TargetBlock]) -> Mat<f64> {
    let mut scale = Vec::with_capacity(y.ncols());
    for b in blocks {
        scale.extend(std::iter::repeat_n(b.scale, b.width));
    }
    assert_eq!(scale.len(), y.ncols(), "targets (rows, d)");
    Mat::from_fn(y.nrows(), y.ncols(), |i, j| {
        (y[(i, j)] - mean[j]) * scale[j]
    })
}

/// Column means and per-block scales (1/√ total variance) of stacked raw features.
pub fn target_scaling(
    y: &Mat<f64>,
    kinds: &[String],
    widths: &[usize],
) -> (Vec<f64>, Vec<TargetBlock>) {
    let n = y.nrows().max(1) as f64;
    let mean: Vec<f64> = (0..y.ncols())
        .map(|j| (0..y.nrows()).map(|i| y[(i, j)]).sum::<f64>() / n)
        .collect();
    let mut blocks = Vec::new();
    let mut offset = 0;
    for (kind, &width) in kinds.iter().zip(widths) {
        let total: f64 = (offset..offset + width)
            .map(|j| {
                (0..y.nrows())
                    .map(|i| (y[(i, j)] - mean[j]).powi(2))
                    .sum::<f64>()
                    / n
            })
            .sum();
        blocks.push(TargetBlock {
            kind: kind.clone(),
            width,
            scale: if total > 0.0 { 1.0 / total.sqrt() } else { 1.0 },
        });
        offset += width;
    }
    (mean, blocks)
}

/// Widths of the feature kinds in a subject's features folder.
pub fn feature_widths(subject: &PreparedSubject, kinds: &[String]) -> Result<Vec<usize>> {
    kinds
        .iter()
        .map(|kind| {
            let kind = FeatureKind::parse(kind)?;
            let (meta, _) = crate::decode::features::load_features_mapped(
                subject,
                &subject.path("features"),
                kind,
            )?;
            Ok(meta.width())
        })
        .collect()
}

/// Column means of `x`.
pub fn column_means(x: &Mat<f64>) -> Vec<f64> {
    let n = x.nrows().max(1) as f64;
    (0..x.ncols())
        .map(|j| (0..x.nrows()).map(|i| x[(i, j)]).sum::<f64>() / n)
        .collect()
}

/// `(x − mean) · map` (rows × k).
pub fn apply_map(x: &Mat<f64>, mean: &[f64], map: &Mat<f64>) -> Mat<f64> {
    assert_eq!(x.ncols(), map.nrows(), "x (rows, v) · map (v, k)");
    let centred = Mat::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] - mean[j]);
    &centred * map
}

/// Writes a float32 matrix as `.npy`.
pub fn write_mat(path: &Path, m: &Mat<f64>) -> Result<()> {
    Ok(npy::write(path, &[m.nrows(), m.ncols()], &f32_rows(m))?)
}

/// `m` as row-major float32.
fn f32_rows(m: &Mat<f64>) -> Vec<f32> {
    let mut values = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            values.push(m[(i, j)] as f32);
        }
    }
    values
}

/// Reads a float32 `.npy` matrix.
pub fn read_mat(path: &Path) -> Result<Mat<f64>> {
    let array = npy::read_f32(path)?;
    let (rows, cols) = match array.shape[..] {
        [r, c] => (r, c),
        _ => {
            return Err(RouteError::mismatch(
                path,
                "shape",
                "(rows, columns)",
                format!("{:?}", array.shape),
            ))
        }
    };
    finite(path, &array.data)?;
    Ok(Mat::from_fn(rows, cols, |i, j| {
        array.data[i * cols + j] as f64
    }))
}

/// Rows of the basis read at a time by [`times_basis`]: at k = 4,096, 1,024 rows are 16 MB as
/// float32 and 34 MB as float64.
pub const BASIS_BLOCK_ROWS: usize = 1024;

/// `y · P` for a space's basis P (`y.ncols()` × `k`, a float32 C-order `.npy` at `path`, as
/// `group fit` writes `basis.npy`), read [`BASIS_BLOCK_ROWS`] rows at a time so that P is never
/// held whole: at NSD's 75,520 targets and k = 4,096 it is 1.2 GB as float32 and 2.5 GB as
/// float64, which `group adapt` held at once beside its float32 read. `y` is n × targets;
/// returns n × k. `what` says what P should be, for the shape error.
///
/// # Errors
/// [`RouteError::Mismatch`] naming the file for a dtype other than float32, Fortran order, a
/// shape other than (`y.ncols()`, `k`) or a value that is not finite; the file's read errors.
pub fn times_basis(y: &Mat<f64>, path: &Path, k: usize, what: &str) -> Result<Mat<f64>> {
    use std::io::{Read, Seek, SeekFrom};
    let header = npy::read_header(path)?;
    if header.descr != "<f4" || header.fortran_order {
        return Err(RouteError::mismatch(
            path,
            "dtype",
            "float32 ('<f4') in C order",
            format!(
                "'{}' (fortran_order {})",
                header.descr, header.fortran_order
            ),
        ));
    }
    let d = y.ncols();
    if header.shape != [d, k] {
        return Err(RouteError::mismatch(
            path,
            "shape",
            format!("({d}, {k}): {what}"),
            format!("{:?}", header.shape),
        ));
    }
    let io = |e| brainrecon_core::DataError::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    file.seek(SeekFrom::Start(header.data_offset as u64))
        .map_err(io)?;
    let mut out = Mat::<f64>::zeros(y.nrows(), k);
    let mut bytes = vec![0u8; BASIS_BLOCK_ROWS.min(d) * k * 4];
    let mut start = 0;
    while start < d {
        let rows = BASIS_BLOCK_ROWS.min(d - start);
        let chunk = &mut bytes[..rows * k * 4];
        file.read_exact(chunk).map_err(io)?;
        let values: Vec<f32> = chunk
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            return Err(RouteError::mismatch(
                path,
                "values",
                "finite numbers",
                format!(
                    "{} at row {}, column {}",
                    values[at],
                    start + at / k,
                    at % k
                ),
            ));
        }
        let block = Mat::from_fn(rows, k, |i, j| f64::from(values[i * k + j]));
        faer::linalg::matmul::matmul(
            out.as_mut(),
            faer::Accum::Add,
            y.as_ref().subcols(start, rows),
            block.as_ref(),
            1.0,
            faer::get_global_parallelism(),
        );
        start += rows;
    }
    Ok(out)
}

/// Refuses a NaN or infinity, naming the file and where.
fn finite(path: &Path, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(at) => Err(RouteError::mismatch(
            path,
            "values",
            "finite numbers",
            format!("{} at flat index {at}", values[at]),
        )),
        None => Ok(()),
    }
}

/// [`read_mat`] checked against the shape its metadata promises (`None`: any number of rows).
pub fn read_mat_shaped(
    path: &Path,
    rows: Option<usize>,
    cols: usize,
    what: &str,
) -> Result<Mat<f64>> {
    let m = read_mat(path)?;
    if rows.is_some_and(|r| r != m.nrows()) || m.ncols() != cols {
        return Err(RouteError::mismatch(
            path,
            "shape",
            format!(
                "({}, {cols}): {what}",
                rows.map_or("rows".to_string(), |r| r.to_string())
            ),
            format!("({}, {})", m.nrows(), m.ncols()),
        ));
    }
    Ok(m)
}

/// [`read_vec`] checked against its promised length.
pub fn read_vec_sized(path: &Path, len: usize, what: &str) -> Result<Vec<f64>> {
    let v = read_vec(path)?;
    if v.len() != len {
        return Err(RouteError::mismatch(
            path,
            "shape",
            format!("({len},): {what}"),
            format!("({},)", v.len()),
        ));
    }
    Ok(v)
}

/// Writes a float32 vector as `.npy`.
pub fn write_vec(path: &Path, v: &[f64]) -> Result<()> {
    let values: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Ok(npy::write(path, &[values.len()], &values)?)
}

/// Reads a float32 `.npy` vector.
pub fn read_vec(path: &Path) -> Result<Vec<f64>> {
    let array = npy::read_f32(path)?;
    finite(path, &array.data)?;
    Ok(array.data.iter().map(|&x| x as f64).collect())
}

/// A subject in a space: train rows (single trials) and test rows (one per test image).
pub struct SpaceSubject<'a> {
    /// The subject's `subject.json`; its grid, counts and atlases are replaced by the space's.
    pub meta: SubjectMeta,
    /// Train rows in the space, `[trials, k]`.
    pub train: &'a Rows,
    /// Test rows in the space, `[test images, k]`.
    pub test: &'a Rows,
    /// Sessions of the train rows (trials.tsv).
    pub train_sessions: Vec<usize>,
}

/// Writes a prepared subject whose one atlas `shared` holds a space's k coordinates, into
/// `dir` (a staging folder). `stimuli` and `features`, when given, are linked from that subject
/// (hard links, copies across file systems); otherwise only `stimuli/ids.npy` is written.
pub fn write_space_subject(
    dir: &Path,
    s: &SpaceSubject<'_>,
    linked_from: Option<&PreparedSubject>,
) -> Result<()> {
    let k = s.train.x.ncols();
    assert_eq!(s.test.x.ncols(), k, "train and test in one space");
    let train_images: BTreeSet<usize> = s.train.ids.iter().copied().collect();
    let mut meta = s.meta.clone();
    meta.volume_shape = [k, 1, 1];
    meta.affine = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    meta.n_train_trials = s.train.ids.len();
    meta.n_train_images = train_images.len();
    meta.n_test_images = s.test.ids.len();
    meta.n_test_trials = s.test.ids.len();
    meta.train_averaged = false;
    meta.atlases = vec![AtlasMeta {
        name: SHARED_ATLAS.into(),
        n_voxels: k,
        labels: vec![LabelMeta {
            value: 1,
            name: SHARED_ATLAS.into(),
            n_voxels: k,
        }],
    }];
    meta.roi_aliases = BTreeMap::from([("nsdgeneral".to_string(), SHARED_ATLAS.to_string())]);
    let mkdir =
        |p: &Path| std::fs::create_dir_all(p).map_err(|e| brainrecon_core::DataError::io(p, e));
    // The writer makes the folders of what it writes; linked stimuli need theirs.
    mkdir(&dir.join("stimuli"))?;
    let out = Writer::new(dir);
    for (split, rows) in [(Split::Train, s.train), (Split::Test, s.test)] {
        out.betas(SHARED_ATLAS, split, [rows.x.nrows(), k], &f32_rows(&rows.x))?;
    }
    // The space's coordinates laid out along x, all of label 1.
    let coords: Vec<[i32; 3]> = (0..k).map(|i| [i as i32, 0, 0]).collect();
    out.roi(SHARED_ATLAS, &coords, &vec![1i32; k])?;
    out.row_ids(Split::Train, &s.train.ids)?;
    let train_sorted: Vec<usize> = train_images.iter().copied().collect();
    out.row_ids(Split::TrainAveraged, &train_sorted)?;
    out.row_ids(Split::Test, &s.test.ids)?;
    let mut trials = String::from("trial\tsession\tsession_trial\tstimulus\tsplit\n");
    for (t, (&id, &session)) in s.train.ids.iter().zip(&s.train_sessions).enumerate() {
        trials.push_str(&format!("{t}\t{session}\t{}\t{id}\ttrain\n", t + 1));
    }
    for (t, &id) in s.test.ids.iter().enumerate() {
        let n = s.train.ids.len() + t;
        trials.push_str(&format!("{n}\t0\t{}\t{id}\ttest\n", t + 1));
    }
    out.trials(&trials)?;
    match linked_from {
        Some(source) => {
            for file in [
                "stimuli/ids.npy",
                "stimuli/images.npy",
                "stimuli/captions.json",
            ] {
                link_or_copy(&source.path(file), &dir.join(file))?;
            }
            let features = source.path("features");
            if features.is_dir() {
                mkdir(&dir.join("features"))?;
                for entry in std::fs::read_dir(&features)
                    .map_err(|e| brainrecon_core::DataError::io(&features, e))?
                    .filter_map(|e| e.ok())
                {
                    let path = entry.path();
                    if path.is_file() {
                        link_or_copy(&path, &dir.join("features").join(entry.file_name()))?;
                    }
                }
            }
        }
        None => {
            let mut all: BTreeSet<usize> = train_images;
            all.extend(&s.test.ids);
            let ids: Vec<usize> = all.into_iter().collect();
            out.stimulus_ids(&ids)?;
        }
    }
    Ok(out.meta(&meta)?)
}

/// A hard link where the file system allows one, else a copy.
pub fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if !from.exists() {
        return Ok(());
    }
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(|e| brainrecon_core::DataError::io(to, e))?;
    }
    Ok(())
}

/// Writes the pooled subject's features (`features/<kind>.npy` and `.json`, f32, one row per
/// image of `images`, in its row order) like `like`'s, named `name`, reading `images` (raw
/// features, blocks in `kinds` order) `block_rows` rows at a time: one block in memory.
pub fn write_pooled_features<R: RowBlocks<Error = RouteError>>(
    dir: &Path,
    kinds: &[String],
    images: &R,
    block_rows: usize,
    like: &PreparedSubject,
    name: &str,
) -> Result<()> {
    let features = dir.join("features");
    std::fs::create_dir_all(&features).map_err(|e| brainrecon_core::DataError::io(&features, e))?;
    let n = images.rows();
    let mut writers = Vec::new();
    for kind in kinds {
        let kind = FeatureKind::parse(kind)?;
        let (mut meta, _) =
            crate::decode::features::load_features_mapped(like, &like.path("features"), kind)?;
        let width = meta.width();
        let (array, json) = feature_paths(&features, kind);
        meta.subject = name.to_string();
        meta.n_images = n;
        brainrecon_core::fs::write_json_atomic(&json, &meta)?;
        writers.push((width, npy::Writer::<f32>::create(&array, &[n, width])?));
    }
    for start in (0..n).step_by(block_rows.max(1)) {
        let len = block_rows.max(1).min(n - start);
        let y = images.block(start, len)?;
        let mut offset = 0;
        for (width, writer) in writers.iter_mut() {
            let mut values = Vec::with_capacity(len * *width);
            for i in 0..len {
                values.extend((offset..offset + *width).map(|j| y[(i, j)] as f32));
            }
            writer.write(&values)?;
            offset += *width;
        }
    }
    for (_, writer) in writers {
        writer.finish()?;
    }
    Ok(())
}

/// The per-subject map and voxel means of a space.
pub fn read_map(group: &Path, space: &SpaceMeta, index: usize) -> Result<(Mat<f64>, Vec<f64>)> {
    let dir = super::space_dir(group, &space.name).join("maps");
    Ok((
        read_mat(&dir.join(format!("{index}.npy")))?,
        read_vec(&dir.join(format!("{index}_mean.npy")))?,
    ))
}
