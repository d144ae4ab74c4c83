/* libFuzzer target: the /proc, cgroup, pid-file and state-file parsers of
 * mackerel-plugin-linux-process-status on arbitrary bytes. The whole input goes to
 * every parser (each takes buf+len and must stay inside it; the copy is exact-size so
 * ASan sees any over-read), and a state that parses must survive a format/parse round
 * trip unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../process-status/procfs.h"
#include "../process-status/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1); /* +1 only for ps_cmdline_join's terminator */
    if (!buf)
        return 0;
    memcpy(buf, data, size);

    struct ps_pid_stat st;
    struct ps_cpu_stat cpu;
    struct ps_status status;
    struct ps_io io;
    uint64_t u;
    long long pid;
    char v2[128], v1[128], key[64], err[256];
    (void)ps_parse_pid_stat(buf, size, &st);
    (void)ps_parse_cpu_stat(buf, size, &cpu);
    (void)ps_parse_limits_nofile(buf, size, &u);
    (void)ps_parse_meminfo_total(buf, size, &u);
    (void)ps_parse_status(buf, size, &status);
    (void)ps_parse_io(buf, size, &io);
    if (ps_parse_cgroup(buf, size, v2, sizeof v2, v1, sizeof v1) == 0) {
        if (strstr(v2, "/../") || strstr(v1, "/../"))
            abort();
    }
    (void)ps_parse_mem_limit(buf, size, &u);
    if (ps_parse_pid_text(buf, size, &pid) == 0 && pid <= 0)
        abort();

    struct ps_state s1, s2;
    if (ps_state_parse(buf, size, &s1, err, sizeof err) == 0) {
        char out[4096];
        size_t n = ps_state_format(&s1, out, sizeof out);
        if (n == 0 || ps_state_parse(out, n, &s2, err, sizeof err) != 0 ||
            memcmp(&s1, &s2, sizeof s1) != 0)
            abort();
    }

    /* NUL-terminated uses */
    char *cstr = malloc(size + 1);
    if (cstr) {
        memcpy(cstr, data, size);
        cstr[size] = '\0';
        char esc[PS_STATE_KEY_MAX + 1];
        (void)ps_state_escape_key(cstr, esc, sizeof esc);
        ps_sanitize_key(cstr, key, sizeof key);
        free(cstr);
    }
    (void)ps_cmdline_join(buf, size);
    free(buf);
    return 0;
}
