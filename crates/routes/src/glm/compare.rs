//! A `glm --nsd` folder's single-trial betas against NSD's released
//! betas_fithrf_GLMdenoise_RR, session by session (`compare_nsd.json`).

use super::folder::model_folder;
use crate::{Result, RouteError};
use brainrecon_core::fs::{read_json, write_json_atomic};
use brainrecon_core::stats::quantile_linear_sorted;
use brainrecon_core::DataError;
use brainrecon_datasets::experiment::GlmMeta;
use brainrecon_datasets::nsd::{self, H5Dataset, BETA_SCALE};
use brainrecon_datasets::runs::prepare::mask_from_file;
use brainrecon_datasets::runs::RunSet;
use brainrecon_formats::npy;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What to compare, as `brainrecon glm compare` takes it.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// A finished `glm --nsd` folder.
    pub glm: PathBuf,
    /// NSD's root folder (holding nsddata_betas/).
    pub nsd: PathBuf,
    /// `typeb`, `typec` or `typed`.
    pub betas: String,
    /// The comparison's JSON file; None for `<glm>/compare_nsd.json`.
    pub out: Option<PathBuf>,
}

impl CompareOptions {
    /// Where the comparison is written.
    pub fn out_file(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| self.glm.join("compare_nsd.json"))
    }
}

/// For each session of the fit, Pearson's r per voxel over the session's trials between the
/// fit's betas and NSD's (int16 (trials, Z, Y, X) ÷ 300, read trial by trial): its median and
/// quartiles over the voxels, the same within nsdgeneral when NSD has that ROI, and the median
/// ratio of the betas' spreads (NSD's / the fit's). Written to [`CompareOptions::out_file`].
pub fn compare_nsd(opts: &CompareOptions) -> Result<Comparison> {
    let model = model_folder(&opts.betas)?.to_string();
    if model == "TYPEA_ONOFF" {
        return Err(RouteError::Usage(
            "--betas: typea holds one on/off beta per voxel, not single-trial betas: choose typeb, typec or typed".into(),
        ));
    }
    let meta: GlmMeta = read_json(&opts.glm.join("glm.json"))?;
    if meta.settings.get("nsd").is_none() {
        return Err(DataError::invalid(
            opts.glm.join("glm.json"),
            "settings.nsd",
            "a folder fitted with `glm --nsd`",
            "a fit of another dataset",
        )
        .into());
    }
    let set = RunSet::open(&opts.glm.join(&meta.timeseries))?;
    let [nx, ny, _] = set.volume_shape();
    let flat: Vec<usize> = set
        .voxel_indices()
        .iter()
        .map(|&[i, j, k]| i + nx * (j + ny * k))
        .collect();
    let ours = fitted_betas(&opts.glm, &model, flat.len(), meta.trials.len())?;
    let layout = nsd::Layout::new(&opts.nsd, nsd::parse_subject(&meta.subject)?);
    let mut sessions: Vec<String> = set
        .runs()
        .iter()
        .filter_map(|r| r.session.clone())
        .collect();
    sessions.dedup();
    let compared = sessions
        .iter()
        .map(|session| {
            let trials: Vec<usize> = (0..meta.trials.len())
                .filter(|&t| set.runs()[meta.trials[t].run].session.as_deref() == Some(session))
                .collect();
            compare_session(&layout, session, &trials, &ours, &set, &flat)
        })
        .collect::<Result<Vec<_>>>()?;
    let comparison = Comparison {
        model,
        subject: meta.subject.clone(),
        sessions: compared,
    };
    write_json_atomic(&opts.out_file(), &comparison)?;
    Ok(comparison)
}

/// Per-voxel agreement over a set of voxels.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// Voxels compared (constant ones left out).
    pub n_voxels: usize,
    /// Voxels left out: constant betas in either fit (outside NSD's mask, say).
    pub n_constant: usize,
    /// Median over the voxels of Pearson r across the session's trials.
    pub median_r: f64,
    /// 25th and 75th percentiles of r (linear interpolation, numpy's default).
    pub r_quartiles: [f64; 2],
    /// Median over voxels of std(NSD's betas) / std(the fit's), both in percent signal change.
    pub median_std_ratio: f64,
}

