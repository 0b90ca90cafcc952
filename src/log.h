/* log.h - leveled log lines: "chorus host:pid LEVEL subsystem file:line: text". */
#ifndef CHORUS_LOG_H
#define CHORUS_LOG_H

typedef enum {
    CHORUS_LOG_NONE = 0,
    CHORUS_LOG_ERROR,
    CHORUS_LOG_WARN,
    CHORUS_LOG_INFO,
    CHORUS_LOG_DEBUG,
    CHORUS_LOG_TRACE
} chorus_log_level_t;

/* The level in force (CHORUS_LOG_LEVEL), read once. */
chorus_log_level_t chorus_log_level(void);
/* Parses a level name; returns -1 for an unknown name. */
int chorus_log_parse_level(const char *name);

void chorus_log_at(chorus_log_level_t level, const char *subsys, const char *file, int line,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define CHORUS_LOG(level, subsys, ...)                                            \
    do {                                                                          \
        if ((level) <= chorus_log_level())                                        \
            chorus_log_at((level), (subsys), __FILE__, __LINE__, __VA_ARGS__);    \
    } while (0)
#define LOG_ERROR(subsys, ...) CHORUS_LOG(CHORUS_LOG_ERROR, subsys, __VA_ARGS__)
#define LOG_WARN(subsys, ...) CHORUS_LOG(CHORUS_LOG_WARN, subsys, __VA_ARGS__)
#define LOG_INFO(subsys, ...) CHORUS_LOG(CHORUS_LOG_INFO, subsys, __VA_ARGS__)
#define LOG_DEBUG(subsys, ...) CHORUS_LOG(CHORUS_LOG_DEBUG, subsys, __VA_ARGS__)
#define LOG_TRACE(subsys, ...) CHORUS_LOG(CHORUS_LOG_TRACE, subsys, __VA_ARGS__)

#endif
