//! A streaming HDF5 writer for one chunked dataset, chunked along its first axis.
//!
//! NSD's betas files hold one int16 dataset, gzip-compressed in chunks; at NSD's size a session
//! is about 1 GB before compression, so the simulator cannot build a file in memory. This writer
//! compresses and appends one chunk at a time and writes the metadata when the last chunk is in:
//!
//! ```text
//! superblock v2 | root group header | dataset header | chunk B-tree (v1) | chunks …
//! ```
//!
//! The metadata's size depends only on the shape and the chunk count, so its bytes are reserved
//! up front and written last; as in files libhdf5 writes, the metadata comes first and a
//! truncated file loses data, not its index.
//!
//! Object headers are version 2 (checksummed with Jenkins' lookup3, as HDF5 does), the root
//! group holds one hard link, and the layout message (version 3) points at a version-1 B-tree of
//! raw-data chunks: the structures libhdf5 reads for any chunked dataset. The file appears under
//! its name only once complete.

use brainrecon_core::error::{DataError, Result};
use brainrecon_core::fs::PendingFile;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Integer element types the writer stores, little-endian.
pub trait H5Int: Copy {
    /// Bytes per element.
    const SIZE: usize;
    /// Whether the type is signed (HDF5's fixed-point sign bit).
    const SIGNED: bool;
    /// Appends the element's little-endian bytes to `out`.
    fn put(self, out: &mut Vec<u8>);
}

impl H5Int for i16 {
    const SIZE: usize = 2;
    const SIGNED: bool = true;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl H5Int for u8 {
    const SIZE: usize = 1;
    const SIGNED: bool = false;
    fn put(self, out: &mut Vec<u8>) {
        out.push(self);
    }
}

const UNDEFINED: u64 = u64::MAX;
const SUPERBLOCK_SIZE: u64 = 48;
/// Entries per B-tree node: 2K with HDF5's default K = 32 for chunk indexes.
const NODE_CAPACITY: usize = 64;

/// Where one stored chunk lies and how it was filtered.
#[derive(Debug, Clone, Copy)]
struct StoredChunk {
    address: u64,
    size: u32,
    /// Bit 0 set: the deflate filter was skipped because it would not shrink the chunk.
    filter_mask: u32,
}

/// Writes one dataset of shape `shape`, chunked `[rows_per_chunk, shape[1..]]`, row by row.
pub struct ChunkedWriter<T: H5Int> {
    out: PendingFile,
    name: String,
    shape: Vec<u64>,
    rows_per_chunk: usize,
    row_len: usize,
    deflate: Option<u32>,
    /// Raw bytes of the chunk being filled (at most one chunk).
    pending: Vec<u8>,
    compressed: Vec<u8>,
    rows_written: usize,
    chunks: Vec<StoredChunk>,
    position: u64,
    _element: std::marker::PhantomData<T>,
}

impl<T: H5Int> ChunkedWriter<T> {
    /// `deflate`: gzip level 0–9, or `None` to store chunks uncompressed.
    pub fn create(
        path: &Path,
        name: &str,
        shape: &[usize],
        rows_per_chunk: usize,
        deflate: Option<u32>,
    ) -> Result<Self> {
        if shape.is_empty() || shape.contains(&0) || rows_per_chunk == 0 {
            return Err(DataError::invalid(
                path,
                name,
                "a non-empty shape and at least one row per chunk",
                format!("shape {shape:?}, {rows_per_chunk} rows per chunk"),
            ));
        }
        if name.is_empty() || name.len() > 255 || name.contains('/') {
            return Err(DataError::invalid(
                path,
                "dataset name",
                "1 to 255 bytes without '/'",
                name,
            ));
        }
        let row_len: usize = shape[1..].iter().product();
        if (rows_per_chunk * row_len * T::SIZE) as u64 > u32::MAX as u64 {
            return Err(DataError::invalid(
                path,
                name,
                "chunks under 4 GiB",
                format!("{rows_per_chunk} rows of {row_len} elements"),
            ));
        }
        let mut out = PendingFile::create(path)?;
        let n_chunks = shape[0].div_ceil(rows_per_chunk);
        let metadata_len = SUPERBLOCK_SIZE
            + encode_root_header(name, 0).len() as u64
            + dataset_header_len(shape.len(), deflate.is_some())
            + chunk_btree_len(n_chunks, shape.len());
        // The metadata needs the chunks' addresses; reserve its bytes now.
        std::io::copy(&mut std::io::repeat(0).take(metadata_len), &mut out)
            .map_err(|e| DataError::io(out.temp_path(), e))?;
        Ok(ChunkedWriter {
            out,
            name: name.to_string(),
            shape: shape.iter().map(|&d| d as u64).collect(),
            rows_per_chunk,
            row_len,
            deflate: deflate.map(|l| l.min(9)),
            pending: Vec::with_capacity(rows_per_chunk * row_len * T::SIZE),
            compressed: Vec::new(),
            rows_written: 0,
            chunks: Vec::new(),
            position: metadata_len,
            _element: std::marker::PhantomData,
        })
    }

