/*
 * image.c: loading, saving and converting 8-bit RGB images (see
 * dsdeblur_image.h for the contract). Host only, no OpenCL.
 *
 * What it does: checks the file (exists, regular, non-empty), reads the
 * header with stbi_info and refuses absurd sizes before anything is
 * allocated, decodes with stb_image forcing 3 channels, and encodes with
 * stb_image_write into a temporary file that is fsynced and renamed. What it
 * does not: colour management (ICC profiles and PNG gamma are ignored, as stb
 * ignores them), EXIF orientation, alpha compositing, animation (a GIF gives
 * its first frame), 16-bit output.
 *
 * stb comes from Debian's libstb-dev, which compiles the implementations into
 * libstb; so this file includes the headers only and never defines
 * STB_IMAGE_IMPLEMENTATION / STB_IMAGE_WRITE_IMPLEMENTATION. libstb's few
 * process-wide switches (flip on load/write, PNG compression level,
 * unpremultiply) are left at their defaults and never touched here; its
 * failure reason is thread-local in this stb version.
 * Reference: the comments at the top of stb_image.h and stb_image_write.h.
 */
#include "internal.h"
#include "dsdeblur_image.h"

#include <stb_image.h>
#include <stb_image_write.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* The image type */

void dsd_image_init(dsd_image *img)
{
    memset(img, 0, sizeof *img);
}

void dsd_image_free(dsd_image *img)
{
    if (!img)
        return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

/* Non-zero when width x height is acceptable (sides 1..MAX_SIDE, area within
 * MAX_PIXELS). */
static int size_ok(int64_t width, int64_t height)
{
    return width >= 1 && height >= 1 && width <= DSD_IMAGE_MAX_SIDE &&
           height <= DSD_IMAGE_MAX_SIDE && width * height <= DSD_IMAGE_MAX_PIXELS;
}

dsd_status dsd_image_alloc(dsd_image *img, int width, int height, dsd_error *err)
{
    if (!img)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_image_alloc: img is NULL");
    dsd_image_free(img);
    if (!size_ok(width, height))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT,
                        "dsd_image_alloc: %d x %d is not a valid image size (sides 1..%d, at "
                        "most %ld pixels)",
                        width, height, DSD_IMAGE_MAX_SIDE, (long)DSD_IMAGE_MAX_PIXELS);
    size_t bytes = (size_t)width * (size_t)height * 3;
    img->data = calloc(bytes, 1);
    if (!img->data)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY,
                        "dsd_image_alloc: out of memory for a %d x %d image (%zu bytes)", width,
                        height, bytes);
    img->width = width;
    img->height = height;
    img->channels = 3;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Loading */

/* stbi_info refuses some oversized PNG headers itself (it caps 2^30 bytes),
 * then tries every other format, so its failure reason ends up "unknown image
 * type". To still say "too large" for those, read the size a PNG's IHDR
 * claims: the 8-byte signature, then length 13, "IHDR", big-endian width and
 * height. Returns 0 when f does not start like a PNG. Diagnostics only. */
static int png_claimed_size(FILE *f, long *w, long *h)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    unsigned char b[24];
    rewind(f);
    if (fread(b, 1, sizeof b, f) != sizeof b || memcmp(b, sig, 8) != 0 ||
        memcmp(b + 12, "IHDR", 4) != 0)
        return 0;
    *w = (long)((uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19]);
    *h = (long)((uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23]);
    return 1;
}

