/*
 * atomic_file.c: replacing a file so that a reader (or a crash) sees the old
 * contents or the new ones, never a torn mix: write "<path>.tmp.<pid>" in the
 * same directory, fflush + fsync, rename() it over path, fsync the directory.
 * On any failure the temporary is removed and an existing file at path is
 * left exactly as it was. Every file dsdeblur writes that a user could lose
 * work on (weights, checkpoints, configurations, images) goes through here.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
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
