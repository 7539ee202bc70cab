/*
 * katadocker guest agent: PID 1 of every katadocker VM.
 *
 * Boot: mount /proc, /sys, /dev; load the kernel modules listed in /modules; bring lo up; open the
 * virtio-serial port named KD_PORT_NAME; say HELLO to the host connected to it, or, with none (the
 * boot of a template VM, whose clones get their host after a restore: vm/template.py), wait for one
 * and say it then.  Then serve the host's frames (protocol.h) in
 * one poll() loop: START prepares the container root (virtio-fs) and runs the main process, EXEC runs more
 * processes in that root, and every process's stdout/stderr (or pty) is relayed as DATA frames
 * under per-stream credit, so a slow host stalls only the stream it is slow on.  SHUTDOWN kills
 * what is left, syncs and powers off.
 *
 * Test mode (`agent --test-fd N`, not PID 1): the link is the already-connected socket N; no
 * mounts, modules, network or power-off; processes run in the caller's root.  Tests drive the
 * agent this way without a VM.
 *
 * Build: cc -static -Os -Wall -Wextra -Werror -o init agent.c  (see katadocker/agent/build.py)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <net/route.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"

#define AGENT_VERSION "0.1.0"
#define MAX_PROCS 64
#define PORT_WAIT_MS 10000         /* how long boot waits for the virtio port to appear */
#define DEVICE_WAIT_MS 30000       /* how long START waits for hot-added devices to be probed */
#define OUTPUT_GRACE_MS 1000       /* after an exit, how long idle output pipes may stay open */
#define NEWROOT "/newroot"
#define ETCFILES "/etcfiles"       /* tmpfs in the initramfs holding hostname, hosts, resolv.conf */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ------------------------------------------------------------------ logging, time, bytes */

static int console_fd = STDERR_FILENO;
static bool test_mode;

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    dprintf(console_fd, "katadocker-agent: %s\n", line);
}

/*
 * strerror() the way Go (and so runc and docker) spells it: "no such file or directory".  Go's
 * strings are glibc's in lower case; the agent may be linked against musl, whose strings differ for
 * some (ELOOP: "Symbolic link loop"), so those a container's start can meet are spelled out here.
 */
static const char *go_strerror(int err)
{
    static const struct {
        int err;
        const char *text;
    } go_texts[] = {
        {EPERM, "operation not permitted"},   {ENOENT, "no such file or directory"},
        {EIO, "input/output error"},          {E2BIG, "argument list too long"},
        {ENOEXEC, "exec format error"},       {ENOMEM, "cannot allocate memory"},
        {EACCES, "permission denied"},        {EBUSY, "device or resource busy"},
        {EEXIST, "file exists"},              {ENOTDIR, "not a directory"},
        {EISDIR, "is a directory"},           {EINVAL, "invalid argument"},
        {EMFILE, "too many open files"},      {ETXTBSY, "text file busy"},
        {ENOSPC, "no space left on device"},  {EROFS, "read-only file system"},
        {ENAMETOOLONG, "file name too long"}, {ELOOP, "too many levels of symbolic links"},
    };
    for (size_t i = 0; i < sizeof go_texts / sizeof go_texts[0]; i++)
        if (go_texts[i].err == err)
            return go_texts[i].text;
    static char s[128];
    snprintf(s, sizeof s, "%s", strerror(err));
    s[0] = (char)(s[0] >= 'A' && s[0] <= 'Z' ? s[0] - 'A' + 'a' : s[0]);
    return s;
}

/* Ends the agent: PID 1 must never exit (the kernel would panic), so it powers the VM off. */
static void __attribute__((noreturn)) power_off(int code)
{
    if (test_mode)
        exit(code);
    sync(); /* flush the virtio-fs writes of the container before the VM disappears */
    reboot(RB_POWER_OFF);
    for (;;)
        pause();
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void put_u16(uint8_t *p, uint16_t v) { p[0] = v & 0xff; p[1] = v >> 8; }
static void put_u32(uint8_t *p, uint32_t v) { put_u16(p, v & 0xffff); put_u16(p + 2, v >> 16); }
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get_u32(const uint8_t *p) { return get_u16(p) | (uint32_t)get_u16(p + 2) << 16; }

static void *xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size);
    if (!p) {
        logmsg("out of memory");
        power_off(1);
    }
    return p;
}

