/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C interfaces adapt uses that Rust-for-Linux 6.12 does not bind.
 * bindgen turns this into adapt_bindings_generated.rs (see ../Kbuild); the
 * allowlist in bindgen_parameters keeps the output to what we use.
 */
#include <linux/capability.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include "../shim.h"
