//! The live web page: the current and the previous frame, the current window's signal traces,
//! the frame rate and latency, pushed to every browser over a WebSocket.
//!
//! Routes: `/` (the page), `/ws` (WebSocket: a JSON [`FrameState`] text message whenever the
//! state changes, followed by the frame as a binary PNG message when the frame is new),
//! `/state.json` and `/frame.png` (the same, for polling and scripts).
//!
//! Every client has its own task and only ever gets the newest state: a slow client skips
//! frames instead of queueing them, and a client that goes away ends only its own task.

use crate::frames::encode_png;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use brainrecon_formats::image::RgbImage;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What the page shows besides the image. Serialised as the `/state.json` body.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FrameState {
    /// Frames generated so far (the current frame is number `frames - 1`; 0: none yet).
    pub frames: u64,
    /// [`crate::frames::frame_hash`] of the current frame ("" before the first).
    pub hash: String,
    /// Windows dropped so far because generation was slower than the hop.
    pub dropped: u64,
    /// Frames per second over the last frames.
    pub fps: f64,
    /// Window end → frame ready of the current frame, in milliseconds.
    pub latency_ms: f64,
    /// Start of the current frame's window, in seconds from the start of the source.
    pub window_start_s: f64,
    /// A line for the user (e.g. "streaming", "source ended: …").
    pub status: String,
    /// True once the source has ended (the last frame stays).
    pub ended: bool,
    /// Labels of the channels in `traces`.
    pub labels: Vec<String>,
    /// The current window, one row per shown channel, decimated for display (NaN as null).
    pub traces: Vec<Vec<f32>>,
    /// The page's heading ("" keeps "brainrecon stream").
    pub title: String,
    /// Extra lines shown under the figures, as (label, value).
    pub details: Vec<(String, String)>,
}

struct HubState {
    state: FrameState,
    image: Option<Arc<RgbImage>>,
    /// The PNG of the current image, once encoded: (frame number, bytes).
    png: Option<(u64, Arc<Vec<u8>>)>,
}

/// The state shared between the frame loop (which publishes) and the web server (which reads).
pub struct Hub {
    inner: Mutex<HubState>,
    version: watch::Sender<u64>,
    closed: AtomicBool,
}