static char *xstrndup(const uint8_t *s, size_t n)
{
    char *p = xrealloc(NULL, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* A byte queue: valid bytes are data[head, head+len). */
struct buf {
    uint8_t *data;
    size_t head, len, cap;
};

/* Returns room for `n` more bytes at the tail; buf_commit() makes them part of the queue. */
static uint8_t *buf_reserve(struct buf *b, size_t n)
{
    if (b->head + b->len + n > b->cap && b->head > 0) {
        memmove(b->data, b->data + b->head, b->len);
        b->head = 0;
    }
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = xrealloc(b->data, b->cap);
    }
    return b->data + b->head + b->len;
}

static void buf_commit(struct buf *b, size_t n) { b->len += n; }

static void buf_consume(struct buf *b, size_t n)
{
    b->head += n;
    b->len -= n;
    if (b->len == 0)
        b->head = 0;
}

/* ------------------------------------------------------------------ state */

enum { OUT_STDOUT, OUT_STDERR, NOUT };

struct proc {
    bool used;
    uint32_t id;          /* the host's process id */
    pid_t pid;
    bool tty;
    int in_fd;            /* write end of stdin (pty master when tty), -1 when closed */
    bool in_eof_pending;  /* host closed stdin; close in_fd once `in` is drained */
    struct buf in;        /* stdin bytes received but not yet written to the process */
    int out_fd[NOUT];     /* read ends of stdout/stderr (stdout: pty master when tty), -1 at EOF */
    uint32_t credit[NOUT];/* bytes the host lets us send on each output stream */
    bool exited;
    uint32_t status;      /* exit code, or 128 + signal */
    uint8_t signal;
    uint64_t exit_ms;
};

static struct proc procs[MAX_PROCS];
static int link_fd = -1;
static bool host_away;    /* no host on the virtio port: HELLO is said once one connects */
static struct buf link_in, link_out;
static bool root_ready;   /* START has prepared the container root */
static bool pid_ns;       /* children are created in the container's PID namespace */
static pid_t main_pid;
static bool main_exited;  /* with pid_ns, its PID namespace is gone: no more EXEC */

/* ------------------------------------------------------------------ frames out */

static void send_frame(uint8_t type, uint8_t stream, uint32_t proc, const void *payload, size_t len)
{
    uint8_t *h = buf_reserve(&link_out, KD_HEADER_SIZE + len);
    put_u32(h, (uint32_t)len);
    h[4] = type;
    h[5] = stream;
    put_u16(h + 6, 0);
    put_u32(h + 8, proc);
    if (len)
        memcpy(h + KD_HEADER_SIZE, payload, len);
    buf_commit(&link_out, KD_HEADER_SIZE + len);
}

static void send_u32(uint8_t type, uint8_t stream, uint32_t proc, uint32_t value)
{
    uint8_t p[4];
    put_u32(p, value);
    send_frame(type, stream, proc, p, sizeof p);
}

static void send_error(uint32_t proc, uint32_t code, const char *msg)
{
    size_t n = strlen(msg);
    uint8_t *p = xrealloc(NULL, 4 + n);
    put_u32(p, code);
    memcpy(p + 4, msg, n);
    send_frame(KD_T_ERROR, 0, proc, p, 4 + n);
    free(p);
    logmsg("process %u: %s", proc, msg);
}

static void send_hello(void)
{
    uint8_t p[4 + sizeof AGENT_VERSION - 1];
    put_u16(p, KD_PROTO_VERSION);
    put_u16(p + 2, 0);
    memcpy(p + 4, AGENT_VERSION, sizeof AGENT_VERSION - 1);
    send_frame(KD_T_HELLO, 0, 0, p, sizeof p);
}

/* Writes queued frames to the link until it would block. */
static void flush_link(void)
{
    while (link_out.len > 0) {
        ssize_t n = write(link_fd, link_out.data + link_out.head, link_out.len);
        if (n > 0) {
            buf_consume(&link_out, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return; /* EAGAIN: poll for POLLOUT; other errors show up as POLLHUP/POLLERR */
        }
    }
}

/* Whether a host is connected to the link: a virtio port reports POLLHUP while none is. */
static bool host_connected(void)
{
    struct pollfd p = {.fd = link_fd, .events = POLLIN};
    return poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP);
}

/* Sets or clears O_ASYNC on the link: the virtio console driver then sends this process SIGIO when
 * the host's side opens or closes (and on every input, which is why it is on only while away). */
static void link_async(bool on)
{
    int flags = fcntl(link_fd, F_GETFL);
    fcntl(link_fd, F_SETOWN, getpid());
    fcntl(link_fd, F_SETFL, on ? flags | O_ASYNC : flags & ~O_ASYNC);
}

/* The host went away (or was never there): what was queued for it is dropped, since the next host
 * starts afresh with HELLO, and SIGIO will say when one connects. */
static void host_left(void)
{
    host_away = true;
    buf_consume(&link_out, link_out.len);
    buf_consume(&link_in, link_in.len);
    link_async(true);
}

/* A host connected after the last one left (a VM restored from a template: vm/template.py). */
static void host_arrived(void)
{
    host_away = false;
    link_async(false);
    send_hello();
}

/* ------------------------------------------------------------------ the START/EXEC spec */

struct mount_spec {
    uint8_t flags;
    char *source, *target, *options;
};

struct spec {
    char **argv, **envp;         /* NULL-terminated */
    size_t argc, envc;
    char *cwd, *hostname, *hosts, *resolv, *rootfs;
    uint32_t uid, gid;
    gid_t *groups;
    size_t ngroups;
    bool tty, stdin_open, readonly_root, init;
    uint16_t rows, cols;
    struct mount_spec *mounts;
    size_t nmounts;
    bool has_net;
    uint8_t addr[4], prefix, gateway[4];
    uint32_t mtu;
    char *ifname;
    bool has_clock;
    uint64_t clock_ns;
    uint8_t seed[64];
    size_t seed_len;
};

static void push_str(char ***vec, size_t *n, char *s)
{
    *vec = xrealloc(*vec, (*n + 2) * sizeof **vec);
    (*vec)[(*n)++] = s;
    (*vec)[*n] = NULL;
}

/* Reads one u16-length-prefixed string of a MOUNT value; NULL when it overruns the value. */
static char *take_lstr(const uint8_t **p, const uint8_t *end)
{
    if (end - *p < 2)
        return NULL;
    size_t n = get_u16(*p);
    if ((size_t)(end - *p - 2) < n)
        return NULL;
    char *s = xstrndup(*p + 2, n);
    *p += 2 + n;
    return s;
}

static int parse_mount(struct spec *s, const uint8_t *v, uint32_t len)
{
    const uint8_t *end = v + len;
    if (len < 1)
        return -1;
    struct mount_spec m = {.flags = v[0]};
    const uint8_t *p = v + 1;
    m.source = take_lstr(&p, end);
    m.target = m.source ? take_lstr(&p, end) : NULL;
    m.options = m.target ? take_lstr(&p, end) : NULL;
    if (!m.options) {
        free(m.source);
        free(m.target);
        return -1;
    }
    s->mounts = xrealloc(s->mounts, (s->nmounts + 1) * sizeof *s->mounts);
    s->mounts[s->nmounts++] = m;
    return 0;
}

static int parse_net(struct spec *s, const uint8_t *v, uint32_t len)
{
    if (len < 13)
        return -1;
    memcpy(s->addr, v, 4);
    s->prefix = v[4];
    memcpy(s->gateway, v + 5, 4);
    s->mtu = get_u32(v + 9);
    free(s->ifname);
    s->ifname = xstrndup(v + 13, len - 13);
    s->has_net = s->prefix <= 32 && strlen(s->ifname) < IFNAMSIZ;
    return s->has_net ? 0 : -1;
}

/* Replaces *dst with a copy of a string value (strings must not contain NUL). */
static int set_str(char **dst, const uint8_t *v, uint32_t len)
{
    if (memchr(v, 0, len))
        return -1;
    free(*dst);
    *dst = xstrndup(v, len);
    return 0;
}

static int parse_field(struct spec *s, uint16_t tag, const uint8_t *v, uint32_t len)
{
    switch (tag) {
    case KD_SPEC_ARG:
    case KD_SPEC_ENV: {
        if (memchr(v, 0, len))
            return -1;
        char *str = xstrndup(v, len);
        if (tag == KD_SPEC_ARG)
            push_str(&s->argv, &s->argc, str);
        else
            push_str(&s->envp, &s->envc, str);
        return 0;
    }
    case KD_SPEC_CWD: return set_str(&s->cwd, v, len);
    case KD_SPEC_HOSTNAME: return set_str(&s->hostname, v, len);
    case KD_SPEC_HOSTS: return set_str(&s->hosts, v, len);
    case KD_SPEC_RESOLV: return set_str(&s->resolv, v, len);
    case KD_SPEC_ROOTFS: return set_str(&s->rootfs, v, len);
    case KD_SPEC_UID:
    case KD_SPEC_GID:
    case KD_SPEC_GROUP:
        if (len != 4)
            return -1;
        if (tag == KD_SPEC_UID) {
            s->uid = get_u32(v);
        } else if (tag == KD_SPEC_GID) {
            s->gid = get_u32(v);
        } else {
            s->groups = xrealloc(s->groups, (s->ngroups + 1) * sizeof *s->groups);
            s->groups[s->ngroups++] = get_u32(v);
        }
        return 0;
    case KD_SPEC_TTY: s->tty = len == 1 && v[0]; return 0;
    case KD_SPEC_STDIN: s->stdin_open = len == 1 && v[0]; return 0;
    case KD_SPEC_READONLY_ROOT: s->readonly_root = len == 1 && v[0]; return 0;
    case KD_SPEC_INIT: s->init = len == 1 && v[0]; return 0;
    case KD_SPEC_WINSIZE:
        if (len != 4)
            return -1;
        s->rows = get_u16(v);
        s->cols = get_u16(v + 2);
        return 0;
    case KD_SPEC_MOUNT: return parse_mount(s, v, len);
    case KD_SPEC_NET: return parse_net(s, v, len);
    case KD_SPEC_CLOCK:
        if (len != 8)
            return -1;
        s->has_clock = true;
        s->clock_ns = (uint64_t)get_u32(v) | (uint64_t)get_u32(v + 4) << 32;
        return 0;
    case KD_SPEC_SEED:
        if (len > sizeof s->seed)
            return -1;
        memcpy(s->seed, v, len);
        s->seed_len = len;
        return 0;
    default: return 0; /* unknown tags: a newer host; ignore */
    }
}

static void free_spec(struct spec *s)
{
    for (size_t i = 0; i < s->argc; i++)
        free(s->argv[i]);
    for (size_t i = 0; i < s->envc; i++)
        free(s->envp[i]);
    for (size_t i = 0; i < s->nmounts; i++) {
        free(s->mounts[i].source);
        free(s->mounts[i].target);
        free(s->mounts[i].options);
    }
    free(s->argv);
    free(s->envp);
    free(s->mounts);
    free(s->groups);
    free(s->cwd);
    free(s->hostname);
    free(s->hosts);
    free(s->resolv);
    free(s->rootfs);
    free(s->ifname);
    memset(s, 0, sizeof *s);
}

/* Decodes a START/EXEC payload; on failure frees what it parsed and returns -1. */
static int parse_spec(struct spec *s, const uint8_t *p, size_t len)
{
    memset(s, 0, sizeof *s);
    while (len > 0) {
        if (len < 6)
            goto bad;
        uint16_t tag = get_u16(p);
        uint32_t n = get_u32(p + 2);
        if (n > len - 6 || parse_field(s, tag, p + 6, n) < 0)
            goto bad;
        p += 6 + n;
        len -= 6 + n;
    }
    if (s->argc == 0)
        goto bad;
    if (!s->envp) {
        s->envp = xrealloc(NULL, sizeof *s->envp);
        s->envp[0] = NULL;
    }
    return 0;
bad:
    free_spec(s);
    return -1;
}

/* ------------------------------------------------------------------ boot */

static void mount_or_log(const char *src, const char *dst, const char *type, unsigned long flags,
                         const char *data)
{
    mkdir(dst, 0755);
    if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY)
        logmsg("mount %s on %s: %s", type, dst, strerror(errno));
}

