//! `brainrecon stream` end to end: the real binary with a real diffusion model (shapes-ldm when
//! its weights are in the repository, else the tiny test model), on recordings written here,
//! stdin, the live page over HTTP and WebSocket, and headless Chromium.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_brainrecon")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// shapes-ldm when its trained weights are in the repository (they are built into the
/// binary), else the tiny diffusers fixture.
fn model() -> String {
    let weights = repo().join("models/shapes-ldm/unet/diffusion_pytorch_model.safetensors");
    if std::fs::metadata(&weights).is_ok_and(|m| m.len() > 0) {
        "shapes-ldm".to_string()
    } else {
        repo()
            .join("crates/diffusion/tests/fixtures/tiny-sd")
            .display()
            .to_string()
    }
}

/// A `brainrecon stream` command with the test model, a private cache and 2 steps.
fn stream(args: &[&str], cache: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("stream")
        .args(["--model", &model(), "--steps", "2"])
        .args(args)
        .env("BRAINRECON_CACHE", cache);
    cmd
}

fn run(args: &[&str], cache: &Path) -> Output {
    stream(args, cache).stdin(Stdio::null()).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A little-endian float32 `.npy` of `frames × channels` values.
fn write_npy(path: &Path, channels: usize, values: &[f32]) {
    let frames = values.len() / channels;
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({frames}, {channels}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// `frames × channels` of deterministic oscillations (channel c at 1 + c Hz, at `rate` Hz).
fn signal(frames: usize, channels: usize, rate: f64) -> Vec<f32> {
    (0..frames)
        .flat_map(|t| {
            (0..channels).map(move |c| {
                let x = t as f64 / rate;
                ((1.0 + c as f64) * std::f64::consts::TAU * x).sin() as f32
                    + 0.3 * ((7.0 + 3.0 * c as f64) * x).cos() as f32
            })
        })
        .collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_fast_replay_gives_the_same_frames_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let rec = dir.path().join("rec.npy");
    write_npy(&rec, 4, &signal(96, 4, 64.0));
    let mut frames = Vec::new();
    // The second run makes three frames at once (the default is two): the frames come out the
    // same and in order.
    for (run_index, denoisers) in [(0, "2"), (1, "3")] {
        let out = dir.path().join(format!("frames{run_index}"));
        let gif = dir.path().join(format!("run{run_index}.gif"));
        let output = run(
            &[
                "--source",
                rec.to_str().unwrap(),
                "--rate",
                "64",
                "--fast",
                "--no-serve",
                "--json",
                "--out",
                out.to_str().unwrap(),
                "--gif",
                gif.to_str().unwrap(),
                "--denoisers",
                denoisers,
            ],
            &cache,
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        // 96 samples, 64-sample windows every 64/30 samples: starts round(k × 2.133) ≤ 32.
        assert_eq!(summary["frames"], 16, "{summary}");
        assert_eq!(summary["windows"], 16);
        assert_eq!(summary["dropped"], 0);
        assert_eq!(summary["ended"], "source-ended");
        assert!(summary["fps"].as_f64().unwrap() > 0.0);
        assert!(summary["latency_ms_p95"].as_f64().unwrap() > 0.0);
        let names = files(&out);
        assert_eq!(names.len(), 16);
        assert_eq!(names[0], "frame-000000.png");
        assert_eq!(names[15], "frame-000015.png");
        let bytes: Vec<Vec<u8>> = names
            .iter()
            .map(|n| std::fs::read(out.join(n)).unwrap())
            .collect();
        assert_eq!(&std::fs::read(&gif).unwrap()[..6], b"GIF89a");
        frames.push(bytes);
    }
    assert_eq!(frames[0], frames[1], "frames differ between two replays");
    // Different windows give different frames.
    assert_ne!(frames[0][0], frames[0][15]);
    // Nothing but the outputs: no temporary files.
    let mut names = files(dir.path());
    names.retain(|n| n != "cache");
    assert_eq!(
        names,
        ["frames0", "frames1", "rec.npy", "run0.gif", "run1.gif"]
    );
}

/// Runs `cmd` to its end, or kills it and fails after `limit`: (status, stdout, stderr).
fn run_within(cmd: &mut Command, limit: Duration) -> (std::process::ExitStatus, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::new(&mut child);
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            while let Ok(line) = lines.rx.try_recv() {
                lines.seen.push(line);
            }
            panic!(
                "still running after {limit:?}; stderr:\n{}",
                lines.seen.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = reader.join().unwrap();
    // The stderr thread ends with the pipe.
    while let Ok(line) = lines.rx.recv_timeout(Duration::from_secs(5)) {
        lines.seen.push(line);
    }
    (status, stdout, lines.seen.join("\n"))
}

#[test]
fn a_file_written_to_frames_ends_with_the_file_unless_serve_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let rec = dir.path().join("rec.npy");
    write_npy(&rec, 3, &signal(96, 3, 64.0));
    let out = dir.path().join("frames");
    let gif = dir.path().join("rec.gif");
    // Neither --serve nor --no-serve: the page is served while the file plays (on the default
    // address, or a free port when that is taken), then the command ends.
    let (status, stdout, stderr) = run_within(
        stream(
            &[
                "--source",
                rec.to_str().unwrap(),
                "--rate",
                "64",
                "--fast",
                "--out",
                out.to_str().unwrap(),
                "--gif",
                gif.to_str().unwrap(),
            ],
            &cache,
        )
        .arg("--hop")
        .arg("0.25"),
        Duration::from_secs(300),
    );
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(stderr.contains("serving the live page at"), "{stderr}");
    assert!(
        stderr.contains("the page closed with the end of") && stderr.contains("pass --serve"),
        "{stderr}"
    );
    let names = files(&out);
    assert!(!names.is_empty());
    assert!(
        stdout.contains(&format!("wrote {} PNGs to {}", names.len(), out.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("wrote {}", gif.display())),
        "{stdout}"
    );
    assert_eq!(&std::fs::read(&gif).unwrap()[..6], b"GIF89a");
}

#[test]
fn a_mixed_rate_edf_file_is_resampled_to_its_highest_rate() {
    let dir = tempfile::tempdir().unwrap();
    let edf = repo().join("crates/stream/tests/fixtures/edf_rates.edf");
    let base = [
        "--source",
        edf.to_str().unwrap(),
        "--fast",
        "--no-serve",
        "--json",
        "--hop",
        "0.5",
    ];
    // EEG Fz at 256 Hz and ECG at 512 Hz: 3 s at 512 Hz, 1 s windows every 0.5 s.
    let output = run(&[&base[..], &["--select", "EEG Fz,1"]].concat(), dir.path());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let err = text(&output.stderr);
    assert!(
        err.contains("edf_rates.edf: EEG Fz (256 Hz) resampled to 512 Hz"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["frames"], 5, "{summary}");
    // The two EEG signals share 256 Hz: read unchanged, nothing said.
    let output = run(&[&base[..], &["--select", "0,EEG Cz"]].concat(), dir.path());
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!text(&output.stderr).contains("resampled"));
    // A signal that is not there, or one chosen twice.
    for select in ["Pz", "0,EEG Fz"] {
        let output = run(&[&base[..], &["--select", select]].concat(), dir.path());
        assert_eq!(output.status.code(), Some(2), "{select}");
        let err = text(&output.stderr);
        assert!(err.contains("EEG Fz"), "{select}: {err}");
    }
}

#[test]
fn a_raw_file_of_another_channel_count_is_a_user_error() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("rec.i16");
    // 10 frames of 3 int16 channels, read as 7 channels.
    std::fs::write(&raw, vec![1u8; 60]).unwrap();
    let output = run(
        &[
            "--source",
            raw.to_str().unwrap(),
            "--channels",
            "7",
            "--rate",
            "100",
            "--no-serve",
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2));
    let err = text(&output.stderr);
    assert!(
        err.contains("rec.i16") && err.contains("a multiple of 14 bytes"),
        "{err}"
    );
}

#[test]
fn a_truncated_raw_file_is_a_user_error() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("rec.f32");
    // 2 channels of float32: frames of 8 bytes; 101 bytes is 12 frames and 5 bytes over.
    std::fs::write(&raw, vec![0u8; 101]).unwrap();
    let output = run(
        &[
            "--source",
            raw.to_str().unwrap(),
            "--channels",
            "2",
            "--rate",
            "100",
            "--no-serve",
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2));
    let err = text(&output.stderr);
    assert!(
        err.contains("rec.f32") && err.contains("5 bytes over"),
        "{err}"
    );
}

#[test]
fn an_all_nan_recording_is_an_error_and_a_nan_channel_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let nan = dir.path().join("nan.npy");
    write_npy(&nan, 3, &vec![f32::NAN; 3 * 80]);
    let output = run(
        &[
            "--source",
            nan.to_str().unwrap(),
            "--rate",
            "64",
            "--fast",
            "--no-serve",
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let err = text(&output.stderr);
    assert!(err.contains("no usable channel"), "{err}");

    let mut values = signal(80, 3, 64.0);
    for t in 0..80 {
        values[t * 3 + 1] = f32::NAN;
    }
    let half = dir.path().join("half.npy");
    write_npy(&half, 3, &values);
    let output = run(
        &[
            "--source",
            half.to_str().unwrap(),
            "--rate",
            "64",
            "--fast",
            "--no-serve",
            "--json",
        ],
        dir.path(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let err = text(&output.stderr);
    assert!(
        err.contains("warning") && err.contains("channel 1") && err.contains("NaN"),
        "{err}"
    );
    // Shown once, not once per window.
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["frames"], 8, "{summary}");
}

#[test]
fn a_source_below_30_hz_gets_one_window_per_sample_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("slow.npy");
    write_npy(&rec, 2, &signal(40, 2, 20.0));
    let output = run(
        &[
            "--source",
            rec.to_str().unwrap(),
            "--rate",
            "20",
            "--fast",
            "--no-serve",
            "--json",
        ],
        dir.path(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let err = text(&output.stderr);
    assert!(
        err.contains("below 30 Hz") && err.contains("hop 0.0500 s"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // 40 samples, 20-sample windows, one per sample: 21 windows.
    assert_eq!(summary["frames"], 21, "{summary}");
    assert_eq!(summary["hop_s"], 0.05);
}

#[test]
fn bad_arguments_are_user_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (
            vec!["--source", "stdin", "--rate", "100", "--format", "f32"],
            "--channels",
        ),
        (vec!["--source", "synthetic", "--select", "9"], "channels"),
        (vec!["--source", "synthetic", "--hop", "0.0001"], "hop"),
        (vec!["--source", "synthetic", "--scheduler", "plms"], "plms"),
        (vec!["--source", "missing.npy"], "missing.npy"),
        (
            vec!["--source", "synthetic", "--denoisers", "0"],
            "--denoisers",
        ),
    ] {
        let mut all = args.clone();
        all.push("--no-serve");
        let output = run(&all, dir.path());
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let err = text(&output.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

/// A child's stderr, line by line, from a thread.
struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn new(child: &mut Child) -> Self {
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The first line (from now or already seen) containing `part`.
    fn wait_for(&mut self, part: &str, timeout: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(part)) {
            return line.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(part) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {part:?}; stderr so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

/// The `http://127.0.0.1:PORT/` the command printed.
fn page_url(lines: &mut Lines) -> String {
    let line = lines.wait_for("serving the live page at ", Duration::from_secs(120));
    line.split("at ").nth(1).unwrap().trim().to_string()
}

fn host(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// A plain HTTP/1.1 GET: (status line, headers, body).
fn get(url: &str, path: &str) -> (String, String, Vec<u8>) {
    let mut s = TcpStream::connect(host(url)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        host(url)
    )
    .unwrap();
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).unwrap();
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = text(&bytes[..split]);
    let status = head.lines().next().unwrap_or("").to_string();
    (status, head, bytes[split + 4..].to_vec())
}

fn state(url: &str) -> serde_json::Value {
    let (status, _, body) = get(url, "/state.json");
    assert!(status.contains("200"), "{status}");
    serde_json::from_slice(&body).unwrap()
}

/// Waits until the page's frame counter reaches `frames`.
fn wait_frames(url: &str, frames: u64, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let s = state(url);
        if s["frames"].as_u64().unwrap_or(0) >= frames {
            return s;
        }
        assert!(Instant::now() < deadline, "stuck at {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the stream did not stop within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stdin_that_ends_keeps_the_last_frame_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("frames");
    let mut child = stream(
        &[
            "--source",
            "stdin",
            "--channels",
            "2",
            "--rate",
            "60",
            "--format",
            "f32",
            "--serve",
            "127.0.0.1:0",
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = Lines::new(&mut child);
    let url = page_url(&mut lines);
    let mut stdin = child.stdin.take().unwrap();
    let bytes: Vec<u8> = signal(150, 2, 60.0)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    stdin.write_all(&bytes).unwrap();
    drop(stdin);
    let ended = lines.wait_for("<stdin> ended", Duration::from_secs(120));
    assert!(ended.contains("serving it at"), "{ended}");
    let s = state(&url);
    assert_eq!(s["ended"], true, "{s}");
    assert!(
        s["status"].as_str().unwrap().contains("source ended"),
        "{s}"
    );
    let frames = s["frames"].as_u64().unwrap();
    assert!(frames >= 1, "{s}");
    // Still served, and stays.
    std::thread::sleep(Duration::from_millis(500));
    let (status, head, png) = get(&url, "/frame.png");
    assert!(
        status.contains("200") && head.contains("image/png"),
        "{head}"
    );
    assert_eq!(&png[1..4], b"PNG");
    assert_eq!(state(&url)["frames"].as_u64().unwrap(), frames);
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
    let names = files(&out);
    assert_eq!(names.len() as u64, frames);
    assert!(names
        .iter()
        .all(|n| n.starts_with("frame-") && n.ends_with(".png")));
}

/// Opens a WebSocket on `/ws` by hand and returns the stream after the 101 response.
fn websocket(url: &str) -> TcpStream {
    let mut s = TcpStream::connect(host(url)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        host(url)
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(text(&head).starts_with("HTTP/1.1 101"), "{}", text(&head));
    s
}

/// Reads one unmasked server frame: (opcode, payload).
fn ws_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).unwrap();
    let mut len = (head[1] & 0x7f) as u64;
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b).unwrap();
        len = u16::from_be_bytes(b) as u64;
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).unwrap();
        len = u64::from_be_bytes(b);
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).unwrap();
    (head[0] & 0x0f, payload)
}

#[test]
fn the_page_survives_clients_that_leave_and_many_at_once_and_sigterm_leaves_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("frames");
    let gif = dir.path().join("live.gif");
    let mut child = stream(
        &[
            "--source",
            "synthetic",
            "--channels",
            "4",
            "--rate",
            "120",
            "--serve",
            "127.0.0.1:0",
            "--out",
            out.to_str().unwrap(),
            "--gif",
            gif.to_str().unwrap(),
        ],
        &dir.path().join("cache"),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = Lines::new(&mut child);
    let url = page_url(&mut lines);
    let (status, _, page) = get(&url, "/");
    assert!(status.contains("200"));
    assert!(text(&page).contains("<canvas id=\"traces\""));
    wait_frames(&url, 1, Duration::from_secs(120));

    // A client that reads a frame, then vanishes without a close handshake.
    let mut ws = websocket(&url);
    let (opcode, payload) = ws_frame(&mut ws);
    assert_eq!(opcode, 1, "a text state first");
    let first: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert!(first["frames"].as_u64().unwrap() >= 1);
    let (opcode, png) = ws_frame(&mut ws);
    assert_eq!(opcode, 2, "then the frame");
    assert_eq!(&png[1..4], b"PNG");
    drop(ws);
    // One that leaves halfway through its request, one mid-stream and never reads.
    let mut half = TcpStream::connect(host(&url)).unwrap();
    half.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpg")
        .unwrap();
    drop(half);
    let idle = websocket(&url);
    // Many at once.
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    let mut ws = websocket(&url);
                    ws_frame(&mut ws).0
                } else {
                    state(&url)["frames"].as_u64().map_or(0, |_| 1)
                }
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), 1);
    }
    drop(idle);
    // Still making and serving frames.
    let now = state(&url)["frames"].as_u64().unwrap();
    let later = wait_frames(&url, now + 2, Duration::from_secs(120));
    assert!(later["fps"].as_f64().unwrap() > 0.0, "{later}");
    assert_eq!(later["traces"].as_array().unwrap().len(), 4);

    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}: {}", lines.seen.join("\n"));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(stdout.contains("fps"), "{stdout}");
    // Whole files only: every PNG decodes, the GIF is complete, no temporary file.
    assert_eq!(files(dir.path()), ["cache", "frames", "live.gif"]);
    let names = files(&out);
    assert!(!names.is_empty());
    for name in &names {
        assert!(
            name.starts_with("frame-") && name.ends_with(".png"),
            "{name}"
        );
        let bytes = std::fs::read(out.join(name)).unwrap();
        assert_eq!(&bytes[bytes.len() - 8..bytes.len() - 4], b"IEND", "{name}");
    }
    let gif_bytes = std::fs::read(&gif).unwrap();
    assert_eq!(&gif_bytes[..6], b"GIF89a");
    assert_eq!(gif_bytes.last(), Some(&0x3b), "GIF trailer");
}

#[test]
fn headless_chromium_sees_the_frame_change() {
    let browser = brainrecon_testkit::find_chromium().unwrap_or_else(|why| panic!("{why}"));
    let dir = tempfile::tempdir().unwrap();
    let mut child = stream(
        &[
            "--source",
            "synthetic",
            "--channels",
            "3",
            "--rate",
            "90",
            "--serve",
            "127.0.0.1:0",
        ],
        dir.path(),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = Lines::new(&mut child);
    let url = page_url(&mut lines);
    wait_frames(&url, 1, Duration::from_secs(120));
    let field = |dom: &str, id: &str| -> String {
        let start = format!("id=\"{id}\">");
        let at = dom
            .find(&start)
            .unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}"));
        let rest = &dom[at + start.len()..];
        rest[..rest.find('<').unwrap()].to_string()
    };
    // Virtual time runs ahead of the frames on a loaded machine: up to three page loads.
    let mut dom = String::new();
    for attempt in 0..3 {
        let profile = dir.path().join(format!("profile{attempt}"));
        let output = Command::new(&browser)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--virtual-time-budget=10000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(&url)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        dom = text(&output.stdout);
        let seen: u64 = field(&dom, "seen").parse().unwrap();
        if seen >= 2 && dom.contains("blob:") {
            break;
        }
    }
    terminate(&mut child);
    let field = |id: &str| field(&dom, id);
    let seen: u64 = field("seen").parse().unwrap();
    let frames: u64 = field("frames").parse().unwrap();
    assert!(seen >= 2, "the page saw {seen} distinct frames:\n{dom}");
    assert!(frames >= 2, "{dom}");
    assert_eq!(field("hash").len(), 16, "{dom}");
    assert!(dom.contains("<img id=\"frame\""), "{dom}");
    assert!(
        dom.contains("blob:"),
        "the frame is shown from the WebSocket:\n{dom}"
    );
}
