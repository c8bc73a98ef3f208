/*
 * clock-shift: an LD_PRELOAD shim that moves the wall clock of a process tree by
 * CLOCK_SHIFT_SECONDS (monotonic clocks are untouched, so timers and timeouts behave).
 * `npm run test:clock` uses it to run the whole suite a year ahead or behind, proving that no
 * test depends on the calendar. libfaketime does the same job but deadlocks workerd (tcmalloc
 * allocates inside libfaketime's dlsym during start-up) and redis-server (jemalloc); this shim
 * never allocates and calls the kernel directly, so it needs no dlsym.
 *
 * What moves: clock_gettime(CLOCK_REALTIME…), gettimeofday and time() — the clocks of JavaScript's
 * Date (V8 in Node, workerd and Deno) and of Postgres. One exception: time() in workerd, which uses
 * it only to refuse compatibility dates "in the future" at start-up (Miniflare's own internal worker
 * pins one a few months old, so a clock moved back a year could not start it otherwise).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long shift_seconds(void) {
  static long shift = 0;
  static int known = 0;
  if (!known) {
    const char *s = getenv("CLOCK_SHIFT_SECONDS");
    shift = s ? strtol(s, 0, 10) : 0;
    known = 1;
  }
  return shift;
}

int clock_gettime(clockid_t clk, struct timespec *ts) {
  long r = syscall(SYS_clock_gettime, clk, ts);
  if (r == 0 && ts && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE || clk == CLOCK_TAI))
    ts->tv_sec += shift_seconds();
  return (int)r;
}

int gettimeofday(struct timeval *tv, void *tz) {
  struct timespec ts;
  (void)tz;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
  if (tv) {
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
  }
  return 0;
}

time_t time(time_t *t) {
  static int is_workerd = -1;
  if (is_workerd < 0) is_workerd = strstr(program_invocation_short_name, "workerd") != NULL;
  struct timespec ts;
  if (syscall(SYS_clock_gettime, CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
  if (!is_workerd) ts.tv_sec += shift_seconds();
  if (t) *t = ts.tv_sec;
  return ts.tv_sec;
}
