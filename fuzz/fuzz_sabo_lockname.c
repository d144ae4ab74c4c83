/* libFuzzer target: sabo lock-file names as found in a shared work dir (any
 * bytes another program may have put there). A name that parses must format
 * to a canonical name of its own group that parses to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../sabo/lockname.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[256], again[LOCKNAME_MAX];
    struct lockname ln;
    if (size >= sizeof name)
        return 0;
    memcpy(name, data, size);
    name[size] = 0;
    if (lockname_parse(name, &ln) == 0) {
        if (ln.weight < 1 || ln.unit < 1 || ln.unit > ln.weight)
            abort();
        if (lockname_format(again, sizeof again, &ln) < 0)
            return 0;
        if (!lockname_in_group(again, ln.bw))
            abort();
        if (strcmp(again, name) != 0) {
            /* Different spellings of the same numbers (leading zeros) may
             * parse; the canonical form must parse to the same fields. */
            struct lockname ln2;
            if (lockname_parse(again, &ln2) != 0 || ln2.bw != ln.bw || ln2.pid != ln.pid ||
                ln2.weight != ln.weight || ln2.unit != ln.unit ||
                strcmp(ln2.unique, ln.unique) != 0)
                abort();
        }
    }
    return 0;
}
