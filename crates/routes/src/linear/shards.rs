//! Reconstruction split over tasks (a Slurm array, several GPUs): `reconstruct --shard k/N`
//! runs the k-th of N contiguous slices of the test images into the shared output folder and
//! records its own manifest as `<out>/shards/<k>-of-<N>.json`; [`merge`] checks that every
//! shard finished and writes the `manifest.json` one process would have written.
//!
//! Every shard decodes the features of all test images (one matrix product, the same bytes in
//! every task) and noise is seeded per (image, sample), so the images do not depend on N.

use crate::error::{Result, RouteError};
use crate::linear::{Manifest, ReconstructOptions};
use brainrecon_core::fs::{read_json, write_json_atomic};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The k-th (0-based) of `count` contiguous slices of the test images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShard {
    /// k: which slice, 0-based.
    pub index: usize,
    /// N: how many slices.
    pub count: usize,
}

impl ImageShard {
    /// `k/N` with 0 ≤ k < N, as `$SLURM_ARRAY_TASK_ID/N`.
    pub fn parse(text: &str) -> Result<Self> {
        let usage = || {
            RouteError::Usage(format!(
                "--shard: expected k/N with 0 ≤ k < N (0-based, as SLURM_ARRAY_TASK_ID), found '{text}'"
            ))
        };
        let (k, n) = text.split_once('/').ok_or_else(usage)?;
        let (index, count) = (
            k.trim().parse().map_err(|_| usage())?,
            n.trim().parse().map_err(|_| usage())?,
        );
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(ImageShard { index, count })
    }

    /// This shard's rows among `n` test images: sizes differ by at most one, earlier shards
    /// take the extra ones (as `ridge fit --shard`'s target ranges).
    pub fn rows(self, n: usize) -> Range<usize> {
        let (base, extra) = (n / self.count, n % self.count);
        let start = self.index * base + self.index.min(extra);
        start..start + base + usize::from(self.index < extra)
    }

    /// `<out>/shards/<k>-of-<N>.json`.
    pub fn manifest_path(self, out: &Path) -> PathBuf {
        shards_dir(out).join(format!("{}-of-{}.json", self.index, self.count))
    }
}

/// Where shards record their manifests.
pub fn shards_dir(out: &Path) -> PathBuf {
    out.join("shards")
}

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks running reconstructions to stop after the image they are on (a signal handler calls
/// it: Slurm's `--signal=B:TERM@N` before a time limit, preemption, Ctrl-C).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Errs with [`RouteError::Interrupted`] once a stop was requested; `done` of `total` images
/// of this run are finished and stay on disk.
pub(crate) fn check_stop(done: usize, total: usize) -> Result<()> {
    if STOP.load(Ordering::SeqCst) {
        return Err(RouteError::Interrupted { done, total });
    }
    Ok(())
}

/// What [`merge`] found.
#[derive(Debug, Clone, Serialize)]
pub struct MergeSummary {
    /// The reconstruction folder.
    pub out: PathBuf,
    /// Shards joined (0 when the folder was already merged).
    pub shards: usize,
    /// Test images in the merged manifest.
    pub n_images: usize,
    /// False when `manifest.json` was already complete and no shards were left.
    pub merged: bool,
}

/// Joins the shards of `out` into its `manifest.json`, as one process running every test image
/// would have written it (the command recorded is the shards' without `--shard`), then removes
/// `<out>/shards/`. Refuses shards that are missing, unfinished, from other settings or with
/// images missing. Running it again on a merged folder changes nothing.
pub fn merge(out: &Path) -> Result<MergeSummary> {
    let dir = shards_dir(out);
    if !dir.is_dir() {
        let manifest = Manifest::load(out)?;
        if manifest.complete && manifest.options.shard.is_none() {
            return Ok(MergeSummary {
                out: out.to_path_buf(),
                shards: 0,
                n_images: manifest.ids.len(),
                merged: false,
            });
        }
        return Err(RouteError::Missing {
            path: dir,
            what: "the shards' manifests (`reconstruct --shard k/N --out` this folder)".into(),
        });
    }
    let shards = read_shards(&dir)?;
    let merged = merged_manifest(&shards)?;
    check_images(out, &merged)?;
    write_json_atomic(&out.join(Manifest::FILE), &merged)?;
    // Whole or gone: a merge killed while removing must not leave some shards, which the next
    // merge would refuse as a split with shards missing.
    brainrecon_core::fs::remove_dir_atomic(&dir)?;
    Ok(MergeSummary {
        out: out.to_path_buf(),
        shards: shards.len(),
        n_images: merged.ids.len(),
        merged: true,
    })
}

/// Every `<k>-of-<N>.json` under `dir`, in shard order, checked to be shards 0 … N-1 of one
/// split, each complete.
fn read_shards(dir: &Path) -> Result<Vec<(PathBuf, Manifest)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| brainrecon_core::DataError::io(dir, e))?;
    let mut shards = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| brainrecon_core::DataError::io(dir, e))?
            .path();
        if path.extension().is_some_and(|e| e == "json") {
            let manifest: Manifest = read_json(&path)?;
            let shard = manifest.options.shard.ok_or_else(|| {
                RouteError::mismatch(&path, "options.shard", "a shard k/N", "none")
            })?;
            shards.push((shard, path, manifest));
        }
    }
    let Some(count) = shards.first().map(|(s, ..)| s.count) else {
        return Err(RouteError::Missing {
            path: dir.to_path_buf(),
            what: "shard manifests <k>-of-<N>.json".into(),
        });
    };
    shards.sort_by_key(|(s, ..)| (s.count, s.index));
    let indices: Vec<usize> = shards.iter().map(|(s, ..)| s.index).collect();
    if shards.iter().any(|(s, ..)| s.count != count) || indices != (0..count).collect::<Vec<_>>() {
        let found: Vec<String> = shards
            .iter()
            .map(|(s, ..)| format!("{}/{}", s.index, s.count))
            .collect();
        return Err(RouteError::mismatch(
            dir,
            "shards",
            format!("shards 0/{count} … {}/{count}, each once", count - 1),
            format!(
                "{} (a shard missing, or shards of another split)",
                found.join(", ")
            ),
        ));
    }
    for (shard, path, manifest) in &shards {
        if !manifest.complete {
            return Err(RouteError::mismatch(
                path,
                "complete",
                "true (every image of the shard written)",
                format!(
                    "false: shard {}/{} has not finished; rerun it (`brainrecon slurm resume`)",
                    shard.index, shard.count
                ),
            ));
        }
    }
    Ok(shards.into_iter().map(|(_, p, m)| (p, m)).collect())
}

