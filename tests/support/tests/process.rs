//! `output_within`: a child past its deadline is killed and the test fails with what it printed; one that ends
//! in time comes back with its status and output as they are.

use std::process::Command;
use std::time::Duration;

use rkube_testsupport::output_within;

#[test]
fn a_finished_child_keeps_its_status_output_and_input() {
    let out = output_within(Command::new("sh").args(["-c", "cat; echo err >&2; exit 3"]), Some(b"fed"), Duration::from_secs(10), "sh");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"fed");
    assert_eq!(out.stderr, b"err\n");
}

#[test]
fn a_hung_child_is_killed_and_fails_with_what_it_printed() {
    let pidfile = tempfile::NamedTempFile::new().expect("temp file");
    let path = pidfile.path().to_path_buf();
    let script = format!("echo $$ > {}; echo started; exec sleep 30", path.display());
    let err = std::panic::catch_unwind(|| output_within(Command::new("sh").args(["-c", &script]), None, Duration::from_millis(500), "sleeper"))
        .expect_err("a child past its deadline fails the test");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("sleeper did not finish within 500ms") && msg.contains("stdout: started"), "{msg}");
    let pid = std::fs::read_to_string(&path).expect("pid file").trim().to_string();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} was killed and reaped");
}
