/* libFuzzer target: start_server's value parsers — --port specs (Perl's
 * regular expressions: [HOST:][u]PORT[=FD], [V6]:PORT), --ready-check /
 * --ready-timeout and signal names. Must never crash; a parsed port is in
 * range, and its key and host are NUL-terminated within their buffers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../server-starter/options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[2048];
    if (size >= sizeof buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    struct ss_port_spec ps;
    if (ss_port_parse(buf, &ps) == 0) {
        if (ps.port < 0 || ps.port > 65535 || !memchr(ps.key, '\0', sizeof ps.key) ||
            !memchr(ps.host, '\0', sizeof ps.host))
            abort();
    }
    struct ready_spec rs;
    char err[512], norm[32];
    char *nl = strchr(buf, '\n');
    const char *timeout = NULL;
    if (nl) {
        *nl = '\0';
        timeout = nl + 1;
    }
    if (ss_ready_parse(buf, timeout, &rs, err, sizeof err) == 0 && rs.timeout_ns <= 0)
        abort();
    (void)ss_signal_parse(buf, norm, sizeof norm);
    return 0;
}
