// SPDX-License-Identifier: GPL-2.0
/*
 * Forwarders for static inlines and macros (see shim.h). No logic lives here
 * beyond what the inline functions themselves do.
 */
#include <linux/anon_inodes.h>
#include <linux/completion.h>
#include <linux/freezer.h>
#include <linux/module.h>
#include <linux/lockdep.h>
#include <linux/kmemleak.h>
#include <linux/pid_namespace.h>
#include <linux/pseudo_fs.h>
#include <linux/mount.h>
#include <linux/sched/signal.h>
#include <asm/syscall.h>
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

void adapt_task_get(struct task_struct *task)
{
	get_task_struct(task);
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

/*
 * Every queued rendezvous work holds a reference on the module, so that
 * `rmmod` fails with EBUSY at once while one is queued (a stopped thread may
 * never run it) instead of waiting for it. The reference is dropped by
 * module_put() as a sibling call: once the refcount falls, no instruction of
 * the module runs on this path any more (adapt_work_entry() compiles to a
 * call of the Rust work followed by `jmp module_put`).
 */
static void adapt_work_entry(struct callback_head *work)
{
	adapt_rust_work_run(work);
	module_put(THIS_MODULE);
}

int adapt_task_work_queue(struct task_struct *task, struct callback_head *work)
{
	int ret;

	/*
	 * The caller holds a reference (an open /dev/adapt file), or this is
	 * the module's own exit path, where try_module_get() would fail:
	 * __module_get() is right for both.
	 */
	__module_get(THIS_MODULE);
	init_task_work(work, adapt_work_entry);
	ret = task_work_add(task, work, TWA_SIGNAL);
	if (ret)
		module_put(THIS_MODULE);
	return ret;
}

/*
 * References held on the module besides the one the loader holds while it
 * is live. In the exit path the loader's base reference is already gone
 * (kernel/module/main.c: try_release_module_ref), so this is -1 there when
 * no rendezvous work is queued.
 */
int adapt_module_refs(void)
{
	return module_refcount(THIS_MODULE);
}

/*
 * The user instruction pointer of the current task, and where it resumes
 * if the system call it is in gets restarted (the `syscall` instruction,
 * two bytes back) - the same as @ip outside a system call.
 */
void adapt_current_user_ips(u64 *ip, u64 *restart_ip)
{
	struct pt_regs *regs = task_pt_regs(current);

	*ip = instruction_pointer(regs);
	*restart_ip = *ip;
	if (syscall_get_nr(current, regs) >= 0)
		*restart_ip = *ip - 2;
}

u64 adapt_current_user_ip(void)
{
	return instruction_pointer(task_pt_regs(current));
}

bool adapt_fatal_signal_pending(void)
{
	return fatal_signal_pending(current);
}

/* Parked threads wait on a completion, killably. */
void adapt_completion_init(struct completion *done)
{
	init_completion(done);
}

/* 0 when released, -ERESTARTSYS on a fatal signal. */
int adapt_completion_wait_killable(struct completion *done)
{
	return wait_for_completion_killable(done);
}

void adapt_completion_release(struct completion *done)
{
	complete_all(done);
}

/*
 * Whether @task cannot run task work soon: stopped (SIGSTOP, job control),
 * stopped by a tracer, or frozen.
 */
bool adapt_task_is_held(struct task_struct *task)
{
	return task_is_stopped_or_traced(task) || frozen(task) ||
	       (READ_ONCE(task->jobctl) & JOBCTL_STOP_PENDING);
}

/* Whether @task runs with a 32-bit address space (ia32 or x32). */
bool adapt_task_is_compat(struct task_struct *task)
{
	return test_tsk_thread_flag(task, TIF_ADDR32);
}

/*
 * A counted reference to a thread of @task's group that uses @mm and is not
 * exiting (NULL if none): the group lives on in it even after its leader
 * called pthread_exit(). With @mm NULL, any thread that has an mm.
 */
struct task_struct *adapt_group_thread_with_mm(struct task_struct *task, struct mm_struct *mm)
{
	struct task_struct *t, *found = NULL;

	rcu_read_lock();
	for_each_thread(task, t) {
		struct mm_struct *tmm = READ_ONCE(t->mm);

		if (!tmm || (mm && tmm != mm) || (t->flags & PF_EXITING))
			continue;
		get_task_struct(t);
		found = t;
		break;
	}
	rcu_read_unlock();
	return found;
}

/*
 * The id (in the caller's pid namespace, or -1 when it has none there) of a
 * user task outside @task's thread group that uses @mm, or 0 when only the
 * group uses it: clone(CLONE_VM) without CLONE_THREAD, or a vfork child
 * before it execs. Such a task runs the same code and cannot be parked with
 * the group.
 */
int adapt_mm_foreign_user(struct task_struct *task, struct mm_struct *mm)
{
	struct task_struct *p, *t;
	int found = 0;

	rcu_read_lock();
	for_each_process(p) {
		if (same_thread_group(p, task) || (p->flags & PF_KTHREAD))
			continue;
		for_each_thread(p, t) {
			if (READ_ONCE(t->mm) == mm) {
				found = task_pid_vnr(t);
				if (!found)
					found = -1;
				break;
			}
		}
		if (found)
			break;
	}
	rcu_read_unlock();
	return found;
}

/* The number of @pid in the caller's pid namespace (0: not visible there). */
u32 adapt_pid_vnr(struct pid *pid)
{
	return pid_vnr(pid);
}

/*
 * The id, in the caller's pid namespace, of the thread whose id in the
 * initial namespace is @tid (0 when it is gone or not visible there).
 */
u32 adapt_tid_to_caller_ns(u32 tid)
{
	struct pid *pid;
	u32 nr = 0;

	rcu_read_lock();
	pid = find_pid_ns(tid, &init_pid_ns);
	if (pid)
		nr = pid_vnr(pid);
	rcu_read_unlock();
	return nr;
}

bool adapt_current_exiting(void)
{
	return current->flags & PF_EXITING;
}

u32 adapt_task_tid(struct task_struct *task)
{
	return task->pid;
}

bool adapt_current_mm_is(struct mm_struct *mm)
{
	return current->mm == mm;
}

bool adapt_current_in_group_of(struct task_struct *task)
{
	return same_thread_group(current, task);
}

/* ---- segment_map.rs ---- */

/*
 * Segment files live on a pseudo filesystem of the module's own, mounted
 * internally (no mount point). Upstream marked anon_inodefs SB_I_NOEXEC
 * ("anon_inode: raise SB_I_NODEV and SB_I_NOEXEC", also in stable
 * series), which refuses PROT_EXEC mappings of anon-inode files; this
 * filesystem does not set it. Its file_system_type is allocated, not
 * static, and owned by no module: segment mappings inherited by forked
 * children can keep the superblock alive after the module is gone (see
 * segment_map.rs), and only kernel code (kill_anon_super, libfs) runs for it
 * then.
 */
#define ADAPT_SEGFS_MAGIC 0x61646170 /* "adap" */

static int adapt_segfs_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, ADAPT_SEGFS_MAGIC) ? 0 : -ENOMEM;
}

