/* envdir: the environment each worker is started with. Like Server::Starter's
 * _load_env (daemontools' envdir, simplified): every file in the directory
 * whose name does not start with "." sets the variable of that name to its
 * first line without the newline; an empty file sets nothing. The directory is
 * read again before every start, so a deploy can change the environment, and
 * a variable whose file was removed reverts to start_server's own value. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "starter.h"

static int env_find(char **env, size_t n, const char *name, size_t nlen)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(env[i], name, nlen) == 0 && env[i][nlen] == '=')
            return (int)i;
    return -1;
}

/* Set "name=value" (entry owned by env). */
static char **env_set(char **env, size_t *n, size_t *cap, const char *entry)
{
    const char *eq = strchr(entry, '=');
    if (!eq)
        return env;
    char *dup = strdup(entry);
    if (!dup)
        return env;
    int at = env_find(env, *n, entry, (size_t)(eq - entry));
    if (at >= 0) {
        free(env[at]);
        env[at] = dup;
        return env;
    }
    if (*n + 2 > *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        char **ne = realloc(env, nc * sizeof *ne);
        if (!ne) {
            free(dup);
            return env;
        }
        env = ne;
        *cap = nc;
    }
    env[(*n)++] = dup;
    env[*n] = NULL;
    return env;
}

static char *read_first_line(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len = getline(&line, &cap, f);
    fclose(f);
    if (len < 0) {
        free(line);
        return NULL;
    }
    if (len > 0 && line[len - 1] == '\n')
        line[len - 1] = '\0';
    return line;
}

char **ss_env_build(char **base, const char *dir, const char *const *extra)
{
    size_t n = 0, cap = 0;
    char **env = NULL;
    for (char **e = base; e && *e; e++)
        env = env_set(env, &n, &cap, *e);
    DIR *d = dir ? opendir(dir) : NULL;
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            size_t plen = strlen(dir) + strlen(de->d_name) + 2;
            char *path = malloc(plen);
            if (!path)
                continue;
            snprintf(path, plen, "%s/%s", dir, de->d_name);
            struct stat st;
            char *v = (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) ? read_first_line(path) : NULL;
            free(path);
            if (!v)
                continue;
            size_t elen = strlen(de->d_name) + strlen(v) + 2;
            char *entry = malloc(elen);
            if (entry) {
                snprintf(entry, elen, "%s=%s", de->d_name, v);
                env = env_set(env, &n, &cap, entry);
                free(entry);
            }
            free(v);
        }
        closedir(d);
    }
    for (const char *const *x = extra; x && *x; x++)
        env = env_set(env, &n, &cap, *x);
    if (!env)
        env = calloc(1, sizeof *env);
    return env;
}

void ss_env_free(char **env)
{
    for (char **e = env; e && *e; e++)
        free(*e);
    free(env);
}

const char *ss_env_get(char **env, const char *name)
{
    size_t nlen = strlen(name);
    for (char **e = env; e && *e; e++)
        if (strncmp(*e, name, nlen) == 0 && (*e)[nlen] == '=')
            return *e + nlen + 1;
    return NULL;
}
