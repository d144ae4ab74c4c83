/* options: start_server's command line. Perl's start_server hands its option
 * list to Getopt::Long with the default configuration, so that is the grammar
 * we accept: "-name" or "--name", a value after "=" or in the next argument
 * (taken even when it starts with a dash), names case-insensitive and
 * abbreviable to any unique prefix, operands anywhere (permute), "--" ends
 * options. Every error is printed with Getopt::Long's own text and parsing
 * goes on, so all culprits are named; the caller then exits 1 as Perl does. */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "units.h"

enum opt_type { OPT_BOOL, OPT_STR, OPT_INT, OPT_LIST };

struct opt {
    const char *name;
    enum opt_type type;
    size_t off;   /* offset of the target in struct ss_config */
    size_t cnt;   /* OPT_LIST: offset of the count */
    size_t seen;  /* optional offset of an int set when given (0: none) */
};

#define OFF(f) offsetof(struct ss_config, f)
/* Sorted by name: the ambiguity message lists candidates in this order. */
static const struct opt opts[] = {
    {"auto-restart-interval", OPT_INT, OFF(auto_restart_interval), 0,
     OFF(auto_restart_interval_set)},
    {"backlog", OPT_INT, OFF(backlog), 0, 0},
    {"daemonize", OPT_BOOL, OFF(daemonize), 0, 0},
    {"dir", OPT_STR, OFF(dir), 0, 0},
    {"enable-auto-restart", OPT_BOOL, OFF(enable_auto_restart), 0, 0},
    {"envdir", OPT_STR, OFF(envdir), 0, 0},
    {"help", OPT_BOOL, OFF(help), 0, 0},
    {"interval", OPT_INT, OFF(interval), 0, 0},
    {"kill-old-delay", OPT_INT, OFF(kill_old_delay), 0, OFF(kill_old_delay_set)},
    {"log-file", OPT_STR, OFF(log_file), 0, 0},
    {"path", OPT_LIST, OFF(paths), OFF(npaths), 0},
    {"pid-file", OPT_STR, OFF(pid_file), 0, 0},
    {"port", OPT_LIST, OFF(ports), OFF(nports), 0},
    {"ready-check", OPT_STR, OFF(ready_check), 0, 0},
    {"ready-timeout", OPT_STR, OFF(ready_timeout), 0, 0},
    {"restart", OPT_BOOL, OFF(restart), 0, 0},
    {"signal-on-hup", OPT_STR, OFF(signal_on_hup_name), 0, 0},
    {"signal-on-term", OPT_STR, OFF(signal_on_term_name), 0, 0},
    {"status-file", OPT_STR, OFF(status_file), 0, 0},
    {"stop", OPT_BOOL, OFF(stop), 0, 0},
    {"version", OPT_BOOL, OFF(version), 0, 0},
};
#define NOPTS (sizeof opts / sizeof opts[0])

/* Exact name first, else the only option the name is a prefix of. Prints
 * Getopt::Long's message and returns NULL when there is none or several. */
static const struct opt *opt_lookup(const char *name, size_t len)
{
    const struct opt *found = NULL;
    int n = 0;
    for (size_t i = 0; i < NOPTS; i++) {
        if (strlen(opts[i].name) == len && strncasecmp(opts[i].name, name, len) == 0)
            return &opts[i];
        if (len > 0 && strncasecmp(opts[i].name, name, len) == 0) {
            found = &opts[i];
            n++;
        }
    }
    char lower[128];
    size_t l = len < sizeof lower - 1 ? len : sizeof lower - 1;
    for (size_t i = 0; i < l; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[l] = '\0';
    if (n == 1)
        return found;
    if (n == 0) {
        fprintf(stderr, "Unknown option: %s\n", lower);
        return NULL;
    }
    char list[512] = "";
    for (size_t i = 0; i < NOPTS; i++) {
        if (strncasecmp(opts[i].name, name, len) == 0) {
            if (list[0])
                strcat(list, ", ");
            strcat(list, opts[i].name);
        }
    }
    fprintf(stderr, "Option %s is ambiguous (%s)\n", lower, list);
    return NULL;
}

/* Getopt::Long's "=i": optional sign, decimal digits. */
static int parse_perl_int(const char *s, long long *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (!*p)
        return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno)
        return -1;
    *out = v;
    return 0;
}

