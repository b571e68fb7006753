// SPDX-License-Identifier: GPL-2.0
//! TEST-ONLY: replaces `adapt_probe_blocking_read` (the guest probe
//! `adapt-blocking`, whose entry is `xor eax, eax; syscall; nop`) with a
//! tail jump to `fallback`: every call then runs, and blocks, inside the
//! trampoline. The guest test reverts while a thread is blocked there: the
//! revert must be refused (EBUSY) until the thread has left. Built only
//! into the testing library.
#![no_std]

core::arch::global_asm!(
    ".globl adapt_probe_blocking_read",
    ".type adapt_probe_blocking_read,@function",
    "adapt_probe_blocking_read:",
    "jmp qword ptr [rip + adapt_import_fallback]",
);