static struct file_system_type *adapt_segfs_type;
static struct vfsmount *adapt_segfs_mnt;

/*
 * The lock class keys inside a file_system_type must be known to lockdep:
 * static ones are, allocated ones must be registered (and unregistered
 * before they are freed).
 */
void adapt_keep_allocation(const void *ptr);

static void adapt_segfs_keys(struct file_system_type *type, bool add)
{
	void (*each)(struct lock_class_key *key) =
		add ? lockdep_register_key : lockdep_unregister_key;
	int i;

	each(&type->s_lock_key);
	each(&type->s_umount_key);
	each(&type->s_vfs_rename_key);
	for (i = 0; i < SB_FREEZE_LEVELS; i++)
		each(&type->s_writers_key[i]);
	each(&type->i_lock_key);
	each(&type->i_mutex_key);
	each(&type->invalidate_lock_key);
	each(&type->i_mutex_dir_key);
}

int adapt_segfs_mount(void)
{
	struct file_system_type *type = kzalloc(sizeof(*type), GFP_KERNEL);
	struct vfsmount *mnt;

	if (!type)
		return -ENOMEM;
	type->name = "adapt-segments";
	type->init_fs_context = adapt_segfs_init_fs_context;
	type->kill_sb = kill_anon_super;
	adapt_segfs_keys(type, true);
	mnt = kern_mount(type);
	if (IS_ERR(mnt)) {
		adapt_segfs_keys(type, false);
		kfree(type);
		return PTR_ERR(mnt);
	}
	adapt_segfs_type = type;
	adapt_segfs_mnt = mnt;
	return 0;
}

/*
 * Drops the internal mount. The type is kept: the superblock of segment
 * files still open (retired segments stay mapped after unload, forked
 * children inherit mappings, a final fput may be deferred) points at it.
 * Nothing can mount it any more.
 */