/// One session's agreement, over all the fit's voxels and within nsdgeneral.
#[derive(Debug, Clone, Serialize)]
pub struct SessionComparison {
    /// The session, as the runs name it.
    pub session: String,
    /// NSD's `betas_sessionBB.hdf5` compared against.
    pub betas_file: PathBuf,
    /// The session's trials.
    pub n_trials: usize,
    /// Over every voxel of the fit.
    pub all_voxels: Agreement,
    /// Within nsdgeneral (`None` when NSD's root lacks that ROI).
    pub nsdgeneral: Option<Agreement>,
}

/// `compare_nsd.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The GLMsingle model compared, the fit's and NSD's (`TYPED_FITHRF_GLMDENOISE_RR`, …).
    pub model: String,
    /// The subject fitted.
    pub subject: String,
    /// One per session of the fit, in order.
    pub sessions: Vec<SessionComparison>,
}

impl Comparison {
    /// The comparison as `glm compare` prints it, one line each; `out_file` is where its
    /// JSON was written.
    pub fn text(&self, out_file: &Path) -> String {
        use std::fmt::Write;
        let mut text = String::new();
        for s in &self.sessions {
            let a = &s.all_voxels;
            let _ = writeln!(
                text,
                "session {}: {} trials, {} voxels: r with NSD's betas median {:.3} (quartiles {:.3}, {:.3}), NSD's spread / ours {:.2}",
                s.session, s.n_trials, a.n_voxels, a.median_r, a.r_quartiles[0], a.r_quartiles[1], a.median_std_ratio
            );
            if let Some(g) = &s.nsdgeneral {
                let _ = writeln!(
                    text,
                    "  in nsdgeneral: {} voxels, median r {:.3} (quartiles {:.3}, {:.3})",
                    g.n_voxels, g.median_r, g.r_quartiles[0], g.r_quartiles[1]
                );
            }
        }
        let _ = writeln!(text, "→ {}", out_file.display());
        text
    }
}

/// Running sums of two variables per voxel.
struct Sums {
    n: f64,
    a: Vec<f64>,
    b: Vec<f64>,
    aa: Vec<f64>,
    bb: Vec<f64>,
    ab: Vec<f64>,
}

impl Sums {
    fn new(voxels: usize) -> Self {
        let z = vec![0.0; voxels];
        Sums {
            n: 0.0,
            a: z.clone(),
            b: z.clone(),
            aa: z.clone(),
            bb: z.clone(),
            ab: z,
        }
    }

    /// One trial: `ours[v]` and `theirs[v]` per voxel.
    fn add(&mut self, ours: impl Iterator<Item = f64>, theirs: impl Iterator<Item = f64>) {
        self.n += 1.0;
        for (v, (x, y)) in ours.zip(theirs).enumerate() {
            self.a[v] += x;
            self.b[v] += y;
            self.aa[v] += x * x;
            self.bb[v] += y * y;
            self.ab[v] += x * y;
        }
    }

    /// Per voxel (r, std ratio theirs/ours); none where either is constant.
    fn stats(&self, v: usize) -> Option<(f64, f64)> {
        let n = self.n;
        let va = self.aa[v] / n - (self.a[v] / n).powi(2);
        let vb = self.bb[v] / n - (self.b[v] / n).powi(2);
        let cov = self.ab[v] / n - self.a[v] / n * self.b[v] / n;
        let tiny = 1e-12;
        (va > tiny && vb > tiny).then(|| (cov / (va * vb).sqrt(), (vb / va).sqrt()))
    }
}