dsd_status dsd_image_load(const char *path, dsd_image *img, dsd_error *err)
{
    if (!path || !img)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_image_load: %s is NULL",
                        path ? "img" : "path");
    dsd_image_free(img);

    FILE *f = fopen(path, "rb");
    if (!f)
        return DSD_FAIL(err, DSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    dsd_status status = DSD_OK;
    unsigned char *pixels = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: is a directory, not an image file", path);
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        /* pipes and devices: stb seeks back after the header, which they do not allow */
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: not a regular file", path);
        goto done;
    }
    if (st.st_size == 0) {
        status = DSD_FAIL(err, DSD_ERR_FORMAT, "%s: empty file (0 bytes), not an image", path);
        goto done;
    }

    /* Header first: stbi_info reads only what it needs and rewinds. */
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_file(f, &w, &h, &comp)) {
        const char *why = stbi_failure_reason();
        long pw, ph;
        if (png_claimed_size(f, &pw, &ph) && !size_ok(pw, ph)) {
            status = DSD_FAIL(err, DSD_ERR_FORMAT,
                              "%s: image too large: PNG header says %ld x %ld; the limit is %d "
                              "per side and %ld pixels in all",
                              path, pw, ph, DSD_IMAGE_MAX_SIDE, (long)DSD_IMAGE_MAX_PIXELS);
            goto done;
        }
        status = DSD_FAIL(err, DSD_ERR_FORMAT,
                          "%s: not an image in a format stb_image reads (PNG, JPEG, BMP, TGA, "
                          "...): %s",
                          path, why ? why : "unknown reason");
        goto done;
    }
    if (!size_ok(w, h)) {
        status = DSD_FAIL(err, DSD_ERR_FORMAT,
                          "%s: image too large: header says %d x %d; the limit is %d per side "
                          "and %ld pixels in all",
                          path, w, h, DSD_IMAGE_MAX_SIDE, (long)DSD_IMAGE_MAX_PIXELS);
        goto done;
    }
    if (stbi_is_hdr_from_file(f)) {
        status = DSD_FAIL(err, DSD_ERR_FORMAT,
                          "%s: a Radiance HDR image; only 8/16-bit images are read (stb would "
                          "tone-map it)",
                          path);
        goto done;
    }

    int w2 = 0, h2 = 0, comp2 = 0;
    pixels = stbi_load_from_file(f, &w2, &h2, &comp2, 3);
    if (!pixels) {
        const char *why = stbi_failure_reason();
        status = DSD_FAIL(err, DSD_ERR_FORMAT, "%s: cannot decode %d x %d image: %s", path, w,
                          h, why ? why : "unknown reason");
        goto done;
    }
    if (w2 != w || h2 != h) {
        /* stb's info and load paths disagree: treat as a corrupt file */
        status = DSD_FAIL(err, DSD_ERR_FORMAT,
                          "%s: header says %d x %d but the decoder produced %d x %d", path, w, h,
                          w2, h2);
        goto done;
    }
    img->width = w;
    img->height = h;
    img->channels = 3;
    img->data = pixels; /* stbi_image_free is free() in libstb's default build */
    pixels = NULL;
done:
    if (pixels)
        stbi_image_free(pixels);
    fclose(f);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Saving */

typedef enum { FORMAT_NONE, FORMAT_PNG, FORMAT_JPEG } save_format;

static save_format format_from_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        return FORMAT_NONE;
    if (strcasecmp(dot, ".png") == 0)
        return FORMAT_PNG;
    if (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0)
        return FORMAT_JPEG;
    return FORMAT_NONE;
}

/* stb_image_write hands out encoded bytes through this callback, which cannot
 * report failure; the first write error is kept and ends the save. */
typedef struct sink {
    int fd;
    int error; /* errno of the first failed write, 0 if none */
} sink;

static void sink_write(void *context, void *data, int size)
{
    sink *s = context;
    const unsigned char *p = data;
    size_t left = size > 0 ? (size_t)size : 0;
    while (!s->error && left > 0) {
        ssize_t n = write(s->fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            s->error = errno;
        } else if (n == 0) {
            s->error = EIO;
        } else {
            p += n;
            left -= (size_t)n;
        }
    }
}

/* fsync the directory holding path so the rename is durable; best effort
 * (the new file is already in place). */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

