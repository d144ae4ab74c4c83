/* scan: the two operations that walk all of /proc — finding a process by a regular
 * expression on its command line, and collecting a process tree. Only these allocate
 * in proportion to the number of processes; a plain --pid run never calls them. */
#ifndef OPSKIT_PS_SCAN_H
#define OPSKIT_PS_SCAN_H

#include <regex.h>
#include <stddef.h>

/* The newest (largest start time, then largest PID; like pgrep -n) or, with oldest,
 * the oldest matching process other than ourselves and our ancestors (whose command
 * lines hold the pattern too: `timeout 5 plugin --pattern x`). Processes with an empty command
 * line (kernel threads, zombies) never match. Returns the PID, 0 when nothing matches,
 * -1 with a message in err when /proc cannot be listed. */
long long ps_find_by_pattern(const char *proc_root, const regex_t *re, int oldest, char *err,
                             size_t errlen);

/* root and all its descendants (by parent PID), root first. *pids is malloc'd (the
 * caller frees it). Returns 0, or -1 with a message in err. */
int ps_tree_collect(const char *proc_root, long long root, long long **pids, size_t *n,
                    char *err, size_t errlen);

#endif