static void boot_mounts(void)
{
    mount_or_log("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_or_log("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_or_log("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0)
        console_fd = fd;
}

/* Inserts the modules listed in /modules, one path per line, in the listed (dependency) order. */
static void load_modules(void)
{
    FILE *f = fopen("/modules", "re");
    if (!f)
        return; /* everything is built into the kernel */
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0])
            continue;
        int fd = open(line, O_RDONLY | O_CLOEXEC);
        /* finit_module loads a module from an fd; glibc has no wrapper, hence syscall(). */
        if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST))
            logmsg("load module %s: %s", line, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    fclose(f);
}

/*
 * Free page reporting (the balloon, see vm/qemu.py) hands free guest RAM back to the host in
 * blocks of at least 2^PAGE_REPORTING_ORDER pages. The balloon driver registers with the
 * pageblock order (2 MiB), which leaves every smaller free block touched and counted on the host;
 * the parameter is writable only after that registration, so it is set here, after the modules.
 * 6 (256 KiB): as much back as any lower order here (bench/README.md), in blocks 64 times larger
 * than order 0's.
 */
static const char PAGE_REPORTING_ORDER[] = "6";

/* Writes `value` to the sysfs/procfs file `path`; returns -1 (errno set) when it cannot. */
static int write_value(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int r = fd < 0 || write(fd, value, strlen(value)) < 0 ? -1 : 0;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    errno = saved;
    return r;
}

static void set_page_reporting_order(void)
{
    static const char param[] = "/sys/module/page_reporting/parameters/page_reporting_order";
    if (write_value(param, PAGE_REPORTING_ORDER) < 0 && errno != ENOENT) /* ENOENT: no page reporting */
        logmsg("page_reporting_order: %s", strerror(errno));
}

/* Returns the /dev node name of the virtio port whose sysfs name is `name`, or NULL. */
static char *find_port(const char *name)
{
    DIR *d = opendir("/sys/class/virtio-ports");
    if (!d)
        return NULL;
    char *found = NULL;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        char path[300], buf[128] = "";
        snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        if (fgets(buf, sizeof buf, f)) {
            buf[strcspn(buf, "\n")] = 0;
            if (strcmp(buf, name) == 0)
                found = strdup(e->d_name);
        }
        fclose(f);
    }
    closedir(d);
    return found;
}

/* Waits (bounded) for the agent port to appear and opens it.  The port shows up a few ms after the
 * agent starts (QEMU announces it over the virtio-serial control queue): polled every 1 ms. */
static int open_port(void)
{
    uint64_t deadline = now_ms() + PORT_WAIT_MS;
    while (now_ms() < deadline) {
        char *dev = find_port(KD_PORT_NAME);
        if (dev) {
            char path[300];
            snprintf(path, sizeof path, "/dev/%s", dev);
            free(dev);
            int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
            if (fd >= 0)
                return fd;
        }
        usleep(1000);
    }
    logmsg("virtio port %s did not appear within %d ms", KD_PORT_NAME, PORT_WAIT_MS);
    power_off(1);
}

/* ------------------------------------------------------------------ the container root */

/*
 * Walks `path` (absolute, inside NEWROOT) one component at a time without following symlinks,
 * creating missing directories; returns an O_PATH fd of the final directory or -1.  Refusing
 * symlinks keeps a hostile image from steering mounts outside its root.
 */
static int open_dir_in_root(const char *path)
{
    int fd = open(NEWROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
    char *copy = strdup(path), *save = NULL;
    for (char *c = strtok_r(copy, "/", &save); c && fd >= 0; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, "..") == 0 || strcmp(c, ".") == 0)
            continue;
        mkdirat(fd, c, 0755);
        int next = openat(fd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        fd = next;
    }
    free(copy);
    return fd;
}

/*
 * A hot-added device can end up without a driver: added while the booting guest kernel scans its
 * PCI buses, it is enumerated but the virtio driver never binds it (seen with four VMs starting at
 * once: the root share's device listed in sysfs, driverless, for DEVICE_WAIT_MS). A rescan alone
 * leaves an enumerated device as it is, so while a wait for a device lasts, every RESCAN_MS the
 * agent removes each virtio PCI device that has no driver and has the PCI core rescan its buses,
 * which enumerates it afresh.
 */
#define RESCAN_MS 500
#define VIRTIO_PCI_VENDOR "0x1af4"

static void rescan_pci(void)
{
    DIR *d = opendir("/sys/bus/pci/devices");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[300], vendor[16] = "";
        snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/driver", e->d_name);
        if (e->d_name[0] == '.' || access(path, F_OK) == 0)
            continue;
        snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/vendor", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, vendor, sizeof vendor - 1);
        if (fd >= 0)
            close(fd);
        if (n <= 0 || strncmp(vendor, VIRTIO_PCI_VENDOR, strlen(VIRTIO_PCI_VENDOR)) != 0)
            continue;
        logmsg("PCI device %s has no driver: removing it for a rescan", e->d_name);
        snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/remove", e->d_name);
        write_value(path, "1");
    }
    if (d)
        closedir(d);
    if (write_value("/sys/bus/pci/rescan", "1") < 0)
        logmsg("PCI rescan: %s", strerror(errno));
}

/* A bounded wait for a hot-added device: `device_wait_begin`, then `device_wait_more` until the
 * device is there or it says the time is up (DEVICE_WAIT_MS). */
struct device_wait {
    uint64_t deadline, last_rescan;
};

static struct device_wait device_wait_begin(void)
{
    uint64_t now = now_ms();
    return (struct device_wait){.deadline = now + DEVICE_WAIT_MS, .last_rescan = now};
}

/* False once the wait is over; else sleeps 1 ms, rescanning first every RESCAN_MS. Keeps errno. */
static bool device_wait_more(struct device_wait *w)
{
    uint64_t now = now_ms();
    if (now >= w->deadline)
        return false;
    int saved = errno;
    if (now - w->last_rescan >= RESCAN_MS) {
        rescan_pci();
        w->last_rescan = now_ms();
    }
    usleep(1000);
    errno = saved;
    return true;
}

/*
 * mount(2), except that a virtio-fs mount whose tag is not registered yet is retried for up to
 * DEVICE_WAIT_MS. The container's shares are hot-added into the running VM (vm/qemu.py): when START
 * arrives they exist in QEMU, but a guest that had already scanned its PCI buses may still be
 * probing them, and virtio-fs registers a tag at the very end of its probe (no sysfs file shows it
 * in 6.1). An unknown tag is EINVAL, and so is nothing else here: the host passes virtio-fs mounts
 * no options.
 */
static int mount_fs(const char *src, const char *target, const char *type, unsigned long flags,
                    const char *data)
{
    bool virtiofs = type && strcmp(type, "virtiofs") == 0;
    struct device_wait wait = device_wait_begin();
    int r;
    while ((r = mount(src, target, type, flags, data)) < 0 && virtiofs && errno == EINVAL &&
           device_wait_more(&wait))
        ;
    return r;
}

/*
 * Read-ahead of the container root's share, in KiB (the kernel's default is 128).  Every page the
 * guest misses costs a round trip to virtiofsd, and under TCG the round trip, not the bytes, is
 * the cost: a program's first start pages its binary in by mmap faults, each reading
 * read_ahead_kb around the fault.  `run busybox true` (a 2 MiB static binary), exec to exit:
 * 58 ms at 128, 43 at 1024, 35 at 4096 (bench/README.md).  Only the root: a volume may hold a
 * database read at random, where each fault would drag in megabytes it never uses.
 */
