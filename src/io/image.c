/*
 * image.c: loading, saving and converting 8-bit RGB images (see
 * dsdeblur_image.h for the contract). Host only, no OpenCL.
 *
 * What it does: checks the file (exists, regular, non-empty), picks the
 * decoder from the magic bytes (PNG: libpng, JPEG: libjpeg-turbo, BMP and
 * TGA: stb_image; other formats refused), reads the header and refuses absurd
 * sizes before anything is allocated, decodes to 8-bit RGB, and encodes with
 * stb_image_write into a temporary file that is fsynced and renamed. What it
 * does not: colour management (ICC profiles and PNG gamma are ignored), EXIF
 * orientation, alpha compositing, 16-bit output. Why PNG and JPEG are not
 * decoded by stb (Debian 12's stb_image 2.27 has memory errors in its JPEG
 * decoder that untrusted photographs reach): doc/images.md. The decoders
 * are fuzzed by tests/fuzz/fuzz-image.c.
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
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>
/* jpeglib.h needs stdio.h and stddef.h first (above) */
#include <jpeglib.h>
#include <jerror.h>

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
/* Loading
 *
 * The format is decided by the first bytes, never by the extension, and each
 * format goes to one decoder:
 *   PNG  (89 'PNG' 0D 0A 1A 0A)  libpng
 *   JPEG (FF D8, and FF FF)      libjpeg-turbo
 *   BMP  ("BM") and TGA (no magic: whatever is left)   stb_image
 * GIF, PSD, PIC, PNM and Radiance HDR, which stb_image would also decode, are
 * refused by their magic bytes, so stb only ever sees BMP and TGA data (its
 * own format tests, which run in a fixed order, fail on everything else
 * before they read past a few header bytes; its JPEG test would accept
 * FF FF ... FF D8, hence FF FF above). Why PNG and JPEG do not go to stb:
 * doc/images.md. */

/* The size an image may have (the checks run on the header's claim, before
 * anything is allocated). */
static dsd_status too_large(const char *path, const char *format, long w, long h,
                            dsd_error *err)
{
    return DSD_FAIL(err, DSD_ERR_FORMAT,
                    "%s: image too large: the %s header says %ld x %ld; the limit is %d per side "
                    "and %ld pixels in all",
                    path, format, w, h, DSD_IMAGE_MAX_SIDE, (long)DSD_IMAGE_MAX_PIXELS);
}

/* "cannot decode 61 x 47 PNG image" when the header's size is known, "cannot
 * decode PNG image" before. */
static dsd_status decode_failure(const char *path, const char *format, long w, long h,
                                 const char *why, dsd_error *err)
{
    if (w > 0 && h > 0)
        return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: cannot decode %ld x %ld %s image: %s", path, w,
                        h, format, why);
    return DSD_FAIL(err, DSD_ERR_FORMAT, "%s: cannot decode %s image: %s", path, format, why);
}

/* ---- PNG, through libpng ---------------------------------------------- */

/* libpng reports errors through png_on_error, which must not return: it
 * keeps the message and longjmps back to load_png. Everything load_png
 * allocates after its setjmp lives here, volatile, so the jump cannot lose
 * it. */
typedef struct png_job {
    jmp_buf jump;
    FILE *f;
    char message[256];
    uint8_t *volatile pixels;
    png_bytep *volatile rows;
} png_job;

static void png_on_error(png_structp png, png_const_charp message)
{
    png_job *job = png_get_error_ptr(png);
    snprintf(job->message, sizeof job->message, "%s", message ? message : "unknown error");
    longjmp(job->jump, 1);
}

/* Warnings (a bad ancillary chunk's CRC, a known-incorrect sRGB profile) do
 * not stop decoding and are not printed: library code writes nothing. */
static void png_on_warning(png_structp png, png_const_charp message)
{
    (void)png;
    (void)message;
}

