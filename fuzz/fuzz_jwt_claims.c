/* libFuzzer target for wsgate-server's token path (wsgate/auth.c): the
 * input is checked as a claims set (the payload of a verified token) at a
 * few clocks, and fed whole as an Authorization header to the verifier with
 * a fixed RSA key (header decoding, algorithm pinning, libjwt). Must never
 * crash; a claims set that is accepted must really satisfy the rules. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../wsgate/wsgate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char pubkey[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAscy/5vk742LGjkt66wCJ\n"
    "a1Noirscqzdb3xDBpPOZXHHEj5PF1CADrDMBXIjBp7cqBIdV7ku0IY0eyMfWhzeT\n"
    "uBB6e7aHCHH5fRwX5EyJTvSutwqn6KYMlYffJ6MgzquMCpi2L8pM+Hb9fZBTjFJb\n"
    "R5PAaT0RLFQORIxlsgwyBVeJL2wuLlvBJBmCGULaK5IpX1Buyn3hd8jWR8j1ydsJ\n"
    "q+Cao/vaWCG3dr9jNkpr/yu+CHWkVA40CjZH77xN4y48IMHM2xNRNBVIq8LjF4Fr\n"
    "YdYuodeyaz9KFPoqcYHCorLKbad5Q4MLoFvNipIF89rWzKGowjfgAlzTjstHlkv6\n"
    "WQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

/* An accepted claims set must have what wsg_auth_check_claims promises. */
static void check_accepted(const uint8_t *data, size_t size, time_t now, int64_t fresh)
{
    json_t *c = json_loadb((const char *)data, size, 0, NULL);
    json_t *exp = json_object_get(c, "exp"), *iat = json_object_get(c, "iat");
    json_t *nbf = json_object_get(c, "nbf");
    double t = (double)now;
    if (!json_is_number(exp) || json_number_value(exp) < t)
        abort();
    if (!json_is_number(iat) || json_number_value(iat) < t - (double)fresh / 1e9 ||
        json_number_value(iat) > t + WSG_JWT_LEEWAY_S)
        abort();
    if (nbf && (!json_is_number(nbf) || json_number_value(nbf) > t + WSG_JWT_LEEWAY_S))
        abort();
    json_decref(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const time_t clocks[] = {0, 1700000000, (time_t)1 << 40};
    static const int64_t fresh[] = {0, 3600000000000LL};
    char sub[256], err[512];

    for (size_t i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
        for (size_t j = 0; j < 2; j++) {
            err[0] = 0;
            int rc = wsg_auth_check_claims((const char *)data, size, clocks[i], fresh[j],
                                           j ? "mysql" : NULL, sub, sizeof sub, err,
                                           sizeof err);
            if (rc != 0 && rc != -1 && rc != -2)
                abort();
            if (rc != 0 && !err[0])
                abort();
            if (rc != -1)
                check_accepted(data, size, clocks[i], fresh[j]);
        }
    }

    char *hdr = malloc(size + 8);
    if (!hdr)
        return 0;
    memcpy(hdr, "Bearer ", 7);
    memcpy(hdr + 7, data, size);
    hdr[size + 7] = 0;
    struct wsg_auth a = {.pem = (char *)pubkey, .pem_len = sizeof pubkey - 1,
                         .freshness_ns = 3600000000000LL};
    err[0] = 0;
    int rc = wsg_auth_verify(&a, memchr(data, 0, size) ? "" : hdr, "mysql", sub, sizeof sub, err,
                             sizeof err);
    if (rc != 0 && !err[0])
        abort();
    if (rc == 0)
        abort(); /* nobody can sign with the fuzzer's key */
    free(hdr);
    return 0;
}
