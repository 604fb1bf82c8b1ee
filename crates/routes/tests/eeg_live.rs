//! `eeg live` on a rehearsal recording (a simulated subject's test epochs written as one
//! continuous CSV with a stim channel): every trial is found, cut and decoded exactly as the
//! same epoch decoded offline, and single trials retrieve their image above chance.

use brainrecon_datasets::things_eeg2::{PreprocessedEeg, Split, ThingsEeg2};
use brainrecon_routes::eeg::decoder::{
    embed_images, fit, EegDecoder, EegFitRequest, EegMethod, EmbedRequest, Training,
};
use brainrecon_routes::eeg::live::{run_live, write_rehearsal, LiveEegRequest};
use brainrecon_routes::eeg::nice_train::NiceTrainOptions;
use brainrecon_routes::eeg::retrieval::cosine_similarities;
use brainrecon_routes::eeg::ridge_decoder::RidgeDecoderOptions;
use brainrecon_simulate::eeg::{simulate_eeg, EegOptions};
use brainrecon_stream::{OpenOptions, Pace};

#[test]
fn live_trials_decode_as_offline_epochs_do() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sim");
    let mut options = EegOptions::new(&data);
    options.subjects = 1;
    options.seed = 5;
    simulate_eeg(&options).unwrap();
    let embeddings = dir.path().join("emb");
    embed_images(&EmbedRequest {
        data: data.clone(),
        model: "shapes-blip".into(),
        out: embeddings.clone(),
        batch: 64,
        progress: false,
    })
    .unwrap();
    let decoder = dir.path().join("nice");
    fit(
        &EegFitRequest {
            data: data.clone(),
            training: Training::Subject("sub-01".into()),
            method: EegMethod::Nice,
            embeddings,
            out: decoder.clone(),
            nice: NiceTrainOptions {
                epochs: 60,
                ..NiceTrainOptions::default()
            },
            ridge: RidgeDecoderOptions::default(),
            allow_seen_concepts: false,
            progress: false,
        },
        |_, _| {},
    )
    .unwrap();
    let test = ThingsEeg2::open(&data)
        .unwrap()
        .read_preprocessed("sub-01", Split::Test)
        .unwrap();
    let recording = dir.path().join("rehearsal.csv");
    let rate = write_rehearsal(&test, 3, &recording).unwrap();
    assert_eq!(rate, 100.0);
    let out = dir.path().join("live");
    let report = run_live(
        &LiveEegRequest {
            source: recording,
            open: OpenOptions {
                rate: Some(rate),
                ..OpenOptions::default()
            },
            stim: "STIM".into(),
            decoder: decoder.clone(),
            data: data.clone(),
            baseline: false,
            pace: Pace::Fast,
            serve: false,
            serve_address: None,
            out: out.clone(),
        },
        &|_| {},
        |_| {},
    )
    .unwrap();
    eprintln!(
        "live: {} trials, top-1 {:.3}, top-5 {:.3} (chance {:.3}, {:.3}); latency median {:.3} ms, p95 {:.3} ms",
        report.trials.len(),
        report.top1,
        report.top5,
        report.chance_top1,
        report.chance_top5,
        report.latency_ms_median,
        report.latency_ms_p95
    );
    assert_eq!(report.trials.len(), 3 * test.conditions);
    assert_eq!((report.scored, report.unfinished), (3 * test.conditions, 0));
    // Each trial as the same epoch decoded offline: the same code, the same ranking.
    let offline = EegDecoder::open(&decoder).unwrap();
    let d = offline.meta.embeddings.width;
    for (k, trial) in report.trials.iter().enumerate() {
        let (r, condition) = (k / test.conditions, k % test.conditions);
        assert_eq!(trial.code, condition as i64 + 1);
        let one = PreprocessedEeg {
            data: test.epoch(condition, r).to_vec(),
            conditions: 1,
            repetitions: 1,
            ch_names: test.ch_names.clone(),
            times: test.times.clone(),
        };
        let decoded = offline.decode(&one).unwrap();
        let similarity = cosine_similarities(&decoded, &offline.candidates, d);
        let mut order: Vec<usize> = (0..test.conditions).collect();
        order.sort_by(|&a, &b| similarity[b].total_cmp(&similarity[a]));
        assert_eq!(trial.ranked, order[..5], "trial {k}");
    }
    // Single trials (measured: top-1 0.094, top-5 0.271 against chance 0.031, 0.156).
    assert!(report.top1 > 2.0 * report.chance_top1, "{report:?}");
    assert!(report.top5 > 1.3 * report.chance_top5, "{report:?}");
    assert!(report.latency_ms_p95 < 50.0, "{report:?}");
    assert!(out.join("session.json").is_file());

    // With the page: after the first trial, /state.json describes it.
    let url = std::cell::RefCell::new(String::new());
    let seen = std::cell::RefCell::new(String::new());
    let mut request = LiveEegRequest {
        source: dir.path().join("rehearsal.csv"),
        open: OpenOptions {
            rate: Some(rate),
            ..OpenOptions::default()
        },
        stim: "stim".into(),
        decoder,
        data,
        baseline: false,
        pace: Pace::Fast,
        serve: true,
        serve_address: Some("127.0.0.1:0".into()),
        out: dir.path().join("live-page"),
    };
    write_rehearsal(&test, 1, &request.source).unwrap();
    request.open.rate = Some(rate);
    run_live(
        &request,
        &|line| {
            if let Some(u) = line.strip_prefix("live page: ") {
                *url.borrow_mut() = u.to_string();
            }
        },
        |_| {
            if seen.borrow().is_empty() {
                *seen.borrow_mut() = get(&url.borrow(), "/state.json");
            }
        },
    )
    .unwrap();
    let state = seen.borrow();
    assert!(
        state.contains("eeg live") && state.contains("\"frames\":1"),
        "{state}"
    );
}

/// The body of GET `path` from the page at `url` (http://HOST:PORT/).
fn get(url: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
}