static const char ROOT_READ_AHEAD_KB[] = "4096";

/* Sets the read-ahead of the filesystem mounted at `path` (its backing device's bdi) to `kb`. */
static void set_read_ahead(const char *path, const char *kb)
{
    struct stat st;
    char knob[96];
    if (stat(path, &st) < 0)
        return;
    snprintf(knob, sizeof knob, "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev), minor(st.st_dev));
    if (write_value(knob, kb) < 0)
        logmsg("read-ahead of %s (%s): %s", path, knob, strerror(errno));
}

/* mount(2) onto an fd: the kernel resolves /proc/self/fd/N to exactly the opened directory. */
static int mount_at_fd(const char *src, int fd, const char *type, unsigned long flags, const char *data)
{
    char target[64];
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    return mount_fs(src, target, type, flags, data);
}

static int mount_in_root(const char *src, const char *path, const char *type, unsigned long flags,
                         const char *data)
{
    int fd = open_dir_in_root(path);
    int r = fd < 0 ? -1 : mount_at_fd(src, fd, type, flags, data);
    if (r < 0)
        logmsg("mount %s on %s: %s", type, path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return r;
}

/* Docker's /dev: a tmpfs with the usual nodes, pts (own instance), shm and the standard links. */
static int setup_dev(void)
{
    static const struct { const char *name; unsigned maj, min; } nodes[] = {
        {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
    };
    static const struct { const char *name, *to; } links[] = {
        {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
        {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"}, {"core", "/proc/kcore"},
    };
    /* A tmpfs, not devtmpfs: the container must not see the VM's devices (the agent port!). */
    if (mount_in_root("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k") < 0)
        return -1;
    int dev = open(NEWROOT "/dev", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++)
        if (mknodat(dev, nodes[i].name, S_IFCHR | 0666, makedev(nodes[i].maj, nodes[i].min)) < 0)
            logmsg("mknod /dev/%s: %s", nodes[i].name, strerror(errno));
    for (size_t i = 0; i < sizeof links / sizeof *links; i++)
        symlinkat(links[i].to, dev, links[i].name);
    close(dev);
    /* newinstance: a private pts namespace; ptmxmode=0666 so any user can open /dev/ptmx. */
    if (mount_in_root("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                      "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0)
        return -1;
    return mount_in_root("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
}

/* Writes `content` to ETCFILES/name and bind-mounts it over the root's /etc/name. */
static void bind_etc_file(const char *name, const char *content)
{
    char src[128];
    snprintf(src, sizeof src, ETCFILES "/%s", name);
    int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, content, strlen(content)) < 0)
        logmsg("write %s: %s", src, strerror(errno));
    if (fd >= 0)
        close(fd);
    int etc = open_dir_in_root("/etc");
    /* O_NOFOLLOW: an image whose /etc/hosts is a symlink keeps it (we never mount through links). */
    int target = etc < 0 ? -1 : openat(etc, name, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (target < 0 || mount_at_fd(src, target, NULL, MS_BIND, NULL) < 0)
        logmsg("bind %s over /etc/%s: %s", src, name, strerror(errno));
    if (target >= 0)
        close(target);
    if (etc >= 0)
        close(etc);
}

static void set_if_flags_up(int sock, const char *ifname)
{
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(sock, SIOCSIFFLAGS, &ifr) == 0)
            return;
    }
    logmsg("bring %s up: %s", ifname, strerror(errno));
}

static void set_sockaddr(struct sockaddr *sa, const uint8_t addr[4])
{
    struct sockaddr_in *in = (struct sockaddr_in *)sa;
    memset(in, 0, sizeof *in);
    in->sin_family = AF_INET;
    memcpy(&in->sin_addr, addr, 4);
}

/* lo up (the kernel adds 127.0.0.1/8 and ::1 itself): the container's loopback, the VM's own. */
static void *loopback_up(void *unused)
{
    (void)unused;
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    set_if_flags_up(sock, "lo");
    close(sock);
    return NULL;
}

/*
 * Bringing lo up is 13-33 ms of the guest's kernel (IPv4 and IPv6 routes, ::1) that nothing before
 * the container's process needs, so a thread does it from boot on: it runs while the agent would
 * otherwise idle (the port appearing, the host's answer to HELLO, START's round trips to virtiofsd)
 * and is joined before the process is forked (`lo_ready`).
 */
static pthread_t lo_thread;
static bool lo_pending;

static void loopback_up_soon(void)
{
    lo_pending = pthread_create(&lo_thread, NULL, loopback_up, NULL) == 0;
    if (!lo_pending)
        loopback_up(NULL);
}

static void lo_ready(void)
{
    if (lo_pending)
        pthread_join(lo_thread, NULL);
    lo_pending = false;
}

/* The spec's interface and default route. */
static void setup_network(const struct spec *s)
{
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s->has_net) {
        struct ifreq ifr = {0};
        snprintf(ifr.ifr_name, IFNAMSIZ, "%s", s->ifname);
        uint32_t mask = s->prefix ? htonl(~0u << (32 - s->prefix)) : 0;
        /* IPv4 only, as docker's containers on a network without IPv6: no link-local address, no
         * duplicate address detection, no router solicitations on eth0 (lo keeps ::1). Usually
         * already so (the kernel command line's default, vm/qemu.py); not for a NIC probed earlier. */
        char sysctl[64];
        snprintf(sysctl, sizeof sysctl, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", s->ifname);
        if (write_value(sysctl, "1") < 0)
            logmsg("disable IPv6 on %s: %s", s->ifname, strerror(errno));
        set_sockaddr(&ifr.ifr_addr, s->addr);
        if (ioctl(sock, SIOCSIFADDR, &ifr) < 0)
            logmsg("SIOCSIFADDR %s: %s", s->ifname, strerror(errno));
        set_sockaddr(&ifr.ifr_netmask, (const uint8_t *)&mask);
        if (ioctl(sock, SIOCSIFNETMASK, &ifr) < 0)
            logmsg("SIOCSIFNETMASK %s: %s", s->ifname, strerror(errno));
        if (s->mtu) {
            ifr.ifr_mtu = (int)s->mtu;
            if (ioctl(sock, SIOCSIFMTU, &ifr) < 0)
                logmsg("SIOCSIFMTU %s: %s", s->ifname, strerror(errno));
        }
        set_if_flags_up(sock, s->ifname);
        static const uint8_t any[4] = {0};
        if (memcmp(s->gateway, any, 4) != 0) {
            struct rtentry rt = {0};
            set_sockaddr(&rt.rt_dst, any);
            set_sockaddr(&rt.rt_genmask, any);
            set_sockaddr(&rt.rt_gateway, s->gateway);
            rt.rt_flags = RTF_UP | RTF_GATEWAY;
            rt.rt_dev = s->ifname;
            if (ioctl(sock, SIOCADDRT, &rt) < 0)
                logmsg("default route via %s: %s", s->ifname, strerror(errno));
        }
    }
    close(sock);
}

/*
 * Splits MOUNT options (see protocol.h) into mount(2) flags and the filesystem's data, which is
 * written to `data` (size `cap`).  Flag words as mount(8) knows them; the rest passes through.
 */
static unsigned long mount_flags(const char *options, char *data, size_t cap)
{
    static const struct { const char *word; unsigned long set, clear; } words[] = {
        {"ro", MS_RDONLY, 0}, {"rw", 0, MS_RDONLY}, {"nosuid", MS_NOSUID, 0}, {"suid", 0, MS_NOSUID},
        {"nodev", MS_NODEV, 0}, {"dev", 0, MS_NODEV}, {"noexec", MS_NOEXEC, 0}, {"exec", 0, MS_NOEXEC},
        {"sync", MS_SYNCHRONOUS, 0}, {"async", 0, MS_SYNCHRONOUS}, {"noatime", MS_NOATIME, 0},
        {"atime", 0, MS_NOATIME}, {"nodiratime", MS_NODIRATIME, 0}, {"relatime", MS_RELATIME, 0},
        {"strictatime", MS_STRICTATIME, 0}, {"dirsync", MS_DIRSYNC, 0},
    };
    unsigned long flags = 0;
    size_t used = 0;
    char *copy = strdup(options), *save = NULL;
    data[0] = '\0';
    for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        size_t k = 0;
        while (k < sizeof words / sizeof *words && strcmp(words[k].word, w) != 0)
            k++;
        if (k < sizeof words / sizeof *words) {
            flags = (flags | words[k].set) & ~words[k].clear;
        } else if (used + strlen(w) + 2 <= cap) {
            used += (size_t)snprintf(data + used, cap - used, "%s%s", used ? "," : "", w);
        }
    }
    free(copy);
    return flags;
}

/*
 * Bind-mounts the single file of a KD_MOUNT_FILE share onto `m->target` (created as an empty file).
 * The share is mounted first on a staging directory of the initramfs, which the container never
 * sees (its root replaces the initramfs root and is chroot'ed).
 */
static int mount_file(const struct mount_spec *m, size_t index, unsigned long flags, const char *data)
{
    char stage[64], file[96];
    snprintf(stage, sizeof stage, "/stage/m%zu", index);
    mkdir("/stage", 0700);
    mkdir(stage, 0700);
    if (mount_fs(m->source, stage, "virtiofs", flags, data[0] ? data : NULL) < 0)
        return -1;
    snprintf(file, sizeof file, "%s/" KD_MOUNT_FILE_NAME, stage);
    const char *slash = strrchr(m->target, '/');
    char *parent = xstrndup((const uint8_t *)m->target, (size_t)(slash - m->target));
    int dir = open_dir_in_root(parent[0] ? parent : "/");
    free(parent);
    /* O_NOFOLLOW: never bind through a symlink the image put at the target */
    int target = dir < 0 ? -1 : openat(dir, slash + 1, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    /* the staging mount's flags (read-only included) hold for the bind too: one superblock */
    int r = target < 0 ? -1 : mount_at_fd(file, target, NULL, MS_BIND, NULL);
    int saved = errno;
    if (target >= 0)
        close(target);
    if (dir >= 0)
        close(dir);
    errno = saved;
    return r;
}

/* One MOUNT of the spec: a tmpfs, a virtio-fs directory share, or a single file from a share. */
static int setup_mount(const struct mount_spec *m, size_t index)
{
    char data[256];
    unsigned long flags = mount_flags(m->options, data, sizeof data);
    if (m->flags & KD_MOUNT_READONLY)
        flags |= MS_RDONLY;
    if (m->flags & KD_MOUNT_FILE)
        return mount_file(m, index, flags, data);
    bool tmpfs = strcmp(m->source, "tmpfs") == 0;
    return mount_in_root(m->source, m->target, tmpfs ? "tmpfs" : "virtiofs", flags, data[0] ? data : NULL);
}

/*
 * --read-only: the root's mount becomes read-only (its submounts keep their own flags, as in docker)
 * and so does the tmpfs holding /etc/{hostname,hosts,resolv.conf}, which docker also mounts read-only
 * then.  Done last, so that mount points and /etc files could still be created during setup.
 */
static int make_root_readonly(void)
{
    if (mount(NULL, NEWROOT, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
        return -1;
    return mount(NULL, ETCFILES, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/*
 * The container's NIC is hot-added like its shares (see mount_fs): waits (bounded; configuring it
 * then fails with its own error) until the kernel has registered it.
 */
static void wait_for_nic(const struct spec *s)
{
    if (!s->has_net)
        return;
    char path[IFNAMSIZ + 16];
    snprintf(path, sizeof path, "/sys/class/net/%s", s->ifname);
    struct device_wait wait = device_wait_begin();
    while (access(path, F_OK) < 0 && device_wait_more(&wait))
        ;
}

/* ioctls of /dev/urandom (<linux/random.h>, which the musl toolchain does not ship): add bytes to the
 * input pool with an entropy credit; reseed the crng from the input pool now */
#define RNDADDENTROPY _IOW('R', 0x03, int[2])
#define RNDRESEEDCRNG _IO('R', 0x07)

/* A VM restored from a template (vm/template.py) wakes up with the template's clock and random
 * state: START brings the host's clock and fresh randomness.  The bytes are credited in full (they
 * come from the host's own pool), so a crng that has not been initialized yet (no hardware RNG: it
 * can take a while under TCG, and getrandom() blocks until then) is seeded from them at once, and an
 * initialized one takes a new key from the pool now instead of at its next scheduled reseed. */
static void take_host_clock_and_seed(const struct spec *s)
{
    if (s->has_clock) {
        struct timespec ts = {.tv_sec = (time_t)(s->clock_ns / 1000000000u),
                              .tv_nsec = (long)(s->clock_ns % 1000000000u)};
        if (clock_settime(CLOCK_REALTIME, &ts) < 0)
            logmsg("set the clock: %s", strerror(errno));
    }
    if (s->seed_len) {
        struct {
            int entropy_count, buf_size; /* struct rand_pool_info */
            uint8_t buf[sizeof s->seed];
        } info = {.entropy_count = (int)(8 * s->seed_len), .buf_size = (int)s->seed_len};
        memcpy(info.buf, s->seed, s->seed_len);
        int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ioctl(fd, RNDADDENTROPY, &info) < 0 || ioctl(fd, RNDRESEEDCRNG) < 0)
            logmsg("reseed the random pool: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
    }
}

/*
 * Prepares the container root for START and moves the agent into it: virtio-fs at NEWROOT, sysfs,
 * /dev, the volume mounts, /etc/{hostname,hosts,resolv.conf}, network and hostname; then NEWROOT
 * becomes "/" (the initramfs cannot be pivot_root'ed away, so: MS_MOVE + chroot, as switch_root
 * does) and a PID namespace is opened so the main process is PID 1 of the container, as in docker.
 * Returns NULL or a message for the host.
 */
static const char *setup_root(const struct spec *s)
{
    static char err[256];
    mkdir(NEWROOT, 0755);
    if (mount_fs(s->rootfs ? s->rootfs : "rootfs", NEWROOT, "virtiofs", 0, NULL) < 0) {
        snprintf(err, sizeof err, "mount virtio-fs root %s: %s", s->rootfs ? s->rootfs : "rootfs",
                 go_strerror(errno));
        return err;
    }
    set_read_ahead(NEWROOT, ROOT_READ_AHEAD_KB);
    if (mount_in_root("sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 ||
        setup_dev() < 0)
        return "prepare the container's /sys and /dev (see the VM console)";
    int proc_dir = open_dir_in_root("/proc"); /* the main process mounts its namespace's proc here */
    if (proc_dir >= 0)
        close(proc_dir);
    for (size_t i = 0; i < s->nmounts; i++) {
        if (setup_mount(&s->mounts[i], i) < 0) {
            snprintf(err, sizeof err, "mount %s on %s: %s", s->mounts[i].source, s->mounts[i].target,
                     go_strerror(errno));
            return err;
        }
    }
    mount_or_log("tmpfs", ETCFILES, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=1m");
    if (s->hostname) {
        char line[HOST_NAME_MAX + 2];
        snprintf(line, sizeof line, "%s\n", s->hostname); /* docker's /etc/hostname ends in a newline */
        bind_etc_file("hostname", line);
    }
    if (s->hosts)
        bind_etc_file("hosts", s->hosts);
    if (s->resolv)
        bind_etc_file("resolv.conf", s->resolv);
    if (s->readonly_root && make_root_readonly() < 0) {
        snprintf(err, sizeof err, "make the root read-only: %s", go_strerror(errno));
        return err;
    }
    wait_for_nic(s);
    setup_network(s);
    if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
        logmsg("sethostname: %s", strerror(errno));
    lo_ready(); /* before the agent becomes the container's root and forks its process */
    if (chdir(NEWROOT) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0) {
        snprintf(err, sizeof err, "enter the container root: %s", go_strerror(errno));
        return err;
    }
    /* Children created from now on live in a new PID namespace; the first becomes its PID 1. */
    pid_ns = unshare(CLONE_NEWPID) == 0;
    if (!pid_ns)
        logmsg("unshare(CLONE_NEWPID): %s; the container shares the agent's PIDs", strerror(errno));
    return NULL;
}

/* ------------------------------------------------------------------ the child side of a spawn */

/* A wait status as docker reports it: the exit code, or 128+N when signal N ended the process. */
static uint32_t exit_code(int status)
{
    return WIFSIGNALED(status) ? 128u + (uint32_t)WTERMSIG(status) : (uint32_t)WEXITSTATUS(status);
}

/* Reports a failure to the agent through the CLOEXEC pipe and ends the child. */
static void __attribute__((noreturn)) child_fail(int errfd, uint32_t code, const char *fmt, ...)
{
    uint8_t msg[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf((char *)msg + 4, sizeof msg - 4, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n > sizeof msg - 5)
        n = sizeof msg - 5;
    put_u32(msg, code);
    if (write(errfd, msg, 4 + (size_t)n) < 0)
        _exit((int)code); /* nobody to tell */
    _exit((int)code);
}

static const char *env_path(char *const envp[])
{
    for (size_t i = 0; envp[i]; i++)
        if (strncmp(envp[i], "PATH=", 5) == 0)
            return envp[i] + 5;
    return DEFAULT_PATH;
}

/*
 * Go's exec.LookPath, which runc uses: a name with a slash is taken as is; otherwise the first
 * PATH entry holding a regular file with an execute bit wins.  Never returns on failure.
 */
static const char *look_path(const char *name, char *const envp[], char *out, size_t outlen, int errfd)
{
    struct stat st;
    if (strchr(name, '/')) {
        if (stat(name, &st) < 0)
            child_fail(errfd, 127, "exec: \"%s\": stat %s: %s", name, name, go_strerror(errno));
        return name;
    }
    const char *p = env_path(envp);
    while (name[0]) {
        int n = (int)strcspn(p, ":");
        snprintf(out, outlen, "%.*s/%s", n ? n : 1, n ? p : ".", name); /* empty entry: "." */
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111))
            return out;
        if (!p[n])
            break;
        p += n + 1;
    }
    child_fail(errfd, 127, "exec: \"%s\": executable file not found in $PATH", name);
}

/* mkdir -p, as docker creates a missing WORKDIR. */
static void mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *c = buf + 1; *c; c++) {
        if (*c == '/') {
            *c = 0;
            mkdir(buf, 0755);
            *c = '/';
        }
    }
    mkdir(buf, 0755);
}

static void child_stdio(const struct spec *s, int fds[3], const char *pts, int errfd)
{
    if (s->tty) {
        int t = open(pts, O_RDWR);
        /* TIOCSCTTY: the pty becomes the controlling terminal of the new session (job control). */
        if (t < 0 || ioctl(t, TIOCSCTTY, 0) < 0)
            child_fail(errfd, 125, "open terminal %s: %s", pts, go_strerror(errno));
        fds[0] = fds[1] = fds[2] = t;
    } else if (fds[0] < 0) {
        fds[0] = open("/dev/null", O_RDONLY);
    }
    for (int i = 0; i < 3; i++)
        if (dup2(fds[i], i) < 0)
            child_fail(errfd, 125, "dup2: %s", go_strerror(errno));
}

/*
 * --init, docker's docker-init (tini): the container's PID 1 is a small init, this fork of the agent,
 * which runs the command as its child, passes each signal it gets on to it, reaps every orphan of
 * the container and exits with the command's status (128+N when signal N ended it). Without it the
 * command itself is PID 1, which the kernel shields from each signal it has no handler for: a
 * `sleep` ignores `stop`'s SIGTERM and is killed only after the timeout.
 *
 * Returns in the command's process; the init never returns. Signals the kernel raises for a fault of
 * the init itself, and the terminal's stop signals, keep their default action (tini's set).
 */
static void become_init(int errfd, bool tty)
{
    static const int own[] = {SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS, SIGTTIN, SIGTTOU};
    sigset_t caught;
    sigfillset(&caught);
    for (size_t i = 0; i < sizeof own / sizeof *own; i++)
        sigdelset(&caught, own[i]);
    sigprocmask(SIG_SETMASK, &caught, NULL); /* from before the fork: no signal for the command is lost */
    pid_t child = fork();
    if (child < 0)
        child_fail(errfd, 125, "fork the command under the init: %s", go_strerror(errno));
    if (child == 0) {
        if (tty) {
            /* the foreground job of the init's terminal (tcsetpgrp from the background: SIGTTOU
             * blocked, else it stops us) */
            sigaddset(&caught, SIGTTOU);
            sigprocmask(SIG_SETMASK, &caught, NULL);
            if (setpgid(0, 0) < 0 || tcsetpgrp(STDIN_FILENO, getpid()) < 0)
                child_fail(errfd, 125, "make the command the terminal's foreground job: %s",
                           go_strerror(errno));
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        return;
    }
    close(errfd); /* the command's exec closes the report pipe: the agent learns it started */
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; fd++) /* the command's streams end when the command's copies close */
        dup2(null, fd);
    for (;;) {
        int sig = sigwaitinfo(&caught, NULL);
        if (sig == SIGCHLD) {
            int status;
            pid_t pid;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                if (pid == child)
                    _exit((int)exit_code(status));
        } else if (sig > 0) {
            kill(child, sig);
        }
    }
}

/*
 * Runs in the forked child: becomes the container process described by `s` or reports why not.
 * fds: the child's ends of stdin/stdout/stderr (-1: none); pts: the pty slave path when tty.
 */
static void __attribute__((noreturn)) child_exec(const struct spec *s, int fds[3], const char *pts,
                                                 int errfd, bool is_main)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL); /* ignored dispositions survive execve; the agent ignores SIGPIPE */
    umask(022);
    setsid(); /* own session and process group, like runc: signals and the pty are per container */
    child_stdio(s, fds, pts, errfd);
    /* The first process of a fresh PID namespace mounts the /proc that shows that namespace. */
    if (is_main && pid_ns && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        child_fail(errfd, 125, "mount /proc: %s", go_strerror(errno));
    const char *cwd = s->cwd && s->cwd[0] ? s->cwd : "/";
    mkdir_p(cwd); /* as root, before dropping privileges */
    if (!test_mode || geteuid() == 0) {
        if (setgroups(s->ngroups, s->groups) < 0 || setgid(s->gid) < 0 || setuid(s->uid) < 0)
            child_fail(errfd, 125, "set user %u:%u: %s", s->uid, s->gid, go_strerror(errno));
    }
    if (chdir(cwd) < 0)
        child_fail(errfd, 125, "chdir to cwd (\"%s\") set in config.json failed: %s", cwd, go_strerror(errno));
    if (is_main && s->init)
        become_init(errfd, s->tty);
    char found[4096];
    const char *path = look_path(s->argv[0], s->envp, found, sizeof found, errfd);
    execve(path, s->argv, s->envp);
    struct stat st;
    if (errno == EACCES && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        errno = EISDIR;
    if (errno == EACCES || errno == EISDIR)
        child_fail(errfd, 126, "exec: \"%s\": %s", s->argv[0], errno == EISDIR ? "is a directory" : "permission denied");
    child_fail(errfd, errno == ENOENT ? 127 : 126, "exec: \"%s\": %s", s->argv[0], go_strerror(errno));
}

/* ------------------------------------------------------------------ processes, agent side */

static struct proc *find_proc(uint32_t id)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i].used && procs[i].id == id)
            return &procs[i];
    return NULL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void free_proc(struct proc *p)
{
    close_fd(&p->in_fd);
    for (int s = 0; s < NOUT; s++)
        close_fd(&p->out_fd[s]);
    free(p->in.data);
    memset(p, 0, sizeof *p);
}

static void set_nonblock(int fd)
{
    if (fd >= 0)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Creates the process's streams: a pty, or pipes. parent[]/child[] are stdin, stdout, stderr ends. */
static int make_streams(const struct spec *s, int parent[3], int child[3], char *pts, size_t ptslen)
{
    for (int i = 0; i < 3; i++)
        parent[i] = child[i] = -1;
    if (s->tty) {
        int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        struct winsize ws = {.ws_row = s->rows, .ws_col = s->cols};
        if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, pts, ptslen) != 0) {
            if (m >= 0)
                close(m);
            return -1;
        }
        if (s->rows && s->cols)
            ioctl(m, TIOCSWINSZ, &ws);
        parent[0] = fcntl(m, F_DUPFD_CLOEXEC, 0); /* one fd per direction, each closable alone */
        parent[1] = m;
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        int p[2];
        if (i == 0 && !s->stdin_open)
            continue;
        if (pipe2(p, O_CLOEXEC) < 0)
            return -1;
        parent[i] = i == 0 ? p[1] : p[0];
        child[i] = i == 0 ? p[0] : p[1];
    }
    return 0;
}

/* Reads the child's exec report: 0 when it exec'd (pipe closed empty), else the code (+ msg). */
static uint32_t read_exec_report(int fd, char *msg, size_t msglen)
{
    uint8_t buf[604];
    size_t got = 0;
    ssize_t n;
    /* Blocking on purpose: the child either execs or fails within its short setup. */
    while ((n = read(fd, buf + got, sizeof buf - 1 - got)) > 0 || (n < 0 && errno == EINTR))
        got += n > 0 ? (size_t)n : 0;
    if (got < 4)
        return 0;
    buf[got] = 0;
    snprintf(msg, msglen, "%s", (char *)buf + 4);
    return get_u32(buf);
}

/* START/EXEC: forks the process; answers STARTED or ERROR. */
static void spawn(uint32_t id, struct spec *s, bool is_main)
{
    struct proc *p = NULL;
    for (int i = 0; i < MAX_PROCS && !p; i++)
        if (!procs[i].used)
            p = &procs[i];
    if (find_proc(id) || !p) {
        send_error(id, 125, find_proc(id) ? "process id already in use" : "too many processes");
        return;
    }
    int parent[3], child[3], errpipe[2];
    char pts[64] = "", msg[600];
    if (make_streams(s, parent, child, pts, sizeof pts) < 0 || pipe2(errpipe, O_CLOEXEC) < 0) {
        snprintf(msg, sizeof msg, "create process streams: %s", go_strerror(errno));
        send_error(id, 125, msg);
        for (int i = 0; i < 3; i++) {
            close_fd(&parent[i]);
            close_fd(&child[i]);
        }
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(errpipe[0]);
        child_exec(s, child, pts, errpipe[1], is_main);
    }
    int fork_errno = errno;
    close(errpipe[1]);
    for (int i = 0; i < 3; i++)
        close_fd(&child[i]);
    uint32_t code = pid < 0 ? 125 : read_exec_report(errpipe[0], msg, sizeof msg);
    close(errpipe[0]);
    if (pid < 0)
        snprintf(msg, sizeof msg, "fork: %s", go_strerror(fork_errno));
    if (code != 0) {
        if (pid > 0)
            waitpid(pid, NULL, 0); /* reap here: a process that never ran gets no EXIT frame */
        for (int i = 0; i < 3; i++)
            close_fd(&parent[i]);
        send_error(id, code, msg);
        return;
    }
    *p = (struct proc){.used = true, .id = id, .pid = pid, .tty = s->tty, .in_fd = parent[0]};
    for (int i = 0; i < NOUT; i++) {
        p->out_fd[i] = parent[1 + i];
        p->credit[i] = KD_WINDOW;
        set_nonblock(p->out_fd[i]);
    }
    set_nonblock(p->in_fd);
    if (is_main)
        main_pid = pid;
    send_u32(KD_T_STARTED, 0, id, (uint32_t)pid);
}

static void close_output(struct proc *p, int s)
{
    close_fd(&p->out_fd[s]);
    send_frame(KD_T_EOF, KD_STREAM_STDOUT + s, p->id, NULL, 0);
}

/* Moves up to the stream's credit from the process into a DATA frame. */
static void pump_output(struct proc *p, int s)
{
    size_t want = p->credit[s] < KD_DATA_CHUNK ? p->credit[s] : KD_DATA_CHUNK;
    uint8_t *h = buf_reserve(&link_out, KD_HEADER_SIZE + want);
    ssize_t n = read(p->out_fd[s], h + KD_HEADER_SIZE, want);
    if (n > 0) {
        put_u32(h, (uint32_t)n);
        h[4] = KD_T_DATA;
        h[5] = KD_STREAM_STDOUT + s;
        put_u16(h + 6, 0);
        put_u32(h + 8, p->id);
        buf_commit(&link_out, KD_HEADER_SIZE + (size_t)n);
        p->credit[s] -= (uint32_t)n;
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close_output(p, s); /* EOF; EIO on a pty master means every slave fd is closed */
    }
}

/* Writes buffered stdin to the process and returns the written bytes to the host as credit. */
static void pump_stdin(struct proc *p)
{
    size_t done = 0;
    while (p->in_fd >= 0 && p->in.len > 0) {
        ssize_t n = write(p->in_fd, p->in.data + p->in.head, p->in.len);
        if (n > 0) {
            buf_consume(&p->in, (size_t)n);
            done += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            break;
        } else {
            close_fd(&p->in_fd); /* EPIPE: the process closed its stdin; drop what is left */
        }
    }
    if (p->in_fd < 0) {
        done += p->in.len;
        buf_consume(&p->in, p->in.len);
    }
    if (p->in_fd >= 0 && p->in.len == 0 && p->in_eof_pending && !p->tty)
        close_fd(&p->in_fd);
    if (done)
        send_u32(KD_T_CREDIT, KD_STREAM_STDIN, p->id, (uint32_t)done);
}

/* Sends EXIT once the process is reaped and its output streams are at EOF; frees its slot. */
static void maybe_finish(struct proc *p)
{
    if (!p->used || !p->exited || p->out_fd[OUT_STDOUT] >= 0 || p->out_fd[OUT_STDERR] >= 0)
        return;
    uint8_t payload[5];
    put_u32(payload, p->status);
    payload[4] = p->signal;
    send_frame(KD_T_EXIT, 0, p->id, payload, sizeof payload);
    free_proc(p);
}

/* Collects every exited child (PID 1 also inherits orphans) and records our processes' status. */
static void reap(void)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (int i = 0; i < MAX_PROCS; i++) {
            struct proc *p = &procs[i];
            if (!p->used || p->pid != pid)
                continue;
            p->exited = true;
            p->exit_ms = now_ms();
            p->signal = WIFSIGNALED(st) ? (uint8_t)WTERMSIG(st) : 0;
            p->status = exit_code(st);
        }
        main_exited = main_exited || pid == main_pid;
    }
}

static void __attribute__((noreturn)) shutdown_all(void)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i].used && !procs[i].exited)
            kill(procs[i].pid, SIGKILL);
    logmsg("shutting down");
    power_off(0);
}