dsd_status dsd_image_save(const char *path, const dsd_image *img, dsd_error *err)
{
    if (!path || !img)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_image_save: %s is NULL",
                        path ? "img" : "path");
    if (!img->data || img->channels != 3 || !size_ok(img->width, img->height))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT,
                        "%s: nothing to save: the image is empty or invalid (%d x %d x %d)",
                        path, img->width, img->height, img->channels);
    save_format format = format_from_path(path);
    if (format == FORMAT_NONE)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT,
                        "%s: unknown image extension; use .png, .jpg or .jpeg", path);

    /* <path>.tmp.<pid>.<n>: same directory (so rename is atomic), created
     * exclusively with mode 0666 & ~umask. */
    size_t tmp_size = strlen(path) + 48;
    char *tmp = malloc(tmp_size);
    if (!tmp)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    dsd_status status = DSD_OK;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf(tmp, tmp_size, "%s.tmp.%ld.%d", path, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: cannot create temporary file %s: %s", path,
                          tmp, strerror(errno));
        free(tmp);
        return status;
    }

    sink s = {.fd = fd, .error = 0};
    int ok;
    if (format == FORMAT_PNG)
        ok = stbi_write_png_to_func(sink_write, &s, img->width, img->height, 3, img->data,
                                    img->width * 3);
    else
        ok = stbi_write_jpg_to_func(sink_write, &s, img->width, img->height, 3, img->data, 95);
    if (s.error) {
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: write failed: %s", tmp, strerror(s.error));
        goto fail;
    }
    if (!ok) {
        status = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: stb_image_write failed to encode "
                          "the %d x %d image (out of memory?)",
                          path, img->width, img->height);
        goto fail;
    }
    if (fsync(fd) != 0) {
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
        goto fail;
    }
    int closed = close(fd);
    fd = -1;
    if (closed != 0) {
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp,
                          strerror(errno));
        goto fail;
    }
    free(tmp);
    sync_parent_dir(path);
    return DSD_OK;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Conversions */

void dsd_image_to_planar(const dsd_image *img, float *out)
{
    const size_t plane = (size_t)img->width * (size_t)img->height;
    const uint8_t *p = img->data;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++)
            out[(size_t)c * plane + i] = (float)(p[i * 3 + (size_t)c] / 127.5 - 1.0);
}

size_t dsd_image_from_planar(dsd_image *img, const float *in)
{
    const size_t plane = (size_t)img->width * (size_t)img->height;
    size_t nans = 0;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) {
            double x = in[(size_t)c * plane + i];
            double u = floor((x + 1.0) * 127.5 + 0.5);
            uint8_t v;
            if (isnan(x)) {
                nans++;
                v = 0;
            } else {
                v = u <= 0 ? 0 : u >= 255 ? 255 : (uint8_t)u;
            }
            img->data[i * 3 + (size_t)c] = v;
        }
    return nans;
}

dsd_status dsd_image_crop(const dsd_image *src, int x, int y, int w, int h, dsd_image *dst,
                          dsd_error *err)
{
    if (!src || !dst || src == dst || !src->data)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT,
                        "dsd_image_crop: needs a loaded source and a distinct destination");
    if (x < 0 || y < 0 || w < 1 || h < 1 || x > src->width - w || y > src->height - h)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT,
                        "dsd_image_crop: window %d x %d at (%d, %d) is not inside the %d x %d "
                        "image",
                        w, h, x, y, src->width, src->height);
    DSD_TRY(dsd_image_alloc(dst, w, h, err));
    for (int r = 0; r < h; r++)
        memcpy(dst->data + (size_t)r * w * 3,
               src->data + ((size_t)(y + r) * src->width + (size_t)x) * 3, (size_t)w * 3);
    return DSD_OK;
}

dsd_status dsd_image_pad_to_multiple(const dsd_image *src, int multiple, dsd_image *dst,
                                     dsd_error *err)
{
    if (!src || !dst || src == dst || !src->data || multiple < 1)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT,
                        "dsd_image_pad_to_multiple: needs a loaded source, a distinct "
                        "destination and multiple >= 1 (got %d)",
                        multiple);
    long w = ((long)src->width + multiple - 1) / multiple * multiple;
    long h = ((long)src->height + multiple - 1) / multiple * multiple;
    if (!size_ok(w, h))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT,
                        "dsd_image_pad_to_multiple: %d x %d padded to a multiple of %d is too "
                        "large",
                        src->width, src->height, multiple);
    DSD_TRY(dsd_image_alloc(dst, (int)w, (int)h, err));
    for (long r = 0; r < h; r++) {
        long sr = r < src->height ? r : src->height - 1;
        uint8_t *row = dst->data + (size_t)r * (size_t)w * 3;
        memcpy(row, src->data + (size_t)sr * (size_t)src->width * 3, (size_t)src->width * 3);
        const uint8_t *last = row + ((size_t)src->width - 1) * 3;
        for (long c = src->width; c < w; c++)
            memcpy(row + (size_t)c * 3, last, 3);
    }
    return DSD_OK;
}