    /// Bytes held in memory for data not yet on disk (never more than one chunk's worth).
    pub fn buffered_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Appends whole rows (a multiple of `shape[1..]`'s product), writing each chunk as it fills.
    pub fn write_rows(&mut self, values: &[T]) -> Result<()> {
        let rows = values.len() / self.row_len.max(1);
        if values.len() != rows * self.row_len || self.rows_written + rows > self.shape[0] as usize
        {
            return Err(DataError::invalid(
                self.out.path(),
                &self.name,
                format!(
                    "whole rows of {} elements, {} rows in all",
                    self.row_len, self.shape[0]
                ),
                format!("{} elements after {} rows", values.len(), self.rows_written),
            ));
        }
        let chunk_bytes = self.rows_per_chunk * self.row_len * T::SIZE;
        for row in values.chunks_exact(self.row_len) {
            for &v in row {
                v.put(&mut self.pending);
            }
            self.rows_written += 1;
            if self.pending.len() == chunk_bytes {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    /// Filters and appends the pending chunk (padded with zeros if it is the short last one).
    fn flush_chunk(&mut self) -> Result<()> {
        let chunk_bytes = self.rows_per_chunk * self.row_len * T::SIZE;
        self.pending.resize(chunk_bytes, 0);
        let mut filter_mask = 0;
        let stored: &[u8] = match self.deflate {
            Some(level) => {
                self.compressed.clear();
                let mut encoder = ZlibEncoder::new(&mut self.compressed, Compression::new(level));
                encoder
                    .write_all(&self.pending)
                    .and_then(|_| encoder.finish().map(|_| ()))
                    .map_err(|e| DataError::io(self.out.temp_path(), e))?;
                // As libhdf5 does for an optional filter that would grow the chunk.
                if self.compressed.len() < self.pending.len() {
                    &self.compressed
                } else {
                    filter_mask = 1;
                    &self.pending
                }
            }
            None => &self.pending,
        };
        self.out
            .write_all(stored)
            .map_err(|e| DataError::io(self.out.temp_path(), e))?;
        self.chunks.push(StoredChunk {
            address: self.position,
            size: stored.len() as u32,
            filter_mask,
        });
        self.position += stored.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Writes the index and headers and moves the file into place.
    pub fn finish(mut self) -> Result<()> {
        if self.rows_written != self.shape[0] as usize {
            return Err(DataError::invalid(
                self.out.path(),
                &self.name,
                format!("{} rows", self.shape[0]),
                format!("{} written", self.rows_written),
            ));
        }
        if !self.pending.is_empty() {
            self.flush_chunk()?;
        }
        let result = self.write_metadata();
        if let Err(e) = result {
            return Err(DataError::io(self.out.path(), e));
        }
        self.out.commit()
    }

    /// Fills the reserved bytes: superblock, root group, dataset header, chunk index.
    fn write_metadata(&mut self) -> std::io::Result<()> {
        let rank = self.shape.len();
        let mut chunk_dims: Vec<u64> = self.shape.clone();
        chunk_dims[0] = self.rows_per_chunk as u64;
        let root_address = SUPERBLOCK_SIZE;
        let dataset_address = root_address + encode_root_header(&self.name, 0).len() as u64;
        let btree_address = dataset_address + dataset_header_len(rank, self.deflate.is_some());
        let (btree, root_node) = encode_chunk_btree(
            &self.chunks,
            self.rows_per_chunk as u64,
            rank,
            btree_address,
        );
        let dataset_header = encode_dataset_header(
            &self.shape,
            &chunk_dims,
            T::SIZE as u32,
            T::SIGNED,
            self.deflate,
            root_node,
        );
        let mut metadata = encode_superblock(root_address, self.position);
        metadata.extend_from_slice(&encode_root_header(&self.name, dataset_address));
        metadata.extend_from_slice(&dataset_header);
        metadata.extend_from_slice(&btree);
        debug_assert_eq!(metadata.len() as u64, btree_address + btree.len() as u64);
        debug_assert_eq!(metadata.len() as u64, self.chunks[0].address);
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&metadata)
    }
}

/// Jenkins' lookup3 `hashlittle` with initial value 0: HDF5's metadata checksum.
pub fn lookup3(data: &[u8]) -> u32 {
    fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
        *a = a.wrapping_sub(*c) ^ c.rotate_left(4);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a) ^ a.rotate_left(6);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b) ^ b.rotate_left(8);
        *b = b.wrapping_add(*a);
        *a = a.wrapping_sub(*c) ^ c.rotate_left(16);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a) ^ a.rotate_left(19);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b) ^ b.rotate_left(4);
        *b = b.wrapping_add(*a);
    }
    fn last(a: &mut u32, b: &mut u32, c: &mut u32) {
        *c = (*c ^ *b).wrapping_sub(b.rotate_left(14));
        *a = (*a ^ *c).wrapping_sub(c.rotate_left(11));
        *b = (*b ^ *a).wrapping_sub(a.rotate_left(25));
        *c = (*c ^ *b).wrapping_sub(b.rotate_left(16));
        *a = (*a ^ *c).wrapping_sub(c.rotate_left(4));
        *b = (*b ^ *a).wrapping_sub(a.rotate_left(14));
        *c = (*c ^ *b).wrapping_sub(b.rotate_left(24));
    }
    let word = |bytes: &[u8]| {
        let mut w = [0u8; 4];
        w[..bytes.len()].copy_from_slice(bytes);
        u32::from_le_bytes(w)
    };
    let init = 0xdead_beefu32.wrapping_add(data.len() as u32);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut rest = data;
    while rest.len() > 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    if rest.is_empty() {
        return c;
    }
    // The last 1–12 bytes, zero-padded.
    let mut tail = [0u8; 12];
    tail[..rest.len()].copy_from_slice(rest);
    a = a.wrapping_add(word(&tail[0..4]));
    b = b.wrapping_add(word(&tail[4..8]));
    c = c.wrapping_add(word(&tail[8..12]));
    last(&mut a, &mut b, &mut c);
    c
}

