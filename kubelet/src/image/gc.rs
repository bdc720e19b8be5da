//! Image garbage collection: remove images no container uses, least recently used first, until enough bytes
//! are freed; then remove layers and blobs no remaining image references.
//!
//! The kubelet decides when (disk usage above `imageGCHighThresholdPercent`) and how much
//! ([`bytes_to_free`] down to the low threshold); this module only chooses and deletes.

use std::collections::HashSet;

use super::store::{ImageRecord, Store, StoreError};

/// What a GC run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// IDs of the removed images.
    pub removed_images: Vec<String>,
    /// Bytes of blobs deleted (layers unpacked from them are deleted with them).
    pub freed_bytes: u64,
}

/// How many bytes to free for usage to drop from `used` to `low_percent` of `capacity`, or 0 if usage is not
/// above `high_percent` (the kubelet's imageGCHighThresholdPercent / imageGCLowThresholdPercent).
pub fn bytes_to_free(capacity: u64, used: u64, high_percent: u8, low_percent: u8) -> u64 {
    if capacity == 0 || (used as u128) * 100 < (capacity as u128) * (high_percent as u128) {
        return 0;
    }
    let target = (capacity as u128 * low_percent as u128 / 100) as u64;
    used.saturating_sub(target)
}

/// Removes unused images, oldest `last_used` first, until at least `want_freed` bytes of image size went
/// (`u64::MAX`: every unused image). `in_use` holds image IDs or names of images running containers use;
/// images with a mounted rootfs from this store are in use too.
#[tracing::instrument(skip_all, fields(store = %store.root().display(), want_freed))]
pub fn collect_garbage(store: &Store, in_use: &HashSet<String>, want_freed: u64) -> Result<GcReport, StoreError> {
    let mut used_ids: HashSet<String> = store.containers_using()?.into_iter().map(|(_, id)| id).collect();
    for name in in_use {
        if let Some(r) = store.resolve(name)? {
            used_ids.insert(r.id);
        }
    }
    let mut candidates: Vec<ImageRecord> = store.list()?.into_iter().filter(|r| !used_ids.contains(&r.id)).collect();
    candidates.sort_by_key(|r| (r.last_used, r.created));

    let mut report = GcReport::default();
    let mut planned: u64 = 0;
    for image in candidates {
        if planned >= want_freed {
            break;
        }
        tracing::info!(image = %image.id, tags = ?image.repo_tags, last_used = image.last_used, "removing unused image");
        let _lock = store.lock()?;
        let mut index = store.load_index()?;
        index.images.remove(&image.id);
        store.save_index(&index)?;
        planned = planned.saturating_add(image.size);
        report.removed_images.push(image.id);
    }
    report.freed_bytes = store.prune()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(bytes_to_free(1000, 840, 85, 80), 0);
        assert_eq!(bytes_to_free(1000, 850, 85, 80), 50);
        assert_eq!(bytes_to_free(1000, 990, 85, 80), 190);
        assert_eq!(bytes_to_free(0, 10, 85, 80), 0);
    }
}
