//! A check of every element length in a DICOM file before the parser reads it: the parser
//! allocates what a length field claims, so one flipped bit in a length (or a file cut short
//! by a copy still under way) would ask for gigabytes. Every length must fit in what is left
//! of its file, item or sequence, recursively; undefined lengths must reach their delimiters.
//!
//! A length that runs past the end of the *file* (not of an enclosing item) is what a file
//! still being written, or cut short, looks like: more bytes could make it whole. Those
//! messages, and only those, end with [`ENDS_EARLY`], which a folder watcher takes to mean
//! "read it again once it has grown" rather than "broken".

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

/// The words every message about a file cut short ends with (NIfTI's reader says the same).
pub const ENDS_EARLY: &str = "the file ends early (cut short, or still being written)";

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_END: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
/// Sequences nest this deep at most (real files: 3 or 4).
const MAX_DEPTH: usize = 16;

/// Checks a Part 10 file's bytes (preamble, "DICM", meta group, data set). `Err` says where
/// the first impossible length is.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 132 {
        // What is there may be the start of a Part 10 file (a preamble, scanners write it as
        // zeros, then part of "DICM"), or is not one.
        let (preamble, marker) = bytes.split_at(bytes.len().min(128));
        let could_grow =
            b"DICM".starts_with(marker) && (bytes.len() >= 128 || preamble.iter().all(|&b| b == 0));
        return Err(if could_grow {
            format!(
                "{} bytes, before the DICM marker at byte 128: {ENDS_EARLY}",
                bytes.len()
            )
        } else {
            format!(
                "{} bytes and no DICM marker at byte 128: not a DICOM Part 10 file",
                bytes.len()
            )
        });
    }
    if &bytes[128..132] != b"DICM" {
        return Err("no DICM marker at byte 128: not a DICOM Part 10 file".into());
    }
    let meta = Walker {
        bytes,
        explicit: true,
    };
    let (data_start, explicit) = meta.meta_group(132)?;
    let walker = Walker { bytes, explicit };
    let (end, delimited) = walker.elements(data_start, bytes.len(), 0)?;
    if delimited || end != bytes.len() {
        return Err(format!("an unexpected delimiter at byte {end}"));
    }
    Ok(())
}

struct Walker<'a> {
    bytes: &'a [u8],
    explicit: bool,
}

/// One element's header: its tag, VR (when known), value length and value start.
struct Header {
    tag: (u16, u16),
    vr: Option<VR>,
    length: u32,
    value: usize,
}

