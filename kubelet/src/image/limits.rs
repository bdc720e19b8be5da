//! How much an image may expand to on this node: uncompressed bytes per layer and per image, entries per
//! layer, and the tar metadata of one entry. A gzip layer of a few hundred KB can expand to hundreds of GB
//! of zeros, and a tar of a million empty files exhausts inodes; these caps stop both while the layer is read,
//! before anything over the limit is written.
//!
//! [`Limits`] is the configuration (kubelet flags `--image-max-layer-size`, `--image-max-size`,
//! `--image-max-layer-entries`, the same flags on `rkube image pull/import`); [`ImageBudget`] is one pull's or
//! import's running total, shared by the layers it unpacks (in parallel); [`Meter`] counts one layer's bytes.
//! Layers already in the store are not counted again: they were within the limits when they were unpacked.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Uncompressed size of one layer, by default (`--image-max-layer-size`).
pub const DEFAULT_MAX_LAYER_BYTES: u64 = 10 << 30;
/// Uncompressed size of the layers one pull or import unpacks, by default (`--image-max-size`).
pub const DEFAULT_MAX_IMAGE_BYTES: u64 = 40 << 30;
/// Entries (files, directories, links, whiteouts) of one layer, by default (`--image-max-layer-entries`).
pub const DEFAULT_MAX_LAYER_ENTRIES: u64 = 1_000_000;
/// Tar metadata of one entry (pax records, GNU long names, sparse maps), which the tar reader holds in memory.
/// Not configurable: real entries use a few KB.
pub const MAX_ENTRY_METADATA_BYTES: u64 = 4 << 20;

/// The flag that sets [`Limits::layer_bytes`], named in the error that stops a layer.
pub const LAYER_SIZE_FLAG: &str = "--image-max-layer-size";
/// The flag that sets [`Limits::image_bytes`], named in the error that stops an image.
pub const IMAGE_SIZE_FLAG: &str = "--image-max-size";
/// The flag that sets [`Limits::layer_entries`], named in the error that stops a layer.
pub const LAYER_ENTRIES_FLAG: &str = "--image-max-layer-entries";

/// Caps on what one image may unpack to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Uncompressed bytes of one layer (the tar stream).
    pub layer_bytes: u64,
    /// Uncompressed bytes of all layers one pull or import unpacks.
    pub image_bytes: u64,
    /// Entries of one layer.
    pub layer_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            layer_bytes: DEFAULT_MAX_LAYER_BYTES,
            image_bytes: DEFAULT_MAX_IMAGE_BYTES,
            layer_entries: DEFAULT_MAX_LAYER_ENTRIES,
        }
    }
}

impl Limits {
    /// A fresh running total for one pull or import.
    pub fn budget(&self) -> ImageBudget {
        ImageBudget { limits: *self, used: Arc::new(AtomicU64::new(0)) }
    }
}

/// A byte count as the flags take it: a plain number or a Kubernetes quantity (`512Mi`, `10Gi`, `2G`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let v = rkube_apimachinery::quantity::approximate_f64(s).map_err(|e| e.to_string())?;
    if !v.is_finite() || v < 1.0 || v > u64::MAX as f64 {
        return Err(format!("{s:?} is not a positive byte count (e.g. 512Mi, 10Gi)"));
    }
    Ok(v.round() as u64)
}

/// `10Gi (10737418240 bytes)`: the limit as a flag would take it, and exactly.
pub fn describe_bytes(n: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)];
    for (suffix, shift) in UNITS {
        if n >= 1 << shift && n % (1 << shift) == 0 {
            return format!("{}{suffix} ({n} bytes)", n >> shift);
        }
    }
    format!("{n} bytes")
}

/// One pull's or import's running total of uncompressed bytes, shared by its layers.
#[derive(Clone, Debug)]
pub struct ImageBudget {
    limits: Limits,
    used: Arc<AtomicU64>,
}

impl ImageBudget {
    /// The caps this budget counts against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    /// Uncompressed bytes counted so far.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// Which limit a layer went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    /// The layer's uncompressed bytes went over [`Limits::layer_bytes`].
    LayerBytes,
    /// The pull's or import's uncompressed bytes, all layers together, went over [`Limits::image_bytes`].
    ImageBytes,
    /// One entry's tar headers went over [`MAX_ENTRY_METADATA_BYTES`].
    EntryMetadata,
}

struct MeterState {
    budget: ImageBudget,
    layer: Cell<u64>,
    /// The layer count when the tar reader started on the current entry's headers; None while it reads data.
    headers_from: Cell<Option<u64>>,
    exceeded: Cell<Option<Exceeded>>,
}

