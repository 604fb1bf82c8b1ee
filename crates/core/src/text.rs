//! Text that pages and XML files embed: base64 of binary data, and escaped markup.

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648, with `=` padding), as browsers' `atob` and data: URLs read it.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| BASE64_ALPHABET[((n >> shift) & 63) as usize] as char;
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// `&`, `<`, `>`, `"` and `'` as character references: safe in HTML (and XML) element
/// content and in quoted attribute values alike.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The UTF-8 byte-order mark, which MNE-BIDS writes at the start of every TSV and Windows tools
/// write at the start of files saved as "UTF-8".
pub const UTF8_BOM: &str = "\u{feff}";

/// `text` without a leading UTF-8 byte-order mark ([`UTF8_BOM`]), as Python's `utf-8-sig`
/// codec (pandas, MNE-BIDS) reads it.
pub fn without_bom(text: &str) -> &str {
    text.strip_prefix(UTF8_BOM).unwrap_or(text)
}

/// `bytes` without a leading UTF-8 byte-order mark.
pub fn bytes_without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(UTF8_BOM.as_bytes()).unwrap_or(bytes)
}

/// The bytes of the file `path`, its length checked against
/// [`crate::limits::ARRAY_BYTES`] before anything is allocated and the read stopped there (a
/// file that grows while it is read cannot take more).
///
/// # Errors
/// [`crate::error::DataError`] naming `path` when it cannot be read or is over the limit.
pub fn read_bounded(path: &std::path::Path) -> crate::error::Result<Vec<u8>> {
    use crate::error::DataError;
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let length = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let limit = crate::limits::ARRAY_BYTES.check(path, "file length", length)?;
    let mut bytes = Vec::with_capacity(length as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(path, e))?;
    crate::limits::ARRAY_BYTES.check(path, "file length", bytes.len() as u64)?;
    Ok(bytes)
}

/// The text of the UTF-8 file `path` (TSV, CSV, JSON, lists, headers), a leading byte-order mark
/// dropped, read within [`read_bounded`]'s limit. Every text reader of the project goes through
/// here or [`for_each_line`], so a mark written by MNE-BIDS or a Windows editor is never part of
/// the first field.
///
/// # Errors
/// [`crate::error::DataError`] naming `path`: unreadable, over the limit, or not UTF-8 (with the
/// line and byte offset of the first bad byte).
pub fn read_text(path: &std::path::Path) -> crate::error::Result<String> {
    let bytes = read_bounded(path)?;
    utf8_text(path, bytes)
}

/// `bytes` read from `path` as UTF-8 text, a leading byte-order mark dropped (see [`read_text`]).
pub fn utf8_text(path: &std::path::Path, mut bytes: Vec<u8>) -> crate::error::Result<String> {
    if bytes.starts_with(UTF8_BOM.as_bytes()) {
        bytes.drain(..UTF8_BOM.len());
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
        crate::error::DataError::format(
            path,
            "UTF-8 text",
            format!("line {line}: invalid byte at offset {at}"),
        )
    })
}

/// The text of `path` read as UTF-8 when it is valid UTF-8 (a byte-order mark dropped), else as
/// Latin-1 (ISO 8859-1), byte for byte: the two code pages BrainVision headers declare
/// (`Codepage=UTF-8` / `ANSI`), which MNE reads the same way.
pub fn read_text_utf8_or_latin1(path: &std::path::Path) -> crate::error::Result<String> {
    let bytes = read_bounded(path)?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(match text.strip_prefix(UTF8_BOM) {
            Some(rest) => rest.to_string(),
            None => text,
        }),
        Err(e) => Ok(e.into_bytes().iter().map(|&b| b as char).collect()),
    }
}

/// The lines of the UTF-8 text file `path` (a byte-order mark dropped; `\n` or `\r\n` ends a
/// line), each refused when it passes [`crate::limits::LINE_BYTES`], named by its number from 1.
pub fn read_lines(path: &std::path::Path) -> crate::error::Result<Vec<String>> {
    let mut lines = Vec::new();
    for_each_line(path, |_, line| {
        lines.push(line.to_string());
        Ok(())
    })?;
    Ok(lines)
}

