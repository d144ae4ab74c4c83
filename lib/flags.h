/* flags: one command-line parser that accepts both spellings the originals use.
 *
 * FLAGS_GNU (go-flags tools: sabo, relaxlogs, wsgate-client, process-status):
 *   --name=value, --name value, -x value, -xvalue, bundled short booleans (-ab),
 *   "--" ends options; options and operands may be interleaved.
 * FLAGS_GO (Go "flag" tools: wsgate-server, motarei):
 *   -name value, -name=value, --name value, --name=value; booleans take
 *   -name or -name=true|false; the first non-flag argument or "--" ends options.
 *
 * Both styles recognise -h/--help (usage to stdout, exit 0 reported as
 * FLAGS_HELP) and whatever the table declares for version. Errors are one line
 * in an error buffer naming the culprit, e.g. "unknown flag: --foo",
 * "invalid value \"abc\" for --max-bandwidth: ...", "flag needs an argument: -map".
 * Numeric flags carry their valid range in the table (struct flag_spec.range):
 * "invalid value \"0\" for --weight: must be between 1 and 100". */
#ifndef OPSKIT_FLAGS_H
#define OPSKIT_FLAGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum flags_style { FLAGS_GNU, FLAGS_GO };

enum flag_kind {
    FLAG_BOOL,     /* int *: set to 1 (or 0 with =false in GO style) */
    FLAG_STRING,   /* const char **: points into argv */
    FLAG_INT,      /* long long *: decimal integer */
    FLAG_SIZE,     /* uint64_t *: units_parse_bytes */
    FLAG_DURATION, /* int64_t *: nanoseconds, units_parse_duration */
    FLAG_FUNC,     /* callback with the value; for repeatable or custom flags */
    FLAG_VERSION,  /* no target: flags_parse returns FLAGS_VERSION */
};

/* Callback for FLAG_FUNC: return 0, or -1 after writing a reason into err. */
typedef int (*flag_func)(void *target, const char *value, char *err, size_t errlen);

struct flag_spec {
    const char *name;     /* long name without dashes, e.g. "max-bandwidth"; may be NULL */
    char short_name;      /* e.g. 'v'; 0 for none */
    enum flag_kind kind;
    void *target;         /* where the value goes (see kind) */
    const char *arg_name; /* placeholder in usage, e.g. "SIZE"; NULL for booleans */
    const char *help;     /* one line for the usage text; may mention the default */
    flag_func func;       /* FLAG_FUNC only; FLAG_BOOL+func = boolean callback (value "true") */
    int *seen;            /* optional: set to 1 when the flag was given */
    const char *range;    /* FLAG_INT, FLAG_SIZE, FLAG_DURATION: the valid values, written
                             in the flag's own units as "MIN..MAX" or "MIN.." (no upper
                             bound), e.g. "1ms..1h", "1..256", "1KiB..1GiB"; a value outside
                             is refused with "invalid value \"-1s\" for -dial_timeout: must
                             be between 1ms and 1h". Required for those kinds (see
                             flags_check_def); NULL for the others. */
};

struct flags_def {
    const char *prog;     /* program name for messages and usage */
    const char *synopsis; /* e.g. "[OPTIONS] < input > output" */
    const char *description; /* paragraph printed after the synopsis; may be NULL */
    enum flags_style style;
    const struct flag_spec *specs; /* terminated by an entry with name==NULL && short_name==0 */
    int stop_at_operand;  /* GNU style: options end at the first operand (wrappers that
                             run a command: `wrap -x -- cmd -y` and `wrap -x cmd -y`) */
};

enum { FLAGS_OK = 0, FLAGS_ERROR = -1, FLAGS_HELP = 1, FLAGS_VERSION = 2 };

/* Check the table itself: every FLAG_INT, FLAG_SIZE and FLAG_DURATION flag has
 * a range that parses in its units with MIN <= MAX, and no other kind has one.
 * Returns 0, or -1 with "internal error: ..." in err. flags_parse_or_exit
 * runs it first, so a table without ranges cannot ship unnoticed. */
int flags_check_def(const struct flags_def *def, char *err, size_t errlen);

/* Parse argv[1..argc-1]. On FLAGS_OK, *first_operand is the index of the first
 * non-option argument (operands are moved to the end of argv in GNU style so
 * that argv[*first_operand..argc-1] are all operands). On FLAGS_ERROR a
 * one-line message is in err. */
int flags_parse(const struct flags_def *def, int argc, char **argv, int *first_operand,
                char *err, size_t errlen);

/* Print the usage text (synopsis, description, one line per flag). */
void flags_usage(const struct flags_def *def, FILE *out);

/* The common tail of every main(): handle the result of flags_parse.
 * FLAGS_HELP → usage on stdout, exit 0; FLAGS_VERSION → "<prog> version X", exit 0;
 * FLAGS_ERROR → "<prog>: <err>" on stderr plus a hint to --help, exit 1.
 * Returns only on FLAGS_OK. */
void flags_parse_or_exit(const struct flags_def *def, int argc, char **argv,
                         int *first_operand);

/* "<prog> version <OPSKIT_VERSION>" on stdout. */
void flags_print_version(const char *prog);

#endif
