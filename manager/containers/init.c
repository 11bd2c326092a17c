/* ocirt-init: pid 1 for `ocirtctl run --init`.
 *
 * Runs the command as its child, forwards the signals a manager sends to it, reaps every
 * orphan the kernel reparents to pid 1, and exits with the child's status (128+signal
 * when a signal ended it), so zombies never pile up and `stop` reaches the real program.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--") == 0) first = 2;
    if (first >= argc) {
        fprintf(stderr, "ocirt-init: usage: ocirt-init -- COMMAND [ARG]...\n");
        return 2;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t child = fork();
    if (child < 0) {
        perror("ocirt-init: fork");
        return 1;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        setpgid(0, 0);
        execvp(argv[first], argv + first);
        fprintf(stderr, "ocirt-init: exec %s: %s\n", argv[first], strerror(errno));
        _exit(127);
    }
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) continue;
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid == child) {
                if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
                return WEXITSTATUS(status);
            }
        }
    }
}