static int opt_store(struct ss_config *cfg, const struct opt *o, const char *value)
{
    char *base = (char *)cfg;
    switch (o->type) {
    case OPT_BOOL:
        *(int *)(base + o->off) = 1;
        break;
    case OPT_STR:
        if (o->off == OFF(signal_on_hup_name) || o->off == OFF(signal_on_term_name))
            snprintf(base + o->off, sizeof cfg->signal_on_hup_name, "%s", value);
        else
            *(const char **)(base + o->off) = value;
        break;
    case OPT_INT: {
        long long v;
        if (parse_perl_int(value, &v) < 0) {
            fprintf(stderr, "Value \"%s\" invalid for option %s (number expected)\n", value,
                    o->name);
            return -1;
        }
        if (v < 0) {
            fprintf(stderr, "Value \"%s\" invalid for option %s (non-negative number expected)\n",
                    value, o->name);
            return -1;
        }
        *(long long *)(base + o->off) = v;
        break;
    }
    case OPT_LIST: {
        const char ***list = (const char ***)(base + o->off);
        size_t *n = (size_t *)(base + o->cnt);
        const char **nl = realloc(*list, (*n + 1) * sizeof *nl);
        if (!nl) {
            fprintf(stderr, "out of memory\n");
            return -1;
        }
        nl[(*n)++] = value;
        *list = nl;
        break;
    }
    }
    if (o->seen)
        *(int *)(base + o->seen) = 1;
    return 0;
}

int ss_signal_parse(const char *in, char *norm, size_t normlen)
{
    char buf[32];
    size_t i;
    for (i = 0; in[i] && i < sizeof buf - 1; i++)
        buf[i] = (char)toupper((unsigned char)in[i]);
    buf[i] = '\0';
    if (in[i])
        return -1;
    const char *name = strncmp(buf, "SIG", 3) == 0 ? buf + 3 : buf;
    snprintf(norm, normlen, "%s", name);
    if (!*name)
        return -1;
    if (isdigit((unsigned char)*name)) {
        char *end;
        long v = strtol(name, &end, 10);
        return (*end || v <= 0 || v >= NSIG) ? -1 : (int)v;
    }
    for (int s = 1; s < SIGRTMIN; s++) {
        const char *abbrev = sigabbrev_np(s);
        if (abbrev && strcmp(abbrev, name) == 0)
            return s;
    }
    if (strcmp(name, "IOT") == 0)
        return SIGABRT;
    if (strcmp(name, "CLD") == 0)
        return SIGCHLD;
    if (strcmp(name, "POLL") == 0)
        return SIGIO;
    return -1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int ss_port_parse(const char *s, struct ss_port_spec *out)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    size_t b = 0, e = strlen(s);
    while (b < e && is_blank(s[b]))
        b++;
    while (e > b && is_blank(s[e - 1]))
        e--;
    /* optional "=FD" (blanks allowed before "=", none after) */
    size_t p = e;
    while (p > b && isdigit((unsigned char)s[p - 1]))
        p--;
    if (p < e && p > b && s[p - 1] == '=') {
        if (e - p > 9)
            return -1;
        out->fd = atoi(s + p);
        e = p - 1;
        while (e > b && is_blank(s[e - 1]))
            e--;
        p = e;
        while (p > b && isdigit((unsigned char)s[p - 1]))
            p--;
    }
    if (p == e || e - p > 5)
        return -1;
    char digits[8];
    memcpy(digits, s + p, e - p);
    digits[e - p] = '\0';
    out->port = atoi(digits);
    if (out->port > 65535)
        return -1;
    if (p > b && s[p - 1] == 'u') {
        out->udp = 1;
        p--;
    }
    if (p == b) { /* [u]PORT[=FD] */
        snprintf(out->key, sizeof out->key, "%s", digits);
        return 0;
    }
    /* HOST:[u]PORT or [HOST]:[u]PORT */
    size_t h = p;
    while (h > b && is_blank(s[h - 1]))
        h--;
    if (h == b || s[h - 1] != ':')
        return -1;
    h--;
    while (h > b && is_blank(s[h - 1]))
        h--;
    int bracket_close = h > b && s[h - 1] == ']';
    if (bracket_close) {
        h--;
        while (h > b && is_blank(s[h - 1]))
            h--;
    }
    size_t hb = b;
    if (hb < h && s[hb] == '[') {
        hb++;
        while (hb < h && is_blank(s[hb]))
            hb++;
    }
    if (h - hb >= sizeof out->host)
        return -1;
    for (size_t i = hb; i < h; i++)
        if (s[i] == ']' || s[i] == '[')
            return -1;
    memcpy(out->host, s + hb, h - hb);
    out->host[h - hb] = '\0';
    out->ipv6 = strchr(out->host, ':') != NULL;
    if (out->ipv6)
        snprintf(out->key, sizeof out->key, "[%s]:%s", out->host, digits);
    else
        snprintf(out->key, sizeof out->key, "%s:%s", out->host, digits);
    return 0;
}

