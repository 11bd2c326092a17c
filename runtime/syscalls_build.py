"""cffi build script for ``ocirt.runtime._syscalls``, the only place that touches raw syscalls.

API mode (compiled) rather than ABI mode: the runtime's hot path cannot afford parsing C
declarations at import time, and the compiler checks every signature against libc's headers.
"""

from cffi import FFI

CDEF = """
#define CLONE_NEWNS ...
#define CLONE_NEWUTS ...
#define CLONE_NEWIPC ...
#define CLONE_NEWUSER ...
#define CLONE_NEWPID ...
#define CLONE_NEWNET ...
#define CLONE_NEWCGROUP ...
#define CLONE_NEWTIME ...

#define MS_RDONLY ...
#define MS_NOSUID ...
#define MS_NODEV ...
#define MS_NOEXEC ...
#define MS_SYNCHRONOUS ...
#define MS_REMOUNT ...
#define MS_MANDLOCK ...
#define MS_DIRSYNC ...
#define MS_NOSYMFOLLOW ...
#define MS_NOATIME ...
#define MS_NODIRATIME ...
#define MS_BIND ...
#define MS_MOVE ...
#define MS_REC ...
#define MS_SILENT ...
#define MS_UNBINDABLE ...
#define MS_PRIVATE ...
#define MS_SLAVE ...
#define MS_SHARED ...
#define MS_RELATIME ...
#define MS_STRICTATIME ...
#define MS_LAZYTIME ...
#define MNT_DETACH ...
#define TIOCGPTN ...
#define TIOCSPTLCK ...
#define TIOCSCTTY ...
#define TIOCGWINSZ ...
#define TIOCSWINSZ ...

#define PR_SET_PDEATHSIG ...
#define PR_SET_DUMPABLE ...
#define PR_SET_NO_NEW_PRIVS ...
#define PR_SET_CHILD_SUBREAPER ...
#define PR_SET_KEEPCAPS ...
#define PR_CAPBSET_DROP ...
#define PR_CAPBSET_READ ...
#define PR_CAP_AMBIENT ...
#define PR_CAP_AMBIENT_RAISE ...
#define PR_CAP_AMBIENT_CLEAR_ALL ...
#define PR_SET_NAME ...

#define RESOLVE_NO_XDEV ...
#define RESOLVE_NO_MAGICLINKS ...
#define RESOLVE_NO_SYMLINKS ...
#define RESOLVE_BENEATH ...
#define RESOLVE_IN_ROOT ...

#define AT_FDCWD ...
#define AT_EMPTY_PATH ...
#define AT_RECURSIVE ...
#define MOUNT_ATTR_RDONLY ...
#define MOUNT_ATTR_NOSUID ...
#define MOUNT_ATTR_NODEV ...
#define MOUNT_ATTR_NOEXEC ...
#define MOUNT_ATTR__ATIME ...
#define MOUNT_ATTR_RELATIME ...
#define MOUNT_ATTR_NOATIME ...
#define MOUNT_ATTR_STRICTATIME ...
#define MOUNT_ATTR_NODIRATIME ...
#define MOUNT_ATTR_NOSYMFOLLOW ...
#define MOUNT_ATTR_IDMAP ...
#define OPEN_TREE_CLONE ...
#define OPEN_TREE_CLOEXEC ...
#define MOVE_MOUNT_F_EMPTY_PATH ...
#define MOVE_MOUNT_T_EMPTY_PATH ...

int unshare(int flags);
int setns(int fd, int nstype);
int mount(const char *source, const char *target, const char *fstype,
          unsigned long flags, const void *data);
int umount2(const char *target, int flags);
int sethostname(const char *name, size_t len);
int setdomainname(const char *name, size_t len);
int ocirt_pivot_root(const char *new_root, const char *put_old);
long ocirt_join_session_keyring(const char *name);
long ocirt_keyring_setperm(long id, unsigned int perm);
int ocirt_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
                unsigned long a5);
int ocirt_openat2(int dirfd, const char *path, unsigned long long flags,
                  unsigned long long mode, unsigned long long resolve);
int ocirt_capget(int pid, uint32_t data[6]);
int ocirt_mount_setattr(int dfd, const char *path, unsigned int flags, uint64_t attr_set,
                        uint64_t attr_clr, uint64_t propagation, uint64_t userns_fd);
int ocirt_open_tree(int dfd, const char *path, unsigned int flags);
int ocirt_move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path,
                     unsigned int flags);
int ocirt_capset(int pid, const uint32_t data[6]);

typedef void *scmp_filter_ctx;
typedef uint64_t scmp_datum_t;
enum scmp_compare { SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT,
                    SCMP_CMP_MASKED_EQ, ... };
enum scmp_filter_attr { SCMP_FLTATR_CTL_OPTIMIZE, ... };
struct scmp_arg_cmp { unsigned int arg; enum scmp_compare op; scmp_datum_t datum_a; scmp_datum_t datum_b; };
#define SCMP_ACT_KILL_PROCESS ...
#define SCMP_ACT_KILL_THREAD ...
#define SCMP_ACT_TRAP ...
#define SCMP_ACT_NOTIFY ...
#define SCMP_ACT_LOG ...
#define SCMP_ACT_ALLOW ...
#define OCIRT_SCMP_ACT_ERRNO ...
#define OCIRT_SCMP_ACT_TRACE ...
#define SECCOMP_FILTER_FLAG_TSYNC ...
#define SECCOMP_FILTER_FLAG_LOG ...
#define SECCOMP_FILTER_FLAG_SPEC_ALLOW ...
#define SECCOMP_FILTER_FLAG_NEW_LISTENER ...
#define SECCOMP_FILTER_FLAG_TSYNC_ESRCH ...
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ...
unsigned int seccomp_api_get(void);
scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);
uint32_t seccomp_arch_resolve_name(const char *arch_name);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value);
int seccomp_syscall_resolve_name(const char *name);
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall, unsigned int arg_cnt,
                           const struct scmp_arg_cmp *arg_array);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
int ocirt_seccomp_filter(unsigned int flags, const void *insns, unsigned short count);

#define SCHED_OTHER ...
#define SCHED_FIFO ...
#define SCHED_RR ...
#define SCHED_BATCH ...
#define SCHED_IDLE ...
#define SCHED_DEADLINE ...
#define SCHED_FLAG_RESET_ON_FORK ...
#define SCHED_FLAG_RECLAIM ...
#define SCHED_FLAG_DL_OVERRUN ...
#define SCHED_FLAG_KEEP_POLICY ...
#define SCHED_FLAG_KEEP_PARAMS ...
#define SCHED_FLAG_UTIL_CLAMP_MIN ...
#define SCHED_FLAG_UTIL_CLAMP_MAX ...
#define IOPRIO_CLASS_RT ...
#define IOPRIO_CLASS_BE ...
#define IOPRIO_CLASS_IDLE ...
#define IOPRIO_CLASS_SHIFT ...
#define IOPRIO_WHO_PROCESS ...
#define PER_LINUX ...
#define PER_LINUX32 ...
#define UNAME26 ...
#define ADDR_NO_RANDOMIZE ...
#define FDPIC_FUNCPTRS ...
#define MMAP_PAGE_ZERO ...
#define ADDR_COMPAT_LAYOUT ...
#define READ_IMPLIES_EXEC ...
#define ADDR_LIMIT_32BIT ...
#define SHORT_INODE ...
#define WHOLE_SECONDS ...
#define STICKY_TIMEOUTS ...
#define ADDR_LIMIT_3GB ...
int ocirt_sched_setattr(int pid, uint32_t policy, uint64_t flags, int32_t nice, uint32_t priority,
                        uint64_t runtime, uint64_t deadline, uint64_t period);
int ocirt_ioprio_set(int which, int who, int ioprio);
int ocirt_ioprio_get(int which, int who);
int personality(unsigned long persona);

#define MPOL_DEFAULT ...
#define MPOL_PREFERRED ...
#define MPOL_BIND ...
#define MPOL_INTERLEAVE ...
#define MPOL_LOCAL ...
#define MPOL_PREFERRED_MANY ...
#define OCIRT_MPOL_WEIGHTED_INTERLEAVE ...
#define MPOL_F_STATIC_NODES ...
#define MPOL_F_RELATIVE_NODES ...
#define MPOL_F_NUMA_BALANCING ...
int ocirt_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
int ocirt_get_mempolicy(int *mode, unsigned long *nodemask, unsigned long maxnode);

int ocirt_bpf_device_load(const void *insns, unsigned int count, const char *license,
                          const char *name);
int ocirt_bpf_device_attach(int cgroup_fd, int prog_fd);
int ocirt_bpf_device_detach(int cgroup_fd, int prog_fd);
int ocirt_bpf_device_query(int cgroup_fd, uint32_t *ids, uint32_t *count);
int ocirt_bpf_prog_get_fd_by_id(uint32_t id);
"""

