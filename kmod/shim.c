// SPDX-License-Identifier: GPL-2.0
/*
 * Forwarders for static inlines and macros (see shim.h). No logic lives here
 * beyond what the inline functions themselves do.
 */
#include <linux/anon_inodes.h>
#include <linux/cpumask.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/task_work.h>
#include <linux/cred.h>
#include <linux/dcache.h>
#include <linux/uidgid.h>
#include <linux/sched/task.h>
#include <linux/signal.h>
#include <linux/string.h>
#include <linux/tracepoint.h>
#include <asm/cpufeature.h>
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

/* ---- rendezvous.rs ---- */

/*
 * Takes a reference on up to @max threads of @leader's thread group and
 * stores them in @out. Returns the number of threads, which may exceed @max
 * (then only @max were stored and referenced).
 */
int adapt_process_threads(struct task_struct *leader, struct task_struct **out, int max)
{
	struct task_struct *t;
	int n = 0;

	rcu_read_lock();
	for_each_thread(leader, t) {
		if (n < max) {
			get_task_struct(t);
			out[n] = t;
		}
		n++;
	}
	rcu_read_unlock();
	return n;
}

int adapt_task_work_queue(struct task_struct *task, struct callback_head *work,
			  void (*func)(struct callback_head *))
{
	init_task_work(work, func);
	return task_work_add(task, work, TWA_SIGNAL);
}

u64 adapt_current_user_ip(void)
{
	return instruction_pointer(task_pt_regs(current));
}

bool adapt_current_exiting(void)
{
	return current->flags & PF_EXITING;
}

u32 adapt_task_tid(struct task_struct *task)
{
	return task->pid;
}

bool adapt_current_in_group_of(struct task_struct *task)
{
	return same_thread_group(current, task);
}

/* ---- segment_map.rs ---- */

struct file *adapt_segment_file(const char *name, const struct file_operations *fops,
				unsigned long id)
{
	return anon_inode_getfile(name, fops, (void *)id, O_RDONLY);
}

unsigned long adapt_file_id(struct file *file)
{
	return (unsigned long)file->private_data;
}

long adapt_file_refs(struct file *file)
{
	return file_count(file);
}

/*
 * Makes a segment mapping never writable (and the read-only data never
 * executable), fixes its size, and reports which pages of the segment it
 * covers. Refuses a writable request outright.
 */
int adapt_vma_prepare(struct vm_area_struct *vma, bool exec,
		      const struct vm_operations_struct *ops,
		      unsigned long *pgoff, unsigned long *npages)
{
	if (vma->vm_flags & VM_WRITE)
		return -EPERM;
	/* MAP_SHARED of a read-only file: VM_MAYSHARE without VM_SHARED. */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (exec != !!(vma->vm_flags & VM_EXEC))
		return -EPERM;
	vm_flags_mod(vma, VM_DONTEXPAND | VM_DONTDUMP,
		     VM_MAYWRITE | (exec ? 0 : VM_MAYEXEC));
	vma->vm_ops = ops;
	*pgoff = vma->vm_pgoff;
	*npages = vma_pages(vma);
	return 0;
}

int adapt_vma_insert_pages(struct vm_area_struct *vma, struct page **pages,
			   unsigned long npages)
{
	unsigned long left = npages;
	int ret = vm_insert_pages(vma, vma->vm_start, pages, &left);

	return ret ? ret : (left ? -EFAULT : 0);
}

long adapt_vm_mmap_fixed(struct file *file, unsigned long addr, unsigned long len,
			 bool exec, unsigned long pgoff)
{
	unsigned long ret = vm_mmap(file, addr, len, PROT_READ | (exec ? PROT_EXEC : 0),
				    MAP_SHARED | MAP_FIXED_NOREPLACE, pgoff << PAGE_SHIFT);

	if (IS_ERR_VALUE(ret))
		return (long)ret;
	if (ret != addr) {
		vm_munmap(ret, len);
		return -EEXIST;
	}
	return 0;
}

/* ---- text_patch.rs and injector.rs ---- */

/* 0 when [addr, addr + len) lies in one executable mapping of @task. */
int adapt_check_text(struct task_struct *task, u64 addr, u32 len)
{
	struct mm_struct *mm = get_task_mm(task);
	struct vm_area_struct *vma;
	int ret = -EFAULT;

	if (!mm)
		return -ESRCH;
	mmap_read_lock(mm);
	vma = vma_lookup(mm, addr);
	if (vma && addr + len <= vma->vm_end && (vma->vm_flags & VM_EXEC) &&
	    !(vma->vm_flags & VM_WRITE))
		ret = 0;
	mmap_read_unlock(mm);
	mmput(mm);
	return ret;
}

/* The address space of @task, pinned (not its mappings) for identity checks. */
struct mm_struct *adapt_task_mm_grab(struct task_struct *task)
{
	struct mm_struct *mm;

	task_lock(task);
	mm = task->mm;
	if (mm)
		mmgrab(mm);
	task_unlock(task);
	return mm;
}

