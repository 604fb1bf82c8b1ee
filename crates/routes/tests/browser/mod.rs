//! Loads an HTML file in headless Chromium and reports which of its <img> elements decoded.
//!
//! The page under test is opened in an iframe of a wrapper page, so the report itself carries no
//! test code; the wrapper inspects the iframe's images after its load event and writes a JSON
//! result into its own DOM, which Chromium prints with `--dump-dom`.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the browser saw: how many <img> elements, how many decoded, and the broken ones' `src`
/// (cut to 80 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserCheck {
    pub images: usize,
    pub loaded: usize,
    pub broken: Vec<String>,
}

const TIMEOUT: Duration = Duration::from_secs(60);

pub use brainrecon_testkit::find_chromium;

/// A file:// URL for an absolute path, percent-encoding everything but unreserved bytes and '/'.
fn file_url(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut url = String::from("file://");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

// The markers are assembled in JavaScript so that the script's own source, which the dumped DOM
// also contains, never holds them whole.
const WRAPPER: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"></head><body>
<pre id="result">pending</pre>
<iframe id="frame" width="1200" height="900"></iframe>
<script>
const frame = document.getElementById('frame');
const report = (value) => {
  document.getElementById('result').textContent =
    'BRAINRECON_' + 'RESULT ' + JSON.stringify(value) + ' BRAINRECON_' + 'END';
};
frame.addEventListener('load', () => {
  try {
    // The iframe's initial about:blank may fire a load of its own.
    if (frame.contentDocument && frame.contentDocument.URL === 'about:blank') return;
    const images = Array.from(frame.contentDocument.images);
    const ok = (img) => img.complete && img.naturalWidth > 0;
    report({
      images: images.length,
      loaded: images.filter(ok).length,
      broken: images.filter((img) => !ok(img)).map((img) => img.src.slice(0, 80)),
    });
  } catch (e) {
    report({ error: String(e) });
  }
});
frame.src = __URL__;
</script>
</body></html>
"#;

/// Opens `html` in headless Chromium and counts the <img> elements that decoded
/// (`complete && naturalWidth > 0`).
pub fn check_images_load(html: &Path) -> Result<BrowserCheck, String> {
    let chromium = find_chromium()?;
    let html = html
        .canonicalize()
        .map_err(|e| format!("{}: {e}", html.display()))?;
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let wrapper = dir.path().join("wrapper.html");
    let url = serde_json::to_string(&file_url(&html)).unwrap();
    std::fs::write(&wrapper, WRAPPER.replace("__URL__", &url))
        .map_err(|e| format!("{}: {e}", wrapper.display()))?;
    let stdout_path = dir.path().join("dom.html");
    let stderr_path = dir.path().join("stderr.txt");
    let stdout = std::fs::File::create(&stdout_path).map_err(|e| e.to_string())?;
    let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;

    let mut child = Command::new(&chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--allow-file-access-from-files",
            "--virtual-time-budget=10000",
        ])
        // A private profile: parallel tests must not share Chromium's singleton lock.
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(file_url(&wrapper))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", chromium.display()))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if started.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {} s",
                    chromium.display(),
                    TIMEOUT.as_secs()
                ));
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let mut dom = String::new();
    std::fs::File::open(&stdout_path)
        .and_then(|mut f| f.read_to_string(&mut dom))
        .map_err(|e| e.to_string())?;
    let stderr_tail = || {
        let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    let (start, end) = ("BRAINRECON_RESULT ", " BRAINRECON_END");
    let json = match (dom.find(start), dom.find(end)) {
        (Some(a), Some(b)) if a + start.len() <= b => &dom[a + start.len()..b],
        _ => {
            return Err(format!(
                "{} ({status}) printed no result for {}; stderr ends:\n{}",
                chromium.display(),
                html.display(),
                stderr_tail()
            ))
        }
    };
    // --dump-dom serialises text content with &, < and > escaped.
    let json = json
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    let value: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("result {json:?}: {e}"))?;
    if let Some(error) = value.get("error") {
        return Err(format!(
            "the page {} could not be inspected: {error}",
            html.display()
        ));
    }
    let count = |key: &str| {
        value[key]
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| format!("result {json:?}: no {key}"))
    };
    Ok(BrowserCheck {
        images: count("images")?,
        loaded: count("loaded")?,
        broken: value["broken"]
            .as_array()
            .ok_or_else(|| format!("result {json:?}: no broken"))?
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect(),
    })
}
