/* libFuzzer target: motarei's Docker JSON parsers. The input is fed as a
 * container list, as one event line, and through the event-stream line
 * splitter in two pieces; the parsed list must be sorted and every port
 * must be a valid TCP port entry. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../motarei/motarei.h"

static void on_line(void *arg, const char *line, size_t len)
{
    struct mt_event ev;
    char err[128];
    (void)arg;
    (void)mt_parse_event(line, len, &ev, err, sizeof err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mt_list l;
    char err[256];
    if (mt_parse_containers((const char *)data, size, &l, err, sizeof err) == 0) {
        for (size_t i = 0; i + 1 < l.n; i++) {
            if (l.c[i].created < l.c[i + 1].created ||
                (l.c[i].created == l.c[i + 1].created && strcmp(l.c[i].id, l.c[i + 1].id) > 0))
                abort();
        }
        for (size_t i = 0; i < l.n; i++)
            for (size_t k = 0; k < l.c[i].nports; k++)
                if (l.c[i].ports[k].private_port == 0)
                    abort();
        uint16_t ports[] = { 80, 443 };
        struct mt_snapshot *s = mt_snapshot_build(&l, ports, 2, NULL, NULL, 1);
        mt_snapshot_unref(s);
        mt_list_free(&l);
    }
    struct mt_event ev;
    (void)mt_parse_event((const char *)data, size, &ev, err, sizeof err);
    struct mt_linebuf lb = { .max = 4096 };
    size_t half = size / 2;
    mt_linebuf_feed(&lb, (const char *)data, half, on_line, NULL);
    mt_linebuf_feed(&lb, (const char *)data + half, size - half, on_line, NULL);
    mt_linebuf_free(&lb);
    return 0;
}
