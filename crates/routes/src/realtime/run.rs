//! A whole live session with its page: what `realtime run` does between its flags and its
//! summary.

use super::page::LivePage;
use super::record::Summary;
use super::session::{LiveOptions, LiveSession};
use crate::Result;
use brainrecon_stream::{serve_page, Hub};
use std::sync::atomic::AtomicBool;

/// Where the live page is served.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct PageOptions {
    /// The address [default: 127.0.0.1:8080, or a free port when that one is taken].
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "serve",
            value_name = "ADDRESS",
            conflicts_with = "no_serve",
            help = "Serve the live page on this address [default: 127.0.0.1:8080, or a free port when that one is taken]"
        )
    )]
    pub address: Option<String>,
    /// Serve no page (the session still runs and records).
    #[cfg_attr(feature = "cli", arg(long, help = "Do not serve the page"))]
    pub no_serve: bool,
}

/// Opens the session, serves its page, follows the export folder volume by volume until the
/// session ends (`options.follow`'s limits, or `stop`), writes the record and returns its
/// summary. The page's address and each event's line go to `log`.
pub fn run_session(
    options: LiveOptions,
    page: &PageOptions,
    stop: &AtomicBool,
    log: &dyn Fn(&str),
) -> Result<Summary> {
    let tr = options.tr;
    let mut session = LiveSession::open(options)?;
    let hub = Hub::new();
    let server = if page.no_serve {
        None
    } else {
        let server = serve_page(page.address.as_deref(), &hub, log)?;
        log(&format!("live page: {}", server.url()));
        Some(server)
    };
    let mut live_page = LivePage::new(hub.clone(), tr, session.decoders().z_voxels());
    hub.set_status("waiting for the scanner's first volume", false);
    while let Some(event) = session.next(stop)? {
        if let Some(line) = live_page.show(&event, &session) {
            log(&line);
        }
    }
    hub.set_status(
        format!("session ended: {}", session.ended_by().unwrap_or_default()),
        true,
    );
    let summary = session.finish()?;
    if let Some(server) = server {
        server.shutdown();
    }
    Ok(summary)
}
