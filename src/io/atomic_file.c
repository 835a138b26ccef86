/*
 * atomic_file.c: replacing a file so that a reader (or a crash) sees the old
 * contents or the new ones, never a torn mix: write "<path>.tmp.<pid>" in the
 * same directory, fflush + fsync, rename() it over path, fsync the directory.
 * On any failure the temporary is removed and an existing file at path is
 * left exactly as it was. Every file dsdeblur writes that a user could lose
 * work on (weights, checkpoints, configurations, images) goes through here.
 *
 * A process killed between create and rename (SIGKILL, power loss) leaves
 * its temporary behind; dsd_remove_stale_temporaries, which owns the same
 * naming, removes those of writers that are gone. Tests:
 * tests/test-train-tool.c (a dead writer's checkpoint and plot temporaries).
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* fsync the directory holding path so the rename itself is durable. Best
 * effort: the new file is already in place, so a failure here is not one of
 * the save. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (slash == path ? 1 : (size_t)(slash - path)) : 1;
    char *dir = malloc(len + 1);
    if (!dir)
        return;
    memcpy(dir, slash ? path : ".", len);
    dir[len] = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

dsd_status dsd_write_file_atomic(const char *path, const void *const *parts,
                                 const size_t *sizes, size_t count, dsd_error *err)
{
    if (!path || (count > 0 && (!parts || !sizes)))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_write_file_atomic: NULL argument");
    size_t tmp_size = strlen(path) + 32;
    char *tmp = malloc(tmp_size);
    if (!tmp)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    snprintf(tmp, tmp_size, "%s.tmp.%ld", path, (long)getpid());

    dsd_status status = DSD_OK;
    int created = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: cannot create %s: %s", path, tmp,
                          strerror(errno));
        goto done;
    }
    created = 1;
    for (size_t i = 0; i < count; i++) {
        if (sizes[i] > 0 && fwrite(parts[i], 1, sizes[i], f) != sizes[i]) {
            status = DSD_FAIL(err, DSD_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
            goto done;
        }
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        goto done;
    }
    int closed = fclose(f);
    f = NULL;
    if (closed != 0) {
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp,
                          strerror(errno));
        goto done;
    }
    created = 0;
    sync_parent_dir(path);
done:
    if (f)
        fclose(f);
    if (created)
        remove(tmp);
    free(tmp);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Temporaries left by writers that are gone */

/* A temporary older than this whose pid is alive belongs to a process that
 * reused the pid: no atomic write takes an hour. */
enum { STALE_AFTER_S = 3600 };

/* The writer's pid of a temporary name "<name>.tmp.<pid>" or
 * "<name>.tmp.<pid>.<n>" (src/io/image.c's), or -1 for any other name. */
static long temporary_pid(const char *name)
{
    const char *tmp = NULL;
    for (const char *p = strstr(name, ".tmp."); p; p = strstr(p + 1, ".tmp."))
        tmp = p;
    if (!tmp || tmp == name)
        return -1;
    const char *p = tmp + 5;
    long pid = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++)
        pid = pid * 10 + (*p - '0');
    if (!digits || pid <= 0)
        return -1;
    if (*p == '.') { /* ".<n>" */
        if (!p[1])
            return -1;
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    }
    return *p ? -1 : pid;
}

/* Whether the writer of a temporary with this pid and age is gone: no such
 * process, this very process (which has written nothing yet), or a pid
 * reused since (the file is older than any atomic write). */
static int writer_gone(long pid, const struct stat *st, time_t now)
{
    if (pid == (long)getpid())
        return 1;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return 1;
    return now - st->st_mtime > STALE_AFTER_S;
}

dsd_status dsd_remove_stale_temporaries(const char *dir, size_t *files, uint64_t *bytes,
                                        dsd_error *err)
{
    if (files)
        *files = 0;
    if (bytes)
        *bytes = 0;
    if (!dir)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_remove_stale_temporaries: NULL "
                        "folder");
    DIR *d = opendir(dir);
    if (!d)
        return DSD_FAIL(err, DSD_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    size_t dir_len = strlen(dir);
    time_t now = time(NULL);
    dsd_status status = DSD_OK;
    for (struct dirent *e; (e = readdir(d));) {
        long pid = temporary_pid(e->d_name);
        if (pid < 0)
            continue;
        size_t n = dir_len + strlen(e->d_name) + 2;
        char *path = malloc(n);
        if (!path) {
            status = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
            break;
        }
        snprintf(path, n, "%s/%s", dir, e->d_name);
        struct stat st;
        /* lstat: a link or a folder named like a temporary is not one */
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && writer_gone(pid, &st, now)) {
            if (unlink(path) == 0) {
                if (files)
                    ++*files;
                if (bytes)
                    *bytes += (uint64_t)st.st_size;
            } else if (errno != ENOENT && status == DSD_OK) {
                status = DSD_FAIL(err, DSD_ERR_IO, "%s: cannot remove this stale temporary "
                                  "file: %s", path, strerror(errno));
            }
        }
        free(path);
    }
    closedir(d);
    return status;
}
