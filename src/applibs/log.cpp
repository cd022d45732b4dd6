#include <applibs/log.h>

#include <cerrno>
#include <cstdio>

extern "C" int Log_DebugVarArgs(const char* fmt, va_list args) {
  if (fmt == nullptr) {
    errno = EFAULT;
    return -1;
  }
  return std::vfprintf(stderr, fmt, args) < 0 ? -1 : 0;
}

extern "C" int Log_Debug(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  const int result = Log_DebugVarArgs(fmt, args);
  va_end(args);
  return result;
}
