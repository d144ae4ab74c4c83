/* libFuzzer target: the map file reader with wsgate-server's NAME,HOST:PORT
 * validator. Must never crash; an error must name the file and a line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mapfile.h"
#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(void *arg, const char *key, const char *value, int lineno, char *why,
                 size_t whylen)
{
    int *last = arg;
    char host[256], port[32];
    if (lineno <= *last || !*key || !*value)
        abort(); /* lines come in order, fields are never empty */
    *last = lineno;
    return net_split_hostport(value, host, sizeof host, port, sizeof port, why, whylen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    int last = 0;
    int n = mapfile_parse("fuzz.map", (const char *)data, size, "NAME,HOST:PORT", check, &last,
                          err, sizeof err);
    if (n < 0 && strncmp(err, "fuzz.map:", 9) != 0)
        abort();
    return 0;
}
