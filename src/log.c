/* log.c - writes log lines to stderr or CHORUS_LOG_FILE. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tunables.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static chorus_log_level_t level = CHORUS_LOG_WARN;
static FILE *out;
static char host[64];

static const char *const level_names[] = {"none", "error", "warn", "info", "debug", "trace"};

int chorus_log_parse_level(const char *name)
{
    for (int i = 0; i <= CHORUS_LOG_TRACE; i++)
        if (!strcasecmp(name, level_names[i]))
            return i;
    if (!strcasecmp(name, "warning"))
        return CHORUS_LOG_WARN;
    return -1;
}

/* Expands %h (host) and %p (pid) in the log file name. */
static void expand_path(const char *pattern, char *dst, size_t cap)
{
    size_t n = 0;
    for (const char *p = pattern; *p && n + 1 < cap; p++) {
        if (p[0] == '%' && (p[1] == 'h' || p[1] == 'p')) {
            int w = p[1] == 'h' ? snprintf(dst + n, cap - n, "%s", host)
                                : snprintf(dst + n, cap - n, "%d", (int)getpid());
            n += w > 0 ? (size_t)w : 0;
            if (n >= cap)
                n = cap - 1;
            p++;
        } else {
            dst[n++] = *p;
        }
    }
    dst[n] = '\0';
}

static void init(void)
{
    const struct chorus_tunables *t = chorus_tunables();
    gethostname(host, sizeof host - 1);
    out = stderr;
    int parsed = chorus_log_parse_level(t->LOG_LEVEL);
    if (parsed >= 0)
        level = (chorus_log_level_t)parsed;
    else
        fprintf(stderr, "chorus %s:%d WARN log: unknown CHORUS_LOG_LEVEL '%s', using warn\n",
                host, (int)getpid(), t->LOG_LEVEL);
    if (t->LOG_FILE[0]) {
        char path[512];
        expand_path(t->LOG_FILE, path, sizeof path);
        FILE *f = fopen(path, "a");
        if (f) {
            setvbuf(f, NULL, _IOLBF, 0);
            out = f;
        } else {
            fprintf(stderr, "chorus %s:%d WARN log: cannot open CHORUS_LOG_FILE '%s'\n", host,
                    (int)getpid(), path);
        }
    }
}

chorus_log_level_t chorus_log_level(void)
{
    pthread_once(&init_once, init);
    return level;
}

void chorus_log_at(chorus_log_level_t lvl, const char *subsys, const char *file, int line,
                   const char *fmt, ...)
{
    pthread_once(&init_once, init);
    static const char *const tags[] = {"", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
    const char *base = strrchr(file, '/');
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One fprintf per line so lines from threads do not interleave. */
    fprintf(out, "chorus %s:%d %s %s %s:%d: %s\n", host, (int)getpid(), tags[lvl], subsys,
            base ? base + 1 : file, line, msg);
}
