/* The `ocirt` launcher: the interpreter, started from a read-only view of itself.
 *
 * Until execve, a container's init and exec's process are this interpreter inside the
 * container's pid namespace; a container holding CAP_SYS_PTRACE can open their
 * /proc/<pid>/exe, keep it, and reopen it for writing once nothing runs the binary
 * (CVE-2019-5736). Executed through a detached, read-only clone of its directory's
 * mount, that link leads only to the clone: opening it for writing fails with EROFS, and
 * the clone is reachable by no path. launcher.py explains the choice and its cost.
 *
 * launcher.py builds it with OCIRT_PYTHON (the interpreter's argv[0], from which it finds
 * its prefix), OCIRT_DIR and OCIRT_NAME (where the real binary is) and OCIRT_CODE (what
 * `-c` runs) as C string literals.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

/* -1 without CAP_SYS_ADMIN (rootless): the containers are then in a user namespace, and
 * CAP_SYS_PTRACE there does not reach our non-dumpable processes, whose memory belongs to
 * the host's user namespace. */
static int read_only_clone(void)
{
    struct mount_attr attr = {
        .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    };
    int fd = (int)syscall(SYS_open_tree, AT_FDCWD, OCIRT_DIR, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);

    if (fd >= 0 && syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    char **args = calloc((size_t)argc + 4, sizeof(*args));
    int dir;

    if (args == NULL) {
        perror("ocirt");
        return 127;
    }
    args[0] = OCIRT_PYTHON;
    args[1] = "-IS";
    args[2] = "-c";
    args[3] = OCIRT_CODE;
    for (int i = 1; i < argc; i++)
        args[i + 3] = argv[i];
    dir = read_only_clone();
    if (dir >= 0)
        syscall(SYS_execveat, dir, OCIRT_NAME, args, environ, 0);
    execv(OCIRT_PYTHON, args);
    perror("ocirt: " OCIRT_PYTHON);
    return 127;
}
