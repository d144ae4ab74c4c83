/* iap: the Google IAP token source of wsgate-client. From a service-account
 * JSON it signs an RS256 assertion {iss, sub: client_email, aud: token
 * endpoint, iat, exp: +1h, target_audience: ID.apps.googleusercontent.com},
 * POSTs it (grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer) and
 * serves the returned id_token (access_token as a fallback). The first token
 * is fetched at startup; a refresher thread renews it ahead of expiry, so the
 * event loop only ever reads the cache (never blocks on the network). */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonlog.h"
#include "wsgate.h"

struct iap_source {
    struct wsg_token_source base;
    char *email, *key_pem, *key_id, *audience, *endpoint, *ca_file;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool thread_started, stop;
    char *token;   /* current token (mu) */
    time_t expiry; /* of token (mu) */
    char *served;  /* copy handed to the loop thread (loop thread only) */
};

struct buf {
    char *p;
    size_t n;
};

static size_t collect(char *data, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t len = size * nmemb;
    if (b->n + len > (1u << 20))
        return 0; /* a token answer is small */
    char *np = realloc(b->p, b->n + len + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, data, len);
    b->p = np;
    b->n += len;
    b->p[b->n] = '\0';
    return len;
}

static CURLcode add_ca(CURL *curl, void *sslctx, void *arg)
{
    (void)curl;
    const char *ca = arg;
    return SSL_CTX_load_verify_locations(sslctx, ca, NULL) == 1 ? CURLE_OK
                                                                : CURLE_SSL_CACERT_BADFILE;
}

/* Sign an assertion and exchange it for a token. 0 or -1 with err. */
static int fetch(struct iap_source *s, char **token, time_t *expiry, char *err, size_t errlen)
{
    time_t now = time(NULL);
    jwt_t *jwt = NULL;
    char *assertion = NULL;
    if (jwt_new(&jwt) == 0 && jwt_add_grant(jwt, "iss", s->email) == 0 &&
        jwt_add_grant(jwt, "sub", s->email) == 0 &&
        jwt_add_grant(jwt, "aud", s->endpoint) == 0 &&
        jwt_add_grant_int(jwt, "iat", (long)now) == 0 &&
        jwt_add_grant_int(jwt, "exp", (long)now + 3600) == 0 &&
        jwt_add_grant(jwt, "target_audience", s->audience) == 0 &&
        (!s->key_id || jwt_add_header(jwt, "kid", s->key_id) == 0) &&
        jwt_set_alg(jwt, JWT_ALG_RS256, (const unsigned char *)s->key_pem,
                    (int)strlen(s->key_pem)) == 0)
        assertion = jwt_encode_str(jwt);
    jwt_free(jwt);
    if (!assertion) {
        snprintf(err, errlen, "failed to sign the assertion with the credential's key");
        return -1;
    }
    CURL *c = curl_easy_init();
    if (!c) {
        free(assertion);
        snprintf(err, errlen, "curl init failed");
        return -1;
    }
    char *esc = curl_easy_escape(c, assertion, 0);
    free(assertion);
    size_t flen = strlen(esc ? esc : "") + 128;
    char *form = malloc(flen);
    if (!esc || !form) {
        curl_free(esc);
        free(form);
        curl_easy_cleanup(c);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(form, flen, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer"
                         "&assertion=%s", esc);
    curl_free(esc);
    struct buf b = { NULL, 0 };
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, s->endpoint);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    if (s->ca_file) {
        curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, add_ca);
        curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, s->ca_file);
    }
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    free(form);
    int ret = -1;
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "POST %s: %s", s->endpoint, cerr[0] ? cerr : curl_easy_strerror(rc));
    } else if (status != 200) {
        snprintf(err, errlen, "failed to get token: %ld from %s: %.200s", status, s->endpoint,
                 b.p ? b.p : "");
    } else {
        json_t *j = json_loadb(b.p ? b.p : "", b.n, 0, NULL);
        const char *tok = json_string_value(json_object_get(j, "id_token"));
        if (!tok)
            tok = json_string_value(json_object_get(j, "access_token"));
        json_t *ei = json_object_get(j, "expires_in");
        long life = json_is_integer(ei) ? (long)json_integer_value(ei) : 3600;
        if (life <= 0 || life > 86400)
            life = 3600;
        if (tok && *tok && (*token = strdup(tok)) != NULL) {
            *expiry = now + life;
            ret = 0;
        } else {
            snprintf(err, errlen, "token endpoint %s: no id_token or access_token in the answer",
                     s->endpoint);
        }
        json_decref(j);
    }
    free(b.p);
    return ret;
}