impl Walker<'_> {
    /// `message`, marked as a file cut short when `end` is the end of the file (not of an
    /// item or sequence of defined length, which more bytes would not mend).
    fn past(&self, end: usize, message: String) -> String {
        if end == self.bytes.len() {
            format!("{message}: {ENDS_EARLY}")
        } else {
            message
        }
    }

    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes([
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ])
    }

    /// Walks group 0002 (always explicit VR); returns where the data set starts and whether
    /// it is explicit VR (from TransferSyntaxUID).
    fn meta_group(&self, mut at: usize) -> Result<(usize, bool), String> {
        let mut explicit = true;
        while at + 8 <= self.bytes.len() && self.u16(at) == 0x0002 {
            let h = self.header(at, self.bytes.len())?;
            let end = self.value_end(&h, self.bytes.len())?;
            if h.tag == (0x0002, 0x0010) {
                let uid = String::from_utf8_lossy(&self.bytes[h.value..end]);
                explicit = uid.trim_end_matches(['\0', ' ']) != "1.2.840.10008.1.2";
            }
            at = end;
        }
        Ok((at, explicit))
    }

    fn header(&self, at: usize, end: usize) -> Result<Header, String> {
        let short = || {
            self.past(
                end,
                format!("an element header at byte {at} runs past byte {end}"),
            )
        };
        if at.checked_add(8).is_none_or(|e| e > end) {
            return Err(short());
        }
        let tag = (self.u16(at), self.u16(at + 2));
        if tag.0 == 0xFFFE || !self.explicit {
            let vr = (tag.0 != 0xFFFE).then(|| dictionary_vr(tag)).flatten();
            return Ok(Header {
                tag,
                vr,
                length: self.u32(at + 4),
                value: at + 8,
            });
        }
        let code = [self.bytes[at + 4], self.bytes[at + 5]];
        let vr = VR::from_binary(code).ok_or_else(|| {
            format!(
                "element ({:04X},{:04X}) at byte {at} has an unknown VR {:?}",
                tag.0,
                tag.1,
                String::from_utf8_lossy(&code)
            )
        })?;
        let long = matches!(
            Some(vr),
            Some(
                VR::OB
                    | VR::OD
                    | VR::OF
                    | VR::OL
                    | VR::OV
                    | VR::OW
                    | VR::SQ
                    | VR::SV
                    | VR::UC
                    | VR::UN
                    | VR::UR
                    | VR::UT
                    | VR::UV
            )
        );
        if long {
            if at + 12 > end {
                return Err(short());
            }
            Ok(Header {
                tag,
                vr: Some(vr),
                length: self.u32(at + 8),
                value: at + 12,
            })
        } else {
            Ok(Header {
                tag,
                vr: Some(vr),
                length: self.u16(at + 6) as u32,
                value: at + 8,
            })
        }
    }

    fn value_end(&self, h: &Header, end: usize) -> Result<usize, String> {
        (h.value as u64 + h.length as u64 <= end as u64)
            .then_some(h.value + h.length as usize)
            .ok_or_else(|| {
                self.past(
                    end,
                    format!(
                        "element ({:04X},{:04X}) claims {} bytes at byte {}; only {} remain",
                        h.tag.0,
                        h.tag.1,
                        h.length,
                        h.value,
                        end.saturating_sub(h.value)
                    ),
                )
            })
    }

    /// Walks a data set from `at` to `end`; stops early after an item delimiter (returned as
    /// `true`).
    fn elements(&self, mut at: usize, end: usize, depth: usize) -> Result<(usize, bool), String> {
        while at < end {
            let h = self.header(at, end)?;
            if h.tag == ITEM_END {
                return Ok((h.value, true));
            }
            if h.tag.0 == 0xFFFE {
                return Err(format!("an item tag outside a sequence at byte {at}"));
            }
            at = if h.length == UNDEFINED {
                self.undefined_sequence(&h, end, depth + 1)?
            } else {
                let value_end = self.value_end(&h, end)?;
                if h.vr == Some(VR::SQ) {
                    self.items(h.value, value_end, depth + 1)?;
                }
                value_end
            };
        }
        Ok((at, false))
    }

    /// Items from `at` to `end` (a sequence of defined length).
    fn items(&self, mut at: usize, end: usize, depth: usize) -> Result<(), String> {
        while at < end {
            at = self.item(at, end, depth)?;
        }
        Ok(())
    }

    fn item(&self, at: usize, end: usize, depth: usize) -> Result<usize, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "sequences nested deeper than {MAX_DEPTH} at byte {at}"
            ));
        }
        let h = self.header(at, end)?;
        if h.tag != ITEM {
            return Err(format!(
                "expected an item at byte {at}, found ({:04X},{:04X})",
                h.tag.0, h.tag.1
            ));
        }
        if h.length == UNDEFINED {
            match self.elements(h.value, end, depth)? {
                (next, true) => Ok(next),
                _ => Err(self.past(end, format!("the item at byte {at} has no delimiter"))),
            }
        } else {
            let item_end = self.value_end(&h, end)?;
            let (_, delimited) = self.elements(h.value, item_end, depth)?;
            if delimited {
                return Err(format!(
                    "a delimiter inside the defined-length item at byte {at}"
                ));
            }
            Ok(item_end)
        }
    }

    /// A sequence (or encapsulated pixel data) of undefined length: items up to the
    /// sequence delimiter.
    fn undefined_sequence(&self, h: &Header, end: usize, depth: usize) -> Result<usize, String> {
        let mut at = h.value;
        loop {
            let item = self.header(at, end).map_err(|_| {
                self.past(
                    end,
                    format!(
                        "element ({:04X},{:04X}) has no sequence delimiter",
                        h.tag.0, h.tag.1
                    ),
                )
            })?;
            if item.tag == SEQUENCE_END {
                return Ok(item.value);
            }
            at = if h.tag == PIXEL_DATA {
                // Fragments of compressed pixels: bytes, not data sets.
                if item.tag != ITEM || item.length == UNDEFINED {
                    return Err(format!("a malformed pixel data fragment at byte {at}"));
                }
                self.value_end(&item, end)?
            } else {
                self.item(at, end, depth)?
            };
        }
    }
}

