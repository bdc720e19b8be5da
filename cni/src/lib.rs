//! rkube's CNI plugins: `rkube-bridge` (bridge + veth) and `rkube-host-local` (IPAM), per CNI spec 1.0.0.