bool adapt_task_uses_mm(struct task_struct *task, struct mm_struct *mm)
{
	bool same;

	task_lock(task);
	same = task->mm == mm;
	task_unlock(task);
	return same;
}

void adapt_mm_drop(struct mm_struct *mm)
{
	mmdrop(mm);
}

/* The real uid of @task, as seen from the initial user namespace. */
u32 adapt_task_uid(struct task_struct *task)
{
	return from_kuid_munged(&init_user_ns, task_uid(task));
}

void adapt_task_comm(struct task_struct *task, char *buf, u32 len)
{
	__get_task_comm(buf, len, task);
}

/* The path of @task's executable, as the caller sees it, NUL-terminated. */
int adapt_task_exe_path(struct task_struct *task, char *buf, u32 len)
{
	struct mm_struct *mm = get_task_mm(task);
	struct file *exe;
	char *path;
	int ret = 0;

	if (!mm)
		return -ENOENT;
	/* get_mm_exe_file(), which is not exported, does this. */
	rcu_read_lock();
	exe = get_file_rcu(&mm->exe_file);
	rcu_read_unlock();
	mmput(mm);
	if (!exe)
		return -ENOENT;
	path = d_path(&exe->f_path, buf, len);
	if (IS_ERR(path))
		ret = PTR_ERR(path);
	else
		memmove(buf, path, strlen(path) + 1);
	fput(exe);
	return ret;
}

/* Bits in the order of ADAPT_CPU_FEATURE_NAMES (userspace/abi/src/abi.rs). */
u64 adapt_cpu_features(void)
{
	static const u16 bits[] = {
		X86_FEATURE_XMM3, X86_FEATURE_SSSE3, X86_FEATURE_XMM4_1,
		X86_FEATURE_XMM4_2, X86_FEATURE_POPCNT, X86_FEATURE_PCLMULQDQ,
		X86_FEATURE_AES, X86_FEATURE_AVX, X86_FEATURE_AVX2, X86_FEATURE_FMA,
		X86_FEATURE_F16C, X86_FEATURE_BMI1, X86_FEATURE_BMI2, X86_FEATURE_ABM,
		X86_FEATURE_MOVBE, X86_FEATURE_SHA_NI, X86_FEATURE_AVX512F,
		X86_FEATURE_AVX512BW, X86_FEATURE_AVX512VL, X86_FEATURE_AVX512DQ,
		X86_FEATURE_AVX512CD, X86_FEATURE_AVX512VBMI, X86_FEATURE_AVX512_VNNI,
		X86_FEATURE_VPCLMULQDQ, X86_FEATURE_VAES, X86_FEATURE_GFNI,
	};
	u64 mask = 0;
	int i;

	for (i = 0; i < ARRAY_SIZE(bits); i++)
		if (boot_cpu_has(bits[i]))
			mask |= 1ULL << i;
	return mask;
}

/*
 * Unmaps [start, start + len) of the current process if it is still mapped
 * from @file (the program may have mapped something else over it).
 */
int adapt_unmap_if_file(struct file *file, unsigned long start, unsigned long len)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	bool ours;

	if (!mm)
		return -ESRCH;
	mmap_read_lock(mm);
	vma = vma_lookup(mm, start);
	ours = vma && vma->vm_file == file;
	mmap_read_unlock(mm);
	return ours ? vm_munmap(start, len) : -ENOENT;
}

/* ---- fault_watch.rs ---- */

static struct tracepoint *adapt_tp_signal_deliver;

static void adapt_find_signal_deliver(struct tracepoint *tp, void *priv)
{
	if (!strcmp(tp->name, "signal_deliver"))
		adapt_tp_signal_deliver = tp;
}

/*
 * Called with the target's siglock held, as it is about to act on a
 * signal: only fault signals raised by the kernel for the current thread
 * (si_code > 0) are of interest; their registers hold the faulting IP.
 */
static void adapt_on_signal_deliver(void *data, int sig, struct kernel_siginfo *info,
				    struct k_sigaction *ka)
{
	if (sig != SIGSEGV && sig != SIGBUS && sig != SIGILL && sig != SIGFPE &&
	    sig != SIGTRAP)
		return;
	if (!info || info->si_code <= 0 || !current->mm)
		return;
	adapt_rust_on_fault(instruction_pointer(task_pt_regs(current)), current->mm);
}

int adapt_fault_watch_start(void)
{
	for_each_kernel_tracepoint(adapt_find_signal_deliver, NULL);
	if (!adapt_tp_signal_deliver)
		return -ENOENT;
	return tracepoint_probe_register(adapt_tp_signal_deliver, adapt_on_signal_deliver, NULL);
}

void adapt_fault_watch_stop(void)
{
	if (!adapt_tp_signal_deliver)
		return;
	tracepoint_probe_unregister(adapt_tp_signal_deliver, adapt_on_signal_deliver, NULL);
	tracepoint_synchronize_unregister();
	adapt_tp_signal_deliver = NULL;
}
