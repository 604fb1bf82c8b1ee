//! Siemens' CSA header, the private element (0029,1010) "CSA Image Header Info" that holds,
//! among others, the number of slices in a mosaic and the slice normal. Layout "SV10" (every
//! Siemens scanner since software VB): the magic, the tag count, then per tag a 64-byte name,
//! VM, VR, SyngoDT, item count and a check value; each item is four int32 (its length in the
//! second) and its value padded to 4 bytes.

use std::collections::BTreeMap;

/// More tags than any real header has (about 100): a count beyond this is corrupt.
const MAX_TAGS: u32 = 4096;
/// More items than one tag holds in practice (a diffusion B matrix has 6).
const MAX_ITEMS: u32 = 4096;

/// Tag name → its non-empty values, as text.
pub type CsaTags = BTreeMap<String, Vec<String>>;

/// Why a CSA header cannot be read (the caller names the file and element).
#[derive(Debug, Clone, PartialEq)]
pub struct CsaError(pub String);

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CsaError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                CsaError(format!(
                    "{what} at byte {} needs {n} bytes; the header has {}",
                    self.at,
                    self.bytes.len()
                ))
            })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, CsaError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

/// Parses an SV10 CSA header.
pub fn parse(bytes: &[u8]) -> Result<CsaTags, CsaError> {
    let mut c = Cursor { bytes, at: 0 };
    if c.take(4, "the magic")? != b"SV10" {
        return Err(CsaError(
            "not an SV10 CSA header (the older CSA1 layout of software before VB is not read)"
                .into(),
        ));
    }
    c.take(4, "the byte-order mark")?;
    let count = c.u32("the tag count")?;
    if count > MAX_TAGS {
        return Err(CsaError(format!(
            "{count} tags (at most {MAX_TAGS} expected)"
        )));
    }
    c.u32("the reserved word")?;
    let mut tags = CsaTags::new();
    for _ in 0..count {
        let name = text(c.take(64, "a tag name")?);
        c.take(4 + 4 + 4, "a tag's VM, VR and SyngoDT")?;
        let items = c.u32("a tag's item count")?;
        if items > MAX_ITEMS {
            return Err(CsaError(format!(
                "tag {name}: {items} items (at most {MAX_ITEMS} expected)"
            )));
        }
        c.u32("a tag's check value")?;
        let mut values = Vec::new();
        for _ in 0..items {
            let header = c.take(16, "an item header")?;
            let length = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let padded = length
                .checked_add(3)
                .map(|l| l / 4 * 4)
                .unwrap_or(usize::MAX);
            let value = c.take(padded, "an item value")?;
            let value = text(&value[..length]);
            if !value.is_empty() {
                values.push(value);
            }
        }
        tags.insert(name, values);
    }
    Ok(tags)
}

/// An SV10 CSA header holding `entries` (name, VR, values), as Siemens writes one.
pub fn write(entries: &[(&str, &str, Vec<String>)]) -> Vec<u8> {
    let mut out = b"SV10\x04\x03\x02\x01".to_vec();
    out.extend((entries.len() as u32).to_le_bytes());
    out.extend(77u32.to_le_bytes());
    for (name, vr, values) in entries {
        let mut padded = name.as_bytes().to_vec();
        padded.resize(64, 0);
        out.extend(padded);
        out.extend(1i32.to_le_bytes());
        let mut vr = vr.as_bytes().to_vec();
        vr.resize(4, 0);
        out.extend(vr);
        out.extend(0i32.to_le_bytes());
        out.extend((values.len() as u32).to_le_bytes());
        out.extend(77u32.to_le_bytes());
        for value in values {
            let mut data = value.as_bytes().to_vec();
            data.push(0);
            let length = data.len() as u32;
            for word in [length, length, 77, length] {
                out.extend(word.to_le_bytes());
            }
            data.resize(data.len().div_ceil(4) * 4, 0);
            out.extend(data);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_and_values_and_refuses_truncation() {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let bytes = write(&[
            ("NumberOfImagesInMosaic", "US", strings(&["36"])),
            ("SliceNormalVector", "FD", strings(&["0", "0.17", "0.98"])),
        ]);
        let tags = parse(&bytes).unwrap();
        assert_eq!(tags["NumberOfImagesInMosaic"], ["36"]);
        assert_eq!(tags["SliceNormalVector"], ["0", "0.17", "0.98"]);
        for cut in [3, 20, 100, bytes.len() - 1] {
            assert!(parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = bytes.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&huge).unwrap_err().0.contains("tags"));
        assert!(parse(b"CSA1 and more bytes")
            .unwrap_err()
            .0
            .contains("SV10"));
    }
}