/* ------------------------------------------------------------------ frames in */

static void handle_start(uint32_t id, const uint8_t *payload, uint32_t len, bool is_main)
{
    struct spec s;
    if (parse_spec(&s, payload, len) < 0) {
        send_error(id, 125, "malformed process spec");
        return;
    }
    if (is_main && main_pid) {
        send_error(id, 125, "the container was already started");
    } else if (!is_main && !root_ready) {
        send_error(id, 125, "the container is not started");
    } else if (!is_main && pid_ns && main_exited) {
        send_error(id, 125, "the container is not running");
    } else {
        /* A START whose command failed may be retried: the root is prepared once. */
        if (is_main && !root_ready && !test_mode)
            take_host_clock_and_seed(&s);
        const char *err = is_main && !root_ready && !test_mode ? setup_root(&s) : NULL;
        if (err) {
            send_error(id, 125, err);
        } else {
            root_ready = true;
            spawn(id, &s, is_main);
        }
    }
    free_spec(&s);
}

static void handle_stdin(struct proc *p, const uint8_t *data, uint32_t len)
{
    if (p->in.len + len > KD_WINDOW) {
        logmsg("process %u: host exceeded its stdin credit; dropping %u bytes", p->id, len);
        return;
    }
    memcpy(buf_reserve(&p->in, len), data, len);
    buf_commit(&p->in, len);
    pump_stdin(p);
}