int ss_ready_parse(const char *check, const char *timeout, struct ready_spec *spec, char *err,
                   size_t errlen)
{
    memset(spec, 0, sizeof *spec);
    spec->timeout_ns = 60LL * 1000000000LL;
    if (timeout) {
        long long secs;
        int64_t ns;
        char uerr[128];
        if (parse_perl_int(timeout, &secs) == 0 && secs >= 0 && secs < 100000000) {
            spec->timeout_ns = secs * 1000000000LL;
        } else if (units_parse_duration(timeout, &ns, uerr, sizeof uerr) == 0 && ns >= 0) {
            spec->timeout_ns = ns;
        } else {
            snprintf(err, errlen,
                     "invalid --ready-timeout value:%s (a duration like 30s or seconds)",
                     timeout);
            return -1;
        }
        if (spec->timeout_ns <= 0) {
            snprintf(err, errlen, "invalid --ready-timeout value:%s (must be positive)", timeout);
            return -1;
        }
    }
    if (!check) {
        spec->kind = READY_NONE;
        return 0;
    }
    const char *hp = NULL;
    if (strncmp(check, "exec:", 5) == 0) {
        spec->kind = READY_EXEC;
        spec->command = check + 5;
        if (!*spec->command)
            goto bad;
        return 0;
    } else if (strncmp(check, "tcp:", 4) == 0) {
        spec->kind = READY_TCP;
        hp = check + 4;
        snprintf(spec->path, sizeof spec->path, "/");
    } else if (strncmp(check, "http://", 7) == 0) {
        spec->kind = READY_HTTP;
        hp = check + 7;
        const char *slash = strchr(hp, '/');
        snprintf(spec->path, sizeof spec->path, "%s", slash ? slash : "/");
    } else {
        goto bad;
    }
    /* host:port up to the path */
    size_t len = strcspn(hp, "/");
    char tmp[300];
    if (len == 0 || len >= sizeof tmp)
        goto bad;
    memcpy(tmp, hp, len);
    tmp[len] = '\0';
    char *colon = strrchr(tmp, ':');
    if (!colon || colon == tmp || !colon[1])
        goto bad;
    *colon = '\0';
    char *host = tmp;
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        host++;
    }
    for (const char *q = colon + 1; *q; q++)
        if (!isdigit((unsigned char)*q))
            goto bad;
    if (atoi(colon + 1) <= 0 || atoi(colon + 1) > 65535 || strlen(colon + 1) > 5)
        goto bad;
    if (strlen(host) >= sizeof spec->host)
        goto bad;
    memcpy(spec->host, host, strlen(host) + 1);
    snprintf(spec->port, sizeof spec->port, "%s", colon + 1);
    return 0;
