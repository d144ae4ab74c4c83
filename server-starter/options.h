/* options: start_server's command line, parsed the way Perl's Getopt::Long
 * parses Server::Starter's (long names with one or two dashes, `--opt=v` or
 * `--opt v`, case-insensitive unique prefixes, options and operands permuted,
 * `--` ends options), plus the port-spec and signal-name syntaxes. */
#ifndef SS_OPTIONS_H
#define SS_OPTIONS_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/socket.h>

enum ready_kind { READY_NONE, READY_TCP, READY_HTTP, READY_EXEC };

/* --ready-check, parsed: "tcp:HOST:PORT", "http://HOST:PORT/PATH", "exec:CMD". */
struct ready_spec {
    enum ready_kind kind;
    char host[256];
    char port[16];
    char path[1024];     /* HTTP request target, "/" by default */
    const char *command; /* exec: the shell command (points into argv) */
    int64_t timeout_ns;  /* --ready-timeout, default 60s */
};

struct ss_config {
    const char **ports; /* --port values as written, in order */
    size_t nports;
    const char **paths; /* --path values */
    size_t npaths;
    const char *dir, *log_file, *pid_file, *status_file, *envdir;
    long long interval; /* seconds, default 1 */
    long long backlog;  /* default SOMAXCONN */
    int enable_auto_restart, daemonize, restart, stop, help, version;
    int auto_restart_interval_set, kill_old_delay_set;
    long long auto_restart_interval, kill_old_delay;
    char signal_on_hup_name[32], signal_on_term_name[32]; /* normalised: "TERM", "USR1", "15" */
    int signal_on_hup, signal_on_term;
    const char *ready_check, *ready_timeout; /* as written */
    struct ready_spec ready;
    char **argv; /* the server program and its arguments (NULL-terminated) */
    int argc;
};

/* Parse argv into cfg. On a Getopt::Long-style error, prints one line per
 * culprit on stderr (Perl's texts: "Unknown option: foo", "Option port requires
 * an argument", ...) and returns -1 (the caller exits 1). Other validation
 * (signal names, --ready-check) also returns -1 after printing one line. */
int ss_options_parse(struct ss_config *cfg, int argc, char **argv);

/* Normalise a signal name as Perl does (upper-case, optional "SIG" prefix) and
 * resolve it; numbers are accepted. Returns the signal number or -1. */
int ss_signal_parse(const char *in, char *norm, size_t normlen);

/* One parsed --port value. */
struct ss_port_spec {
    char key[300]; /* SERVER_STARTER_PORT key: "8080", "127.0.0.1:8080", "[::1]:8080" */
    char host[256]; /* "" for the PORT-only form (0.0.0.0) */
    int port;
    int udp;
    int ipv6;
    int fd; /* the =FD suffix, or -1 */
};

/* Parse a --port value the way Server::Starter 0.35's regular expressions do:
 * [u]PORT[=FD], HOST:[u]PORT[=FD], [V6]:[u]PORT[=FD], blanks allowed around the
 * parts. Returns 0, or -1 when the value has no such form. No name lookup. */
int ss_port_parse(const char *s, struct ss_port_spec *out);

/* Parse --ready-check / --ready-timeout into spec. Returns 0, or -1 with a
 * one-line reason in err. */
int ss_ready_parse(const char *check, const char *timeout, struct ready_spec *spec, char *err,
                   size_t errlen);

/* Print --help text to out. */
void ss_usage(FILE *out);

#endif