static void handle_frame(uint8_t type, uint8_t stream, uint32_t id, const uint8_t *pl, uint32_t len)
{
    if (type == KD_T_START || type == KD_T_EXEC) {
        handle_start(id, pl, len, type == KD_T_START);
        return;
    }
    if (type == KD_T_PING) {
        send_frame(KD_T_PONG, 0, id, pl, len);
        return;
    }
    if (type == KD_T_SHUTDOWN)
        shutdown_all();
    struct proc *p = find_proc(id);
    if (!p)
        return; /* e.g. CREDIT racing an EXIT: harmless */
    if (type == KD_T_DATA) {
        handle_stdin(p, pl, len);
    } else if (type == KD_T_EOF) {
        p->in_eof_pending = true;
        pump_stdin(p);
    } else if (type == KD_T_CREDIT && len == 4 && stream >= KD_STREAM_STDOUT && stream <= KD_STREAM_STDERR) {
        uint32_t *c = &p->credit[stream - KD_STREAM_STDOUT];
        *c = *c + get_u32(pl) < *c ? UINT32_MAX : *c + get_u32(pl);
    } else if (type == KD_T_SIGNAL && len == 4 && !p->exited) {
        kill(p->pid, (int)get_u32(pl));
    } else if (type == KD_T_RESIZE && len == 4 && p->tty) {
        struct winsize ws = {.ws_row = get_u16(pl), .ws_col = get_u16(pl + 2)};
        /* TIOCSWINSZ on the master: the kernel sends SIGWINCH to the pty's foreground group. */
        ioctl(p->out_fd[OUT_STDOUT], TIOCSWINSZ, &ws);
    }
}