/// The manifest of the whole run from its shards: their ids in order, no shard, the shards'
/// command without `--shard k/N`. The shards must agree on everything else.
fn merged_manifest(shards: &[(PathBuf, Manifest)]) -> Result<Manifest> {
    let common = |m: &Manifest| -> Result<serde_json::Value> {
        let mut value = serde_json::to_value(Manifest {
            ids: Vec::new(),
            options: ReconstructOptions {
                shard: None,
                ..m.options.clone()
            },
            ..m.clone()
        })
        .map_err(|e| RouteError::Usage(format!("manifest: {e}")))?;
        value["command"] = serde_json::Value::Null;
        Ok(value)
    };
    let (first_path, first) = &shards[0];
    let expected = common(first)?;
    let mut ids = Vec::new();
    for (path, manifest) in shards {
        if common(manifest)? != expected {
            return Err(RouteError::mismatch(
                path,
                "settings",
                format!(
                    "those of {} (one run split in shards)",
                    first_path.display()
                ),
                "other options, model, decoders or subject",
            ));
        }
        ids.extend(&manifest.ids);
    }
    let mut merged = first.clone();
    merged.ids = ids;
    merged.options.shard = None;
    merged.command = without_shard(&first.command);
    Ok(merged)
}

/// `command` without its `--shard k/N` (or `--shard=k/N`).
fn without_shard(command: &str) -> String {
    let words: Vec<&str> = command.split(' ').collect();
    let mut kept = Vec::with_capacity(words.len());
    let mut skip_next = false;
    for word in words {
        if skip_next {
            skip_next = false;
        } else if word == "--shard" {
            skip_next = true;
        } else if !word.starts_with("--shard=") {
            kept.push(word);
        }
    }
    kept.join(" ")
}

/// Every image the merged run lists, present.
fn check_images(out: &Path, manifest: &Manifest) -> Result<()> {
    for (name, dir) in manifest.image_sets(out) {
        for id in &manifest.ids {
            let path = dir.join(format!("{id}.png"));
            if !path.exists() {
                return Err(RouteError::Missing {
                    path,
                    what: format!("{name} of test image {id}, which a shard reported written"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_images_once_in_order() {
        for n in [0, 1, 5, 7, 100] {
            for count in 1..=8 {
                let mut next = 0;
                for index in 0..count {
                    let rows = ImageShard { index, count }.rows(n);
                    assert_eq!(rows.start, next);
                    assert!(rows.len() <= n / count + 1);
                    next = rows.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn parse_refuses_what_is_not_a_shard() {
        assert_eq!(
            ImageShard::parse("2/4").unwrap(),
            ImageShard { index: 2, count: 4 }
        );
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2", ""] {
            assert!(ImageShard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_merged_command_drops_the_shard() {
        assert_eq!(
            without_shard("brainrecon reconstruct --shard 1/4 --out r --seed 3"),
            "brainrecon reconstruct --out r --seed 3"
        );
        assert_eq!(
            without_shard("brainrecon reconstruct --out r --shard=0/2"),
            "brainrecon reconstruct --out r"
        );
    }
}
