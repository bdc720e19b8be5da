//! The fixtures themselves work: the busybox image pushed to a local registry can be fetched back by digest.

use rkube_testsupport::{busybox_oci_layout, Registry};
use std::io::{Read, Write};
use std::net::TcpStream;

fn http_get(host: &str, path: &str, accept: &str) -> (u16, String) {
    let mut s = TcpStream::connect(host).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: {accept}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, out)
}

#[test]
fn busybox_image_round_trips_through_local_registry() {
    let dir = tempfile::tempdir().unwrap();
    let layout = busybox_oci_layout(dir.path(), "1.36", &["sh"]);
    let reg = Registry::start();
    reg.push(&layout, "busybox", "1.36");
    let (code, body) = http_get(&reg.host(), "/v2/busybox/manifests/1.36", "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&layout.layer_digest), "manifest names our layer: {body}");
    let (code, _) = http_get(&reg.host(), "/v2/busybox/manifests/nope", "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(code, 404);
}