/// Superblock version 2: 8-byte offsets and lengths, no extension.
fn encode_superblock(root_address: u64, eof: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(SUPERBLOCK_SIZE as usize);
    b.extend_from_slice(b"\x89HDF\r\n\x1a\n");
    b.extend_from_slice(&[2, 8, 8, 0]);
    b.extend_from_slice(&0u64.to_le_bytes()); // base address
    b.extend_from_slice(&UNDEFINED.to_le_bytes()); // superblock extension
    b.extend_from_slice(&eof.to_le_bytes());
    b.extend_from_slice(&root_address.to_le_bytes());
    let checksum = lookup3(&b);
    b.extend_from_slice(&checksum.to_le_bytes());
    b
}

/// A version-2 object header holding `messages` (type, body), with a 4-byte chunk size.
fn encode_object_header(messages: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let body_len: usize = messages.iter().map(|(_, m)| 4 + m.len()).sum();
    let mut b = Vec::with_capacity(10 + body_len + 4);
    b.extend_from_slice(b"OHDR");
    b.push(2); // version
    b.push(0b10); // flags: chunk #0 size stored in 4 bytes
    b.extend_from_slice(&(body_len as u32).to_le_bytes());
    for (kind, body) in messages {
        b.push(*kind);
        b.extend_from_slice(&(body.len() as u16).to_le_bytes());
        b.push(0); // message flags
        b.extend_from_slice(body);
    }
    let checksum = lookup3(&b);
    b.extend_from_slice(&checksum.to_le_bytes());
    b
}

