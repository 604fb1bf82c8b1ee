//! The window-to-latent fit against numpy (z-score, np.interp, concatenate, truncate,
//! standardise), the permutation's determinism, and a whole stream from a fixture file.

mod common;

use brainrecon_stream::latent::permute;
use brainrecon_stream::{
    read_edf, LatentMapper, LatentStream, Pace, Pacer, SignalSelection, Smoother, Window,
    WindowSpec,
};
use common::{fixture, reference};

fn fixture_window() -> Window {
    let (shape, values) = reference("window.npy");
    assert_eq!(shape, vec![250, 5]);
    let data = values.iter().map(|&v| v as f32).collect();
    Window::new(0, (0..5).collect(), 250, data).unwrap()
}

fn cases() -> Vec<(String, [usize; 3])> {
    std::fs::read_to_string(fixture("window_cases.txt"))
        .unwrap()
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let dim = |i: usize| parts[i].parse::<usize>().unwrap();
            (parts[0].to_string(), [dim(1), dim(2), dim(3)])
        })
        .collect()
}

#[test]
fn fit_matches_numpy_reference() {
    let window = fixture_window();
    let cases = cases();
    assert_eq!(cases.len(), 4);
    for (name, shape) in cases {
        let mapper = LatentMapper::new(shape, 5).unwrap();
        let (fit, warnings) = mapper.fit(&window).unwrap();
        assert!(warnings.is_empty());
        let (ref_shape, want) = reference(&format!("window_fit_{name}.npy"));
        assert_eq!(ref_shape, vec![shape.iter().product::<usize>()], "{name}");
        assert_eq!(fit.len(), want.len(), "{name}");
        for (i, (&g, &w)) in fit.iter().zip(&want).enumerate() {
            assert!((g as f64 - w).abs() < 2e-5, "{name}[{i}]: {g} vs {w}");
        }
    }
}

#[test]
fn latent_is_the_fit_permuted_and_deterministic() {
    let window = fixture_window();
    for (_, shape) in cases() {
        let mapper = LatentMapper::new(shape, 77).unwrap();
        let latent = mapper.latent(&window).unwrap();
        let (fit, _) = mapper.fit(&window).unwrap();
        let n = shape.iter().product();
        assert_eq!(latent.shape, shape);
        assert_eq!(
            latent.values,
            permute(&fit, &brainrecon_stream::latent::permutation(n, 77))
        );
        // Same window, same latent; a fresh mapper with the same seed agrees.
        assert_eq!(latent, mapper.latent(&window).unwrap());
        assert_eq!(
            latent,
            LatentMapper::new(shape, 77)
                .unwrap()
                .latent(&window)
                .unwrap()
        );
        let mean = latent.values.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = latent
            .values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5,
            "{shape:?}: {mean} {var}"
        );
    }
}

#[test]
fn a_fixture_recording_streams_to_latents() {
    let recording = read_edf(&fixture("edf3.edf"), &SignalSelection::All).unwrap();
    let spec = WindowSpec {
        length_s: 1.0,
        hop_s: 0.25,
        channels: Some(vec![0, 1]),
    };
    let run = || {
        let source = Pacer::new(recording.clone(), Pace::Fast);
        let mapper = LatentMapper::new([4, 8, 8], 2).unwrap();
        let mut stream =
            LatentStream::new(source, &spec, mapper, Some(Smoother::new(0.6).unwrap())).unwrap();
        let mut latents = Vec::new();
        while let Some(latent) = stream.next_latent().unwrap() {
            latents.push(latent);
        }
        latents
    };
    let latents = run();
    // 384 frames, 128-frame windows every 32 frames: starts 0, 32, ..., 256.
    assert_eq!(latents.len(), 9);
    assert_eq!(latents[8].window_start, 256);
    assert_eq!(latents, run());
}
