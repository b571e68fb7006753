// SPDX-License-Identifier: GPL-2.0
/*
 * Forwarders for static inlines and macros (see shim.h). No logic lives here
 * beyond what the inline functions themselves do.
 */
#include <linux/cpumask.h>
#include <linux/perf_event.h>
#include <linux/pid.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/smp.h>
#include <asm/ptrace.h>

#include "shim.h"

struct task_struct *adapt_pid_get_process(struct pid *pid)
{
	return get_pid_task(pid, PIDTYPE_TGID);
}

bool adapt_pid_has_process(struct pid *pid)
{
	bool alive;

	rcu_read_lock();
	alive = pid_task(pid, PIDTYPE_TGID) != NULL;
	rcu_read_unlock();
	return alive;
}

void adapt_task_put(struct task_struct *task)
{
	put_task_struct(task);
}

bool adapt_task_is_kthread(struct task_struct *task)
{
	return task->flags & PF_KTHREAD;
}

bool adapt_task_is_dumpable(struct task_struct *task)
{
	bool dumpable = false;

	task_lock(task);
	if (task->mm)
		dumpable = get_dumpable(task->mm) == SUID_DUMP_USER;
	task_unlock(task);
	return dumpable;
}

unsigned int adapt_nr_cpu_ids(void)
{
	return nr_cpu_ids;
}

unsigned int adapt_next_online_cpu(int prev)
{
	return cpumask_next(prev, cpu_online_mask);
}

void *adapt_perf_event_context(struct perf_event *event)
{
	return event->overflow_handler_context;
}

struct pid *adapt_current_tgid(void)
{
	return task_tgid(current);
}

u32 adapt_current_tid(void)
{
	return current->pid;
}

u32 adapt_this_cpu(void)
{
	return raw_smp_processor_id();
}

/*
 * The user-mode instruction pointer of the interrupted task: from the
 * interrupt's registers when it hit user mode, otherwise from the registers
 * saved at the task's entry into the kernel. Returns true in the latter case.
 */
bool adapt_sample_user_ip(struct pt_regs *regs, u64 *ip)
{
	if (regs && user_mode(regs)) {
		*ip = instruction_pointer(regs);
		return false;
	}
	*ip = instruction_pointer(task_pt_regs(current));
	return true;
}
