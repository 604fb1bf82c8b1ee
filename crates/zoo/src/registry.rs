//! The zoo's names: every model the project trains and ships, and where its folder is.

use std::path::PathBuf;

use brainrecon_nn::Result;

/// Names of the project's own models, as `brainrecon train <model>` and `--model` spell them.
pub const MODELS: [&str; 5] = [
    crate::shapes_ldm::SHAPES_LDM,
    crate::shapes_blip::SHAPES_BLIP,
    crate::genres_clap::GENRES_CLAP,
    crate::shapes_motion::SHAPES_MOTION,
    crate::word2vec_movie::WORD2VEC_MOVIE,
];

/// The folder of a model of the zoo by name, written to the cache on first use; `None` for a
/// name the zoo does not ship (a folder or a hub id, for the architecture's own loader), and
/// for word2vec-movie, a single vectors file read from memory
/// ([`crate::word2vec_movie::word2vec_movie`]).
pub fn resolve(name: &str) -> Result<Option<PathBuf>> {
    let model = match name {
        crate::shapes_ldm::SHAPES_LDM => crate::shapes_ldm::SHAPES_LDM_MODEL,
        crate::shapes_blip::SHAPES_BLIP => crate::shapes_blip::SHAPES_BLIP_MODEL,
        crate::genres_clap::GENRES_CLAP => crate::genres_clap::embedded::GENRES_CLAP_MODEL,
        crate::shapes_motion::SHAPES_MOTION => crate::shapes_motion::SHAPES_MOTION_MODEL,
        _ => return Ok(None),
    };
    model.dir().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_other_names_are_left_to_the_loaders() {
        let mut names = MODELS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MODELS.len());
        assert!(resolve("laion/clap-htsat-unfused").unwrap().is_none());
        assert!(resolve(crate::word2vec_movie::WORD2VEC_MOVIE)
            .unwrap()
            .is_none());
    }
}
