//! The image table `rkube image ls` prints, laid out like `crictl images`: REPOSITORY, TAG, IMAGE ID, SIZE,
//! one row per tag. Formatting only.

use super::store::ImageRecord;

/// One table row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The reference without its tag (`docker.io/library/busybox`), or `<none>`.
    pub repository: String,
    /// The tag, or `<none>` for an untagged image.
    pub tag: String,
    /// The first 13 hex digits of the image ID, without `sha256:`.
    pub image_id: String,
    /// The compressed size (config and layers, as the registry reports it), in decimal units ([`human_size`]).
    pub size: String,
}

/// Rows for `images`: each tag gets a row; untagged images show their digest's repository (or `<none>`).
pub fn rows(images: &[ImageRecord]) -> Vec<Row> {
    let mut out = Vec::new();
    for img in images {
        let id: String = img.id.trim_start_matches("sha256:").chars().take(13).collect();
        let size = human_size(img.size);
        if img.repo_tags.is_empty() {
            let repo = img.repo_digests.first().and_then(|d| d.split_once('@')).map(|(r, _)| r.to_string());
            out.push(Row { repository: repo.unwrap_or_else(|| "<none>".into()), tag: "<none>".into(), image_id: id, size });
            continue;
        }
        for t in &img.repo_tags {
            // The tag is after the last ':' following the last '/'.
            let slash = t.rfind('/').map(|i| i + 1).unwrap_or(0);
            let (repo, tag) = match t[slash..].rfind(':') {
                Some(i) => (&t[..slash + i], &t[slash + i + 1..]),
                None => (t.as_str(), "<none>"),
            };
            out.push(Row { repository: repo.into(), tag: tag.into(), image_id: id.clone(), size: size.clone() });
        }
    }
    out
}

/// The whole table, columns padded as crictl pads them (at least three spaces apart).
pub fn table(images: &[ImageRecord]) -> String {
    let rows = rows(images);
    let header = Row { repository: "REPOSITORY".into(), tag: "TAG".into(), image_id: "IMAGE ID".into(), size: "SIZE".into() };
    let all: Vec<&Row> = std::iter::once(&header).chain(rows.iter()).collect();
    let w = |f: fn(&Row) -> &str| all.iter().map(|r| f(r).len()).max().unwrap_or(0);
    let (w1, w2, w3) = (w(|r| &r.repository), w(|r| &r.tag), w(|r| &r.image_id));
    let mut out = String::new();
    for r in all {
        out.push_str(&format!("{:<w1$}   {:<w2$}   {:<w3$}   {}\n", r.repository, r.tag, r.image_id, r.size));
    }
    out
}

/// Decimal size with 4 significant digits: `2.155MB`, `804B`, `1.2GB`, as crictl (docker's HumanSize) prints.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    let int_digits = if v >= 100.0 { 3 } else if v >= 10.0 { 2 } else { 1 };
    let decimals = 4usize.saturating_sub(int_digits);
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    format!("{s}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_crictl() {
        assert_eq!(human_size(804), "804B");
        assert_eq!(human_size(2_155_123), "2.155MB");
        assert_eq!(human_size(1_200_000_000), "1.2GB");
        assert_eq!(human_size(45_000), "45kB");
    }

    #[test]
    fn rows_per_tag_and_untagged() {
        let img = ImageRecord {
            id: format!("sha256:{}", "ab".repeat(32)),
            manifest_digest: String::new(),
            repo_tags: vec!["127.0.0.1:5000/busybox:1.36".into(), "docker.io/library/busybox:latest".into()],
            repo_digests: vec![],
            layers: vec![],
            size: 2_155_123,
            created: 0,
            last_used: 0,
        };
        let mut untagged = img.clone();
        untagged.repo_tags.clear();
        untagged.repo_digests = vec![format!("127.0.0.1:5000/busybox@sha256:{}", "cd".repeat(32))];
        let r = rows(&[img, untagged]);
        assert_eq!(r[0].repository, "127.0.0.1:5000/busybox");
        assert_eq!(r[0].tag, "1.36");
        assert_eq!(r[0].image_id, "ababababababa");
        assert_eq!(r[1].repository, "docker.io/library/busybox");
        assert_eq!(r[2].repository, "127.0.0.1:5000/busybox");
        assert_eq!(r[2].tag, "<none>");
    }
}
