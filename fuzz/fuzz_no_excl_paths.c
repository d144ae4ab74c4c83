/* libFuzzer target for open_no_excl.so's path handling (no_excl_open/nxo.c):
 * normalisation, joining, NO_EXCL_OPEN_PATHS parsing and matching, LD_PRELOAD
 * editing and the debug line. Input: "SPEC\0PATH\0BASE" (missing parts are
 * empty). Checks the invariants, not just absence of crashes. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../no_excl_open/nxo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_normal(const char *p)
{
    if (p[0] != '/') abort();
    if (strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../")) abort();
    size_t n = strlen(p);
    if (n > 1 && (p[n - 1] == '/' || strcmp(p + n - 2, "/.") == 0)) abort();
    if (n > 2 && strcmp(p + n - 3, "/..") == 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 6000) return 0;
    char buf[6003];
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = buf[size + 2] = '\0';
    const char *spec = buf;
    const char *path = spec + strlen(spec) + 1;
    if (path > buf + size) path = buf + size + 1;
    const char *base = path + strlen(path) + 1;
    if (base > buf + size + 1) base = buf + size + 2;

    /* normalisation: well-formed, idempotent, never longer */
    char norm[NXO_PATH_BUF], again[NXO_PATH_BUF];
    if (strlen(path) < sizeof norm) {
        strcpy(norm, path);
        size_t n = nxo_path_normalize(norm);
        if (path[0] == '/') {
            if (n != strlen(norm) || n > strlen(path)) abort();
            check_normal(norm);
            strcpy(again, norm);
            if (nxo_path_normalize(again) != n || strcmp(again, norm) != 0) abort();
        } else if (n != 0 || strcmp(norm, path) != 0) {
            abort();
        }
    }

    /* joining against a base */
    char abs[NXO_PATH_BUF];
    if (nxo_path_absolute(abs, sizeof abs, base[0] ? base : NULL, path) == 0) check_normal(abs);

    /* parsing into a small list and matching */
    char list[256];
    int entries = nxo_paths_parse(list, sizeof list, spec, "/cwd");
    int seen = 0;
    for (const char *e = list; *e != '\0'; e += strlen(e) + 1) {
        check_normal(e);
        seen++;
        if (!nxo_path_under(e, e)) abort();
    }
    if (entries >= 0 && entries != seen) abort();
    if (path[0] == '/' && strlen(path) < sizeof norm) {
        int m = nxo_paths_match(list, norm);
        int any = 0;
        for (const char *e = list; *e != '\0'; e += strlen(e) + 1) {
            size_t l = strlen(e);
            if (strcmp(e, "/") == 0 ||
                (strncmp(norm, e, l) == 0 && (norm[l] == '\0' || norm[l] == '/')))
                any = 1;
        }
        if (m != any) abort();
    }

    /* LD_PRELOAD editing: never grows, never leaves our entry behind */
    char pre[6003];
    strcpy(pre, spec);
    size_t before = strlen(pre);
    int removed = nxo_preload_strip(pre, "/usr/local/lib/open_no_excl.so");
    if (strlen(pre) > before || (!removed && strcmp(pre, spec) != 0)) abort();
    for (char *t = pre; *t != '\0';) {
        size_t l = strcspn(t, " :");
        if (l >= 15 && memcmp(t + l - 15, "open_no_excl.so", 15) == 0 &&
            (l == 15 || t[l - 16] == '/'))
            abort();
        t += l;
        t += strspn(t, " :");
    }

    /* the debug line: one line, NUL-terminated, within the buffer */
    for (size_t cap = 3; cap < 200; cap += 61) {
        char line[200];
        size_t n = nxo_debug_format(line, cap, "O_EXCL dropped", "openat", (int)size - 5, path,
                                    (int)(size * 2654435761u), (unsigned)size, -1, 2);
        if (n >= cap || line[n] != '\0' || line[n - 1] != '\n' || memchr(line, '\n', n - 1))
            abort();
    }
    return 0;
}
