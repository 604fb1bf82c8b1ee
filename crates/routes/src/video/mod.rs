//! The video route: continuous fMRI (CC2017's layout, `video prepare`) → short clips.
//! `fit` decodes each fMRI window to the clip caption's text context (ridge, or the caption
//! word by word: `caption_words`), the clip's velocity (`motion`) and the first frame's latent
//! (ridge); `reconstruct` generates a clip per test
//! window with motion modules in the diffusion model's U-Net, guided against the mean window's
//! context, from initial noise moving at the decoded velocity; `evaluate` scores the
//! clips by MinD-Video's protocol (`breakdown`: per segment and position in it); `report`
//! shows them side by side; `train_encoder` is MinD-Video's decoder in place of ridge (an fMRI
//! window encoder trained contrastively, then with the motion U-Net). The motion modules
//! themselves (shapes-motion) are trained in the model zoo (`brainrecon_zoo::shapes_motion`).

pub mod breakdown;
pub mod caption_words;
pub mod classifiers;
pub mod evaluate;
pub mod fit;
pub mod motion;
pub mod reconstruct;
pub mod report;
pub mod stimuli;
pub mod train_encoder;

/// A MotionAdapter or UNetMotionModel folder: `shapes-motion` (built in), a path, or a model
/// id in the Hugging Face cache (e.g. `guoyww/animatediff-motion-adapter-v1-5-2`).
pub fn adapter_dir(name: &str) -> crate::Result<std::path::PathBuf> {
    use brainrecon_diffusion::embedded::SHAPES_MOTION;
    if name == SHAPES_MOTION {
        return Ok(brainrecon_diffusion::embedded::shapes_motion_dir()?);
    }
    brainrecon_nn::weights::resolve_model_folder(
        name,
        "a MotionAdapter or UNetMotionModel folder",
        "config.json diffusion_pytorch_model.safetensors",
    )
    .map_err(|e| {
        crate::RouteError::Usage(format!(
            "--adapter {name}: {e} (or use {SHAPES_MOTION}, built in)"
        ))
    })
}
