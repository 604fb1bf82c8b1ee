//! shapes-ldm's data: the synthetic scenes of `brainrecon_simulate::scene`, one per (seed,
//! index), with a fixed tenth of the scenes held out for the quality checks.

use brainrecon_simulate::scene::{Scene, N_SCENES};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Scenes never shown in training: a fixed tenth of the 960 combinations (the same for every
/// seed), on which the quality of the model is measured.
pub fn held_out_scenes() -> Vec<Scene> {
    held_out_ids()
        .iter()
        .map(|&id| Scene::from_id(id))
        .collect()
}

/// Ids of [`held_out_scenes`], ascending.
pub fn held_out_ids() -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut ids: Vec<usize> = (0..N_SCENES).collect();
    ids.shuffle(&mut ChaCha8Rng::seed_from_u64(0x4E1D_0017));
    let mut held: Vec<usize> = ids[..N_SCENES / 10].to_vec();
    held.sort_unstable();
    held
}

/// Whether `scene` is one of [`held_out_scenes`].
pub fn is_held_out(scene: &Scene) -> bool {
    held_out_ids().binary_search(&scene.id()).is_ok()
}

/// The scene of training example `index` (a pure function of seed and index), never a held-out
/// one.
pub fn training_scene(seed: u64, index: u64) -> (Scene, Vec<String>) {
    let held = held_out_ids();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let scene = loop {
        let scene = Scene::random(&mut rng);
        if held.binary_search(&scene.id()).is_err() {
            break scene;
        }
    };
    let captions = scene.captions(&mut rng);
    (scene, captions)
}

/// Every word the captions can use: captions of many scenes, so every template, synonym and
/// attribute appears.
pub fn caption_words() -> Vec<String> {
    let mut words: Vec<String> = (0..4000)
        .flat_map(|i| training_scene(0xC0FFEE, i).1)
        .flat_map(|c| c.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect();
    words.sort_unstable();
    words.dedup();
    words
}
