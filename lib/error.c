/* lib/error.c - weft_strerror and weft__panic. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

/* Errors weft's own calls return, with the text weft gives them. Other
 * values fall through to a generic text: never NULL. */
#define WEFT_ERRNO_MAP(X)                                                    \
    X(0, "success")                                                          \
    X(EINVAL, "invalid argument")                                            \
    X(ENOMEM, "out of memory")                                               \
    X(EAGAIN, "resource temporarily unavailable")                            \
    X(ETIMEDOUT, "timed out")                                                \
    X(ECANCELED, "cancelled")                                                \
    X(EDEADLK, "would deadlock")                                             \
    X(EPIPE, "channel closed")                                               \
    X(EBUSY, "busy")                                                         \
    X(EPERM, "not the owner")                                                \
    X(ESRCH, "task already finished")                                        \
    X(EOVERFLOW, "count would overflow")                                     \
    X(EINTR, "interrupted")

const char *weft_strerror(int err) {
#define WEFT_STRERROR_CASE(code, text)                                       \
    case -(code):                                                            \
        return text;
    switch (err) {
        WEFT_ERRNO_MAP(WEFT_STRERROR_CASE)
    default:
        return err < 0 ? "unknown error" : "not an error code";
    }
#undef WEFT_STRERROR_CASE
}

void weft__panic(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t unused = write(STDERR_FILENO, buf, (size_t)n);
    (void)unused;
    abort();
}
