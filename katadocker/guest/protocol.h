/*
 * katadocker agent protocol: the constants shared by the guest agent (agent.c) and the host
 * (katadocker/agent/protocol.py; tests/unit/test_protocol.py checks that both agree).
 *
 * Everything is little-endian.  A frame is a 12-byte header followed by `length` payload bytes:
 *
 *     u32 length   payload bytes that follow the header (<= KD_MAX_PAYLOAD)
 *     u8  type     KD_T_*
 *     u8  stream   KD_STREAM_* for DATA, EOF and CREDIT; 0 otherwise
 *     u16 flags    reserved, 0
 *     u32 proc     process id chosen by the host in START/EXEC; 0 for link-level frames
 *
 * The agent opens with HELLO (u16 protocol version, u16 reserved, agent version text), said again
 * to a host that connects after the last one went away (a VM restored from a template: vm/template.py);
 * the host refuses a version it does not speak.  Flow control is by credit, per process and stream: the
 * agent may send at most KD_WINDOW bytes of stdout (and of stderr) data before the host grants
 * more with CREDIT; the host may send at most KD_WINDOW bytes of stdin before the agent grants
 * more.  So neither side ever buffers more than a window per stream, and a slow reader stalls
 * only its own stream.
 */
#ifndef KATADOCKER_PROTOCOL_H
#define KATADOCKER_PROTOCOL_H

#define KD_PROTO_VERSION 1
#define KD_HEADER_SIZE 12
#define KD_MAX_PAYLOAD 1048576 /* largest payload either side accepts */
#define KD_WINDOW 262144       /* initial credit per stream, in bytes */
#define KD_DATA_CHUNK 32768    /* largest DATA payload either side sends */
#define KD_PORT_NAME "org.katadocker.agent"
/* What the agent writes to the console when it finds no host on the port at boot and waits for one
 * (after "katadocker-agent: "): the template builder's sign that the guest is idle (vm/template.py) */
#define KD_WAITING_FOR_HOST "waiting for a host to connect"

/* Frame types.  Direction: a = agent to host, h = host to agent. */
#define KD_T_HELLO 1    /* a: u16 version, u16 reserved, agent version text */
#define KD_T_START 2    /* h: spec (TLV below); sets up the container root, runs its main process */
#define KD_T_EXEC 3     /* h: spec; another process in the root START prepared */
#define KD_T_STARTED 4  /* a: u32 guest pid; the process runs */
#define KD_T_ERROR 5    /* a: u32 exit code (125, 126, 127), message; START/EXEC failed */
#define KD_T_DATA 6     /* a: stdout/stderr bytes; h: stdin bytes */
#define KD_T_EOF 7      /* a: that output stream ended; h: close the process's stdin */
#define KD_T_CREDIT 8   /* u32 bytes the receiver may now send more of on `stream` */
#define KD_T_EXIT 9     /* a: u32 status (code, or 128+signal), u8 signal (0: exited); after all output */
#define KD_T_SIGNAL 10  /* h: u32 signal number, sent to the process */
#define KD_T_RESIZE 11  /* h: u16 rows, u16 cols of the process's pty */
#define KD_T_PING 12    /* h: any payload, echoed by PONG */
#define KD_T_PONG 13    /* a: the PING's payload */
#define KD_T_SHUTDOWN 14 /* h: kill every process, sync, power off */

/* Streams of a process. */
#define KD_STREAM_STDIN 0
#define KD_STREAM_STDOUT 1
#define KD_STREAM_STDERR 2

/*
 * START/EXEC payload: a sequence of fields, each u16 tag, u32 length, value.  Strings are raw
 * bytes without NUL.  Repeated tags append (ARG, ENV, GROUP, MOUNT).  EXEC reads only ARG, ENV,
 * CWD, UID, GID, GROUP, TTY, WINSIZE and STDIN.  Unknown tags are ignored (forward compatible).
 */
#define KD_SPEC_ARG 1      /* string, one per argv element */
#define KD_SPEC_ENV 2      /* string "KEY=value" */
#define KD_SPEC_CWD 3      /* string, absolute; created if missing */
#define KD_SPEC_UID 4      /* u32 */
#define KD_SPEC_GID 5      /* u32 */
#define KD_SPEC_GROUP 6    /* u32 supplementary group */
#define KD_SPEC_HOSTNAME 7 /* string */
#define KD_SPEC_HOSTS 8    /* content of /etc/hosts */
#define KD_SPEC_RESOLV 9   /* content of /etc/resolv.conf */
#define KD_SPEC_TTY 10     /* u8 1: run on a pty (stdout carries the terminal, no stderr) */
#define KD_SPEC_WINSIZE 11 /* u16 rows, u16 cols */
#define KD_SPEC_STDIN 12   /* u8 1: stdin open (DATA from the host); otherwise /dev/null */
#define KD_SPEC_ROOTFS 13  /* string: virtio-fs tag of the container root */
#define KD_SPEC_MOUNT 14   /* u8 flags (KD_MOUNT_*), then u16-length-prefixed source, target, options */
#define KD_SPEC_NET 15     /* u8[4] address, u8 prefix, u8[4] gateway (0.0.0.0: none), u32 mtu, ifname */
#define KD_SPEC_READONLY_ROOT 16 /* u8 1: the root (and /etc/{hostname,hosts,resolv.conf}) read-only after setup */
#define KD_SPEC_INIT 17    /* u8 1 (START only): an init runs the command as its child (docker's --init) */
#define KD_SPEC_CLOCK 18   /* u64 (START only): the host's CLOCK_REALTIME in ns; the guest's clock is set to it */
#define KD_SPEC_SEED 19    /* bytes (START only): host randomness credited to the guest's pool, which reseeds */

#define KD_MOUNT_READONLY 1 /* flag of KD_SPEC_MOUNT; source "tmpfs" means a tmpfs, else a virtio-fs tag */
/* flag of KD_SPEC_MOUNT: the tag's share holds one entry, KD_MOUNT_FILE_NAME, bind-mounted onto target
 * (a file); virtio-fs shares directories, so the host shares a directory with just that file in it */
#define KD_MOUNT_FILE 2
#define KD_MOUNT_FILE_NAME "file"
/* MOUNT options: comma-separated; the mount(8) flag words (ro, nosuid, nodev, noexec, …) become mount
 * flags, everything else (size=, mode=, …) is passed to the filesystem as data */

#endif