/// Counts one layer's uncompressed bytes against its budget. [`Meter::reader`] wraps the decompressed stream;
/// the unpacker marks when the tar reader parses headers ([`Meter::headers`]) so metadata is capped too.
#[derive(Clone)]
pub struct Meter(Rc<MeterState>);

impl Meter {
    /// A meter for one layer, counting into `budget` too. Not `Send`: one per unpacking thread.
    pub fn new(budget: &ImageBudget) -> Meter {
        Meter(Rc::new(MeterState {
            budget: budget.clone(),
            layer: Cell::new(0),
            headers_from: Cell::new(None),
            exceeded: Cell::new(None),
        }))
    }

    /// Wraps the decompressed layer stream so every byte read is counted.
    pub fn reader<R: Read>(&self, inner: R) -> MeteredReader<R> {
        MeteredReader { inner, meter: self.clone() }
    }

    /// The caps of the budget this meter counts into.
    pub fn limits(&self) -> &Limits {
        &self.0.budget.limits
    }

    /// The limit the layer went over, if any. Checked first when reading fails: the read error is ours.
    pub fn exceeded(&self) -> Option<Exceeded> {
        self.0.exceeded.get()
    }

    /// Uncompressed bytes of this layer read so far.
    pub fn layer_bytes(&self) -> u64 {
        self.0.layer.get()
    }

    /// Runs `f` (the tar reader's step to the next entry) with its reads counted as metadata.
    pub fn headers<T>(&self, f: impl FnOnce() -> T) -> T {
        self.0.headers_from.set(Some(self.0.layer.get()));
        let out = f();
        self.0.headers_from.set(None);
        out
    }

    fn count(&self, n: u64) -> Result<(), Exceeded> {
        let s = &self.0;
        let layer = s.layer.get() + n;
        s.layer.set(layer);
        if layer > s.budget.limits.layer_bytes {
            return Err(Exceeded::LayerBytes);
        }
        let image = s.budget.used.fetch_add(n, Ordering::Relaxed) + n;
        if image > s.budget.limits.image_bytes {
            return Err(Exceeded::ImageBytes);
        }
        if let Some(from) = s.headers_from.get() {
            if layer - from > MAX_ENTRY_METADATA_BYTES {
                return Err(Exceeded::EntryMetadata);
            }
        }
        Ok(())
    }
}

/// The decompressed layer stream, failing the read that goes over a limit (so its bytes are never written).
pub struct MeteredReader<R> {
    inner: R,
    meter: Meter,
}

impl<R: Read> Read for MeteredReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.meter.exceeded().is_some() {
            return Err(io::Error::other("layer limit exceeded"));
        }
        let n = self.inner.read(buf)?;
        if let Err(e) = self.meter.count(n as u64) {
            self.meter.0.exceeded.set(Some(e));
            return Err(io::Error::other("layer limit exceeded"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_quantities() {
        assert_eq!(parse_size("512Mi"), Ok(512 << 20));
        assert_eq!(parse_size("10Gi"), Ok(10 << 30));
        assert_eq!(parse_size("2G"), Ok(2_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("-1Gi").is_err());
        assert!(parse_size("lots").is_err());
        assert_eq!(describe_bytes(10 << 30), "10Gi (10737418240 bytes)");
        assert_eq!(describe_bytes(1000), "1000 bytes");
    }

    #[test]
    fn meter_fails_the_read_that_crosses_a_limit() {
        let limits = Limits { layer_bytes: 100, image_bytes: 150, layer_entries: 10 };
        let budget = limits.budget();
        let m = Meter::new(&budget);
        let mut r = m.reader(&[0u8; 100][..]);
        assert_eq!(io::copy(&mut r, &mut io::sink()).expect("100 bytes fit"), 100);
        let mut r = m.reader(&[0u8; 1][..]);
        assert!(io::copy(&mut r, &mut io::sink()).is_err());
        assert_eq!(m.exceeded(), Some(Exceeded::LayerBytes));

        // a second layer of the same image: its own layer count, the image's total shared
        let m2 = Meter::new(&budget);
        let mut r = m2.reader(&[0u8; 60][..]);
        assert!(io::copy(&mut r, &mut io::sink()).is_err());
        assert_eq!(m2.exceeded(), Some(Exceeded::ImageBytes));

        let m3 = Meter::new(&Limits { layer_bytes: u64::MAX, image_bytes: u64::MAX, layer_entries: 1 }.budget());
        let big = vec![0u8; (MAX_ENTRY_METADATA_BYTES + 1) as usize];
        let mut r = m3.reader(&big[..]);
        assert!(m3.headers(|| io::copy(&mut r, &mut io::sink())).is_err());
        assert_eq!(m3.exceeded(), Some(Exceeded::EntryMetadata));
    }
}
