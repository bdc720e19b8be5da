//! Debian's docker-registry (distribution 2.8) on 127.0.0.1 only, with storage in a temp dir; anonymous, or with
//! basic auth from an htpasswd line the caller makes (bcrypt, as the registry requires).

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::image::OciLayout;
use crate::poll::poll_until;
use crate::process::ChildGuard;

/// A running registry; stopped by PID and its storage removed on drop.
pub struct Registry {
    /// The port it listens on at 127.0.0.1 (images are `127.0.0.1:<port>/<name>:<tag>`).
    pub port: u16,
    _dir: tempfile::TempDir,
    _child: ChildGuard,
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it right after).
pub fn free_port() -> u16 {
    let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl Registry {
    /// Starts the registry and waits until it accepts connections.
    pub fn start() -> Registry {
        Self::start_with("")
    }

    /// Starts a registry that requires basic auth: `htpasswd_line` is `user:<bcrypt hash>`.
    pub fn start_with_htpasswd(htpasswd_line: &str) -> Registry {
        Self::start_with(htpasswd_line)
    }

    fn start_with(htpasswd_line: &str) -> Registry {
        let bin = crate::require_command("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().expect("registry tempdir");
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        let config = if htpasswd_line.is_empty() {
            config
        } else {
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{htpasswd_line}\n")).expect("write htpasswd");
            format!("{config}auth:\n  htpasswd:\n    realm: rkube-test\n    path: {}\n", file.display())
        };
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).expect("write registry config");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let mut guard = ChildGuard::new(child, "docker-registry");
        poll_until("docker-registry to listen", Duration::from_secs(20), || {
            assert!(guard.is_running(), "docker-registry exited at start; run it by hand with {}", cfg.display());
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()
        });
        Registry { port, _dir: dir, _child: guard }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes an OCI layout into this registry as `repo:tag` with skopeo; returns the image reference.
    pub fn push(&self, layout: &OciLayout, repo: &str, tag: &str) -> String {
        self.push_as(layout, repo, tag, None)
    }

    /// Pushes like [`Registry::push`], with `user:password` for a registry that requires auth.
    pub fn push_as(&self, layout: &OciLayout, repo: &str, tag: &str, creds: Option<&str>) -> String {
        let skopeo = crate::require_command("skopeo", "skopeo");
        let reference = format!("{}/{repo}:{tag}", self.host());
        let status = Command::new(skopeo)
            .args(["copy", "--quiet", "--dest-tls-verify=false", "--insecure-policy"])
            .args(creds.map(|c| format!("--dest-creds={c}")))
            .arg(format!("oci:{}:{}", layout.dir.display(), layout.tag))
            .arg(format!("docker://{reference}"))
            .status()
            .expect("run skopeo");
        assert!(status.success(), "skopeo copy to {reference} failed");
        reference
    }
}