static void png_read_file(png_structp png, png_bytep out, size_t n)
{
    png_job *job = png_get_io_ptr(png);
    if (fread(out, 1, n, job->f) != n)
        png_error(png, ferror(job->f) ? "read error" : "the file ends early (truncated)");
}

/* The width and height a PNG's first chunk (IHDR: length 13, "IHDR",
 * big-endian width and height) claims, from the file's first 24 bytes;
 * 0 when the file does not start that way (libpng then says why). */
static int png_claimed_size(const unsigned char *head, size_t n, long *w, long *h)
{
    if (n < 24 || memcmp(head + 12, "IHDR", 4) != 0)
        return 0;
    *w = (long)((uint32_t)head[16] << 24 | (uint32_t)head[17] << 16 | (uint32_t)head[18] << 8 |
                head[19]);
    *h = (long)((uint32_t)head[20] << 24 | (uint32_t)head[21] << 16 | (uint32_t)head[22] << 8 |
                head[23]);
    return 1;
}

static dsd_status load_png(FILE *f, const char *path, const unsigned char *head, size_t n_head,
                           dsd_image *img, dsd_error *err)
{
    /* the size guard, before libpng reads any further */
    long claimed_w = 0, claimed_h = 0;
    if (png_claimed_size(head, n_head, &claimed_w, &claimed_h) && !size_ok(claimed_w, claimed_h))
        return too_large(path, "PNG", claimed_w, claimed_h, err);
    volatile long cw = claimed_w, ch = claimed_h; /* read after the jump */

    png_job job;
    memset(&job, 0, sizeof job);
    job.f = f;
    /* our error handler is installed only once job.jump is set (libpng
     * handles its own failures while the structs are created) */
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "%s: out of memory starting libpng", path);
    }
    if (setjmp(job.jump)) {
        free(job.rows);
        free(job.pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return decode_failure(path, "PNG", cw, ch, job.message, err);
    }
    png_set_error_fn(png, &job, png_on_error, png_on_warning);
    png_set_read_fn(png, &job, png_read_file);
    png_read_info(png, info);
    png_uint_32 w32 = 0, h32 = 0;
    int depth = 0, color = 0, interlace = 0;
    png_get_IHDR(png, info, &w32, &h32, &depth, &color, &interlace, NULL, NULL);
    if (!size_ok(w32, h32)) { /* cannot happen: the same IHDR was checked above */
        png_destroy_read_struct(&png, &info, NULL);
        return too_large(path, "PNG", (long)w32, (long)h32, err);
    }
    int w = (int)w32, h = (int)h32;
    cw = w;
    ch = h;

    /* Everything to 8-bit RGB: palette -> RGB, gray below 8 bits -> 8 bits,
     * 16 bits -> the high byte (v >> 8), gray -> R = G = B, alpha (and tRNS)
     * dropped. No gamma or colour-profile handling. */
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) {
        snprintf(job.message, sizeof job.message,
                 "libpng gives %zu bytes per row after conversion, not %zu",
                 (size_t)png_get_rowbytes(png, info), (size_t)w * 3);
        longjmp(job.jump, 1);
    }
    size_t bytes = (size_t)w * (size_t)h * 3;
    job.pixels = malloc(bytes);
    job.rows = malloc((size_t)h * sizeof *job.rows);
    if (!job.pixels || !job.rows) {
        free(job.rows);
        free(job.pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY,
                        "%s: out of memory for a %d x %d image (%zu bytes)", path, w, h, bytes);
    }
    for (int y = 0; y < h; y++)
        job.rows[y] = job.pixels + (size_t)y * (size_t)w * 3;
    png_read_image(png, job.rows);
    png_read_end(png, NULL); /* checks the last IDAT's CRC and that IEND comes */
    png_destroy_read_struct(&png, &info, NULL);
    free(job.rows);
    img->width = w;
    img->height = h;
    img->channels = 3;
    img->data = job.pixels;
    return DSD_OK;
}

