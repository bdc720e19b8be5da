//! Helpers shared by the image tests: OCI layouts with hand-made layers, a fake registry served by the test
//! itself (for faults a real registry will not produce: corrupt blobs, cut connections, token auth), and a
//! guard that unmounts a test's overlay pass or fail.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use sha2::{Digest, Sha256};

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// One tar entry of a hand-made layer.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// An uncompressed layer tar with `entries`, in order.
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Entry::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).expect("dir entry");
            }
            Entry::File(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).expect("file entry");
            }
            Entry::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).expect("symlink entry");
            }
            Entry::Hardlink(p, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, p, target).expect("hardlink entry");
            }
        }
    }
    b.into_inner().expect("finish tar")
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip finish")
}

/// A multi-layer OCI layout written by the test.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    pub tag: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digests: Vec<String>,
    pub diff_ids: Vec<String>,
    pub blobs: HashMap<String, Vec<u8>>,
}

fn put_blob(dir: &Path, blobs: &mut HashMap<String, Vec<u8>>, data: Vec<u8>) -> (String, usize) {
    let d = sha256(&data);
    std::fs::write(dir.join("blobs/sha256").join(d.trim_start_matches("sha256:")), &data).expect("write blob");
    let n = data.len();
    blobs.insert(d.clone(), data);
    (d, n)
}

/// Writes an OCI layout at `dir` whose layers (bottom first) are the given uncompressed tars, gzip'd.
pub fn write_layout(dir: &Path, tag: &str, layers: &[Vec<u8>]) -> Layout {
    write_layout_with(dir, tag, layers, serde_json::json!({"Cmd": ["sh"]}))
}

/// [`write_layout`] with `image_config` as the config's `config` (`User`, `Cmd`, ...).
pub fn write_layout_with(dir: &Path, tag: &str, layers: &[Vec<u8>], image_config: serde_json::Value) -> Layout {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("blobs dir");
    let mut blobs = HashMap::new();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_digests = Vec::new();
    for tar in layers {
        diff_ids.push(sha256(tar));
        let (d, n) = put_blob(dir, &mut blobs, gzip(tar));
        descs.push(
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}),
        );
        layer_digests.push(d);
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (config_digest, config_size) = put_blob(dir, &mut blobs, serde_json::to_vec(&config).expect("config"));
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": descs,
    }))
    .expect("manifest");
    let (manifest_digest, manifest_size) = put_blob(dir, &mut blobs, manifest.clone());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": tag}}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).expect("index")).expect("index.json");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    Layout {
        dir: dir.to_path_buf(),
        tag: tag.to_string(),
        manifest,
        manifest_digest,
        config_digest,
        layer_digests,
        diff_ids,
        blobs,
    }
}

/// Auth the fake registry demands.
#[derive(Clone)]
pub enum FakeAuth {
    None,
    /// `WWW-Authenticate: Bearer realm=<this server>/token`; the token server checks basic user:pass.
    Bearer {
        user: String,
        pass: String,
        token: String,
    },
}

/// What to break.
#[derive(Clone, Default)]
pub struct Faults {
    /// Serve these bytes instead of the real blob for this digest.
    pub corrupt_blob: Option<(String, Vec<u8>)>,
    /// On the first GET of this blob, send only this many bytes of the body, then close the connection.
    pub cut_first_blob: Option<(String, usize)>,
}

/// One request the fake registry saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HashMap<String, String>,
}

