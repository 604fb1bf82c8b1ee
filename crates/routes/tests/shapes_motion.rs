//! What shapes-motion, the motion U-Net the project trained for shapes-ldm and ships in the
//! binary, does to clips generated from held-out captions ("a red circle moving left"), read
//! back frame by frame. Asserted: the captioned colour is kept, and a clip's frames agree (same
//! background and colour) far more than the image model's frames do without motion modules;
//! with the initial noise moving at the clip's velocity (as `video reconstruct` moves it at the
//! decoded one) the shape moves the captioned way in most clips. From independent noise per
//! frame it does not (printed): the caption's direction words alone do not steer the model;
//! its ε loss is the same under the true and the opposite direction's caption (printed too).
use brainrecon_diffusion::embedded::shapes_motion_dir;
use brainrecon_diffusion::pipeline::{
    ClipOptions, Conditioning, SampleOptions, StableDiffusion, VideoDiffusion,
};
use brainrecon_diffusion::scheduler::{NoiseSchedule, SchedulerConfig, SchedulerKind};
use brainrecon_diffusion::unet_motion::{save_motion_adapter, UNetMotionModel};
use brainrecon_diffusion::warp::moving_noise;
use brainrecon_formats::image::RgbImage;
use brainrecon_nn::rng::{NoiseSource, SeededNoise};
use brainrecon_routes::video::evaluate::read_direction;
use brainrecon_simulate::classify::read_scene;
use brainrecon_simulate::classify_clip::read_clip;
use brainrecon_simulate::video::{render_clip, ClipSpec, Direction};
use brainrecon_zoo::shapes_motion::{adapter_config, clip_latents, MotionTrainConfig};
use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Held-out clips: a stream the training never drew from.
const CLIPS: usize = 20;
const HELD_OUT_SEED: u64 = 0x04E1_D0A7;

fn frames_of(clip: &Tensor, b: usize) -> Vec<RgbImage> {
    let (_, f, _, h, w) = clip.dims5().unwrap();
    (0..f)
        .map(|k| {
            let hwc = clip
                .get(b)
                .unwrap()
                .get(k)
                .unwrap()
                .permute((1, 2, 0))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            RgbImage::from_unit_f32(h, w, &hwc)
        })
        .collect()
}

/// What the clips of `specs` show: shares of clips that move as captioned and whose colour is
/// the captioned one; the mean share of a clip's frames that show its most common background
/// and colour (1 for a coherent clip).
struct Quality {
    direction: f64,
    colour: f64,
    agreement: f64,
}

/// How a clip's initial noise is drawn.
#[derive(Clone, Copy, PartialEq)]
enum Noise {
    /// Independent per frame (AnimateDiff's sampling).
    Independent,
    /// The first frame's, moved at the clip's velocity (`diffusion::warp`, as `video
    /// reconstruct` moves it at the decoded velocity).
    Moving,
}

fn quality(vd: &VideoDiffusion, specs: &[ClipSpec], noise: Noise) -> Quality {
    let captions: Vec<String> = specs.iter().map(ClipSpec::caption).collect();
    let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
    let context = vd.sd.encode_prompts(&refs, None, 5.0).unwrap();
    let options = ClipOptions {
        frames: 6,
        height: 64,
        width: 64,
        sample: SampleOptions {
            steps: 20,
            guidance: 5.0,
            scheduler: SchedulerKind::Ddim { eta: 0.0 },
        },
    };
    let context = Conditioning {
        cond: context.cond,
        uncond: context.uncond,
    };
    let mut seeded = SeededNoise::new(7);
    let frames = match noise {
        Noise::Independent => {
            vd.generate_clip(&context, &options, &mut seeded, &mut |_| {})
                .unwrap()
                .frames
        }
        Noise::Moving => {
            let velocities: Vec<[f32; 2]> = specs
                .iter()
                .map(|s| s.direction.vector().map(|v| v * s.speed))
                .collect();
            let shape = [specs.len(), 4, 6, 16, 16];
            let x_t = moving_noise(&mut seeded, shape, &velocities, &Device::Cpu).unwrap();
            let latents = vd
                .generate_clip_from_latent(
                    &x_t,
                    &context,
                    &options.sample,
                    &mut seeded,
                    &mut |_| {},
                )
                .unwrap();
            vd.decode_clip(&latents).unwrap()
        }
    };
    let (mut direction, mut colour, mut agreement) = (0usize, 0usize, 0.0);
    for (b, spec) in specs.iter().enumerate() {
        let frames = frames_of(&frames, b);
        let reading = read_clip(&frames);
        let want = Direction::ALL.iter().position(|&d| d == spec.direction);
        direction += usize::from(read_direction(&reading) == want);
        colour += usize::from(reading.colour == Some(spec.scene.colour));
        let pairs: Vec<_> = frames
            .iter()
            .map(|f| {
                let r = read_scene(f);
                (r.background, r.colour)
            })
            .collect();
        let most = pairs
            .iter()
            .map(|p| pairs.iter().filter(|q| *q == p).count())
            .max()
            .unwrap_or(0);
        agreement += most as f64 / pairs.len() as f64;
    }
    let n = specs.len() as f64;
    Quality {
        direction: direction as f64 / n,
        colour: colour as f64 / n,
        agreement: agreement / n,
    }
}