/* Reads from the link and handles every complete frame. */
static void read_link(void)
{
    size_t room = KD_HEADER_SIZE + KD_MAX_PAYLOAD - link_in.len; /* enough for the largest frame */
    ssize_t n = read(link_fd, buf_reserve(&link_in, room), room);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        if (test_mode)
            shutdown_all(); /* the test's host went away */
        host_left();        /* virtio-serial: no host connected */
        return;
    }
    buf_commit(&link_in, n > 0 ? (size_t)n : 0);
    while (link_in.len >= KD_HEADER_SIZE) {
        const uint8_t *h = link_in.data + link_in.head;
        uint32_t len = get_u32(h);
        if (len > KD_MAX_PAYLOAD) {
            logmsg("oversized frame (%u bytes): dropping the input buffer", len);
            buf_consume(&link_in, link_in.len);
            return;
        }
        if (link_in.len < KD_HEADER_SIZE + len)
            return;
        handle_frame(h[4], h[5], get_u32(h + 8), h + KD_HEADER_SIZE, len);
        buf_consume(&link_in, KD_HEADER_SIZE + len);
    }
}

/* ------------------------------------------------------------------ the event loop */

enum { REF_SIGNALS, REF_LINK, REF_STDIN, REF_STDOUT, REF_STDERR };

