/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C shim for kernel interfaces that are macros or static inlines, which
 * bindgen cannot bind. Each function is a one-line forwarder; the safe
 * wrappers live in the Rust files named beside each group.
 */
#ifndef ADAPT_SHIM_H
#define ADAPT_SHIM_H

#include <linux/types.h>

struct pid;
struct perf_event;
struct pt_regs;
struct task_struct;

/* task.rs */
struct task_struct *adapt_pid_get_process(struct pid *pid);
bool adapt_pid_has_process(struct pid *pid);
void adapt_task_put(struct task_struct *task);
bool adapt_task_is_kthread(struct task_struct *task);
bool adapt_task_is_dumpable(struct task_struct *task);

/* cpus.rs */
unsigned int adapt_nr_cpu_ids(void);
unsigned int adapt_next_online_cpu(int prev);

/* perf.rs: these run in the overflow handler, possibly in NMI context. */
void *adapt_perf_event_context(struct perf_event *event);
struct pid *adapt_current_tgid(void);
u32 adapt_current_tid(void);
u32 adapt_this_cpu(void);
bool adapt_sample_user_ip(struct pt_regs *regs, u64 *ip);

#endif