SOURCE = r"""
#include <sched.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

/* The action bases without their data; SCMP_ACT_ERRNO(x) and SCMP_ACT_TRACE(x) are macros. */
#define OCIRT_SCMP_ACT_ERRNO SCMP_ACT_ERRNO(0)
#define OCIRT_SCMP_ACT_TRACE SCMP_ACT_TRACE(0)
#include <linux/capability.h>
#include <linux/openat2.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif

/* Load a BPF program libseccomp compiled earlier; with insns NULL, probe whether the kernel
   knows these flags (EFAULT: it does, EINVAL: it does not). */
static int ocirt_seccomp_filter(unsigned int flags, const void *insns, unsigned short count)
{
    struct sock_fprog prog = { .len = count, .filter = (struct sock_filter *) insns };
    return (int) syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, insns ? &prog : NULL);
}

static int ocirt_pivot_root(const char *new_root, const char *put_old)
{
    return (int) syscall(SYS_pivot_root, new_root, put_old);
}

/* KEYCTL_JOIN_SESSION_KEYRING (1) and KEYCTL_SETPERM (5); libkeyutils is not needed. */
static long ocirt_join_session_keyring(const char *name)
{
    return syscall(SYS_keyctl, 1, name);
}

static long ocirt_keyring_setperm(long id, unsigned int perm)
{
    return syscall(SYS_keyctl, 5, id, perm);
}

static int ocirt_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
                       unsigned long a5)
{
    return prctl(option, a2, a3, a4, a5);
}

static int ocirt_openat2(int dirfd, const char *path, unsigned long long flags,
                         unsigned long long mode, unsigned long long resolve)
{
    struct open_how how = { .flags = flags, .mode = mode, .resolve = resolve };
    return (int) syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

static int ocirt_mount_setattr(int dfd, const char *path, unsigned int flags, uint64_t attr_set,
                               uint64_t attr_clr, uint64_t propagation, uint64_t userns_fd)
{
    struct mount_attr attr = { .attr_set = attr_set, .attr_clr = attr_clr,
                               .propagation = propagation, .userns_fd = userns_fd };
    return (int) syscall(SYS_mount_setattr, dfd, path, flags, &attr, sizeof(attr));
}

static int ocirt_open_tree(int dfd, const char *path, unsigned int flags)
{
    return (int) syscall(SYS_open_tree, dfd, path, flags);
}

static int ocirt_move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path,
                            unsigned int flags)
{
    return (int) syscall(SYS_move_mount, from_dfd, from_path, to_dfd, to_path, flags);
}

/* data[0..2] is the low 32 bits of effective, permitted, inheritable; data[3..5] the high. */
static int ocirt_capget(int pid, uint32_t data[6])
{
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, pid };
    struct __user_cap_data_struct d[2];
    int rc = (int) syscall(SYS_capget, &hdr, d);
    data[0] = d[0].effective; data[1] = d[0].permitted; data[2] = d[0].inheritable;
    data[3] = d[1].effective; data[4] = d[1].permitted; data[5] = d[1].inheritable;
    return rc;
}

static int ocirt_capset(int pid, const uint32_t data[6])
{
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, pid };
    struct __user_cap_data_struct d[2] = {
        { data[0], data[1], data[2] }, { data[3], data[4], data[5] },
    };
    return (int) syscall(SYS_capset, &hdr, d);
}

#include <sys/personality.h>
#include <linux/ioprio.h>
#ifndef SCHED_DEADLINE
#define SCHED_DEADLINE 6
#endif
/* <linux/sched.h> and <linux/sched/types.h> clash with glibc's <sched.h>: their values. */
#define SCHED_FLAG_RESET_ON_FORK 0x01
#define SCHED_FLAG_RECLAIM 0x02
#define SCHED_FLAG_DL_OVERRUN 0x04
#define SCHED_FLAG_KEEP_POLICY 0x08
#define SCHED_FLAG_KEEP_PARAMS 0x10
#define SCHED_FLAG_UTIL_CLAMP_MIN 0x20
#define SCHED_FLAG_UTIL_CLAMP_MAX 0x40

struct ocirt_sched_attr {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
    uint32_t sched_util_min, sched_util_max;
};

/* glibc wraps neither sched_setattr nor ioprio_set; the spec's fields map one to one. */
static int ocirt_sched_setattr(int pid, uint32_t policy, uint64_t flags, int32_t nice, uint32_t priority,
                               uint64_t runtime, uint64_t deadline, uint64_t period)
{
    struct ocirt_sched_attr attr = { .size = sizeof(attr), .sched_policy = policy, .sched_flags = flags,
                               .sched_nice = nice, .sched_priority = priority,
                               .sched_runtime = runtime, .sched_deadline = deadline,
                               .sched_period = period };
    return (int) syscall(SYS_sched_setattr, pid, &attr, 0);
}

static int ocirt_ioprio_set(int which, int who, int ioprio)
{
    return (int) syscall(SYS_ioprio_set, which, who, ioprio);
}

static int ocirt_ioprio_get(int which, int who)
{
    return (int) syscall(SYS_ioprio_get, which, who);
}

#include <linux/mempolicy.h>
/* Linux 6.9, newer than the headers builds may have; the value is the kernel's ABI. */
#define OCIRT_MPOL_WEIGHTED_INTERLEAVE 6

/* glibc leaves these to libnuma, which the runtime does not need for two syscalls. */
static int ocirt_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode)
{
    return (int) syscall(SYS_set_mempolicy, mode, nodemask, maxnode);
}

static int ocirt_get_mempolicy(int *mode, unsigned long *nodemask, unsigned long maxnode)
{
    return (int) syscall(SYS_get_mempolicy, mode, nodemask, maxnode, NULL, 0UL);
}

#include <string.h>
#include <linux/bpf.h>

/* cgroup v2 device programs: BPF_PROG_LOAD, BPF_PROG_ATTACH/DETACH with BPF_F_ALLOW_MULTI
   on a cgroup directory fd, BPF_PROG_QUERY of what is attached there directly. */
static int ocirt_bpf(int cmd, union bpf_attr *attr)
{
    return (int) syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

static int ocirt_bpf_device_load(const void *insns, unsigned int count, const char *license,
                                 const char *name)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.expected_attach_type = BPF_CGROUP_DEVICE;
    attr.insns = (uintptr_t) insns;
    attr.insn_cnt = count;
    attr.license = (uintptr_t) license;
    strncpy(attr.prog_name, name, sizeof(attr.prog_name) - 1);
    return ocirt_bpf(BPF_PROG_LOAD, &attr);
}

static int ocirt_bpf_device_attach(int cgroup_fd, int prog_fd)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = cgroup_fd;
    attr.attach_bpf_fd = prog_fd;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    return ocirt_bpf(BPF_PROG_ATTACH, &attr);
}

static int ocirt_bpf_device_detach(int cgroup_fd, int prog_fd)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = cgroup_fd;
    attr.attach_bpf_fd = prog_fd;
    attr.attach_type = BPF_CGROUP_DEVICE;
    return ocirt_bpf(BPF_PROG_DETACH, &attr);
}

static int ocirt_bpf_device_query(int cgroup_fd, uint32_t *ids, uint32_t *count)
{
    union bpf_attr attr;
    int rc;
    memset(&attr, 0, sizeof(attr));
    attr.query.target_fd = cgroup_fd;
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = (uintptr_t) ids;
    attr.query.prog_cnt = *count;
    rc = ocirt_bpf(BPF_PROG_QUERY, &attr);
    *count = attr.query.prog_cnt;
    return rc;
}

static int ocirt_bpf_prog_get_fd_by_id(uint32_t id)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_id = id;
    return ocirt_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("ocirt.runtime._syscalls", SOURCE, libraries=["seccomp"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