bad:
    snprintf(err, errlen,
             "invalid --ready-check value:%s (expected tcp:HOST:PORT, http://HOST:PORT/PATH "
             "or exec:COMMAND)",
             check);
    return -1;
}

/* A tcp:/http: check on a TCP port start_server listens on itself would pass
 * on the old workers, which accept on the same socket: the gate would never
 * hold a new worker back. Refused, naming both. */
static int ready_on_shared_port(const struct ss_config *cfg, char *err, size_t errlen)
{
    if (cfg->ready.kind != READY_TCP && cfg->ready.kind != READY_HTTP)
        return 0;
    int port = atoi(cfg->ready.port);
    for (size_t i = 0; i < cfg->nports; i++) {
        struct ss_port_spec ps;
        if (ss_port_parse(cfg->ports[i], &ps) < 0 || ps.udp || ps.port != port)
            continue;
        snprintf(err, errlen,
                 "invalid --ready-check value:%s (port %d is --port=%s, the listening socket "
                 "the old workers share: it always answers; check a port only the new worker "
                 "answers, or use exec:)",
                 cfg->ready_check, port, cfg->ports[i]);
        return -1;
    }
    return 0;
}

int ss_options_parse(struct ss_config *cfg, int argc, char **argv)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->interval = 1;
    cfg->backlog = 0;
    int errors = 0;
    char **operands = calloc((size_t)argc + 1, sizeof *operands);
    if (!operands) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    int nop = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            while (++i < argc)
                operands[nop++] = argv[i];
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            operands[nop++] = argv[i];
            continue;
        }
        const char *name = a + 1;
        if (*name == '-')
            name++;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = opt_lookup(name, nlen);
        if (!o) {
            errors++;
            continue;
        }
        const char *value = NULL;
        if (o->type == OPT_BOOL) {
            if (eq) {
                fprintf(stderr, "Option %s does not take an argument\n", o->name);
                errors++;
                continue;
            }
        } else if (eq) {
            value = eq + 1;
            if (!*value) {
                fprintf(stderr, "Option %s requires an argument\n", o->name);
                errors++;
                continue;
            }
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fprintf(stderr, "Option %s requires an argument\n", o->name);
            errors++;
            continue;
        }
        if (opt_store(cfg, o, value) < 0)
            errors++;
    }
    cfg->argv = operands;
    cfg->argc = nop;
    if (errors)
        return -1;

    if (cfg->help || cfg->version || cfg->restart || cfg->stop)
        return 0;
    if (!cfg->signal_on_hup_name[0])
        snprintf(cfg->signal_on_hup_name, sizeof cfg->signal_on_hup_name, "TERM");
    if (!cfg->signal_on_term_name[0])
        snprintf(cfg->signal_on_term_name, sizeof cfg->signal_on_term_name, "TERM");
    char given[32];
    snprintf(given, sizeof given, "%s", cfg->signal_on_hup_name);
    cfg->signal_on_hup = ss_signal_parse(given, cfg->signal_on_hup_name,
                                         sizeof cfg->signal_on_hup_name);
    if (cfg->signal_on_hup < 0) {
        fprintf(stderr, "invalid signal name for --signal-on-hup:%s\n", given);
        return -1;
    }
    snprintf(given, sizeof given, "%s", cfg->signal_on_term_name);
    cfg->signal_on_term = ss_signal_parse(given, cfg->signal_on_term_name,
                                          sizeof cfg->signal_on_term_name);
    if (cfg->signal_on_term < 0) {
        fprintf(stderr, "invalid signal name for --signal-on-term:%s\n", given);
        return -1;
    }
    if (cfg->backlog == 0)
        cfg->backlog = SOMAXCONN;
    if (cfg->backlog > INT_MAX)
        cfg->backlog = INT_MAX;
    char err[512];
    if (ss_ready_parse(cfg->ready_check, cfg->ready_timeout, &cfg->ready, err, sizeof err) < 0 ||
        ready_on_shared_port(cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

void ss_usage(FILE *out)
{
    fputs(
        "Usage: start_server [options] -- server-prog server-arg1 server-arg2 ...\n"
        "\n"
        "A superdaemon for hot-deploying server programs (a drop-in for Perl's\n"
        "Server::Starter 0.35 start_server). It binds the listening sockets, runs the\n"
        "program with SERVER_STARTER_PORT=KEY=FD;... and SERVER_STARTER_GENERATION=N,\n"
        "and on SIGHUP starts a new generation on the same sockets; the old one gets\n"
        "--signal-on-hup only once the new one is up (and ready, see --ready-check).\n"
        "\n"
        "Options (--opt=value or --opt value; unique prefixes accepted):\n"
        "  --port=[HOST:][u]PORT[=FD]  TCP (u: UDP) port to bind, repeatable; HOST\n"
        "                          defaults to 0.0.0.0, [V6ADDR]:PORT for IPv6; =FD puts\n"
        "                          the socket on that file descriptor\n"
        "  --path=PATH             unix socket to listen on, repeatable\n"
        "  --dir=DIR               working directory of the server program\n"
        "  --interval=SECONDS      a new worker must stay alive this long to count as\n"
        "                          started; also the minimum respawn interval (default 1)\n"
        "  --signal-on-hup=SIGNAL  sent to old workers after a restart (default TERM)\n"
        "  --signal-on-term=SIGNAL sent to workers when start_server gets TERM (default TERM)\n"
        "  --pid-file=FILE         write start_server's pid to FILE (held under flock)\n"
        "  --status-file=FILE      write GEN:PID of every live worker to FILE\n"
        "  --envdir=DIR            environment for the workers, one variable per file,\n"
        "                          reread before every start (env ENVDIR)\n"
        "  --log-file=FILE         append stdout and stderr to FILE\n"
        "  --log-file='| CMD'      pipe stdout and stderr to CMD (run by /bin/sh)\n"
        "  --daemonize             fork, setsid, fork (needs --log-file)\n"
        "  --backlog=N             listen backlog (default SOMAXCONN)\n"
        "  --enable-auto-restart   start a new generation periodically (env\n"
        "                          ENABLE_AUTO_RESTART)\n"
        "  --auto-restart-interval=SECONDS  period of auto-restart (default 360; env\n"
        "                          AUTO_RESTART_INTERVAL)\n"
        "  --kill-old-delay=SECONDS  wait before signalling old workers (default 5 with\n"
        "                          auto-restart, else 0; env KILL_OLD_DELAY)\n"
        "  --ready-check=CHECK     a new worker counts as up only once CHECK passes:\n"
        "                          tcp:HOST:PORT (connects), http://HOST:PORT/PATH (2xx or\n"
        "                          3xx), exec:COMMAND (exit 0; run by /bin/sh with the\n"
        "                          worker's environment and SERVER_STARTER_WORKER_PID)\n"
        "  --ready-timeout=DURATION  give up on a new worker that is not ready after this\n"
        "                          long (10s, 1m30s or seconds; default 60s): it is stopped\n"
        "                          and the old workers keep serving\n"
        "  --restart               send HUP to the running start_server (--pid-file) and\n"
        "                          wait until a new generation took over (--status-file);\n"
        "                          exits non-zero when the new worker failed to start or\n"
        "                          to become ready\n"
        "  --stop                  send TERM to the running start_server (--pid-file) and\n"
        "                          wait until it exited\n"
        "  --help                  print this help\n"
        "  --version               print the Server::Starter version it is compatible with\n"
        "                          (0.35, as Perl's prints it)\n",
        out);
}
