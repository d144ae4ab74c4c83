/* lockname: the names of sabo's lock files, shared with the original (Go) sabo.
 *
 * A member of the group "<bw>" (the parsed --max-bandwidth in bytes/s) holds
 * an flock on   sabo_<bw>_<pid>_<unique>.lock
 * created as   _sabo_<bw>_<pid>_<unique>.lock   and renamed once locked.
 * <unique> is 20 characters of [0-9a-v], the shape of the original's xid.
 *
 * --weight W (W > 1) is expressed the only way the original can see it: the
 * member holds W locked files, one "unit" each, so every member - ours or the
 * original's - counts W units for it and the shares agree exactly:
 *   sabo_<bw>_<pid>_<unique>_w<W>.lock        (unit 1)
 *   sabo_<bw>_<pid>_<unique>_w<W>_<k>.lock    (unit k, k = 2..W)
 * A file without "_w" is a weight-1 member (the original's or ours). */
#ifndef SABO_LOCKNAME_H
#define SABO_LOCKNAME_H

#include <stddef.h>
#include <stdint.h>

#define LOCKNAME_UNIQUE_LEN 20
#define LOCKNAME_MAX 128
#define LOCKNAME_MAX_WEIGHT 100

struct lockname {
    uint64_t bw;
    long pid;
    char unique[LOCKNAME_UNIQUE_LEN + 1];
    unsigned weight; /* 1 when the name has no _w<W> part */
    unsigned unit;   /* 1..weight */
};

/* Fill unique with LOCKNAME_UNIQUE_LEN characters of [0-9a-v] derived from
 * the 20 random bytes in rnd, plus a NUL. */
void lockname_unique(char *unique, const unsigned char rnd[LOCKNAME_UNIQUE_LEN]);

/* Format the final (renamed) name of one unit; the temporary name is the same
 * with a leading '_'. Returns the length, or -1 if it does not fit in len. */
int lockname_format(char *buf, size_t len, const struct lockname *ln);

/* "sabo_<bw>_" into buf: every file whose name starts with it is a member unit
 * of the same group (this is the original's rule). Returns the length or -1. */
int lockname_group_prefix(char *buf, size_t len, uint64_t bw);

/* Does name start with the group prefix of bw? */
int lockname_in_group(const char *name, uint64_t bw);

/* Parse a final name written by us or the original. Returns 0, or -1 if the
 * name is not a well-formed sabo lock file name (it may still count for the
 * group: counting goes by prefix only, as in the original). */
int lockname_parse(const char *name, struct lockname *out);

#endif