/// Calls `each(number, line)` on every line of `path` in order, by [`read_lines`]'s rules, reading
/// the file as a stream: a corpus larger than memory is read in constant memory, and a line past
/// the limit is measured without being held.
pub fn for_each_line(
    path: &std::path::Path,
    mut each: impl FnMut(usize, &str) -> crate::error::Result<()>,
) -> crate::error::Result<()> {
    use crate::error::DataError;
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    // A line's bytes, its `\n` and one more: enough to tell a line at the limit from one past it.
    let held = crate::limits::LINE_BYTES.value().saturating_add(2);
    let mut buffer = Vec::new();
    for number in 1.. {
        buffer.clear();
        let read = (&mut reader)
            .take(held)
            .read_until(b'\n', &mut buffer)
            .map_err(|e| DataError::io(path, e))?;
        if read == 0 {
            return Ok(());
        }
        let ended = buffer.last() == Some(&b'\n');
        let mut rest = 0u64;
        if !ended && read as u64 == held {
            rest = skip_line(&mut reader).map_err(|e| DataError::io(path, e))?;
        }
        if ended {
            buffer.pop();
        }
        while buffer.last() == Some(&b'\r') {
            buffer.pop();
        }
        let mut line: &[u8] = &buffer;
        if number == 1 {
            line = bytes_without_bom(line);
        }
        let length = (line.len() as u64).saturating_add(rest);
        crate::limits::LINE_BYTES.check(path, &format!("line {number}"), length)?;
        let text = std::str::from_utf8(line)
            .map_err(|e| DataError::format(path, "UTF-8 text", format!("line {number}: {e}")))?;
        each(number, text)?;
    }
    Ok(())
}

/// Reads past the rest of a line (through its `\n`), returning the bytes before the `\n`.
fn skip_line(reader: &mut impl std::io::BufRead) -> std::io::Result<u64> {
    let mut skipped = 0u64;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(skipped);
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(end) => {
                reader.consume(end + 1);
                return Ok(skipped + end as u64);
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
                skipped += n as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), coded);
        }
        assert_eq!(base64_encode(&[0xFF, 0xFE, 0xFD]), "//79");
    }

    #[test]
    fn lines_are_read_as_str_lines_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "",
            "\n",
            "a",
            "a\n",
            "a\r\nb",
            "a\n\nb\n",
            "\u{feff}x\r\n",
            "a\r\r\nb\r",
        ] {
            let path = dir.path().join("t.txt");
            std::fs::write(&path, text).unwrap();
            let want: Vec<String> = text
                .strip_prefix('\u{feff}')
                .unwrap_or(text)
                .lines()
                .map(|l| l.trim_end_matches('\r').to_string())
                .collect();
            assert_eq!(read_lines(&path).unwrap(), want, "{text:?}");
        }
    }

    #[test]
    fn a_long_line_is_measured_whole_and_bad_utf8_named_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        let limit = crate::limits::LINE_BYTES.value() as usize;
        let mut text = b"ok\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', limit + 5000));
        text.extend(b"\nafter\n");
        std::fs::write(&path, &text).unwrap();
        let message = read_lines(&path).unwrap_err().to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains(&(limit + 5000).to_string()), "{message}");
        std::fs::write(&path, b"fine\nbad \xff byte\n").unwrap();
        let message = read_lines(&path).unwrap_err().to_string();
        assert!(
            message.contains("line 2") && message.contains("t.txt"),
            "{message}"
        );
        let mut seen = Vec::new();
        let stopped = for_each_line(&path, |n, line| {
            seen.push((n, line.to_string()));
            Ok(())
        });
        assert!(stopped.is_err());
        assert_eq!(
            seen,
            [(1, "fine".to_string())],
            "lines before the bad one were handed over"
        );
    }

    #[test]
    fn whole_text_drops_a_byte_order_mark_and_names_bad_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.tsv");
        std::fs::write(&path, "\u{feff}onset\tduration\n1\t2\n").unwrap();
        assert_eq!(read_text(&path).unwrap(), "onset\tduration\n1\t2\n");
        // Only a leading mark is dropped: one inside the text is data.
        std::fs::write(&path, "a\u{feff}b").unwrap();
        assert_eq!(read_text(&path).unwrap(), "a\u{feff}b");
        std::fs::write(&path, b"\xef\xbb\xbfok\nbad \xff\n").unwrap();
        let message = read_text(&path).unwrap_err().to_string();
        assert!(
            message.contains("events.tsv") && message.contains("line 2"),
            "{message}"
        );
        // Latin-1 headers keep every byte; UTF-8 ones lose only their mark.
        std::fs::write(&path, b"\xef\xbb\xbf[Common Infos]\n").unwrap();
        assert_eq!(read_text_utf8_or_latin1(&path).unwrap(), "[Common Infos]\n");
        std::fs::write(&path, b"\xb5V\n").unwrap();
        assert_eq!(read_text_utf8_or_latin1(&path).unwrap(), "\u{b5}V\n");
        assert_eq!(without_bom("\u{feff}x"), "x");
        assert_eq!(without_bom("x\u{feff}"), "x\u{feff}");
    }

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
