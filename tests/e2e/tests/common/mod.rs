//! A real rkube apiserver for end-to-end tests: started in-process on 127.0.0.1:<free port> over the embedded
//! store in a temp dir, with an admin kubeconfig, and helpers to drive the real kubectl binaries against it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use rkube_apiserver::server::{open_backend, Backend, OpenedStore};
use rkube_apiserver::{ApiServer, ServerConfig};

/// How long one kubectl call against the in-process apiserver may take: none waits on pods, so a minute is far
/// more than any needs on a loaded machine.
pub const KUBECTL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// The kubectl versions every test drives.
pub const KUBECTLS: &[&str] = &["1.27", "1.33"];

/// Path of `kubectl.<version>`, or a panic saying how to get it.
pub fn kubectl_bin(version: &str) -> PathBuf {
    let p = PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.{version}"));
    assert!(p.exists(), "{} is missing: install the google-cloud-sdk kubectl packages (scripts/deps.sh)", p.display());
    p
}

/// A running apiserver; stopped and its data removed on drop.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub url: String,
    pub port: u16,
    runtime: tokio::runtime::Runtime,
    server: Option<ApiServer>,
    store: Option<OpenedStore>,
    tls: bool,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(false)
    }

    /// Serves HTTPS with a generated CA and an admin client certificate in the kubeconfig.
    pub fn start_tls() -> TestServer {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = rkube_testsupport::registry::free_port();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let mut s = TestServer {
            kubeconfig: dir.path().join("kubeconfig"),
            url: format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" }),
            port,
            dir,
            runtime,
            server: None,
            store: None,
            tls,
        };
        s.boot();
        s
    }

    fn boot(&mut self) {
        let data = self.dir.path().join("state.redb");
        let port = self.port;
        let tls_dir = self.tls.then(|| self.dir.path().join("pki"));
        let (server, store) = self.runtime.block_on(async move {
            // After a restart the previous store's last references drop asynchronously; retry the file lock.
            let mut tries = 0;
            let opened = loop {
                match open_backend(&Backend::Embedded(data.clone())).await {
                    Ok(o) => break o,
                    Err(e) if tries < 100 => {
                        tries += 1;
                        lock_retry_pause(e).await;
                    }
                    Err(e) => panic!("open embedded store: {e}"),
                }
            };
            let mut config = ServerConfig::new(format!("127.0.0.1:{port}").parse().expect("addr"));
            config.tls_dir = tls_dir;
            let server = ApiServer::start(opened.store.clone(), config).await.expect("start apiserver");
            (server, opened)
        });
        server.write_kubeconfig(&self.kubeconfig).expect("write kubeconfig");
        self.server = Some(server);
        self.store = Some(store);
    }

    /// Stops the server and starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.boot();
    }

    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            self.runtime.block_on(s.shutdown());
        }
        // Drop the store (closing the embedded database file) inside the runtime.
        let store = self.store.take();
        self.runtime.block_on(async move { drop(store) });
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    pub fn state(&self) -> Arc<rkube_apiserver::ApiState> {
        self.server.as_ref().expect("server running").state().clone()
    }

    /// Runs `kubectl.<version> --kubeconfig ... args`; a run past [`KUBECTL_DEADLINE`] is killed and fails the
    /// test with what it printed.
    pub fn kubectl(&self, version: &str, args: &[&str]) -> Output {
        self.run_kubectl(version, args, None)
    }

    /// Runs kubectl with `stdin` as input (for `-f -`), under the same deadline.
    pub fn kubectl_stdin(&self, version: &str, args: &[&str], stdin: &str) -> Output {
        self.run_kubectl(version, args, Some(stdin))
    }

    fn run_kubectl(&self, version: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(kubectl_bin(version));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        rkube_testsupport::output_within(&mut cmd, stdin.map(str::as_bytes), KUBECTL_DEADLINE, &format!("kubectl.{version} {args:?}"))
    }

    /// Runs kubectl and returns stdout, panicking with stderr when it fails.
    pub fn ok(&self, version: &str, args: &[&str]) -> String {
        let out = self.kubectl(version, args);
        assert!(
            out.status.success(),
            "kubectl.{version} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, version: &str, args: &[&str]) -> String {
        let out = self.kubectl(version, args);
        assert!(!out.status.success(), "kubectl.{version} {args:?} should fail but printed {}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).expect("write manifest");
        p
    }
}

/// Waits a little before retrying an open that failed on the database lock.
async fn lock_retry_pause(_err: rkube_apiserver::storage::StorageError) {
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn as_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A Deployment manifest.
pub fn deployment_yaml(name: &str, replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: main\n        image: {image}\n        ports:\n        - containerPort: 80\n"
    )
}