fn agreement(sums: &Sums, voxels: impl Iterator<Item = usize>) -> Agreement {
    let (mut rs, mut ratios, mut constant) = (Vec::new(), Vec::new(), 0);
    for v in voxels {
        match sums.stats(v) {
            Some((r, ratio)) => {
                rs.push(r);
                ratios.push(ratio);
            }
            None => constant += 1,
        }
    }
    rs.sort_by(f64::total_cmp);
    ratios.sort_by(f64::total_cmp);
    Agreement {
        n_voxels: rs.len(),
        n_constant: constant,
        median_r: quantile_linear_sorted(&rs, 0.5),
        r_quartiles: [
            quantile_linear_sorted(&rs, 0.25),
            quantile_linear_sorted(&rs, 0.75),
        ],
        median_std_ratio: quantile_linear_sorted(&ratios, 0.5),
    }
}

/// The fit's betas of one model: (voxels, trials), row-major.
fn fitted_betas(glm: &Path, model: &str, voxels: usize, trials: usize) -> Result<Vec<f32>> {
    let path = glm.join(model).join("betasmd.npy");
    if !path.is_file() {
        return Err(DataError::Missing {
            path,
            what: format!("the fit's {model} betas"),
        }
        .into());
    }
    let betas = npy::read_f32(&path)?;
    if betas.shape != [voxels, trials] {
        return Err(DataError::invalid(
            &path,
            "shape",
            format!("({voxels}, {trials}): the fit's voxels and trials"),
            format!("{:?}", betas.shape),
        )
        .into());
    }
    Ok(betas.data)
}

/// One session: NSD's betas streamed trial by trial against the fit's.
fn compare_session(
    layout: &nsd::Layout,
    session: &str,
    trials: &[usize],
    ours: &[f32],
    set: &RunSet,
    flat: &[usize],
) -> Result<SessionComparison> {
    let number: usize = session.parse().unwrap_or(0);
    let file = layout.betas(number);
    let data = H5Dataset::open(
        &file,
        "betas",
        "NSD's betas of this session (betas_sessionBB.hdf5)",
    )?;
    let [nx, ny, nz] = set.volume_shape();
    let shape = data.shape();
    if shape.len() != 4 || shape[1..] != [nz, ny, nx] || shape[0] != trials.len() {
        return Err(DataError::invalid(
            &file,
            "betas shape",
            format!(
                "(trials, Z, Y, X) = ({}, {nz}, {ny}, {nx}): the fit's trials of session {session} on its grid",
                trials.len()
            ),
            format!("{shape:?}"),
        )
        .into());
    }
    let n_trials_all = ours.len() / flat.len().max(1);
    let mut sums = Sums::new(flat.len());
    let chunk = 25;
    for first in (0..trials.len()).step_by(chunk) {
        let count = chunk.min(trials.len() - first);
        let rows = data.read_rows_f32(first, count)?;
        let volume = nx * ny * nz;
        for k in 0..count {
            let t = trials[first + k];
            let theirs = &rows[k * volume..(k + 1) * volume];
            sums.add(
                (0..flat.len()).map(|v| ours[v * n_trials_all + t] as f64),
                flat.iter().map(|&i| theirs[i] as f64 / BETA_SCALE as f64),
            );
        }
    }
    let roi_file = layout.roi_mask("nsdgeneral");
    let nsdgeneral = match roi_file.is_file() {
        true => {
            let runset = set.root().join("runset.json");
            let grid = brainrecon_core::geometry::Grid {
                path: &runset,
                shape: set.volume_shape(),
                affine: set.affine(),
            };
            let roi = mask_from_file(&roi_file, grid)?;
            let inside = (0..flat.len()).filter(|&v| roi.binary_search(&flat[v]).is_ok());
            Some(agreement(&sums, inside))
        }
        false => None,
    };
    Ok(SessionComparison {
        session: session.to_string(),
        betas_file: file,
        n_trials: trials.len(),
        all_voxels: agreement(&sums, 0..flat.len()),
        nsdgeneral,
    })
}
