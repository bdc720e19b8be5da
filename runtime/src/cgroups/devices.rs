//! Device rules on cgroup v2: the kernel has no devices.allow file there, only BPF_PROG_TYPE_CGROUP_DEVICE
//! programs. This builds one from `linux.resources.devices` (the last matching rule wins, as with v1's
//! lists; no rule matching means deny) and attaches it to the container's cgroup.

use std::path::Path;

use oci_spec::runtime::LinuxDeviceCgroup;

use super::CgroupError;

// Instruction opcodes (linux/bpf.h).
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (src << 4) | (dst & 0x0f);
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..8].copy_from_slice(&imm.to_le_bytes());
    b
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |acc, c| match c {
        'm' => acc | 1, // BPF_DEVCG_ACC_MKNOD
        'r' => acc | 2, // BPF_DEVCG_ACC_READ
        'w' => acc | 4, // BPF_DEVCG_ACC_WRITE
        _ => acc,
    })
}

/// The program for `rules`: r2 = device type, r3 = access, r4 = major, r5 = minor; rules tested last to first.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Vec<[u8; 8]> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let mut block: Vec<([u8; 8], bool)> = Vec::new(); // (instruction, jumps to the next rule)
        match r.typ().map(|t| t.as_str().to_string()).as_deref() {
            Some("c") | Some("u") => block.push((insn(JNE_K, 2, 0, 0, 2), true)), // BPF_DEVCG_DEV_CHAR
            Some("b") => block.push((insn(JNE_K, 2, 0, 0, 1), true)),             // BPF_DEVCG_DEV_BLOCK
            _ => {}
        }
        let acc = access_bits(r.access().as_deref().unwrap_or("rwm"));
        if acc != 7 {
            // Requested access must be within the rule's: (access & ~rule) == 0.
            block.push((insn(MOV32_X, 1, 3, 0, 0), false));
            block.push((insn(AND32_K, 1, 0, 0, !acc), false));
            block.push((insn(JNE_K, 1, 0, 0, 0), true));
        }
        if let Some(m) = r.major().filter(|m| *m >= 0) {
            block.push((insn(JNE_K, 4, 0, 0, m as i32), true));
        }
        if let Some(m) = r.minor().filter(|m| *m >= 0) {
            block.push((insn(JNE_K, 5, 0, 0, m as i32), true));
        }
        block.push((insn(MOV64_K, 0, 0, 0, i32::from(r.allow())), false));
        block.push((insn(EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        let unconditional = !block.iter().any(|(_, j)| *j);
        for (i, (mut ins, jumps)) in block.into_iter().enumerate() {
            if jumps {
                let off = (len - i - 1) as i16;
                ins[2..4].copy_from_slice(&off.to_le_bytes());
            }
            p.push(ins);
        }
        if unconditional {
            // A rule matching everything ends the program: the verifier rejects unreachable instructions.
            return p;
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// Attaches the device program for `rules` to the cgroup2 directory `dir`.
pub fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let f = std::fs::File::open(dir).map_err(|source| CgroupError::Read { path: dir.to_path_buf(), source })?;
    let prog = program(rules);
    crate::sys::attach_device_program(std::os::fd::AsRawFd::as_raw_fd(&f), &prog)
        .map_err(|source| CgroupError::Write { path: dir.to_path_buf(), value: "device BPF program".into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_shape() {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_value(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"}
        ]))
        .unwrap();
        let p = program(&rules);
        // 6 loads, pts rule (type, 3 access, major, mov, exit = 7), null rule (type, major, minor, mov, exit = 5),
        // deny-all (mov, exit = 2), which ends the program (nothing after it is reachable).
        assert_eq!(p.len(), 6 + 7 + 5 + 2);
        // The pts rule's type check jumps over the rest of its block (6 instructions).
        assert_eq!(p[6][0], JNE_K);
        assert_eq!(i16::from_le_bytes([p[6][2], p[6][3]]), 6);
        assert_eq!(*p.last().unwrap(), insn(EXIT, 0, 0, 0, 0));
        assert_eq!(p[p.len() - 2], insn(MOV64_K, 0, 0, 0, 0), "deny-all returns 0");
        // Without a catch-all rule the program ends in a default deny.
        let p = program(&rules[1..]);
        assert_eq!(p.len(), 6 + 7 + 5 + 2);
        assert_eq!(p[p.len() - 2], insn(MOV64_K, 0, 0, 0, 0));
    }
}
