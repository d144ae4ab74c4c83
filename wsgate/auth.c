/* auth: JWT verification for wsgate-server (RS256/384/512 with one RSA
 * public key) and the client's token sources. libjwt does the signature
 * work; the algorithm is pinned here first, because Debian 12's libjwt
 * 1.10.2 accepts an HS256 token whose HMAC secret is the public key PEM. */
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <stdbool.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wsgate.h"

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
        if (n == cap) {
            if (cap >= (1u << 20))
                break;
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The file is an X.509 certificate (golang-jwt's ParseRSAPublicKeyFromPEM
 * takes one too): its key, and a->pem replaced by that key as a PUBLIC KEY
 * PEM, which is what libjwt verifies with. *pk stays NULL when the file is no
 * certificate either. Returns -1 only when memory runs out. */
static int cert_pubkey(struct wsg_auth *a, EVP_PKEY **pk)
{
    BIO *in = BIO_new_mem_buf(a->pem, (int)a->pem_len);
    X509 *x = in ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
    BIO_free(in);
    *pk = x ? X509_get_pubkey(x) : NULL;
    X509_free(x);
    if (!*pk)
        return 0;
    BIO *out = BIO_new(BIO_s_mem());
    char *p;
    long n;
    char *pem = NULL;
    if (out && PEM_write_bio_PUBKEY(out, *pk) == 1 && (n = BIO_get_mem_data(out, &p)) > 0 &&
        (pem = malloc((size_t)n + 1))) {
        memcpy(pem, p, (size_t)n);
        pem[n] = '\0';
        free(a->pem);
        a->pem = pem;
        a->pem_len = (size_t)n;
    }
    BIO_free(out);
    if (!pem) {
        EVP_PKEY_free(*pk);
        *pk = NULL;
        return -1;
    }
    return 0;
}

int wsg_auth_load(struct wsg_auth *a, const char *path, int64_t freshness_ns, char *err,
                  size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->pem = read_file(path, &a->pem_len, err, errlen);
    if (!a->pem) {
        char tmp[600];
        snprintf(tmp, sizeof tmp, "failed read pubkey: %s", err);
        snprintf(err, errlen, "%s", tmp);
        return -1;
    }
    BIO *bio = BIO_new_mem_buf(a->pem, (int)a->pem_len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pk && cert_pubkey(a, &pk) < 0) {
        snprintf(err, errlen, "failed parse pubkey: %s: out of memory", path);
        free(a->pem);
        a->pem = NULL;
        return -1;
    }
    if (!pk || EVP_PKEY_base_id(pk) != EVP_PKEY_RSA) {
        snprintf(err, errlen, "failed parse pubkey: %s: %s", path,
                 pk ? "not an RSA key" : "no PEM public key found (nor a certificate)");
        EVP_PKEY_free(pk);
        free(a->pem);
        a->pem = NULL;
        return -1;
    }
    EVP_PKEY_free(pk);
    a->freshness_ns = freshness_ns;
    return 0;
}

void wsg_auth_free(struct wsg_auth *a)
{
    free(a->pem);
    a->pem = NULL;
}

/* base64url without padding → bytes (NUL-terminated). */
static unsigned char *b64url_decode(const char *s, size_t len, size_t *outlen)
{
    if (len > 65536)
        return NULL;
    char *tmp = malloc(len + 4);
    if (!tmp)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            free(tmp);
            return NULL;
        }
        tmp[n++] = c;
    }
    while (n % 4)
        tmp[n++] = '=';
    unsigned char *out = malloc(n / 4 * 3 + 1);
    if (!out) {
        free(tmp);
        return NULL;
    }
    int r = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)n);
    free(tmp);
    if (r < 0) {
        free(out);
        return NULL;
    }
    size_t pad = 0;
    for (size_t i = len; i < n; i++)
        pad++;
    *outlen = (size_t)r - pad;
    out[*outlen] = '\0';
    return out;
}

/* Is name allowed by the token's "dest" claim v (a list of names, or one
 * name)? Tokens without the claim allow every name, as the original does. */
static bool dest_allowed(json_t *v, const char *name)
{
    if (!v)
        return true;
    bool ok = false;
    if (json_is_string(v)) {
        ok = strcmp(json_string_value(v), name) == 0;
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (json_is_string(e) && strcmp(json_string_value(e), name) == 0)
                ok = true;
        }
    }
    return ok;
}

int wsg_auth_verify(const struct wsg_auth *a, const char *authorization, const char *dest,
                    char *sub, size_t sublen, char *err, size_t errlen)
{
    if (!authorization || !*authorization) {
        snprintf(err, errlen, "no tokenString");
        return -1;
    }
    const char *tok = authorization;
    if (strncmp(tok, "Bearer ", 7) == 0)
        tok += 7;
    const char *dot1 = strchr(tok, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot1 || !dot2 || strchr(dot2 + 1, '.')) {
        snprintf(err, errlen, "token is invalid: token is malformed");
        return -1;
    }
    size_t hl;
    unsigned char *hjson = b64url_decode(tok, (size_t)(dot1 - tok), &hl);
    json_t *h = hjson ? json_loadb((const char *)hjson, hl, 0, NULL) : NULL;
    free(hjson);
    const char *alg = h ? json_string_value(json_object_get(h, "alg")) : NULL;
    jwt_alg_t want;
    if (!alg) {
        json_decref(h);
        snprintf(err, errlen, "token is invalid: token is malformed");
        return -1;
    }
    if (strcmp(alg, "RS256") == 0)
        want = JWT_ALG_RS256;
    else if (strcmp(alg, "RS384") == 0)
        want = JWT_ALG_RS384;
    else if (strcmp(alg, "RS512") == 0)
        want = JWT_ALG_RS512;
    else {
        snprintf(err, errlen, "token is invalid: signing method %.20s is invalid", alg);
        json_decref(h);
        return -1;
    }
    json_decref(h);
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, tok, (const unsigned char *)a->pem, (int)a->pem_len) != 0 || !jwt) {
        snprintf(err, errlen, "token is invalid: signature is invalid");
        return -1;
    }
    if (jwt_get_alg(jwt) != want) {
        jwt_free(jwt);
        snprintf(err, errlen, "token is invalid: signing method is invalid");
        return -1;
    }
    char *claims = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    if (!claims) {
        snprintf(err, errlen, "token is invalid: token is malformed");
        return -1;
    }
    int rc = wsg_auth_check_claims(claims, strlen(claims), time(NULL), a->freshness_ns, dest,
                                   sub, sublen, err, errlen);
    free(claims);
    return rc;
}