impl Hub {
    /// An empty hub: no frame yet, status "starting".
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub {
            inner: Mutex::new(HubState {
                state: FrameState {
                    status: "starting".into(),
                    ..FrameState::default()
                },
                image: None,
                png: None,
            }),
            version: watch::channel(0).0,
            closed: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A panic elsewhere while holding the lock leaves plain data: keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Publishes a new frame with its state; `png` is the frame's PNG if already encoded.
    pub fn publish(&self, image: Arc<RgbImage>, png: Option<Arc<Vec<u8>>>, state: FrameState) {
        {
            let mut inner = self.lock();
            inner.png = png.map(|bytes| (state.frames, bytes));
            inner.image = Some(image);
            inner.state = state;
        }
        self.bump();
    }

    /// Sets the status line (and whether the source has ended), keeping the frame.
    pub fn set_status(&self, status: impl Into<String>, ended: bool) {
        {
            let mut inner = self.lock();
            inner.state.status = status.into();
            inner.state.ended = inner.state.ended || ended;
        }
        self.bump();
    }

    /// The current state.
    pub fn state(&self) -> FrameState {
        self.lock().state.clone()
    }

    /// The current state and the current frame's PNG (encoded on first request).
    pub fn snapshot(&self) -> (FrameState, Option<Arc<Vec<u8>>>) {
        let (state, image, png) = {
            let inner = self.lock();
            let png = inner
                .png
                .as_ref()
                .filter(|(frame, _)| *frame == inner.state.frames)
                .map(|(_, bytes)| bytes.clone());
            (inner.state.clone(), inner.image.clone(), png)
        };
        if png.is_some() {
            return (state, png);
        }
        let Some(image) = image else {
            return (state, None);
        };
        // Encoded outside the lock; cached if the frame has not changed meanwhile.
        let bytes = match encode_png(&image) {
            Ok(bytes) => Arc::new(bytes),
            Err(_) => return (state, None),
        };
        let mut inner = self.lock();
        if inner.state.frames == state.frames {
            inner.png = Some((state.frames, bytes.clone()));
        }
        (state, Some(bytes))
    }

    /// Asks every client task to finish (the server is shutting down).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.bump();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// A running web server; [`Server::shutdown`] (or dropping it) stops it.
pub struct Server {
    addr: SocketAddr,
    hub: Arc<Hub>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<std::sync::mpsc::Receiver<()>>,
}

impl Server {
    /// The address it listens on (the real port when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops accepting connections, closes the clients' WebSockets and waits (up to 2 s) for
    /// the server to finish.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.hub.close();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = done.recv_timeout(std::time::Duration::from_secs(2));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Where [`serve_page`] serves without an address.
pub const DEFAULT_SERVE: &str = "127.0.0.1:8080";

/// Serves the page on `address`, or on [`DEFAULT_SERVE`] when none was given; when that one is
/// taken (another stream, another program), on a free port instead, saying so through `note`.
/// An address that cannot be bound is a usage error naming `--serve`.
pub fn serve_page(
    address: Option<&str>,
    hub: &Arc<Hub>,
    note: &dyn Fn(&str),
) -> Result<Server, brainrecon_core::DataError> {
    let failed = |address: &str, e: std::io::Error| {
        brainrecon_core::DataError::Usage(format!(
            "--serve {address}: {e} (pick another address, or --no-serve)"
        ))
    };
    match address {
        Some(address) => {
            brainrecon_core::offline::check_network(&format!("--serve {address}"), address)?;
            serve(address, hub.clone()).map_err(|e| failed(address, e))
        }
        None => match serve(DEFAULT_SERVE, hub.clone()) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                note(&format!(
                    "note: {DEFAULT_SERVE} is in use; serving on a free port instead"
                ));
                serve("127.0.0.1:0", hub.clone()).map_err(|e| failed("127.0.0.1:0", e))
            }
            other => other.map_err(|e| failed(DEFAULT_SERVE, e)),
        },
    }
}

/// Serves the page for `hub` on `addr` (e.g. `127.0.0.1:8080`; port 0 picks a free port) from a
/// thread of its own. Fails at once when the address cannot be bound.
pub fn serve(addr: &str, hub: Arc<Hub>) -> std::io::Result<Server> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let app = Router::new()
        .route("/", get(page))
        .route("/state.json", get(state_json))
        .route("/frame.png", get(frame_png))
        .route("/ws", get(ws_upgrade))
        .with_state(hub.clone());
    std::thread::Builder::new()
        .name("stream-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
            let _ = done_tx.send(());
        })?;
    Ok(Server {
        addr: local,
        hub,
        stop: Some(stop_tx),
        done: Some(done_rx),
    })
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn state_json(State(hub): State<Arc<Hub>>) -> Response {
    let state = hub.state();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        serde_json::to_string(&state).unwrap_or_else(|_| "{}".into()),
    )
        .into_response()
}

async fn frame_png(State(hub): State<Arc<Hub>>) -> Response {
    match hub.snapshot() {
        (_, Some(png)) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            png.as_ref().clone(),
        )
            .into_response(),
        (_, None) => (StatusCode::SERVICE_UNAVAILABLE, "no frame yet").into_response(),
    }
}

async fn ws_upgrade(ws: WebSocketUpgrade, State(hub): State<Arc<Hub>>) -> Response {
    ws.on_upgrade(move |socket| client(socket, hub))
}

