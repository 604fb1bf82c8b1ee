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

/// What a model of the zoo is, so that a loader of one architecture is never handed another
/// architecture's folder under the zoo's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A diffusers Stable Diffusion pipeline (shapes-ldm).
    Diffusion,
    /// A transformers BLIP captioner (shapes-blip).
    Captioner,
    /// A transformers CLAP (genres-clap).
    Clap,
    /// A diffusers motion U-Net (shapes-motion).
    Motion,
    /// Word vectors (word2vec-movie).
    Vectors,
}

/// The kind of the zoo's model `name`; `None` for a name the zoo does not ship.
pub fn kind(name: &str) -> Option<Kind> {
    Some(match name {
        crate::shapes_ldm::SHAPES_LDM => Kind::Diffusion,
        crate::shapes_blip::SHAPES_BLIP => Kind::Captioner,
        crate::genres_clap::GENRES_CLAP => Kind::Clap,
        crate::shapes_motion::SHAPES_MOTION => Kind::Motion,
        crate::word2vec_movie::WORD2VEC_MOVIE => Kind::Vectors,
        _ => return None,
    })
}

/// [`resolve`] for a loader of `kind`: the folder of `name` when the zoo ships it as a model of
/// that kind; `None` otherwise (the name goes to the architecture's own loader, which reports
/// what it does not find).
pub fn resolve_kind(name: &str, kind: Kind) -> Result<Option<PathBuf>> {
    if self::kind(name) != Some(kind) {
        return Ok(None);
    }
    resolve(name)
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
        assert!(MODELS.iter().all(|name| kind(name).is_some()));
        assert!(resolve_kind(crate::shapes_ldm::SHAPES_LDM, Kind::Clap)
            .unwrap()
            .is_none());
    }
}
