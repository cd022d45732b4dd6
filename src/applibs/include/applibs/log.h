/* Aspis applibs: debug messages (Azure Sphere's applibs/log.h). They go to the app's standard
 * error, which aspisd logs, prefixed with the app's name. Thread-safe. */
#pragma once

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Formats as printf does. Returns 0, or -1 with errno: EFAULT when fmt is NULL. */
int Log_Debug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int Log_DebugVarArgs(const char* fmt, va_list args);

#ifdef __cplusplus
}
#endif