/// One browser: the newest state (and frame, when new) after every change, until it goes away
/// or the server closes.
async fn client(mut socket: WebSocket, hub: Arc<Hub>) {
    let mut version = hub.version.subscribe();
    let mut sent_frame = 0u64;
    loop {
        version.borrow_and_update();
        let (state, png) = hub.snapshot();
        let text = serde_json::to_string(&state).unwrap_or_else(|_| "{}".into());
        if socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
        if let Some(png) = png.filter(|_| state.frames != sent_frame) {
            if socket
                .send(Message::Binary(png.as_ref().clone().into()))
                .await
                .is_err()
            {
                return;
            }
            sent_frame = state.frames;
        }
        if hub.is_closed() {
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        // Wait for a change; answer whatever the client sends (pings are answered by the
        // WebSocket layer), and stop when it closes.
        loop {
            tokio::select! {
                changed = version.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                message = socket.recv() => match message {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>brainrecon stream</title>
<style>
body { font-family: system-ui, sans-serif; background: #111; color: #ddd; margin: 1.5em; }
main { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
#frame { width: 384px; height: 384px; image-rendering: pixelated; background: #222; }
#previous { width: 192px; height: 192px; image-rendering: pixelated; background: #222; }
#previous:not([src]) { visibility: hidden; }
figure { margin: 0; } figcaption { color: #888; font-size: 0.9em; }
#traces { background: #181818; }
dl { display: grid; grid-template-columns: auto auto; gap: 0.2em 1em; }
dt { color: #888; }
#status.ended { color: #fc6; }
</style></head>
<body>
<h1 id="title">brainrecon stream</h1>
<p id="status">connecting…</p>
<main>
<figure><img id="frame" alt="the current frame"><figcaption>current</figcaption></figure>
<figure><img id="previous" alt="the previous frame"><figcaption>previous</figcaption></figure>
<div>
<canvas id="traces" width="640" height="384"></canvas>
<dl>
<dt>frame</dt><dd id="frames">0</dd>
<dt>hash</dt><dd id="hash">-</dd>
<dt>fps</dt><dd id="fps">-</dd>
<dt>latency</dt><dd id="latency">-</dd>
<dt>dropped windows</dt><dd id="dropped">0</dd>
<dt>window start</dt><dd id="window">-</dd>
<dt>distinct frames seen</dt><dd id="seen">0</dd>
</dl>
<dl id="details"></dl>
</div>
</main>
<script>
const $ = (id) => document.getElementById(id);
const seen = new Set();
let imageUrl = null;
let previousUrl = null;
function drawTraces(state) {
  const canvas = $('traces');
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const rows = state.traces.length;
  if (!rows) return;
  const h = canvas.height / rows;
  ctx.font = '11px sans-serif';
  state.traces.forEach((trace, r) => {
    const finite = trace.filter((v) => v !== null && isFinite(v));
    const lo = Math.min(...finite), hi = Math.max(...finite);
    const span = hi > lo ? hi - lo : 1;
    ctx.strokeStyle = 'hsl(' + (r * 47) % 360 + ', 70%, 60%)';
    ctx.beginPath();
    let pen = false;
    trace.forEach((v, i) => {
      if (v === null || !isFinite(v)) { pen = false; return; }
      const x = (i / Math.max(trace.length - 1, 1)) * (canvas.width - 60) + 60;
      const y = r * h + h - 2 - ((v - lo) / span) * (h - 4);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    });
    ctx.stroke();
    ctx.fillStyle = '#aaa';
    ctx.fillText(state.labels[r] || '', 2, r * h + h / 2 + 4);
  });
}
function show(state) {
  if (state.title) { $('title').textContent = state.title; document.title = state.title; }
  $('details').replaceChildren(...state.details.flatMap(([k, v]) => {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v;
    return [dt, dd];
  }));
  $('frames').textContent = state.frames;
  $('hash').textContent = state.hash || '-';
  $('fps').textContent = state.fps.toFixed(1);
  $('latency').textContent = state.latency_ms.toFixed(0) + ' ms';
  $('dropped').textContent = state.dropped;
  $('window').textContent = state.window_start_s.toFixed(3) + ' s';
  $('status').textContent = state.status;
  $('status').className = state.ended ? 'ended' : '';
  if (state.hash) seen.add(state.hash);
  $('seen').textContent = seen.size;
  drawTraces(state);
}
let socketOpen = false;
let shownFrames = 0;
// Also polled twice a second: the status stays current if the WebSocket stalls or closes, and
// the frame then comes from /frame.png.
// The frame before the current one moves to the smaller picture.
function showFrame(url) {
  if ($('frame').src) $('previous').src = $('frame').src;
  $('frame').src = url;
}
function poll() {
  fetch('/state.json', { cache: 'no-store' }).then((r) => r.json()).then((state) => {
    if (state.frames < shownFrames) return;
    show(state);
    if (!socketOpen && state.frames && state.frames !== shownFrames) {
      showFrame('/frame.png?n=' + state.frames);
    }
    shownFrames = state.frames;
  }).catch(() => {});
}
setInterval(poll, 500);
function connect() {
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
  ws.binaryType = 'blob';
  ws.onopen = () => { socketOpen = true; };
  ws.onmessage = (event) => {
    if (typeof event.data === 'string') {
      const state = JSON.parse(event.data);
      shownFrames = Math.max(shownFrames, state.frames);
      show(state);
    } else {
      const url = URL.createObjectURL(event.data);
      if (previousUrl) URL.revokeObjectURL(previousUrl);
      previousUrl = imageUrl;
      showFrame(url);
      imageUrl = url;
    }
  };
  ws.onclose = () => {
    socketOpen = false;
    $('status').textContent = 'disconnected from the stream; retrying…';
    poll();
    setTimeout(connect, 1000);
  };
}
connect();
</script>
</body></html>
"#;
