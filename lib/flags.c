/* flags: a small table-driven command-line parser accepting both spellings
 * of the originals (go-flags for most tools, Go's flag package for the
 * servers), with uniform one-line errors, --help and --version handling. */
#include "flags.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "units.h"
#include "version.h"

static int is_end(const struct flag_spec *f)
{
    return f->name == NULL && f->short_name == 0;
}

static const struct flag_spec *find_long(const struct flags_def *def, const char *name,
                                         size_t len)
{
    for (const struct flag_spec *f = def->specs; !is_end(f); f++)
        if (f->name && strlen(f->name) == len && strncmp(f->name, name, len) == 0)
            return f;
    return NULL;
}

static const struct flag_spec *find_short(const struct flags_def *def, char c)
{
    for (const struct flag_spec *f = def->specs; !is_end(f); f++)
        if (f->short_name == c)
            return f;
    return NULL;
}

/* How the user spelled the flag, for messages. */
static const char *display(const struct flags_def *def, const struct flag_spec *f, char *buf,
                           size_t len)
{
    if (f->name)
        snprintf(buf, len, "%s%s", def->style == FLAGS_GO ? "-" : "--", f->name);
    else
        snprintf(buf, len, "-%c", f->short_name);
    return buf;
}

static int parse_bool(const char *v, int *out)
{
    static const char *yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(v, yes[i]) == 0)
            return *out = 1, 0;
        if (strcmp(v, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

static int is_bool(const struct flag_spec *f)
{
    return f->kind == FLAG_BOOL || f->kind == FLAG_VERSION;
}

static int is_ranged(const struct flag_spec *f)
{
    return f->kind == FLAG_INT || f->kind == FLAG_SIZE || f->kind == FLAG_DURATION;
}

/* One value in the flag's units, widened so that one comparison serves all
 * three kinds (sizes are unsigned 64-bit, the others signed). */
struct num {
    int neg;
    uint64_t mag;
};

static int num_parse(const struct flag_spec *f, const char *text, struct num *out, char *why,
                     size_t whylen)
{
    switch (f->kind) {
    case FLAG_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || errno) {
            snprintf(why, whylen, "%s", errno == ERANGE ? "out of range" : "expected an integer");
            return -1;
        }
        out->neg = v < 0;
        out->mag = v < 0 ? -(uint64_t)v : (uint64_t)v;
        return 0;
    }
    case FLAG_SIZE: {
        uint64_t v;
        if (units_parse_bytes(text, &v, why, whylen) < 0)
            return -1;
        out->neg = 0;
        out->mag = v;
        return 0;
    }
    case FLAG_DURATION: {
        int64_t v;
        if (units_parse_duration(text, &v, why, whylen) < 0)
            return -1;
        out->neg = v < 0;
        out->mag = v < 0 ? -(uint64_t)v : (uint64_t)v;
        return 0;
    }
    default:
        snprintf(why, whylen, "not a numeric flag");
        return -1;
    }
}

static int num_cmp(struct num a, struct num b)
{
    if (a.neg != b.neg)
        return a.neg ? -1 : 1;
    if (a.mag == b.mag)
        return 0;
    return (a.mag < b.mag) == !a.neg ? -1 : 1;
}

/* Split f->range into its bounds. *has_max = 0 for "MIN..". */
static int range_parse(const struct flag_spec *f, struct num *min, struct num *max,
                       int *has_max, char *why, size_t whylen)
{
    char lo[64];
    const char *dots = f->range ? strstr(f->range, "..") : NULL;
    if (!dots || dots == f->range || (size_t)(dots - f->range) >= sizeof lo) {
        snprintf(why, whylen, "range \"%s\" is not MIN..MAX", f->range ? f->range : "");
        return -1;
    }
    memcpy(lo, f->range, (size_t)(dots - f->range));
    lo[dots - f->range] = '\0';
    if (num_parse(f, lo, min, why, whylen) < 0)
        return -1;
    *has_max = dots[2] != '\0';
    if (*has_max && num_parse(f, dots + 2, max, why, whylen) < 0)
        return -1;
    if (*has_max && num_cmp(*min, *max) > 0) {
        snprintf(why, whylen, "range \"%s\" is empty", f->range);
        return -1;
    }
    return 0;
}