/// The root group: link info, group info, and one hard link to the dataset.
fn encode_root_header(name: &str, dataset_address: u64) -> Vec<u8> {
    let mut link_info = vec![0u8, 0]; // version 0, no creation order
    link_info.extend_from_slice(&UNDEFINED.to_le_bytes()); // fractal heap
    link_info.extend_from_slice(&UNDEFINED.to_le_bytes()); // name index B-tree
    let group_info = vec![0u8, 0];
    let mut link = vec![1u8, 0]; // version 1; flags: hard link, 1-byte name length
    link.push(name.len() as u8);
    link.extend_from_slice(name.as_bytes());
    link.extend_from_slice(&dataset_address.to_le_bytes());
    encode_object_header(&[(0x02, link_info), (0x0a, group_info), (0x06, link)])
}

/// Dataspace, datatype, fill value, layout and (with deflate) filter pipeline messages.
fn encode_dataset_header(
    shape: &[u64],
    chunk_dims: &[u64],
    element_size: u32,
    signed: bool,
    deflate: Option<u32>,
    btree_address: u64,
) -> Vec<u8> {
    let mut dataspace = vec![2u8, shape.len() as u8, 0, 1]; // version 2, no max dims, simple
    for d in shape {
        dataspace.extend_from_slice(&d.to_le_bytes());
    }
    // Fixed-point, version 1, little-endian, signed or not; offset 0, full precision.
    let mut datatype = vec![0x10u8, if signed { 0x08 } else { 0x00 }, 0, 0];
    datatype.extend_from_slice(&element_size.to_le_bytes());
    datatype.extend_from_slice(&0u16.to_le_bytes());
    datatype.extend_from_slice(&((element_size * 8) as u16).to_le_bytes());
    // Version 3: incremental allocation, fill written if set, no fill value defined.
    let fill = vec![3u8, 0b1010];
    let mut layout = vec![3u8, 2, chunk_dims.len() as u8 + 1]; // version 3, chunked
    layout.extend_from_slice(&btree_address.to_le_bytes());
    for d in chunk_dims {
        layout.extend_from_slice(&(*d as u32).to_le_bytes());
    }
    layout.extend_from_slice(&element_size.to_le_bytes());
    let mut messages = vec![(0x01, dataspace), (0x03, datatype), (0x05, fill)];
    if let Some(level) = deflate {
        // Version 2, one filter: deflate (id 1), optional, one client value (the level).
        let mut pipeline = vec![2u8, 1];
        for v in [1u16, 1, 1] {
            pipeline.extend_from_slice(&v.to_le_bytes());
        }
        pipeline.extend_from_slice(&level.to_le_bytes());
        messages.push((0x0b, pipeline));
    }
    messages.push((0x08, layout));
    encode_object_header(&messages)
}

fn dataset_header_len(rank: usize, deflate: bool) -> u64 {
    let shape = vec![1; rank];
    encode_dataset_header(&shape, &shape, 1, false, deflate.then_some(0), 0).len() as u64
}

fn btree_node_len(rank: usize) -> usize {
    let key_size = 8 + 8 * (rank + 1);
    24 + (NODE_CAPACITY + 1) * key_size + NODE_CAPACITY * 8
}

/// Bytes of the chunk B-tree over `n_chunks` chunks: full nodes, level by level.
fn chunk_btree_len(n_chunks: usize, rank: usize) -> u64 {
    let mut nodes = 0;
    let mut width = n_chunks.max(1);
    loop {
        width = width.div_ceil(NODE_CAPACITY);
        nodes += width;
        if width == 1 {
            return (nodes * btree_node_len(rank)) as u64;
        }
    }
}

