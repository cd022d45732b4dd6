/* Wakes every <interval_us> microseconds on CLOCK_MONOTONIC, <iterations> times, as cyclictest
 * does, and prints how late each wake-up came: "latency-us p50 <x> p99 <y> max <z>". With a third
 * argument "stay" it then waits to be stopped (an app that ends is restarted). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int Compare(const void* a, const void* b) {
  const long x = *(const long*)a;
  const long y = *(const long*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const long iterations = atol(argv[1]);
  const long interval_ns = atol(argv[2]) * 1000;
  long* late = calloc((size_t)iterations, sizeof *late);
  if (iterations <= 0 || interval_ns <= 0 || late == NULL) return 2;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (long i = 0; i < iterations; ++i) {
    next.tv_nsec += interval_ns;
    while (next.tv_nsec >= 1000000000) {
      next.tv_nsec -= 1000000000;
      ++next.tv_sec;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    late[i] = (now.tv_sec - next.tv_sec) * 1000000000L + (now.tv_nsec - next.tv_nsec);
  }
  qsort(late, (size_t)iterations, sizeof *late, Compare);
  printf("latency-us p50 %.1f p99 %.1f max %.1f\n", (double)late[iterations / 2] / 1000.0,
         (double)late[iterations * 99 / 100] / 1000.0, (double)late[iterations - 1] / 1000.0);
  fflush(stdout);
  free(late);
  if (argc > 3 && strcmp(argv[3], "stay") == 0) pause();
  return 0;
}