/* ---- JPEG, through libjpeg-turbo -------------------------------------- */

/* libjpeg's error_exit must not return either: jpeg_on_error formats the
 * library's message and longjmps back to load_jpeg. */
typedef struct jpeg_job {
    struct jpeg_error_mgr pub; /* first: libjpeg sees a jpeg_error_mgr * */
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    uint8_t *volatile pixels;
    uint8_t *volatile cmyk_row;
} jpeg_job;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_job *job = (jpeg_job *)cinfo->err;
    job->pub.format_message(cinfo, job->message);
    longjmp(job->jump, 1);
}

/* libjpeg carries on past damaged data with a warning (level -1) and fills
 * what it lost with gray. The warnings that mean pixels were lost (the file
 * ends early, entropy data is corrupt) are errors here; the harmless ones
 * that many cameras trigger (extraneous bytes before a marker, an unknown
 * JFIF version, a bogus ICC chunk) are ignored, as are trace messages. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level >= 0)
        return;
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_MUST_RESYNC:
        jpeg_on_error(cinfo);
        break;
    default:
        break;
    }
}

static dsd_status load_jpeg(FILE *f, const char *path, dsd_image *img, dsd_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_job job;
    memset(&job, 0, sizeof job);
    cinfo.err = jpeg_std_error(&job.pub);
    job.pub.error_exit = jpeg_on_error;
    job.pub.emit_message = jpeg_on_message;
    /* the header's size, once read; volatile: read after the jump */
    volatile long w = 0, h = 0;
    if (setjmp(job.jump)) {
        free(job.cmyk_row);
        free(job.pixels);
        jpeg_destroy_decompress(&cinfo);
        return decode_failure(path, "JPEG", w, h, job.message, err);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    (void)jpeg_read_header(&cinfo, TRUE); /* TRUE: a tables-only file is an error */
    if (!size_ok(cinfo.image_width, cinfo.image_height)) {
        long cw = (long)cinfo.image_width, ch = (long)cinfo.image_height;
        jpeg_destroy_decompress(&cinfo);
        return too_large(path, "JPEG", cw, ch, err);
    }
    w = (long)cinfo.image_width;
    h = (long)cinfo.image_height;

    /* Gray and YCbCr/RGB come out as RGB; CMYK and YCCK (Adobe, stored
     * inverted) come out as CMYK and become RGB as R = C * K / 255 (stb's
     * reading of them). */
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    (void)jpeg_start_decompress(&cinfo);
    if ((long)cinfo.output_width != w || (long)cinfo.output_height != h ||
        cinfo.output_components != (cmyk ? 4 : 3)) {
        snprintf(job.message, sizeof job.message,
                 "libjpeg gives %u x %u x %d pixels for a %ld x %ld image", cinfo.output_width,
                 cinfo.output_height, cinfo.output_components, (long)w, (long)h);
        longjmp(job.jump, 1);
    }
    size_t row_bytes = (size_t)w * 3;
    job.pixels = malloc(row_bytes * (size_t)h);
    if (cmyk)
        job.cmyk_row = malloc((size_t)w * 4);
    if (!job.pixels || (cmyk && !job.cmyk_row)) {
        snprintf(job.message, sizeof job.message, "out of memory for the pixels (%zu bytes)",
                 row_bytes * (size_t)h);
        longjmp(job.jump, 1); /* frees whichever was allocated */
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *row = job.pixels + (size_t)cinfo.output_scanline * row_bytes;
        JSAMPROW target = cmyk ? job.cmyk_row : row;
        if (jpeg_read_scanlines(&cinfo, &target, 1) != 1) {
            snprintf(job.message, sizeof job.message, "libjpeg returned no row %u of %u",
                     cinfo.output_scanline, cinfo.output_height);
            longjmp(job.jump, 1);
        }
        if (cmyk)
            for (long x = 0; x < w; x++) {
                const uint8_t *p = job.cmyk_row + x * 4;
                for (int c = 0; c < 3; c++)
                    row[x * 3 + c] = (uint8_t)((p[c] * p[3] + 127) / 255);
            }
    }
    (void)jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(job.cmyk_row);
    img->width = (int)w;
    img->height = (int)h;
    img->channels = 3;
    img->data = job.pixels;
    return DSD_OK;
}

