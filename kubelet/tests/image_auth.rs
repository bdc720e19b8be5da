//! Basic auth against the real registry (distribution 2.8 with `auth: htpasswd`), credentials taken from a
//! dockerconfigjson pull secret through `ImageService::ensure_image`, as the pod code will call it. Root.

mod image_support;

use std::net::{Ipv4Addr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use image_support::rt;
use rkube_kubelet::image::{no_progress, DockerConfigJson, Ensured, ImageService, PullPolicy, RegistryConfig};
use rkube_testsupport::{busybox_oci_layout, poll_until, require_command, require_root, ChildGuard};

struct AuthRegistry {
    port: u16,
    _dir: tempfile::TempDir,
    _child: ChildGuard,
}

fn start_htpasswd_registry(user: &str, pass: &str) -> AuthRegistry {
    let bin = require_command("docker-registry", "docker-registry");
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = bcrypt::hash(pass, 5).expect("bcrypt");
    std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).expect("htpasswd");
    let port = rkube_testsupport::registry::free_port();
    let config = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nauth:\n  htpasswd:\n    realm: rkube-test\n    path: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.path().join("data").display(),
        dir.path().join("htpasswd").display()
    );
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, config).expect("config");
    let child = Command::new(bin).arg("serve").arg(&cfg).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start registry");
    let mut guard = ChildGuard::new(child, "docker-registry (htpasswd)");
    poll_until("docker-registry with htpasswd to listen", Duration::from_secs(20), || {
        assert!(guard.is_running(), "docker-registry exited at start; config {}", cfg.display());
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()
    });
    AuthRegistry { port, _dir: dir, _child: guard }
}

#[test]
fn basic_auth_with_a_pull_secret() {
    require_root();
    let registry = start_htpasswd_registry("kube", "pull-me");
    let host = format!("127.0.0.1:{}", registry.port);
    let src = tempfile::tempdir().expect("tempdir");
    let layout = busybox_oci_layout(src.path(), "1.36", &["sh"]);
    let ok = Command::new(require_command("skopeo", "skopeo"))
        .args(["copy", "--quiet", "--dest-tls-verify=false", "--insecure-policy", "--dest-creds", "kube:pull-me"])
        .arg(format!("oci:{}:1.36", layout.dir.display()))
        .arg(format!("docker://{host}/secure/busybox:1.36"))
        .status()
        .expect("skopeo")
        .success();
    assert!(ok, "push with credentials");
    let image = format!("{host}/secure/busybox:1.36");

    let root = tempfile::tempdir().expect("store");
    let service = ImageService::new(root.path(), RegistryConfig::default()).expect("service");

    // No secret: unauthorized, reported as ErrImagePull naming the registry.
    let err = rt()
        .block_on(service.ensure_image(&image, None, &DockerConfigJson::default(), no_progress()))
        .expect_err("anonymous pull must fail");
    assert_eq!(err.reason(), "ErrImagePull");
    let msg = err.to_string();
    assert!(msg.contains("unauthorized") && msg.contains(&host), "{msg}");

    // Wrong password in the secret.
    let secret = |pass: &str| {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("kube:{pass}"));
        DockerConfigJson::parse(format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#).as_bytes()).expect("secret")
    };
    let err = rt().block_on(service.ensure_image(&image, None, &secret("wrong"), no_progress())).expect_err("wrong password");
    assert!(err.to_string().contains("credentials rejected"), "{err}");

    // Right secret: pulled (tag 1.36 -> IfNotPresent, absent -> pull).
    let ensured = rt().block_on(service.ensure_image(&image, None, &secret("pull-me"), no_progress())).expect("pull with secret");
    let Ensured::Pulled(outcome) = ensured else { panic!("expected a pull") };
    assert_eq!(outcome.image.id, layout.config_digest);
    // Present now: IfNotPresent uses it without the secret, Never too; Always pulls again (and needs the secret).
    let again = rt().block_on(service.ensure_image(&image, None, &DockerConfigJson::default(), no_progress())).expect("present");
    assert!(matches!(again, Ensured::Present(_)));
    let never = rt()
        .block_on(service.ensure_image(&image, Some(PullPolicy::Never), &DockerConfigJson::default(), no_progress()))
        .expect("present, never pull");
    assert!(matches!(never, Ensured::Present(_)));
    let always = rt()
        .block_on(service.ensure_image(&image, Some(PullPolicy::Always), &secret("pull-me"), no_progress()))
        .expect("always pulls");
    let Ensured::Pulled(o) = always else { panic!("Always must pull") };
    assert_eq!(o.downloaded_bytes, 0, "layers already present are not downloaded again");
    // Always without the secret, after pulls that had it: the registry is asked with no credentials and says
    // no (what one pod's secret opened must not open the registry for another pod).
    let err = rt()
        .block_on(service.ensure_image(&image, Some(PullPolicy::Always), &DockerConfigJson::default(), no_progress()))
        .expect_err("Always without the secret must not ride on another pull's credentials");
    assert_eq!(err.reason(), "ErrImagePull");
    let err = rt().block_on(service.ensure_image(&image, Some(PullPolicy::Always), &secret("wrong"), no_progress())).expect_err("wrong password after a right one");
    assert!(err.to_string().contains("credentials rejected"), "{err}");
    // Never + absent image.
    let err = rt()
        .block_on(service.ensure_image(&format!("{host}/secure/other:1"), Some(PullPolicy::Never), &DockerConfigJson::default(), no_progress()))
        .expect_err("never pull a missing image");
    assert_eq!(err.reason(), "ErrImageNeverPull");
}