/// A registry served by the test on 127.0.0.1 from a [`Layout`] under `repo:tag`.
pub struct FakeRegistry {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeRegistry {
    pub fn start(layout: &Layout, repo: &str, auth: FakeAuth, faults: Faults) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake registry");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let state = Arc::new(State {
            layout: layout.clone(),
            repo: repo.to_string(),
            auth,
            faults,
            port,
            cut_done: Mutex::new(false),
            seen: seen.clone(),
        });
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = state.clone();
                std::thread::spawn(move || {
                    let _ = st.handle(conn);
                });
            }
        });
        FakeRegistry { port, seen, stop }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wake the accept loop so the thread ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct State {
    layout: Layout,
    repo: String,
    auth: FakeAuth,
    faults: Faults,
    port: u16,
    cut_done: Mutex<bool>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn respond(conn: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}

impl State {
    fn handle(&self, mut conn: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        self.seen.lock().expect("seen").push(Seen { path: path.clone(), headers: headers.clone() });

        if let FakeAuth::Bearer { user, pass, token } = &self.auth {
            if let Some(query) = path.strip_prefix("/token?") {
                let want =
                    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")));
                if headers.get("authorization") != Some(&want) || !query.contains("scope=repository") {
                    return respond(&mut conn, "401 Unauthorized", &[], b"{}");
                }
                let body = serde_json::to_vec(&serde_json::json!({"token": token})).expect("json");
                return respond(&mut conn, "200 OK", &[("Content-Type", "application/json".into())], &body);
            }
            if headers.get("authorization") != Some(&format!("Bearer {token}")) {
                let challenge = format!(
                    "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"fake-registry\",scope=\"repository:{}:pull\"",
                    self.port, self.repo
                );
                return respond(
                    &mut conn,
                    "401 Unauthorized",
                    &[("WWW-Authenticate", challenge)],
                    b"{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
                );
            }
        }

        let prefix = format!("/v2/{}/", self.repo);
        let Some(rest) = path.strip_prefix(&prefix) else {
            return respond(&mut conn, "404 Not Found", &[], b"{\"errors\":[{\"code\":\"NAME_UNKNOWN\"}]}");
        };
        if let Some(r) = rest.strip_prefix("manifests/") {
            if r == self.layout.tag || r == self.layout.manifest_digest {
                return respond(
                    &mut conn,
                    "200 OK",
                    &[
                        ("Content-Type", "application/vnd.oci.image.manifest.v1+json".into()),
                        ("Docker-Content-Digest", self.layout.manifest_digest.clone()),
                    ],
                    &self.layout.manifest,
                );
            }
            return respond(&mut conn, "404 Not Found", &[], b"{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\"}]}");
        }
        if let Some(d) = rest.strip_prefix("blobs/") {
            let Some(real) = self.layout.blobs.get(d) else {
                return respond(&mut conn, "404 Not Found", &[], b"{\"errors\":[{\"code\":\"BLOB_UNKNOWN\"}]}");
            };
            let data = match &self.faults.corrupt_blob {
                Some((cd, bytes)) if cd == d => bytes.clone(),
                _ => real.clone(),
            };
            let start: usize = headers
                .get("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse().ok())
                .unwrap_or(0);
            if let Some((cd, cut)) = &self.faults.cut_first_blob {
                let mut done = self.cut_done.lock().expect("cut");
                if cd == d && !*done {
                    *done = true;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                        data.len()
                    );
                    conn.write_all(head.as_bytes())?;
                    conn.write_all(&data[..*cut])?;
                    conn.flush()?;
                    return conn.shutdown(std::net::Shutdown::Both);
                }
            }
            if start > 0 && start < data.len() {
                let range = format!("bytes {start}-{}/{}", data.len() - 1, data.len());
                return respond(&mut conn, "206 Partial Content", &[("Content-Range", range)], &data[start..]);
            }
            return respond(&mut conn, "200 OK", &[("Content-Type", "application/octet-stream".into())], &data);
        }
        respond(&mut conn, "404 Not Found", &[], b"{}")
    }
}

/// Unmounts an overlay rootfs (and removes its container dir) when the test ends, pass or fail.
pub struct MountGuard {
    pub store: rkube_kubelet::image::Store,
    pub container: String,
    pub target: PathBuf,
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Err(e) = rkube_kubelet::image::overlay::unmount_rootfs(&self.store, &self.container, &self.target) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Every file (relative path) under `dir`, for "nothing left in the store" checks.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap_or(&p).display().to_string());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}
