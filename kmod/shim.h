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
void adapt_task_get(struct task_struct *task);
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

/* rendezvous.rs */
struct callback_head;
struct completion;
struct mm_struct;
int adapt_process_threads(struct task_struct *leader, struct task_struct **out, int max);
int adapt_task_work_queue(struct task_struct *task, struct callback_head *work);
/* Implemented in Rust (rendezvous.rs): the body of a queued work. */
void adapt_rust_work_run(struct callback_head *work);
int adapt_module_refs(void);
void adapt_current_user_ips(u64 *ip, u64 *restart_ip);
u64 adapt_current_user_ip(void);
bool adapt_fatal_signal_pending(void);
void adapt_completion_init(struct completion *done);
int adapt_completion_wait_killable(struct completion *done);
void adapt_completion_release(struct completion *done);
bool adapt_task_is_held(struct task_struct *task);
bool adapt_task_is_compat(struct task_struct *task);
struct task_struct *adapt_group_thread_with_mm(struct task_struct *task, struct mm_struct *mm);
int adapt_mm_foreign_user(struct task_struct *task, struct mm_struct *mm);
bool adapt_current_mm_is(struct mm_struct *mm);
u32 adapt_pid_vnr(struct pid *pid);
u32 adapt_tid_to_caller_ns(u32 tid);
bool adapt_current_exiting(void);
u32 adapt_task_tid(struct task_struct *task);
bool adapt_current_in_group_of(struct task_struct *task);

/* segment_map.rs */
struct file;
struct file_operations;
struct vm_area_struct;
struct vm_operations_struct;
struct page;
int adapt_segfs_mount(void);
void adapt_segfs_unmount(void);
void adapt_keep_allocation(const void *ptr);
struct file *adapt_segment_file(const char *name, const struct file_operations *fops);
void adapt_file_put(struct file *file);
int adapt_vma_prepare(struct vm_area_struct *vma, bool exec,
		      const struct vm_operations_struct *ops,
		      unsigned long *pgoff, unsigned long *npages);
int adapt_vma_insert_pages(struct vm_area_struct *vma, struct page **pages,
			   unsigned long npages);
int adapt_unmap_if_file(struct file *file, unsigned long start, unsigned long len);
long adapt_vm_mmap_fixed(struct file *file, unsigned long addr, unsigned long len,
			 bool exec, unsigned long pgoff);
long adapt_vm_mmap_data_fixed(unsigned long addr, unsigned long len);

/* text_patch.rs and injector.rs */
struct inode;
int adapt_site_identity(struct mm_struct *mm, u64 addr, u32 len, struct inode **inode,
			u64 *pos, u8 *file_bytes);
void adapt_inode_put(struct inode *inode);
struct mm_struct *adapt_task_mm_grab(struct task_struct *task);
void adapt_mm_grab(struct mm_struct *mm);
void adapt_pid_get(struct pid *pid);
void adapt_mm_drop(struct mm_struct *mm);
u64 adapt_cpu_features(void);
u32 adapt_task_uid(struct task_struct *task);
void adapt_task_comm(struct task_struct *task, char *buf, u32 len);
int adapt_task_exe_path(struct task_struct *task, char *buf, u32 len);

/* fault_watch.rs */
int adapt_fault_watch_start(void);
void adapt_fault_watch_stop(void);
/* Implemented in Rust (fault_watch.rs); called from the tracepoint probe. */
void adapt_rust_on_fault(u64 ip, const void *mm);

#endif
