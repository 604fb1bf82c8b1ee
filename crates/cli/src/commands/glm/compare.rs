//! `brainrecon glm compare`: a `glm --nsd` fit's betas against NSD's released betas.

use brainrecon_data::atomic::{read_json, write_json_atomic};
use brainrecon_data::experiment::GlmMeta;
use brainrecon_data::npy;
use brainrecon_data::nsd::{self, H5Dataset, BETA_SCALE};
use brainrecon_data::runs::prepare::mask_from_file;
use brainrecon_data::runs::RunSet;
use brainrecon_data::DataError;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Compare a `glm --nsd` fit's single-trial betas with NSD's released betas_fithrf_GLMdenoise_RR
///
/// For each session of the fit, reads NSD's
/// nsddata_betas/ppdata/subjAA/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_sessionBB.hdf5
/// (int16 (trials, Z, Y, X), percent signal change × 300) at the fit's voxels and gives, per
/// voxel, Pearson's r over the session's trials between the two betas: its median and
/// quartiles over the voxels, the same within nsdgeneral (roi/nsdgeneral.nii.gz, when present),
/// and the median ratio of the two betas' spreads (NSD's / the fit's). Writes it as JSON
/// (--out, default <glm>/compare_nsd.json).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon glm --nsd NSD --subject 1 --session 1 --out glm-nsd-s01\n  brainrecon glm compare --glm glm-nsd-s01 --nsd NSD"
)]
pub struct Args {
    /// A finished `brainrecon glm --nsd` folder
    #[arg(long)]
    glm: PathBuf,
    /// NSD's root folder (holding nsddata_betas/)
    #[arg(long)]
    nsd: PathBuf,
    /// Which of GLMsingle's models: typeb, typec or typed
    #[arg(long, default_value = "typed")]
    betas: String,
    /// The comparison's JSON file [default: <glm>/compare_nsd.json]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the comparison as JSON
    #[arg(long)]
    json: bool,
}

/// Per-voxel agreement over a set of voxels.
#[derive(Debug, Clone, Serialize)]
struct Agreement {
    n_voxels: usize,
    /// Voxels left out: constant betas in either fit (outside NSD's mask, say).
    n_constant: usize,
    median_r: f64,
    r_quartiles: [f64; 2],
    /// Median over voxels of std(NSD's betas) / std(the fit's), both in percent signal change.
    median_std_ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
struct SessionComparison {
    session: String,
    betas_file: PathBuf,
    n_trials: usize,
    all_voxels: Agreement,
    nsdgeneral: Option<Agreement>,
}

#[derive(Debug, Clone, Serialize)]
struct Comparison {
    model: String,
    subject: String,
    sessions: Vec<SessionComparison>,
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

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
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
        median_r: quantile(&rs, 0.5),
        r_quartiles: [quantile(&rs, 0.25), quantile(&rs, 0.75)],
        median_std_ratio: quantile(&ratios, 0.5),
    }
}

/// The fit's betas of one model: (voxels, trials), row-major.
fn fitted_betas(glm: &Path, model: &str, voxels: usize, trials: usize) -> anyhow::Result<Vec<f32>> {
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
) -> anyhow::Result<SessionComparison> {
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
            let roi = mask_from_file(&roi_file, set.volume_shape())?;
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let model = super::prepare::model(&args.betas)?;
    if model == "TYPEA_ONOFF" {
        return Err(crate::commands::usage(
            "--betas: typea holds one on/off beta per voxel, not single-trial betas: choose typeb, typec or typed",
        ));
    }
    let meta: GlmMeta = read_json(&args.glm.join("glm.json"))?;
    if meta.settings.get("nsd").is_none() {
        return Err(DataError::invalid(
            args.glm.join("glm.json"),
            "settings.nsd",
            "a folder fitted with `glm --nsd`",
            "a fit of another dataset",
        )
        .into());
    }
    let set = RunSet::open(&args.glm.join(&meta.timeseries))?;
    let [nx, ny, _] = set.volume_shape();
    let flat: Vec<usize> = set
        .voxel_indices()
        .iter()
        .map(|&[i, j, k]| i + nx * (j + ny * k))
        .collect();
    let ours = fitted_betas(&args.glm, &model, flat.len(), meta.trials.len())?;
    let layout = nsd::Layout::new(&args.nsd, nsd::parse_subject(&meta.subject)?);
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
        .collect::<anyhow::Result<Vec<_>>>()?;
    let comparison = Comparison {
        model,
        subject: meta.subject.clone(),
        sessions: compared,
    };
    write_json_atomic(&out_file(&args), &comparison)?;
    report(&args, &comparison)
}

fn out_file(args: &Args) -> PathBuf {
    args.out
        .clone()
        .unwrap_or_else(|| args.glm.join("compare_nsd.json"))
}

fn report(args: &Args, c: &Comparison) -> anyhow::Result<()> {
    if args.json {
        return crate::commands::print_json(c);
    }
    for s in &c.sessions {
        let a = &s.all_voxels;
        outln!(
            "session {}: {} trials, {} voxels: r with NSD's betas median {:.3} (quartiles {:.3}, {:.3}), NSD's spread / ours {:.2}",
            s.session, s.n_trials, a.n_voxels, a.median_r, a.r_quartiles[0], a.r_quartiles[1], a.median_std_ratio
        )?;
        if let Some(g) = &s.nsdgeneral {
            outln!(
                "  in nsdgeneral: {} voxels, median r {:.3} (quartiles {:.3}, {:.3})",
                g.n_voxels,
                g.median_r,
                g.r_quartiles[0],
                g.r_quartiles[1]
            )?;
        }
    }
    outln!("→ {}", out_file(args).display())?;
    Ok(())
}