static void *refresher(void *arg)
{
    struct iap_source *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        /* renew when a fifth of the lifetime (at most 10 minutes) is left */
        time_t now = time(NULL), left = s->expiry - now;
        time_t ahead = left / 5 < 600 ? left / 5 : 600;
        struct timespec until = { s->expiry - ahead, 0 };
        if (now < until.tv_sec) {
            pthread_cond_timedwait(&s->cv, &s->mu, &until);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        char err[512], *tok = NULL;
        time_t exp = 0;
        int rc = fetch(s, &tok, &exp, err, sizeof err);
        pthread_mutex_lock(&s->mu);
        if (rc == 0) {
            free(s->token);
            s->token = tok;
            s->expiry = exp;
        } else {
            jsonlog(JSONLOG_WARN, "Regularly renewToken failed", JL_ERR(err));
            struct timespec retry = { time(NULL) + 30, 0 };
            pthread_cond_timedwait(&s->cv, &s->mu, &retry);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static const char *iap_get(struct wsg_token_source *ts, char *err, size_t errlen)
{
    struct iap_source *s = (struct iap_source *)ts;
    pthread_mutex_lock(&s->mu);
    char *copy = s->token && time(NULL) < s->expiry ? strdup(s->token) : NULL;
    pthread_mutex_unlock(&s->mu);
    if (!copy) {
        snprintf(err, errlen, "no valid IAP token (renewal failing, see the log)");
        return NULL;
    }
    free(s->served);
    s->served = copy;
    return s->served;
}

static void iap_free(struct wsg_token_source *ts)
{
    struct iap_source *s = (struct iap_source *)ts;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    free(s->email);
    free(s->key_pem);
    free(s->key_id);
    free(s->audience);
    free(s->endpoint);
    free(s->ca_file);
    free(s->token);
    free(s->served);
    free(s);
}

struct wsg_token_source *wsg_token_iap_new(const char *credfile, const char *client_id,
                                           const char *endpoint, const char *ca_file,
                                           char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_load_file(credfile, 0, &je);
    if (!j) {
        snprintf(err, errlen, "%s: %s", credfile, je.text);
        return NULL;
    }
    const char *email = json_string_value(json_object_get(j, "client_email"));
    const char *key = json_string_value(json_object_get(j, "private_key"));
    const char *kid = json_string_value(json_object_get(j, "private_key_id"));
    if (!email || !key) {
        snprintf(err, errlen, "%s: not a service account key (client_email, private_key)",
                 credfile);
        json_decref(j);
        return NULL;
    }
    struct iap_source *s = calloc(1, sizeof *s);
    if (!s) {
        json_decref(j);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.name = "iap";
    s->base.get = iap_get;
    s->base.free = iap_free;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&s->cv, &ca);
    s->email = strdup(email);
    s->key_pem = strdup(key);
    s->key_id = kid ? strdup(kid) : NULL;
    s->endpoint = strdup(endpoint && *endpoint ? endpoint : "https://oauth2.googleapis.com/token");
    s->ca_file = ca_file && *ca_file ? strdup(ca_file) : NULL;
    size_t al = strlen(client_id) + 40;
    s->audience = malloc(al);
    json_decref(j);
    if (!s->email || !s->key_pem || !s->endpoint || !s->audience) {
        iap_free(&s->base);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(s->audience, al, "%s.apps.googleusercontent.com", client_id);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (fetch(s, &s->token, &s->expiry, err, errlen) < 0) {
        iap_free(&s->base);
        return NULL;
    }
    if (pthread_create(&s->thread, NULL, refresher, s) == 0)
        s->thread_started = true;
    return &s->base;
}
