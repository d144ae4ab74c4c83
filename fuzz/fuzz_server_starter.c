/* libFuzzer target: SERVER_STARTER_PORT parsing ("host:port=fd;port=fd") and
 * the host:port splitter applied to each address. Must never crash; parsed
 * fds are non-negative and addresses NUL-terminated within their buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char env[1024], err[256], host[256], port[32];
    if (size >= sizeof env)
        return 0;
    memcpy(env, data, size);
    env[size] = '\0';
    struct net_starter_port p[8];
    int n = net_starter_parse(env, p, 8, err, sizeof err);
    for (int i = 0; i < n; i++) {
        if (p[i].fd < 0 || memchr(p[i].addr, '\0', sizeof p[i].addr) == NULL)
            abort();
        (void)net_split_hostport(p[i].addr, host, sizeof host, port, sizeof port, err,
                                 sizeof err);
    }
    (void)net_split_hostport(env, host, sizeof host, port, sizeof port, err, sizeof err);
    return 0;
}