struct pollref {
    int kind;
    struct proc *proc;
};

static bool waiting_for_output(void)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i].used && procs[i].exited)
            return true;
    return false;
}

/* Output pipes held open by a process's leftover children: once idle past the grace, call it EOF. */
static void expire_idle_output(struct proc *p, int s, short revents)
{
    if (p->exited && p->out_fd[s] >= 0 && p->credit[s] > 0 && !revents &&
        now_ms() - p->exit_ms > OUTPUT_GRACE_MS)
        close_output(p, s);
}

static void event_loop(int sigfd)
{
    struct pollfd fds[2 + 3 * MAX_PROCS];
    struct pollref refs[2 + 3 * MAX_PROCS];
    for (;;) {
        flush_link();
        int n = 0;
        fds[n] = (struct pollfd){.fd = sigfd, .events = POLLIN};
        refs[n++] = (struct pollref){REF_SIGNALS, NULL};
        if (host_away && host_connected())
            host_arrived();
        if (!host_away) {
            fds[n] = (struct pollfd){.fd = link_fd, .events = POLLIN | (link_out.len ? POLLOUT : 0)};
            refs[n++] = (struct pollref){REF_LINK, NULL};
        }
        for (int i = 0; i < MAX_PROCS; i++) {
            struct proc *p = &procs[i];
            if (!p->used)
                continue;
            if (p->in_fd >= 0 && p->in.len > 0) {
                fds[n] = (struct pollfd){.fd = p->in_fd, .events = POLLOUT};
                refs[n++] = (struct pollref){REF_STDIN, p};
            }
            for (int s = 0; s < NOUT; s++) {
                if (p->out_fd[s] >= 0 && p->credit[s] > 0) { /* no credit: leave it in the pipe */
                    fds[n] = (struct pollfd){.fd = p->out_fd[s], .events = POLLIN};
                    refs[n++] = (struct pollref){REF_STDOUT + s, p};
                }
            }
        }
        /* while no host is connected the link only reports POLLHUP: SIGIO (the signalfd) says when
         * one connects, and a look every 50 ms makes sure */
        int timeout = host_away ? 50 : waiting_for_output() ? 200 : -1;
        if (poll(fds, (nfds_t)n, timeout) < 0 && errno != EINTR) {
            logmsg("poll: %s", strerror(errno));
            power_off(1);
        }
        for (int i = 0; i < n; i++) {
            struct proc *p = refs[i].proc;
            short re = fds[i].revents;
            if (refs[i].kind == REF_SIGNALS) {
                struct signalfd_siginfo si;
                while (re && read(sigfd, &si, sizeof si) > 0)
                    ;
                if (re)
                    reap();
            } else if (refs[i].kind == REF_LINK) {
                /* On POLLHUP the read sees EOF: the host is gone (test) or not connected (VM). */
                if (re & (POLLIN | POLLHUP | POLLERR))
                    read_link();
            } else if (!p->used) {
                continue; /* freed earlier in this round */
            } else if (refs[i].kind == REF_STDIN) {
                if (re)
                    pump_stdin(p);
            } else {
                int s = refs[i].kind - REF_STDOUT;
                if (re && p->out_fd[s] >= 0)
                    pump_output(p, s);
                else
                    expire_idle_output(p, s, re);
            }
        }
        for (int i = 0; i < MAX_PROCS; i++)
            maybe_finish(&procs[i]);
    }
}

/* ------------------------------------------------------------------ main */

/* SIGCHLD arrives through a signalfd in the poll set; SIGPIPE must not kill the agent. */
static int setup_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGIO); /* the virtio port's host connected (O_ASYNC while host_away) */
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--test-fd") == 0) {
        test_mode = true;
        link_fd = atoi(argv[2]);
        fcntl(link_fd, F_SETFD, FD_CLOEXEC);
        set_nonblock(link_fd);
    } else if (getpid() != 1) {
        fprintf(stderr, "usage: %s --test-fd FD   (otherwise this program runs as a VM's PID 1)\n", argv[0]);
        return 2;
    }
    int sigfd = setup_signals();
    if (!test_mode) {
        umask(0);
        boot_mounts();
        load_modules();
        set_page_reporting_order();
        loopback_up_soon();
        /* Keep fds 0-2 taken (the kernel leaves them closed without /dev/console), so no pipe
         * gets one of them and collides with dup2() in a child. */
        int fd;
        while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd < 3)
            ;
        if (fd >= 3)
            close(fd);
        link_fd = open_port();
    }
    if (test_mode || host_connected()) {
        send_hello();
    } else { /* a template VM being booted (vm/template.py), or a host that is slow to connect */
        host_left();
        lo_ready(); /* nothing else to do until a host connects: finish it before a snapshot */
        logmsg("%s", KD_WAITING_FOR_HOST);
    }
    event_loop(sigfd);
}