/* ---- BMP and TGA, through stb_image ------------------------------------ */

/* stb's failure reasons from decoding BMP and TGA, in words. (Header
 * failures never reach us: stbi_info tries every format and ends with
 * "unknown image type".) */
static const char *stb_reason_in_words(const char *why)
{
    static const struct {
        const char *stb, *words;
    } table[] = {
        {"bad offset", "corrupt BMP: the pixel data offset is wrong"},
        {"invalid", "corrupt BMP: bad palette size"},
        {"bad bpp", "corrupt BMP: unsupported bits per pixel"},
        {"bad masks", "corrupt BMP: bad colour masks"},
        {"bad format", "corrupt TGA: unknown pixel format"},
        {"bad palette", "corrupt TGA: bad colour map"},
        {"too large", "the image is too large for stb_image"},
        {"outofmem", "out of memory"},
        {"unknown image type", "not an image in a format this reader knows"},
    };
    if (!why)
        return "unknown reason";
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(why, table[i].stb))
            return table[i].words;
    return why;
}

static uint32_t le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

/* The fewest bytes a BMP or TGA file of w x h pixels with this header can
 * have, from the file's first bytes (head, n of them). stb_image decodes a
 * short file's missing pixels as zeros instead of failing, so a 21-byte file
 * claiming 2^28 pixels would cost 768 MiB and seconds of work; this check turns
 * truncated files into errors, before the pixels are allocated. BMP (stb
 * reads only uncompressed and bitfield BMPs): the pixel data offset plus
 * rows padded to 4 bytes. TGA: the header, image ID and colour map, then
 * the pixels; run-length packets (types 9-11) hold up to 128 pixels in one
 * header byte and one pixel. */
static uint64_t stb_min_file_size(const unsigned char *head, size_t n, int is_bmp, int64_t w,
                                  int64_t h)
{
    if (n < (is_bmp ? 30u : 18u))
        return is_bmp ? 30 : 18; /* not even a whole header */
    if (is_bmp) {
        uint64_t offset = le16(head + 10) | (uint64_t)le16(head + 12) << 16;
        uint32_t hsz = le16(head + 14) | le16(head + 16) << 16;
        uint32_t bpp = hsz == 12 ? le16(head + 24) : le16(head + 28);
        uint64_t row = ((uint64_t)w * bpp + 31) / 32 * 4;
        return offset + row * (uint64_t)h;
    }
    uint64_t cmap = head[1] ? (uint64_t)le16(head + 5) * ((head[7] + 7u) / 8u) : 0;
    uint64_t pixel = (head[16] + 7u) / 8u, count = (uint64_t)w * (uint64_t)h;
    uint64_t data = head[2] >= 9 ? (count + 127) / 128 * (1 + pixel) : count * pixel;
    return 18 + head[0] + cmap + data;
}