int flags_check_def(const struct flags_def *def, char *err, size_t errlen)
{
    char name[80], why[160];
    for (const struct flag_spec *f = def->specs; !is_end(f); f++) {
        display(def, f, name, sizeof name);
        if (!is_ranged(f)) {
            if (f->range) {
                snprintf(err, errlen, "internal error: %s takes no range", name);
                return -1;
            }
            continue;
        }
        struct num min, max;
        int has_max;
        if (!f->range) {
            snprintf(err, errlen, "internal error: %s has no valid range", name);
            return -1;
        }
        if (range_parse(f, &min, &max, &has_max, why, sizeof why) < 0) {
            snprintf(err, errlen, "internal error: %s: %s", name, why);
            return -1;
        }
    }
    return 0;
}

/* Parse a numeric value, check it against the flag's range (when the table
 * gives one) and store it. */
static int apply_number(const struct flag_spec *f, const char *name, const char *value,
                        char *err, size_t errlen)
{
    char why[160];
    struct num v, min, max;
    int has_max = 0;

    if (num_parse(f, value, &v, why, sizeof why) < 0) {
        snprintf(err, errlen, "invalid value \"%s\" for %s: %s", value, name, why);
        return FLAGS_ERROR;
    }
    if (f->range) {
        if (range_parse(f, &min, &max, &has_max, why, sizeof why) < 0) {
            snprintf(err, errlen, "internal error: %s: %s", name, why);
            return FLAGS_ERROR;
        }
        const char *dots = strstr(f->range, "..");
        int below = num_cmp(v, min) < 0, above = has_max && num_cmp(v, max) > 0;
        if (below || above) {
            if (has_max)
                snprintf(err, errlen, "invalid value \"%s\" for %s: must be between %.*s and %s",
                         value, name, (int)(dots - f->range), f->range, dots + 2);
            else
                snprintf(err, errlen, "invalid value \"%s\" for %s: must be at least %.*s",
                         value, name, (int)(dots - f->range), f->range);
            return FLAGS_ERROR;
        }
    }
    switch (f->kind) {
    case FLAG_INT:
        *(long long *)f->target = v.neg ? (long long)-v.mag : (long long)v.mag;
        break;
    case FLAG_SIZE:
        *(uint64_t *)f->target = v.mag;
        break;
    default:
        *(int64_t *)f->target = v.neg ? (int64_t)-v.mag : (int64_t)v.mag;
        break;
    }
    return FLAGS_OK;
}

/* Store value (NULL for a bare boolean) into the flag's target. */
static int apply(const struct flags_def *def, const struct flag_spec *f, const char *value,
                 char *err, size_t errlen)
{
    char name[80], why[160];

    display(def, f, name, sizeof name);
    if (f->seen)
        *f->seen = 1;
    switch (f->kind) {
    case FLAG_VERSION:
        return FLAGS_VERSION;
    case FLAG_BOOL: {
        int b = 1;
        if (value && parse_bool(value, &b) < 0) {
            snprintf(err, errlen, "invalid boolean value \"%s\" for %s", value, name);
            return FLAGS_ERROR;
        }
        if (f->func)
            return f->func(f->target, b ? "true" : "false", err, errlen) < 0 ? FLAGS_ERROR
                                                                             : FLAGS_OK;
        if (f->target)
            *(int *)f->target = b;
        return FLAGS_OK;
    }
    case FLAG_STRING:
        *(const char **)f->target = value;
        return FLAGS_OK;
    case FLAG_INT:
    case FLAG_SIZE:
    case FLAG_DURATION:
        return apply_number(f, name, value, err, errlen);
    case FLAG_FUNC:
        why[0] = 0;
        if (f->func(f->target, value, why, sizeof why) < 0) {
            snprintf(err, errlen, "invalid value \"%s\" for %s: %s", value, name,
                     why[0] ? why : "rejected");
            return FLAGS_ERROR;
        }
        return FLAGS_OK;
    }
    snprintf(err, errlen, "internal error: bad flag kind for %s", name);
    return FLAGS_ERROR;
}