/// A chunk key: stored size, filter mask, element offsets of the chunk (plus a trailing 0).
fn chunk_key(out: &mut Vec<u8>, size: u32, mask: u32, first_row: u64, rank: usize) {
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&mask.to_le_bytes());
    out.extend_from_slice(&first_row.to_le_bytes());
    for _ in 0..rank {
        out.extend_from_slice(&0u64.to_le_bytes());
    }
}

/// A node's summary for its parent: its address and its first key (size, mask, first row).
type NodeRef = (u64, u32, u32, u64);

/// Version-1 B-tree of raw-data chunks, written from `base`: leaves first, the root last.
/// Every node takes its full size, as libhdf5 reads nodes whole. Returns the bytes and the
/// root's address.
fn encode_chunk_btree(
    chunks: &[StoredChunk],
    rows_per_chunk: u64,
    rank: usize,
    base: u64,
) -> (Vec<u8>, u64) {
    let node_size = btree_node_len(rank);
    // The bound after the last chunk closes the rightmost node of every level.
    let end_row = chunks.len() as u64 * rows_per_chunk;
    let mut level_entries: Vec<NodeRef> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| (c.address, c.size, c.filter_mask, i as u64 * rows_per_chunk))
        .collect();
    let mut bytes = Vec::new();
    let mut level = 0u8;
    loop {
        let groups: Vec<&[NodeRef]> = level_entries.chunks(NODE_CAPACITY).collect();
        let first_address = base + bytes.len() as u64;
        let address_of = |g: usize| first_address + (g * node_size) as u64;
        let mut parents = Vec::with_capacity(groups.len());
        for (g, entries) in groups.iter().enumerate() {
            let start = bytes.len();
            bytes.extend_from_slice(b"TREE");
            bytes.extend_from_slice(&[1, level]); // raw-data chunk node
            bytes.extend_from_slice(&(entries.len() as u16).to_le_bytes());
            let left = if g == 0 { UNDEFINED } else { address_of(g - 1) };
            let right = if g + 1 == groups.len() {
                UNDEFINED
            } else {
                address_of(g + 1)
            };
            bytes.extend_from_slice(&left.to_le_bytes());
            bytes.extend_from_slice(&right.to_le_bytes());
            for &(child, size, mask, row) in entries.iter() {
                chunk_key(&mut bytes, size, mask, row, rank);
                bytes.extend_from_slice(&child.to_le_bytes());
            }
            match groups.get(g + 1) {
                Some(next) => chunk_key(&mut bytes, next[0].1, next[0].2, next[0].3, rank),
                None => chunk_key(&mut bytes, 0, 0, end_row, rank),
            }
            bytes.resize(start + node_size, 0);
            let (_, size, mask, row) = entries[0];
            parents.push((address_of(g), size, mask, row));
        }
        if parents.len() == 1 {
            return (bytes, parents[0].0);
        }
        level_entries = parents;
        level += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup3_matches_published_values() {
        // From the self-test in Bob Jenkins' lookup3.c (hashlittle, initval 0).
        assert_eq!(lookup3(b""), 0xdead_beef);
        assert_eq!(lookup3(b"Four score and seven years ago"), 0x1777_0551);
    }

    #[test]
    fn btree_levels_hold_at_most_64_entries() {
        let chunks: Vec<StoredChunk> = (0..130)
            .map(|i| StoredChunk {
                address: 1000 + 10 * i,
                size: 10,
                filter_mask: 0,
            })
            .collect();
        let (bytes, root) = encode_chunk_btree(&chunks, 1, 4, 5000);
        let key_size = 8 + 8 * 5;
        let node_size = 24 + 65 * key_size + 64 * 8;
        // 3 leaves (64, 64, 2) and one root over them.
        assert_eq!(bytes.len(), 4 * node_size);
        assert_eq!(chunk_btree_len(130, 4), bytes.len() as u64);
        assert_eq!(chunk_btree_len(64, 4), node_size as u64);
        assert_eq!(root, 5000 + 3 * node_size as u64);
        let root_node = &bytes[3 * node_size..];
        assert_eq!(&root_node[..6], b"TREE\x01\x01");
        assert_eq!(u16::from_le_bytes([root_node[6], root_node[7]]), 3);
    }
}
