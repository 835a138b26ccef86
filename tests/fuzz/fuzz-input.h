/*
 * fuzz-input.h: hands a libFuzzer input to a library reader that takes a
 * path. The bytes go into one memfd (an anonymous regular file, so the
 * readers' fstat/S_ISREG checks pass and no disk is touched) and the reader
 * opens /proc/self/fd/N, which gives it a fresh file description, exactly as
 * opening a file on disk would. Shared by the harnesses in tests/fuzz/; not
 * part of the library. Linux only, like libFuzzer builds here.
 */
#ifndef DSDEBLUR_FUZZ_INPUT_H
#define DSDEBLUR_FUZZ_INPUT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* The path of a file holding exactly data[0..size); aborts (a harness bug,
 * which libFuzzer reports) if the memfd cannot be written. */
static const char *fuzz_input_path(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("dsdeblur-fuzz", MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) {
        perror("ftruncate");
        abort();
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0) {
            perror("pwrite");
            abort();
        }
        done += (size_t)n;
    }
    return path;
}

/* Aborts with the message when a reader's failure breaks its contract
 * (wrong status, or a message that does not name the file). */
#define FUZZ_REQUIRE(cond, ...)                                 \
    do {                                                        \
        if (!(cond)) {                                          \
            fprintf(stderr, "fuzz contract violated: " __VA_ARGS__); \
            fputc('\n', stderr);                                \
            abort();                                            \
        }                                                       \
    } while (0)

#endif /* DSDEBLUR_FUZZ_INPUT_H */
