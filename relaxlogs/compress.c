/* compress: background gzip of finished log files with zlib. One worker thread
 * takes names from a small queue under a mutex; see compress.h for the
 * crash-safety protocol. The main thread never blocks on compression. */
#include "compress.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define COMPRESS_CHUNK (256 * 1024)

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int compress_file(const char *dir, const char *name, char *err, size_t errlen)
{
    char src[4096], tmp[4096], dst[4096];
    if ((size_t)snprintf(src, sizeof src, "%s/%s", dir, name) >= sizeof src ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/%s.gz.tmp", dir, name) >= sizeof tmp ||
        (size_t)snprintf(dst, sizeof dst, "%s/%s.gz", dir, name) >= sizeof dst) {
        snprintf(err, errlen, "compress %s: path too long", name);
        return -1;
    }
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        snprintf(err, errlen, "compress: open %s: %s", src, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(in, &st) < 0) {
        snprintf(err, errlen, "compress: stat %s: %s", src, strerror(errno));
        close(in);
        return -1;
    }
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        snprintf(err, errlen, "compress: create %s: %s", tmp, strerror(errno));
        close(in);
        return -1;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* windowBits 15 + 16: gzip wrapper. */
    if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        snprintf(err, errlen, "compress %s: deflateInit2 failed", name);
        close(in);
        close(out);
        unlink(tmp);
        return -1;
    }
    unsigned char *ibuf = malloc(COMPRESS_CHUNK), *obuf = malloc(COMPRESS_CHUNK);
    const char *what = NULL;
    int saved = 0;
    if (ibuf == NULL || obuf == NULL) {
        what = "out of memory";
        goto fail;
    }
    for (;;) {
        ssize_t n = read(in, ibuf, COMPRESS_CHUNK);
        if (n < 0) {
            if (errno == EINTR) continue;
            saved = errno;
            what = "read";
            goto fail;
        }
        zs.next_in = ibuf;
        zs.avail_in = (uInt)n;
        int flush = n == 0 ? Z_FINISH : Z_NO_FLUSH;
        int rc;
        do {
            zs.next_out = obuf;
            zs.avail_out = COMPRESS_CHUNK;
            rc = deflate(&zs, flush);
            if (rc == Z_STREAM_ERROR) {
                what = "deflate failed";
                goto fail;
            }
            if (write_all(out, obuf, COMPRESS_CHUNK - zs.avail_out) < 0) {
                saved = errno;
                what = "write";
                goto fail;
            }
        } while (zs.avail_out == 0);
        if (n == 0) {
            if (rc != Z_STREAM_END) {
                what = "deflate did not finish";
                goto fail;
            }
            break;
        }
    }
    if (fsync(out) < 0) {
        saved = errno;
        what = "fsync";
        goto fail;
    }
    /* If the original was purged (or removed by hand) meanwhile, do not
     * resurrect it as a .gz. */
    struct stat now;
    if (fstat(in, &now) == 0 && now.st_nlink == 0) {
        what = "original removed while compressing";
        goto fail;
    }
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    futimens(out, ts);
    if (close(out) < 0) {
        out = -1;
        saved = errno;
        what = "close";
        goto fail;
    }
    out = -1;
    if (rename(tmp, dst) < 0) {
        saved = errno;
        what = "rename";
        goto fail;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    unlink(src);
    deflateEnd(&zs);
    free(ibuf);
    free(obuf);
    close(in);
    return 0;
fail:
    if (saved)
        snprintf(err, errlen, "compress %s: %s: %s", name, what, strerror(saved));
    else
        snprintf(err, errlen, "compress %s: %s", name, what);
    deflateEnd(&zs);
    free(ibuf);
    free(obuf);
    close(in);
    if (out >= 0) close(out);
    unlink(tmp);
    return -1;
}

struct job {
    struct job *next;
    char name[];
};

struct compressor {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, **tail;
    int busy; /* worker is compressing a job it took off the queue */
    char busy_name[256];
    int stopping;
    char *dir; /* owned */
};

static void *compress_main(void *arg)
{
    struct compressor *c = arg;
    char err[512];
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->head == NULL && !c->stopping)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->head == NULL) break;
        struct job *j = c->head;
        c->head = j->next;
        if (c->head == NULL) c->tail = &c->head;
        c->busy = 1;
        snprintf(c->busy_name, sizeof c->busy_name, "%s", j->name);
        pthread_mutex_unlock(&c->mu);
        if (compress_file(c->dir, j->name, err, sizeof err) < 0)
            fprintf(stderr, "relaxlogs: %s (original kept)\n", err);
        free(j);
        pthread_mutex_lock(&c->mu);
        c->busy = 0;
        c->busy_name[0] = '\0';
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

struct compressor *compress_start(const char *dir)
{
    struct compressor *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->dir = strdup(dir);
    if (c->dir == NULL) {
        free(c);
        return NULL;
    }
    c->tail = &c->head;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    int rc = pthread_create(&c->thread, NULL, compress_main, c);
    if (rc != 0) {
        free(c->dir);
        free(c);
        errno = rc;
        return NULL;
    }
    return c;
}

void compress_enqueue(struct compressor *c, const char *name)
{
    pthread_mutex_lock(&c->mu);
    int dup = c->busy && strcmp(c->busy_name, name) == 0;
    for (struct job *j = c->head; j != NULL && !dup; j = j->next)
        dup = strcmp(j->name, name) == 0;
    if (!dup) {
        size_t n = strlen(name) + 1;
        struct job *j = malloc(sizeof *j + n);
        if (j != NULL) {
            memcpy(j->name, name, n);
            j->next = NULL;
            *c->tail = j;
            c->tail = &j->next;
            pthread_cond_signal(&c->cv);
        }
    }
    pthread_mutex_unlock(&c->mu);
}

int compress_pending(struct compressor *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->busy;
    for (struct job *j = c->head; j != NULL; j = j->next)
        n++;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void compress_stop(struct compressor *c, int drain)
{
    if (c == NULL) return;
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    if (!drain) {
        while (c->head != NULL) {
            struct job *j = c->head;
            c->head = j->next;
            free(j);
        }
        c->tail = &c->head;
    }
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->dir);
    free(c);
}