/// The VR the standard dictionary gives a tag (implicit VR files do not say).
fn dictionary_vr(tag: (u16, u16)) -> Option<VR> {
    match StandardDataDictionary.by_tag(Tag(tag.0, tag.1))?.vr() {
        VirtualVr::Exact(vr) => Some(vr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(explicit: bool, data_set: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 128];
        out.extend(b"DICM");
        let uid: &[u8] = if explicit {
            b"1.2.840.10008.1.2.1\0"
        } else {
            b"1.2.840.10008.1.2\0"
        };
        out.extend([0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        out.extend((uid.len() as u16).to_le_bytes());
        out.extend(uid);
        out.extend(data_set);
        out
    }

    fn implicit(group: u16, element: u16, length: u32, value: &[u8]) -> Vec<u8> {
        let mut out = group.to_le_bytes().to_vec();
        out.extend(element.to_le_bytes());
        out.extend(length.to_le_bytes());
        out.extend(value);
        out
    }

    /// The first `n` bytes of a Part 10 file: the zero preamble, then "DICM".
    fn whole_prefix(n: usize) -> Vec<u8> {
        let mut out = vec![0u8; 128];
        out.extend(b"DICM");
        out.truncate(n);
        out
    }

    #[test]
    fn lengths_that_fit_pass_and_others_are_named() {
        let rows = implicit(0x0028, 0x0010, 2, &[64, 0]);
        assert_eq!(check(&file(false, &rows)), Ok(()));
        let liar = implicit(0x0028, 0x0010, 0x7FFF_0000, &[64, 0]);
        let err = check(&file(false, &liar)).unwrap_err();
        assert!(err.contains("(0028,0010) claims 2147418112 bytes"), "{err}");
        // A sequence of undefined length holding one undefined-length item, then cut short.
        let mut seq = implicit(0x0008, 0x1140, UNDEFINED, &[]);
        seq.extend(implicit(0xFFFE, 0xE000, UNDEFINED, &[]));
        seq.extend(implicit(0x0008, 0x1150, 4, b"1.2\0"));
        seq.extend(implicit(0xFFFE, 0xE00D, 0, &[]));
        let mut whole = seq.clone();
        whole.extend(implicit(0xFFFE, 0xE0DD, 0, &[]));
        assert_eq!(check(&file(false, &whole)), Ok(()));
        let cut = check(&file(false, &seq)).unwrap_err();
        assert!(
            cut.contains("delimiter") && cut.ends_with(ENDS_EARLY),
            "{cut}"
        );
        assert!(check(&[0u8; 100]).unwrap_err().ends_with(ENDS_EARLY));
        assert!(check(&whole_prefix(130)).unwrap_err().ends_with(ENDS_EARLY));
        assert!(!check(b"short").unwrap_err().contains(ENDS_EARLY));
        // Cut anywhere (mid header, mid value): the file ends early; a length that runs past
        // its item (more bytes would not mend it) does not say so.
        let mut two = implicit(0x0008, 0x0060, 2, b"MR");
        two.extend(implicit(0x0028, 0x0010, 2, &[64, 0]));
        let whole = file(false, &two);
        for cut in [133, whole.len() - 7, whole.len() - 1] {
            let err = check(&whole[..cut]).unwrap_err();
            assert!(err.ends_with(ENDS_EARLY), "cut at {cut}: {err}");
        }
        let mut inner = implicit(0x0008, 0x1140, 20, &[]);
        inner.extend(implicit(0xFFFE, 0xE000, 12, &[]));
        inner.extend(implicit(0x0008, 0x1150, 40, b"1.2\0"));
        inner.extend([0u8; 40]);
        let err = check(&file(false, &inner)).unwrap_err();
        assert!(
            err.contains("claims 40 bytes") && !err.contains(ENDS_EARLY),
            "{err}"
        );
        assert!(!check(&[b'x'; 200]).unwrap_err().contains(ENDS_EARLY));
    }
}