/// Mean ε loss of `vd` on `specs`' rendered clips at timestep `t`, with each clip's caption
/// or with the caption of the opposite direction.
fn caption_losses(vd: &VideoDiffusion, specs: &[ClipSpec], t: usize) -> (f32, f32) {
    let frames: Vec<_> = specs.iter().map(|s| render_clip(s, 6, 64)).collect();
    let z = clip_latents(&vd.sd, &frames).unwrap();
    let schedule = NoiseSchedule::new(&SchedulerConfig::stable_diffusion()).unwrap();
    let eps = SeededNoise::new(t as u64)
        .gaussian(z.dims(), &Device::Cpu, DType::F32)
        .unwrap();
    let noisy = schedule.add_noise(&z, &eps, &vec![t; specs.len()]).unwrap();
    let ts = Tensor::from_vec(vec![t as f32; specs.len()], specs.len(), &Device::Cpu).unwrap();
    let loss = |flip: bool| {
        let captions: Vec<String> = specs
            .iter()
            .map(|s| {
                let mut s = *s;
                if flip {
                    s.direction = opposite(s.direction);
                }
                s.caption()
            })
            .collect();
        let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
        let context = vd.sd.encode_text(&refs).unwrap();
        let predicted = vd.unet.forward(&noisy, &ts, &context).unwrap();
        (predicted - &eps)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    (loss(false), loss(true))
}

fn opposite(d: Direction) -> Direction {
    match d {
        Direction::Left => Direction::Right,
        Direction::Right => Direction::Left,
        Direction::Up => Direction::Down,
        Direction::Down => Direction::Up,
        Direction::Still => Direction::Still,
    }
}

#[test]
fn generated_clips_keep_the_captioned_colour_and_agree_across_frames() {
    let device = Device::Cpu;
    let sd = StableDiffusion::load("shapes-ldm", DType::F32, &device).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(HELD_OUT_SEED);
    let specs: Vec<ClipSpec> = (0..CLIPS).map(|_| ClipSpec::random(&mut rng, 6)).collect();

    // The image model alone: fresh motion modules have zero output projections. Saved and
    // loaded as an adapter, so that sampling does not record a graph for their variables.
    let adapter = adapter_config(&sd, &MotionTrainConfig::default());
    let (_, fresh) = UNetMotionModel::init_motion_modules(sd.unet.clone(), &adapter, 0).unwrap();
    let untrained = tempfile::tempdir().unwrap();
    save_motion_adapter(&fresh, &adapter, untrained.path()).unwrap();
    let image_only_vd = VideoDiffusion::with_adapter(sd, untrained.path()).unwrap();
    let image_only = quality(&image_only_vd, &specs, Noise::Independent);
    let image_only_moving = quality(&image_only_vd, &specs, Noise::Moving);

    let sd = StableDiffusion::load("shapes-ldm", DType::F32, &device).unwrap();
    let vd = VideoDiffusion::with_adapter(sd, &shapes_motion_dir().unwrap()).unwrap();
    let trained = quality(&vd, &specs, Noise::Independent);
    let moved = quality(&vd, &specs, Noise::Moving);
    let moving: Vec<ClipSpec> = specs
        .iter()
        .filter(|s| s.direction != Direction::Still)
        .cloned()
        .collect();
    let (right, wrong) = caption_losses(&vd, &moving, 600);
    eprintln!(
        "shapes-motion over {CLIPS} clips: frame agreement {:.3} (image model alone {:.3}), \
         colour {:.3}, direction {:.3} (chance 0.2); ε loss at t = 600 with the clip's caption \
         {right:.5}, with the opposite direction's {wrong:.5}",
        trained.agreement, image_only.agreement, trained.colour, trained.direction
    );
    eprintln!(
        "noise moving at the clip's velocity: direction {:.3}, frame agreement {:.3}, colour \
         {:.3} (image model alone: direction {:.3}, agreement {:.3})",
        moved.direction,
        moved.agreement,
        moved.colour,
        image_only_moving.direction,
        image_only_moving.agreement
    );
    assert!(
        moved.direction >= 0.7,
        "moved the captioned way in {} of the clips",
        moved.direction
    );
    assert!(
        moved.direction >= image_only_moving.direction + 0.2,
        "the motion modules moved the shape the captioned way in {}, the image model alone in {}",
        moved.direction,
        image_only_moving.direction
    );
    assert!(
        moved.colour >= 0.9 && moved.agreement >= trained.agreement - 0.05,
        "moving noise: colour {}, agreement {}",
        moved.colour,
        moved.agreement
    );
    assert!(
        trained.colour >= 0.9,
        "colour read as captioned in {}",
        trained.colour
    );
    assert!(
        trained.agreement >= image_only.agreement + 0.15,
        "frames agree in {:.3} of a clip, {:.3} without motion modules",
        trained.agreement,
        image_only.agreement
    );
}
