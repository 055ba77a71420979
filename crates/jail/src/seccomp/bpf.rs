//! A classic-BPF interpreter for seccomp programs, as the kernel runs them on a `seccomp_data`.
//! `build.rs` runs each compiled filter through it to check what libseccomp made of the other
//! ABIs (i386, x32) before the filter is embedded; the crate's tests check every policy rule
//! with it. Plain std only: `build.rs` includes this file with `#[path]`.

/// `AUDIT_ARCH_X86_64`: the `arch` of a native x86_64 call (and of an x32 one).
pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386`: the `arch` of an `int 0x80` call.
pub(crate) const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// The bit that marks a system call number as x32's (`__X32_SYSCALL_BIT`).
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `SECCOMP_RET_ALLOW`.
pub(crate) const RET_ALLOW: u32 = 0x7fff_0000;
/// `SECCOMP_RET_ERRNO`, the errno in the low 16 bits.
pub(crate) const RET_ERRNO: u32 = 0x0005_0000;

/// What the kernel hands a seccomp filter: the call's number, ABI and arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeccompData {
    pub(crate) nr: u32,
    pub(crate) arch: u32,
    pub(crate) instruction_pointer: u64,
    pub(crate) args: [u64; 6],
}

impl SeccompData {
    /// A native x86_64 call.
    pub(crate) fn native(nr: u32, args: [u64; 6]) -> SeccompData {
        SeccompData {
            nr,
            arch: AUDIT_ARCH_X86_64,
            instruction_pointer: 0,
            args,
        }
    }

    /// The 32-bit word at `offset` of `struct seccomp_data` (little-endian), as `BPF_LD|BPF_ABS`
    /// reads it; `None` past its 64 bytes or unaligned (the kernel refuses such a program).
    fn word(&self, offset: u32) -> Option<u32> {
        if !offset.is_multiple_of(4) {
            return None;
        }
        let half = |v: u64, high: bool| {
            let bits = if high { v >> 32 } else { v & 0xffff_ffff };
            u32::try_from(bits).ok()
        };
        match offset {
            0 => Some(self.nr),
            4 => Some(self.arch),
            8 | 12 => half(self.instruction_pointer, offset == 12),
            16..=60 => {
                let i = usize::try_from((offset - 16) / 8).ok()?;
                half(self.args[i], offset % 8 == 4)
            }
            _ => None,
        }
    }
}

/// Why a program could not be run to a return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BpfError {
    /// The program's length is not a multiple of 8 bytes.
    Length(usize),
    /// An instruction the seccomp subset of classic BPF does not have.
    Opcode { pc: usize, code: u16 },
    /// A load outside `seccomp_data`, or of scratch memory out of range.
    Load { pc: usize, k: u32 },
    /// A jump or fall-through past the last instruction.
    OffTheEnd { pc: usize },
}

/// One instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub(crate) code: u16,
    pub(crate) jt: u8,
    pub(crate) jf: u8,
    pub(crate) k: u32,
}

/// Splits a program's bytes (as `seccomp_export_bpf` writes them) into instructions.
pub(crate) fn instructions(program: &[u8]) -> Result<Vec<Insn>, BpfError> {
    if !program.len().is_multiple_of(8) {
        return Err(BpfError::Length(program.len()));
    }
    Ok(program
        .chunks_exact(8)
        .map(|b| Insn {
            code: u16::from_le_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect())
}

/// Runs a filter on `data` and returns what it returns (`SECCOMP_RET_*` and its data).
pub(crate) fn run(program: &[u8], data: &SeccompData) -> Result<u32, BpfError> {
    let insns = instructions(program)?;
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    loop {
        let Some(&Insn { code, jt, jf, k }) = insns.get(pc) else {
            return Err(BpfError::OffTheEnd { pc });
        };
        let load_err = BpfError::Load { pc, k };
        let slot = usize::try_from(k).ok().filter(|i| *i < mem.len());
        let mut next = pc + 1;
        match code {
            // BPF_LD|BPF_W|BPF_ABS, BPF_LD|BPF_IMM, BPF_LD|BPF_MEM, BPF_LD|BPF_W|BPF_LEN
            0x20 => a = data.word(k).ok_or(load_err)?,
            0x00 => a = k,
            0x60 => a = mem[slot.ok_or(load_err)?],
            0x80 => a = 64,
            // BPF_LDX|BPF_IMM, BPF_LDX|BPF_MEM, BPF_LDX|BPF_W|BPF_LEN
            0x01 => x = k,
            0x61 => x = mem[slot.ok_or(load_err)?],
            0x81 => x = 64,
            // BPF_ST, BPF_STX
            0x02 => mem[slot.ok_or(load_err)?] = a,
            0x03 => mem[slot.ok_or(load_err)?] = x,
            // BPF_MISC|BPF_TAX, BPF_MISC|BPF_TXA
            0x07 => x = a,
            0x87 => a = x,
            // BPF_RET|BPF_K, BPF_RET|BPF_A
            0x06 => return Ok(k),
            0x16 => return Ok(a),
            // BPF_JMP|BPF_JA
            0x05 => next = pc + 1 + usize::try_from(k).map_err(|_| BpfError::OffTheEnd { pc })?,
            // BPF_ALU and BPF_JMP with a K or X operand.
            _ if code & 0x07 == 0x04 || code & 0x07 == 0x05 => {
                let operand = if code & 0x08 != 0 { x } else { k };
                if code & 0x07 == 0x04 {
                    a = alu(code & 0xf0, a, operand).ok_or(BpfError::Opcode { pc, code })?;
                } else {
                    let taken = match code & 0xf0 {
                        0x10 => a == operand,
                        0x20 => a > operand,
                        0x30 => a >= operand,
                        0x40 => a & operand != 0,
                        _ => return Err(BpfError::Opcode { pc, code }),
                    };
                    next = pc + 1 + usize::from(if taken { jt } else { jf });
                }
            }
            _ => return Err(BpfError::Opcode { pc, code }),
        }
        pc = next;
    }
}

fn alu(op: u16, a: u32, operand: u32) -> Option<u32> {
    Some(match op {
        0x00 => a.wrapping_add(operand),
        0x10 => a.wrapping_sub(operand),
        0x20 => a.wrapping_mul(operand),
        0x30 => a.checked_div(operand)?,
        0x40 => a | operand,
        0x50 => a & operand,
        0x60 => a.checked_shl(operand).unwrap_or(0),
        0x70 => a.checked_shr(operand).unwrap_or(0),
        0x80 => a.wrapping_neg(),
        0x90 => a.checked_rem(operand)?,
        0xa0 => a ^ operand,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(insns: &[(u16, u8, u8, u32)]) -> Vec<u8> {
        insns
            .iter()
            .flat_map(|&(code, jt, jf, k)| {
                let mut b = code.to_le_bytes().to_vec();
                b.extend([jt, jf]);
                b.extend(k.to_le_bytes());
                b
            })
            .collect()
    }

    #[test]
    fn loads_jumps_and_returns_as_the_kernel_does() {
        // if arch != x86_64: EPERM; if (arg1 high word & 1): ENOSYS; else allow
        let p = program(&[
            (0x20, 0, 0, 4),
            (0x15, 1, 0, AUDIT_ARCH_X86_64),
            (0x06, 0, 0, RET_ERRNO | 1),
            (0x20, 0, 0, 28),
            (0x54, 0, 0, 1),
            (0x15, 1, 0, 1),
            (0x06, 0, 0, RET_ALLOW),
            (0x06, 0, 0, RET_ERRNO | 38),
        ]);
        let mut d = SeccompData::native(0, [0, 1 << 32, 0, 0, 0, 0]);
        assert_eq!(run(&p, &d), Ok(RET_ERRNO | 38));
        d.args[1] = 1;
        assert_eq!(run(&p, &d), Ok(RET_ALLOW));
        d.arch = AUDIT_ARCH_I386;
        assert_eq!(run(&p, &d), Ok(RET_ERRNO | 1));
    }

    #[test]
    fn bad_programs_are_errors() {
        let d = SeccompData::native(0, [0; 6]);
        assert_eq!(run(&[0; 7], &d), Err(BpfError::Length(7)));
        assert_eq!(
            run(&program(&[(0x20, 0, 0, 64)]), &d),
            Err(BpfError::Load { pc: 0, k: 64 })
        );
        assert_eq!(
            run(&program(&[(0x15, 0, 0, 0)]), &d),
            Err(BpfError::OffTheEnd { pc: 1 })
        );
        assert_eq!(
            run(&program(&[(0xff, 0, 0, 0)]), &d),
            Err(BpfError::Opcode { pc: 0, code: 0xff })
        );
    }
}
