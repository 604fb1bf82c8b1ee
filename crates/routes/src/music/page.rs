//! The retrieval's playlist (M3U) and its page: the scores, the ROI table and, per test clip,
//! players for the heard clip and what was retrieved.

use super::fit::MusicFitSummary;
use super::retrieve::RetrievalSummary;
use crate::score::report::escape;

/// `#EXTM3U`: per test clip, the heard clip, then its matches.
pub fn playlist(summary: &RetrievalSummary, library_href: &str) -> String {
    let mut m3u = String::from("#EXTM3U\n");
    for clip in &summary.clips {
        m3u.push_str(&format!(
            "#EXTINF:-1,{} (heard, {})\nstimuli/{}.wav\n",
            clip.track, clip.genre, clip.track
        ));
        for (rank, m) in clip.matches.iter().enumerate() {
            m3u.push_str(&format!(
                "#EXTINF:-1,{} match {}: {} (cosine {:.3})\n{}/{}\n",
                clip.track,
                rank + 1,
                m.path,
                m.score,
                library_href,
                m.path
            ));
        }
    }
    m3u
}

fn percent(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}%", 100.0 * v))
}

fn roi_rows(fit: &MusicFitSummary) -> String {
    let mut rois = fit.rois.clone();
    rois.sort_by(|a, b| b.cv_score.total_cmp(&a.cv_score));
    rois.iter()
        .map(|r| {
            format!(
                "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                if r.kept { " class=kept" } else { "" },
                r.label,
                escape(&r.name),
                r.n_voxels,
                r.cv_score,
                r.test_identification
            )
        })
        .collect()
}

fn clip_rows(summary: &RetrievalSummary, library_href: &str) -> String {
    let mut rows = String::new();
    for clip in &summary.clips {
        let matches: String = clip
            .matches
            .iter()
            .map(|m| {
                let hit = m.genre.as_deref() == Some(clip.genre.as_str());
                format!(
                    "<div class='match{}'><div>{} · {} · cos {:.3}</div><audio controls preload=none src='{}/{}'></audio></div>",
                    if hit { " hit" } else { "" },
                    escape(&m.path),
                    escape(m.genre.as_deref().unwrap_or("?")),
                    m.score,
                    escape(library_href),
                    escape(&m.path)
                )
            })
            .collect();
        rows.push_str(&format!(
            "<tr><td><b>{}</b><br>{}<br><audio controls preload=none src='stimuli/{}.wav'></audio></td><td>{}</td></tr>\n",
            escape(&clip.track),
            escape(&clip.genre),
            escape(&clip.track),
            matches
        ));
    }
    rows
}

/// The self-contained page (the audio is linked, not embedded).
pub fn page(summary: &RetrievalSummary, fit: &MusicFitSummary, library_href: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Music from brain activity</title><style>\
body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}}\
tr.kept{{background:#eef7ee}}.match{{display:inline-block;margin:.2em;padding:.3em;border:1px solid #ddd}}.match.hit{{border-color:#4a4}}audio{{width:16em}}</style></head><body>\
<h1>Music from brain activity</h1>\
<p>Decoded {embedding} embeddings ({model}, {width} values per {window} s window advanced {step} s) from the fMRI of {train} training clips; \
{test} test clips, each window's prediction the mean of the {top} best ROIs' ridge models (K-fold CV over clips, {folds} folds).</p>\
<table><tr><th>measure</th><th>value</th><th>chance</th></tr>\
<tr><td>identification, test windows ({nw})</td><td>{idw:.3}</td><td>0.5</td></tr>\
<tr><td>identification, test clips ({nc})</td><td>{idc:.3}</td><td>0.5</td></tr>\
<tr><td>retrieval: top-1 genre accuracy ({files} library files)</td><td>{top1}</td><td>{chance}</td></tr></table>\
<h2>Test clips and what was retrieved</h2><table><tr><th>heard</th><th>top {k} of the library</th></tr>\n{clips}</table>\
<h2>ROIs</h2><p>Shaded: the ROIs kept.</p><table><tr><th>label</th><th>name</th><th>voxels</th><th>CV R²</th><th>test identification alone</th></tr>{rois}</table>\
<p>Playlist: <a href='playlist.m3u'>playlist.m3u</a>. Skipped library files: {skipped}.</p></body></html>\n",
        embedding = fit.embedding.name(),
        model = escape(&fit.model),
        width = fit.width,
        window = fit.windows.seconds,
        step = fit.windows.step,
        train = fit.train_clips,
        test = fit.test_clips.len(),
        top = fit.top_rois,
        folds = fit.folds,
        nw = fit.test_windows,
        nc = fit.test_clips.len(),
        idw = fit.identification_windows,
        idc = fit.identification_clips,
        files = summary.library_files,
        top1 = percent(summary.top1_genre_accuracy),
        chance = percent(summary.genre_chance),
        k = summary.top_k,
        clips = clip_rows(summary, library_href),
        rois = roi_rows(fit),
        skipped = summary.skipped.len(),
    )
}
