/* log.h - leveled logging to stderr, one line per event, safe from any thread. */
#ifndef HERALD_CORE_LOG_H
#define HERALD_CORE_LOG_H

enum hr_log_level { HR_LOG_DEBUG = 0, HR_LOG_INFO, HR_LOG_WARN, HR_LOG_ERROR, HR_LOG_OFF };

void hr_log_set_level(int level);
int hr_log_get_level(void);
/* Parse "debug" / "info" / "warn" / "error" / "off"; -1 if unknown. */
int hr_log_level_parse(const char *s);
#define hr_log_level_valid(s) hr_log_level_parse(s)
void hr_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hr_debug(...) do { if (hr_log_get_level() <= HR_LOG_DEBUG) hr_log(HR_LOG_DEBUG, __VA_ARGS__); } while (0)
#define hr_info(...) hr_log(HR_LOG_INFO, __VA_ARGS__)
#define hr_warn(...) hr_log(HR_LOG_WARN, __VA_ARGS__)
#define hr_error(...) hr_log(HR_LOG_ERROR, __VA_ARGS__)

#endif