void adapt_segfs_unmount(void)
{
	if (!adapt_segfs_mnt)
		return;
	kern_unmount(adapt_segfs_mnt);
	adapt_segfs_mnt = NULL;
	adapt_segfs_type->init_fs_context = NULL;
	adapt_keep_allocation(adapt_segfs_type);
	adapt_segfs_type = NULL;
}

/* An allocation deliberately kept past module unload (not a leak). */
void adapt_keep_allocation(const void *ptr)
{
	kmemleak_not_leak(ptr);
}

/* A new, read-only segment file named @name on the module's filesystem. */
struct file *adapt_segment_file(const char *name, const struct file_operations *fops)
{
	struct inode *inode;
	struct file *file;

	if (!adapt_segfs_mnt)
		return ERR_PTR(-ENODEV);
	inode = alloc_anon_inode(adapt_segfs_mnt->mnt_sb);
	if (IS_ERR(inode))
		return ERR_CAST(inode);
	file = alloc_file_pseudo(inode, adapt_segfs_mnt, name, O_RDONLY, fops);
	if (IS_ERR(file))
		iput(inode);
	return file;
}

void adapt_file_put(struct file *file)
{
	fput(file);
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

/*
 * Maps zeroed private anonymous memory, read+write and never executable,
 * at exactly @addr in the current process: an injection's data area.
 * -EEXIST when the range is taken.
 */
long adapt_vm_mmap_data_fixed(unsigned long addr, unsigned long len)
{
	unsigned long ret = vm_mmap(NULL, addr, len, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, 0);

	if (IS_ERR_VALUE(ret))
		return (long)ret;
	if (ret != addr) {
		vm_munmap(ret, len);
		return -EEXIST;
	}
	return 0;
}

/* ---- text_patch.rs and injector.rs ---- */

/*
 * Checks that [addr, addr + len) of @mm lies in one private, executable,
 * never-writable mapping of a file, and reports which file and where in it:
 * a counted reference to the file's inode (*@inode, put with
 * adapt_inode_put()) and the file offset of @addr (*@pos). With @file_bytes,
 * also reads the @len bytes the file holds there (what the mapping showed
 * before anyone wrote into the private copy).
 *
 * Errors: -EFAULT (no such mapping, or it is writable or shared),
 * -ENOEXEC (anonymous executable memory: nothing to compare with), -EIO
 * (the file could not be read).
 */
int adapt_site_identity(struct mm_struct *mm, u64 addr, u32 len, struct inode **inode,
			u64 *pos, u8 *file_bytes)
{
	struct vm_area_struct *vma;
	struct file *file = NULL;
	loff_t off = 0;
	int ret = -EFAULT;

	*inode = NULL;
	if (!mmget_not_zero(mm))
		return -ESRCH;
	mmap_read_lock(mm);
	vma = vma_lookup(mm, addr);
	if (vma && addr + len <= vma->vm_end && (vma->vm_flags & VM_EXEC) &&
	    !(vma->vm_flags & (VM_WRITE | VM_MAYSHARE))) {
		if (!vma->vm_file) {
			ret = -ENOEXEC;
		} else {
			file = get_file(vma->vm_file);
			off = ((loff_t)vma->vm_pgoff << PAGE_SHIFT) + (addr - vma->vm_start);
			ret = 0;
		}
	}
	mmap_read_unlock(mm);
	mmput(mm);
	if (ret)
		return ret;
	*pos = off;
	if (file_bytes) {
		loff_t at = off;
		ssize_t got = -EIO;

		/* Every mapping of a file needs it open for reading. */
		if (file->f_mode & FMODE_READ)
			got = kernel_read(file, file_bytes, len, &at);
		if (got != len)
			ret = got < 0 ? (int)got : -EIO;
	}
	if (!ret) {
		ihold(file_inode(file));
		*inode = file_inode(file);
	}
	fput(file);
	return ret;
}

void adapt_inode_put(struct inode *inode)
{
	iput(inode);
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

void adapt_mm_grab(struct mm_struct *mm)
{
	mmgrab(mm);
}

void adapt_pid_get(struct pid *pid)
{
	get_pid(pid);
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

/*
 * A kernel without CONFIG_TRACEPOINTS (no tracing configured) exports no
 * tracepoint API: the module then builds and loads without its fault watch
 * (adapt_fault_watch_start() says -EOPNOTSUPP), as fault_watch.rs expects.
 */
#ifdef CONFIG_TRACEPOINTS

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
#else
int adapt_fault_watch_start(void)
{
	return -EOPNOTSUPP;
}

void adapt_fault_watch_stop(void)
{
}
#endif /* CONFIG_TRACEPOINTS */
