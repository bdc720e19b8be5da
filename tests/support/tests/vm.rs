//! The VM fixture boots Debian's kernel on pure cgroup v2 and reports the guest script's exit code.

use rkube_testsupport::vm::Vm;
use std::time::Duration;

#[test]
fn guest_runs_on_cgroup_v2_and_reports_exit_code() {
    let run = Vm::new().run(
        "test -f /sys/fs/cgroup/cgroup.controllers || exit 3\n\
         grep -qw memory /sys/fs/cgroup/cgroup.subtree_control || exit 4\n\
         echo controllers: $(cat /sys/fs/cgroup/cgroup.controllers)\nexit 7\n",
        Duration::from_secs(120),
    );
    assert_eq!(run.exit_code, Some(7), "guest console:\n{}", run.console);
    assert!(run.console.contains("controllers: cpuset cpu io memory"), "{}", run.console);
}
