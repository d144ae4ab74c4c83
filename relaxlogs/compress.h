/* compress: gzip finished log files in a background thread (zlib).
 *
 * Crash safety: X is compressed to X.gz.tmp, the temp file is fsync'ed and
 * renamed to X.gz, and only then is X unlinked. A crash at any point leaves X
 * intact (plus at worst a stale X.gz.tmp, which logdir removes at startup and
 * then compresses X again). The .gz keeps X's mtime so max-age still applies. */
#ifndef RELAXLOGS_COMPRESS_H
#define RELAXLOGS_COMPRESS_H

#include <stddef.h>

struct compressor;

/* Compress dir/name to dir/name.gz as described above, synchronously.
 * Returns 0, or -1 with a message in err (the original is left in place). */
int compress_file(const char *dir, const char *name, char *err, size_t errlen);

/* Start the background thread for files in dir. NULL on failure (errno set). */
struct compressor *compress_start(const char *dir);

/* Queue dir/name for compression (ignored if it is already queued). */
void compress_enqueue(struct compressor *c, const char *name);

/* Number of files queued or being compressed. */
int compress_pending(struct compressor *c);

/* Stop the thread and free c. With drain set every queued file is
 * compressed first; otherwise only the file in progress is finished and the
 * rest stays uncompressed (logdir queues such files again at startup). */
void compress_stop(struct compressor *c, int drain);

#endif