/* A NumericDate claim (RFC 7519: a JSON number of seconds, not necessarily
 * whole). 1 = present (in *out), 0 = absent, -1 = present but not a number. */
static int numeric_date(json_t *claims, const char *name, double *out)
{
    json_t *v = json_object_get(claims, name);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return 1;
}

int wsg_auth_check_claims(const char *json, size_t len, time_t now, int64_t freshness_ns,
                          const char *dest, char *sub, size_t sublen, char *err, size_t errlen)
{
    static const char *const dates[] = {"exp", "iat", "nbf"};
    double at[3] = {0, 0, 0};
    int have[3];

    if (sublen)
        sub[0] = '\0';
    json_t *claims = json_loadb(json, len, 0, NULL);
    if (!json_is_object(claims)) {
        json_decref(claims);
        snprintf(err, errlen, "token is invalid: token is malformed");
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        have[i] = numeric_date(claims, dates[i], &at[i]);
        if (have[i] < 0) {
            json_decref(claims);
            snprintf(err, errlen, "token is malformed: invalid type for claim %s", dates[i]);
            return -1;
        }
    }
    const char *why = NULL;
    double t = (double)now, leeway = WSG_JWT_LEEWAY_S;
    if (!have[0] || at[0] < t)
        why = "token is expired";
    else if (!have[1] || at[1] < t - (double)freshness_ns / 1e9)
        why = "token is too old";
    else if (at[1] > t + leeway) /* minted ahead: would stay fresh until exp */
        why = "token used before issued";
    else if (have[2] && at[2] > t + leeway)
        why = "token is not valid yet";
    if (why) {
        json_decref(claims);
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    const char *s = json_string_value(json_object_get(claims, "sub"));
    snprintf(sub, sublen, "%s", s ? s : "");
    if (dest && !dest_allowed(json_object_get(claims, "dest"), dest)) {
        json_decref(claims);
        snprintf(err, errlen, "token does not allow destination %.200s", dest);
        return -2;
    }
    json_decref(claims);
    return 0;
}

/* ---- client: private-key token source ---- */

struct pk_source {
    struct wsg_token_source base;
    char *pem;
    size_t pem_len;
    char *user;
    char *token;
    time_t exp;
};

static const char *pk_get(struct wsg_token_source *ts, char *err, size_t errlen)
{
    struct pk_source *p = (struct pk_source *)ts;
    time_t now = time(NULL);
    if (p->token && now < p->exp - 10)
        return p->token;
    jwt_t *jwt = NULL;
    char *tok = NULL;
    if (jwt_new(&jwt) == 0 && jwt_add_grant(jwt, "sub", p->user) == 0 &&
        jwt_add_grant(jwt, "iss", "wsgatet-client") == 0 &&
        jwt_add_grant_int(jwt, "iat", (long)now) == 0 &&
        jwt_add_grant_int(jwt, "exp", (long)now + 60) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_RS256, (const unsigned char *)p->pem, (int)p->pem_len) == 0)
        tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    if (!tok) {
        snprintf(err, errlen, "failed to sign JWT with the private key");
        return NULL;
    }
    free(p->token);
    p->token = tok;
    p->exp = now + 60;
    return p->token;
}

static void pk_free(struct wsg_token_source *ts)
{
    struct pk_source *p = (struct pk_source *)ts;
    free(p->pem);
    free(p->user);
    free(p->token);
    free(p);
}

struct wsg_token_source *wsg_token_privatekey_new(const char *keyfile, const char *user,
                                                  char *err, size_t errlen)
{
    struct pk_source *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->base.name = "private-key";
    p->base.get = pk_get;
    p->base.free = pk_free;
    p->pem = read_file(keyfile, &p->pem_len, err, errlen);
    p->user = strdup(user);
    if (!p->pem || !p->user) {
        pk_free(&p->base);
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(p->pem, (int)p->pem_len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pk || EVP_PKEY_base_id(pk) != EVP_PKEY_RSA) {
        snprintf(err, errlen, "%s: %s", keyfile,
                 pk ? "not an RSA private key" : "no PEM private key found");
        EVP_PKEY_free(pk);
        pk_free(&p->base);
        return NULL;
    }
    EVP_PKEY_free(pk);
    char e2[256];
    if (!pk_get(&p->base, e2, sizeof e2)) {
        snprintf(err, errlen, "%s: %s", keyfile, e2);
        pk_free(&p->base);
        return NULL;
    }
    return &p->base;
}
