/* mapfile: reader for the small "KEY,VALUE" per line files of wsgate-server
 * (NAME,HOST:PORT) and wsgate-client (LISTEN_ADDR,URL). A line whose first
 * non-blank character is '#' is a comment, blank lines are skipped, spaces
 * around both fields are trimmed, CRLF endings are accepted, a UTF-8 byte order
 * mark at the start of the file is skipped. A malformed line
 * is reported as "map.txt:3: expected NAME,HOST:PORT" (plus ": why" when the
 * caller's validator said why), never skipped. */
#ifndef OPSKIT_MAPFILE_H
#define OPSKIT_MAPFILE_H

#include <stddef.h>

/* Called for each entry with NUL-terminated, trimmed key and value (valid
 * only during the call) and the 1-based line number. Return 0 to accept;
 * -1 when the line does not have the expected form ("map.txt:3: expected
 * NAME,HOST:PORT: why", why may be left empty); or -2 when it has the form
 * but a value is wrong ("map.txt:3: why", e.g. "invalid port in ..."). */
typedef int (*mapfile_cb)(void *arg, const char *key, const char *value, int lineno,
                          char *why, size_t whylen);

/* Parse len bytes of buf as a map file called name (for messages). expect is
 * the line format for messages, e.g. "NAME,HOST:PORT". Returns the number of
 * entries accepted (0 for an empty file), or -1 with a one-line message in err. */
int mapfile_parse(const char *name, const char *buf, size_t len, const char *expect,
                  mapfile_cb cb, void *arg, char *err, size_t errlen);

/* Read path (at most 16 MiB) and parse it as above. An unreadable file gives
 * "open map.txt: No such file or directory". */
int mapfile_load(const char *path, const char *expect, mapfile_cb cb, void *arg, char *err,
                 size_t errlen);

#endif