static int is_help(const struct flags_def *def, const char *name, size_t len)
{
    if (len == 4 && strncmp(name, "help", 4) == 0 && !find_long(def, "help", 4))
        return 1;
    return len == 1 && name[0] == 'h' && !find_short(def, 'h') && !find_long(def, "h", 1);
}

/* A long option (dashes already stripped): name[=value] with the value
 * possibly in the next argument. *i is advanced past what was consumed. */
static int parse_long(const struct flags_def *def, const char *arg, const char *dashes, int argc,
                      char **argv, int *i, char *err, size_t errlen)
{
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const struct flag_spec *f = find_long(def, arg, len);

    if (!f && len == 1)
        f = find_short(def, arg[0]);
    if (!f) {
        if (is_help(def, arg, len))
            return FLAGS_HELP;
        if (def->style == FLAGS_GO)
            snprintf(err, errlen, "flag provided but not defined: %s%.*s", dashes, (int)len, arg);
        else
            snprintf(err, errlen, "unknown flag: %s%.*s", dashes, (int)len, arg);
        return FLAGS_ERROR;
    }
    if (is_bool(f))
        return apply(def, f, eq ? eq + 1 : NULL, err, errlen);
    if (eq)
        return apply(def, f, eq + 1, err, errlen);
    if (*i + 1 >= argc) {
        char name[80];
        snprintf(err, errlen, "flag needs an argument: %s", display(def, f, name, sizeof name));
        return FLAGS_ERROR;
    }
    (*i)++;
    return apply(def, f, argv[*i], err, errlen);
}

/* A cluster of GNU short options: -abc, -xVALUE, -x VALUE, -x=VALUE. */
static int parse_short(const struct flags_def *def, const char *arg, int argc, char **argv,
                       int *i, char *err, size_t errlen)
{
    for (const char *p = arg; *p; p++) {
        const struct flag_spec *f = find_short(def, *p);
        if (!f) {
            if (*p == 'h' && !find_long(def, "h", 1))
                return FLAGS_HELP;
            snprintf(err, errlen, "unknown flag: -%c", *p);
            return FLAGS_ERROR;
        }
        if (is_bool(f)) {
            int r = apply(def, f, NULL, err, errlen);
            if (r != FLAGS_OK)
                return r;
            continue;
        }
        const char *v = p + 1;
        if (*v == '=')
            v++;
        if (*v)
            return apply(def, f, v, err, errlen);
        if (*i + 1 >= argc) {
            snprintf(err, errlen, "flag needs an argument: -%c", *p);
            return FLAGS_ERROR;
        }
        (*i)++;
        return apply(def, f, argv[*i], err, errlen);
    }
    return FLAGS_OK;
}

int flags_parse(const struct flags_def *def, int argc, char **argv, int *first_operand,
                char *err, size_t errlen)
{
    char **ops = calloc((size_t)argc + 1, sizeof *ops);
    int nops = 0, i, r = FLAGS_OK;

    if (!ops) {
        snprintf(err, errlen, "out of memory");
        return FLAGS_ERROR;
    }
    for (i = 1; i < argc && r == FLAGS_OK; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++)
                ops[nops++] = argv[i];
            break;
        }
        if (a[0] != '-' || a[1] == 0) {
            if (def->style == FLAGS_GO || def->stop_at_operand) {
                for (; i < argc; i++)
                    ops[nops++] = argv[i];
                break;
            }
            ops[nops++] = a;
            continue;
        }
        if (a[1] == '-') {
            if (a[2] == '-' || a[2] == '=') {
                snprintf(err, errlen, "bad flag syntax: %s", a);
                r = FLAGS_ERROR;
            } else {
                r = parse_long(def, a + 2, "--", argc, argv, &i, err, errlen);
            }
            continue;
        }
        /* Single dash: Go style is always a long name; GNU style takes a
         * known long name spelled with one dash too (-max-bandwidth), else
         * a cluster of short letters. */
        const char *eq = strchr(a + 1, '=');
        size_t len = eq ? (size_t)(eq - a - 1) : strlen(a + 1);
        if (def->style == FLAGS_GO || (len > 1 && find_long(def, a + 1, len))) {
            if (a[1] == '=') {
                snprintf(err, errlen, "bad flag syntax: %s", a);
                r = FLAGS_ERROR;
            } else {
                r = parse_long(def, a + 1, "-", argc, argv, &i, err, errlen);
            }
        } else {
            r = parse_short(def, a + 1, argc, argv, &i, err, errlen);
        }
    }
    if (r == FLAGS_OK) {
        /* Move the operands to the end, in order. */
        for (int k = 0; k < nops; k++)
            argv[argc - nops + k] = ops[k];
        *first_operand = argc - nops;
    }
    free(ops);
    return r;
}

