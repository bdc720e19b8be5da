//! rkube's OCI container runtime.
//!
//! Owns everything between an OCI bundle (`config.json` + rootfs) and a running process: namespaces, rootfs and
//! mounts, cgroups, capabilities, seccomp, hooks, and the container state kept under the runtime root. The kubelet
//! calls it in-process; the `rkube-runtime` binary is a runc-compatible CLI over the same library.
