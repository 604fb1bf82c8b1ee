//! shapes-ldm, the project's own small model, compiled into the binary so that `--model
//! shapes-ldm` works on any machine, offline. On first use its diffusers folder is written to
//! the cache (`$BRAINRECON_CACHE`, else `$XDG_CACHE_HOME/brainrecon`, else
//! `~/.cache/brainrecon`) under a name that includes a hash of its bytes, so a new build never
//! reads an old copy. The folder is written beside its final name and renamed into place.

use std::path::{Path, PathBuf};

use brainrecon_nn::embedded::{cache_dir, EmbeddedModel};
use brainrecon_nn::Result;

/// The name `--model` accepts for the embedded model.
pub const SHAPES_LDM: &str = "shapes-ldm";

macro_rules! model_file {
    ($path:literal) => {
        (
            $path,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../models/shapes-ldm/",
                $path
            )) as &[u8],
        )
    };
}

/// (path in the diffusers folder, bytes) of every file of shapes-ldm.
pub const SHAPES_LDM_FILES: [(&str, &[u8]); 11] = [
    model_file!("model_index.json"),
    model_file!("scheduler/scheduler_config.json"),
    model_file!("tokenizer/vocab.json"),
    model_file!("tokenizer/merges.txt"),
    model_file!("tokenizer/tokenizer_config.json"),
    model_file!("text_encoder/config.json"),
    model_file!("text_encoder/model.safetensors"),
    model_file!("unet/config.json"),
    model_file!("unet/diffusion_pytorch_model.safetensors"),
    model_file!("vae/config.json"),
    model_file!("vae/diffusion_pytorch_model.safetensors"),
];

/// shapes-ldm as an embedded model folder.
pub const SHAPES_LDM_MODEL: EmbeddedModel = EmbeddedModel {
    name: SHAPES_LDM,
    files: &SHAPES_LDM_FILES,
    marker: "model_index.json",
};

/// The diffusers folder of shapes-ldm, written to `cache` if it is not there yet.
pub fn shapes_ldm_dir_in(cache: &Path) -> Result<PathBuf> {
    SHAPES_LDM_MODEL.dir_in(cache)
}

/// The diffusers folder of shapes-ldm in [`cache_dir`].
pub fn shapes_ldm_dir() -> Result<PathBuf> {
    shapes_ldm_dir_in(&cache_dir())
}

/// The name `--adapter` accepts for the embedded motion U-Net of shapes-ldm.
pub const SHAPES_MOTION: &str = "shapes-motion";

/// (path in the UNetMotionModel folder, bytes) of every file of shapes-motion, the motion U-Net
/// the project trained for shapes-ldm (`brainrecon video train-motion --tune unet`: motion
/// modules and shapes-ldm's U-Net; its record is `training.json` in the repository's
/// `models/shapes-motion/`).
pub const SHAPES_MOTION_FILES: [(&str, &[u8]); 2] = [
    (
        "config.json",
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/shapes-motion/config.json"
        )),
    ),
    (
        "diffusion_pytorch_model.safetensors",
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/shapes-motion/diffusion_pytorch_model.safetensors"
        )),
    ),
];

/// shapes-motion as an embedded model folder.
pub const SHAPES_MOTION_MODEL: EmbeddedModel = EmbeddedModel {
    name: SHAPES_MOTION,
    files: &SHAPES_MOTION_FILES,
    marker: "config.json",
};

/// The UNetMotionModel folder of shapes-motion in [`cache_dir`].
pub fn shapes_motion_dir() -> Result<PathBuf> {
    SHAPES_MOTION_MODEL.dir_in(&cache_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_model_is_written_once_and_matches_the_repository() {
        let cache = tempfile::tempdir().unwrap();
        let dir = shapes_ldm_dir_in(cache.path()).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/shapes-ldm");
        for (name, data) in SHAPES_LDM_FILES {
            let written = std::fs::read(dir.join(name)).unwrap();
            assert_eq!(written, data, "{name}");
            assert_eq!(written, std::fs::read(repo.join(name)).unwrap(), "{name}");
        }
        // A second use finds it and writes nothing.
        let modified = std::fs::metadata(dir.join("model_index.json"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(shapes_ldm_dir_in(cache.path()).unwrap(), dir);
        let again = std::fs::metadata(dir.join("model_index.json"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(modified, again);
        // No staging folder is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("partial"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn every_file_of_the_motion_folder_is_embedded() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/shapes-motion");
        SHAPES_MOTION_MODEL.assert_matches_folder(&repo, &["training.json"]);
    }

    #[test]
    fn every_file_of_the_model_folder_is_embedded() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/shapes-ldm");
        SHAPES_LDM_MODEL.assert_matches_folder(&repo, &["training.json"]);
    }
}