static const char *kind_placeholder(const struct flag_spec *f)
{
    if (f->arg_name)
        return f->arg_name;
    switch (f->kind) {
    case FLAG_INT:
        return "N";
    case FLAG_SIZE:
        return "SIZE";
    case FLAG_DURATION:
        return "DURATION";
    default:
        return "VALUE";
    }
}

void flags_usage(const struct flags_def *def, FILE *out)
{
    if (def->style == FLAGS_GO) {
        fprintf(out, "Usage: %s %s\n", def->prog, def->synopsis ? def->synopsis : "[flags]");
        if (def->description)
            fprintf(out, "\n%s\n", def->description);
        fprintf(out, "\nFlags (-name value, -name=value; --name works too):\n");
        for (const struct flag_spec *f = def->specs; !is_end(f); f++) {
            const char *n = f->name;
            char sn[2] = {f->short_name, 0};
            if (is_bool(f))
                fprintf(out, "  -%s\n", n ? n : sn);
            else
                fprintf(out, "  -%s %s\n", n ? n : sn, kind_placeholder(f));
            fprintf(out, "    \t%s\n", f->help ? f->help : "");
        }
        fprintf(out, "  -h, -help\n    \tshow this help and exit\n");
        return;
    }
    fprintf(out, "Usage:\n  %s %s\n", def->prog, def->synopsis ? def->synopsis : "[OPTIONS]");
    if (def->description)
        fprintf(out, "\n%s\n", def->description);
    fprintf(out, "\nApplication Options:\n");
    for (const struct flag_spec *f = def->specs; !is_end(f); f++) {
        char left[96];
        int n = 0;
        if (f->short_name)
            n = snprintf(left, sizeof left, "  -%c%s", f->short_name, f->name ? ", " : "");
        else
            n = snprintf(left, sizeof left, "      ");
        if (f->name)
            n += snprintf(left + n, sizeof left - (size_t)n, "--%s", f->name);
        if (!is_bool(f))
            snprintf(left + n, sizeof left - (size_t)n, "%s%s", f->name ? "=" : " ",
                     kind_placeholder(f));
        fprintf(out, "%-34s %s\n", left, f->help ? f->help : "");
    }
    fprintf(out, "\nHelp Options:\n%-34s %s\n", "  -h, --help", "Show this help message");
}

void flags_print_version(const char *prog)
{
    /* the shape of the Go originals' -version: "NAME VER", "Compiler: NAME VER" */
    printf("%s %s\nCompiler: %s\n", prog, OPSKIT_VERSION,
#ifdef __clang__
           "clang " __clang_version__
#else
           "gcc " __VERSION__
#endif
    );
}

void flags_parse_or_exit(const struct flags_def *def, int argc, char **argv, int *first_operand)
{
    char err[512];
    if (flags_check_def(def, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", def->prog, err);
        exit(1);
    }
    switch (flags_parse(def, argc, argv, first_operand, err, sizeof err)) {
    case FLAGS_OK:
        return;
    case FLAGS_HELP:
        flags_usage(def, stdout);
        exit(0);
    case FLAGS_VERSION:
        flags_print_version(def->prog);
        exit(0);
    default:
        fprintf(stderr, "%s: %s (see %s --help)\n", def->prog, err, def->prog);
        exit(1);
    }
}