static dsd_status load_stb(FILE *f, const char *path, const char *format,
                           const unsigned char *head, size_t n_head, uint64_t file_size,
                           dsd_image *img, dsd_error *err)
{
    /* Header first: stbi_info reads only what it needs and rewinds. */
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_file(f, &w, &h, &comp)) {
        if (!strcmp(format, "BMP"))
            return DSD_FAIL(err, DSD_ERR_FORMAT,
                            "%s: a BMP file whose header is corrupt or of a kind not supported "
                            "(RLE or embedded JPEG/PNG compression, an unknown header version)",
                            path);
        /* TGA has no magic bytes: this is where anything unrecognised ends */
        return DSD_FAIL(err, DSD_ERR_FORMAT,
                        "%s: not an image in a format dsdeblur reads (PNG, JPEG, BMP, TGA)",
                        path);
    }
    if (!size_ok(w, h))
        return too_large(path, format, w, h, err);
    uint64_t need = stb_min_file_size(head, n_head, !strcmp(format, "BMP"), w, h);
    if (need > file_size)
        return DSD_FAIL(err, DSD_ERR_FORMAT,
                        "%s: cannot decode %d x %d %s image: the file is truncated (its header "
                        "needs at least %llu bytes, the file has %llu)",
                        path, w, h, format, (unsigned long long)need,
                        (unsigned long long)file_size);
    int w2 = 0, h2 = 0, comp2 = 0;
    unsigned char *pixels = stbi_load_from_file(f, &w2, &h2, &comp2, 3);
    if (!pixels)
        return decode_failure(path, format, w, h, stb_reason_in_words(stbi_failure_reason()),
                              err);
    if (w2 != w || h2 != h) {
        /* stb's info and load paths disagree: treat as a corrupt file */
        stbi_image_free(pixels);
        return DSD_FAIL(err, DSD_ERR_FORMAT,
                        "%s: header says %d x %d but the decoder produced %d x %d", path, w, h,
                        w2, h2);
    }
    img->width = w;
    img->height = h;
    img->channels = 3;
    img->data = pixels; /* stbi_image_free is free() in libstb's default build */
    return DSD_OK;
}

/* ---- Dispatch ---------------------------------------------------------- */

/* Formats stb_image would decode that are refused here, by magic bytes. */
static const char *refused_format(const unsigned char *b, size_t n)
{
    if (n >= 4 && !memcmp(b, "GIF8", 4))
        return "a GIF image";
    if (n >= 4 && !memcmp(b, "8BPS", 4))
        return "a Photoshop (PSD) image";
    if (n >= 4 && !memcmp(b, "\x53\x80\xF6\x34", 4))
        return "a Softimage PIC image";
    if (n >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7')
        return "a PNM (PBM/PGM/PPM/PAM) image";
    if (n >= 2 && b[0] == '#' && b[1] == '?')
        return "a Radiance HDR image";
    return NULL;
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
        /* pipes and devices: the decoders seek back after the magic bytes */
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: not a regular file", path);
        goto done;
    }
    if (st.st_size == 0) {
        status = DSD_FAIL(err, DSD_ERR_FORMAT, "%s: empty file (0 bytes), not an image", path);
        goto done;
    }

    unsigned char head[32]; /* the magic bytes, PNG's IHDR, BMP's and TGA's headers */
    size_t n_head = fread(head, 1, sizeof head, f);
    if (n_head < sizeof head && ferror(f)) {
        status = DSD_FAIL(err, DSD_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        goto done;
    }
    rewind(f);
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    const char *refused = refused_format(head, n_head);
    if (n_head >= 8 && !memcmp(head, png_sig, 8))
        status = load_png(f, path, head, n_head, img, err);
    else if (n_head >= 2 && head[0] == 0xFF && (head[1] == 0xD8 || head[1] == 0xFF))
        /* FF FF ... D8 too: stb skips fill bytes before SOI and would decode
         * it as a JPEG (libjpeg refuses it) */
        status = load_jpeg(f, path, img, err);
    else if (refused)
        status = DSD_FAIL(err, DSD_ERR_FORMAT,
                          "%s: %s; dsdeblur reads PNG, JPEG, BMP and TGA images", path,
                          refused);
    else if (n_head >= 2 && head[0] == 'B' && head[1] == 'M')
        status = load_stb(f, path, "BMP", head, n_head, (uint64_t)st.st_size, img, err);
    else
        status = load_stb(f, path, "TGA", head, n_head, (uint64_t)st.st_size, img, err);
    if (status != DSD_OK)
        dsd_image_free(img);
done:
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
