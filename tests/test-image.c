/*
 * test-image.c: image loading, saving and conversion (src/io/image.c),
 * host-only: no OpenCL context is created. Covers PNG round trips (exact) and
 * JPEG round trips (close) on odd sizes; gray, gray+alpha, RGBA, BMP, TGA and
 * 16-bit PNG inputs written here with stb_image_write (the 16-bit file comes
 * from tests/data/image/make_gray16.py) and the RGB each must decode to;
 * every PNG layout libpng writes (1/2/4/8/16-bit gray, gray+alpha, RGB(A),
 * palettes with tRNS, Adam7) against its exact pixels; JPEGs (baseline,
 * progressive, gray, CMYK) pixel for pixel against libjpeg's own decoding;
 * every load error with the text its message must carry, including
 * hand-made PNG and JPEG headers that claim absurd sizes (refused before
 * decoding), truncated PNG/JPEG/BMP/TGA files, the crafted DHT JPEG that
 * overflows stb 2.27's Huffman table (doc/images.md), refused formats and
 * stb's BMP reasons in words; saving by extension, atomic replacement (a
 * failed save leaves the old file and no temporary); the float conversions
 * exhaustively over all 256 values plus rounding, clamping and NaN; crop and
 * pad. Files live in a mkdtemp directory removed at the end.
 */
#include "testutil.h"

#include "dsdeblur_image.h"

#include <stb_image_write.h>

#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>
#include <jpeglib.h>

static char tmp_dir[64];

/* An image of w x h pixels: random noise (smooth = 0) or smooth gradients
 * with mild noise (smooth = 1, what JPEG handles well). */
static void make_image(dsd_image *img, int w, int h, uint64_t seed, int smooth)
{
    dsd_error err;
    TU_HOST_OK(dsd_image_alloc(img, w, h, &err), err);
    tu_rng r = tu_rng_init(seed);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double v = smooth ? 128 + 90 * sin(0.11 * x + 0.07 * y + 2.0 * c) +
                                        tu_uniform(&r, -3, 3)
                                  : tu_uniform(&r, 0, 256);
                v = v < 0 ? 0 : v > 255 ? 255 : v;
                img->data[((size_t)y * w + x) * 3 + c] = (uint8_t)v;
            }
}

/* Asserts a and b are identical, naming the first differing byte. */
static void expect_same_pixels(const dsd_image *a, const dsd_image *b, const char *what)
{
    ck_assert_msg(a->width == b->width && a->height == b->height && b->channels == 3,
                  "%s: size %d x %d x %d, want %d x %d x 3", what, b->width, b->height,
                  b->channels, a->width, a->height);
    size_t n = dsd_image_numel(a);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(a->data[i] == b->data[i], "%s: byte %zu (pixel %zu, channel %zu): %d, want %d",
                      what, i, i / 3, i % 3, b->data[i], a->data[i]);
}

// ----------------------------------------------------------------------------
// Round trips

static const int sizes[][2] = {{1, 1}, {7, 5}, {61, 47}, {3, 200}, {129, 2}};

START_TEST(test_png_round_trip)
{
    dsd_error err;
    const char *names[] = {"a.png", "b.PNG", "c.Png"};
    for (int s = 0; s < TU_COUNT(sizes); s++) {
        dsd_image img = {0}, back = {0};
        make_image(&img, sizes[s][0], sizes[s][1], 100 + (uint64_t)s, 0);
        char path[256];
        tu_path_into(path, sizeof path, tmp_dir, names[s % 3]);
        TU_HOST_OK(dsd_image_save(path, &img, &err), err);
        TU_HOST_OK(dsd_image_load(path, &back, &err), err);
        expect_same_pixels(&img, &back, path);
        dsd_image_free(&img);
        dsd_image_free(&back);
        ck_assert(remove(path) == 0);
    }
    ck_assert_int_eq(tu_count_temporaries(tmp_dir), 0);
}
END_TEST

START_TEST(test_jpeg_round_trip)
{
    dsd_error err;
    const char *names[] = {"a.jpg", "b.JPEG", "c.jpeg"};
    const int jsizes[][2] = {{61, 47}, {33, 29}, {200, 13}};
    for (int s = 0; s < TU_COUNT(jsizes); s++) {
        dsd_image img = {0}, back = {0};
        make_image(&img, jsizes[s][0], jsizes[s][1], 200 + (uint64_t)s, 1);
        char path[256];
        tu_path_into(path, sizeof path, tmp_dir, names[s]);
        TU_HOST_OK(dsd_image_save(path, &img, &err), err);
        size_t nbytes;
        unsigned char *bytes = tu_read_file(path, &nbytes);
        ck_assert_msg(nbytes > 2 && bytes[0] == 0xFF && bytes[1] == 0xD8, "%s: not a JPEG",
                      path);
        free(bytes);
        TU_HOST_OK(dsd_image_load(path, &back, &err), err);
        ck_assert_int_eq(back.width, img.width);
        ck_assert_int_eq(back.height, img.height);
        double psnr;
        TU_HOST_OK(dsd_psnr(&img, &back, &psnr, &err), err);
        /* quality 95 on smooth content: typically ~40 dB; 4:2:0 chroma and
         * the noise keep it finite */
        ck_assert_msg(psnr > 33 && isfinite(psnr), "%s: JPEG round trip PSNR %.2f dB", path,
                      psnr);
        dsd_image_free(&img);
        dsd_image_free(&back);
        ck_assert(remove(path) == 0);
    }
}
END_TEST

// ----------------------------------------------------------------------------
// Input layouts

/* A 5 x 3 source with comp channels, value (i * 37 + c * 101 + 13) % 256. */
static void source_pixels(unsigned char *p, int comp)
{
    for (int i = 0; i < 15; i++)
        for (int c = 0; c < comp; c++)
            p[i * comp + c] = (unsigned char)((i * 37 + c * 101 + 13) % 256);
}

START_TEST(test_input_layouts)
{
    dsd_error err;
    struct {
        const char *name;
        int comp;
        int kind; /* 0 png, 1 bmp, 2 tga */
    } cases[] = {
        {"gray.png", 1, 0},  {"graya.png", 2, 0}, {"rgb.png", 3, 0}, {"rgba.png", 4, 0},
        {"rgb.bmp", 3, 1},   {"rgb.tga", 3, 2},   {"rgba.tga", 4, 2}, {"gray.tga", 1, 2},
    };
    for (int k = 0; k < TU_COUNT(cases); k++) {
        unsigned char src[15 * 4];
        source_pixels(src, cases[k].comp);
        char path[256];
        tu_path_into(path, sizeof path, tmp_dir, cases[k].name);
        int ok = cases[k].kind == 0   ? stbi_write_png(path, 5, 3, cases[k].comp, src, 5 * cases[k].comp)
                 : cases[k].kind == 1 ? stbi_write_bmp(path, 5, 3, cases[k].comp, src)
                                      : stbi_write_tga(path, 5, 3, cases[k].comp, src);
        ck_assert_msg(ok, "%s: stbi_write failed", path);
        dsd_image img = {0};
        TU_HOST_OK(dsd_image_load(path, &img, &err), err);
        ck_assert_int_eq(img.width, 5);
        ck_assert_int_eq(img.height, 3);
        ck_assert_int_eq(img.channels, 3);
        for (int i = 0; i < 15; i++)
            for (int c = 0; c < 3; c++) {
                /* gray (+alpha): R = G = B = gray; RGB(A): the RGB, alpha dropped */
                int want = cases[k].comp <= 2 ? src[i * cases[k].comp] : src[i * cases[k].comp + c];
                ck_assert_msg(img.data[i * 3 + c] == want, "%s: pixel %d channel %d: %d, want %d",
                              path, i, c, img.data[i * 3 + c], want);
            }
        dsd_image_free(&img);
        ck_assert(remove(path) == 0);
    }
}
END_TEST

START_TEST(test_png16)
{
    dsd_error err;
    const char *srcdir = getenv("DSDEBLUR_TEST_SRCDIR");
    ck_assert_msg(srcdir, "DSDEBLUR_TEST_SRCDIR is not set (run through make check)");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/image/gray16_5x3.png", srcdir);
    dsd_image img = {0};
    TU_HOST_OK(dsd_image_load(path, &img, &err), err);
    ck_assert_int_eq(img.width, 5);
    ck_assert_int_eq(img.height, 3);
    for (int i = 0; i < 15; i++) {
        int want = ((i * 4099 + 17) % 65536) >> 8;
        for (int c = 0; c < 3; c++)
            ck_assert_msg(img.data[i * 3 + c] == want, "pixel %d channel %d: %d, want %d", i, c,
                          img.data[i * 3 + c], want);
    }
    dsd_image_free(&img);
}
END_TEST

// ----------------------------------------------------------------------------
// PNG layouts through libpng, written here with libpng itself

/* Fields after interlace are optional (palette, tRNS). */
typedef struct png_spec {
    const char *name;
    int w, h, depth, color, interlace;
    const png_color *palette;
    int n_palette;
    const png_byte *trans; /* palette alpha, n_trans entries */
    int n_trans;
    png_color_16 trans_gray; /* gray tRNS when use_trans_gray */
    int use_trans_gray;
} png_spec;

/* Writes rows (packed as the PNG stores them, 16-bit big-endian) to path. */
static void write_png_rows(const char *path, const png_spec *s, const unsigned char *raw,
                           size_t row_bytes)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f, "%s: cannot create", path);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(png && info);
    if (setjmp(png_jmpbuf(png)))
        ck_abort_msg("%s: libpng failed to write the test file", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth, s->color,
                 s->interlace, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->palette)
        png_set_PLTE(png, info, s->palette, s->n_palette);
    if (s->trans || s->use_trans_gray)
        png_set_tRNS(png, info, s->trans, s->n_trans, s->use_trans_gray ? &s->trans_gray : NULL);
    png_write_info(png, info);
    png_bytep *rows = malloc((size_t)s->h * sizeof *rows);
    ck_assert(rows);
    for (int y = 0; y < s->h; y++)
        rows[y] = (png_bytep)raw + (size_t)y * row_bytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    ck_assert(fclose(f) == 0);
}

/* Sample (x, y, channel) of a PNG test image, in the image's own bit depth. */
static unsigned png_sample(int x, int y, int c, int depth)
{
    unsigned v = (unsigned)(x * 4099 + y * 7919 + c * 104729 + 17);
    return depth == 16 ? v % 65536u : v % (1u << depth);
}

/* Packs png_sample values for spec s into PNG rows (channels per pixel from
 * the colour type; indexes for a palette). */
static unsigned char *pack_png(const png_spec *s, int channels, size_t *row_bytes)
{
    size_t bits = (size_t)s->w * (size_t)channels * (size_t)s->depth;
    *row_bytes = (bits + 7) / 8;
    unsigned char *raw = calloc((size_t)s->h, *row_bytes);
    ck_assert(raw);
    for (int y = 0; y < s->h; y++) {
        unsigned char *row = raw + (size_t)y * *row_bytes;
        for (int x = 0; x < s->w; x++)
            for (int c = 0; c < channels; c++) {
                unsigned v = png_sample(x, y, c, s->depth);
                if (s->palette)
                    v %= (unsigned)s->n_palette;
                size_t i = (size_t)x * (size_t)channels + (size_t)c;
                if (s->depth == 16) {
                    row[2 * i] = (unsigned char)(v >> 8);
                    row[2 * i + 1] = (unsigned char)v;
                } else if (s->depth == 8) {
                    row[i] = (unsigned char)v;
                } else { /* 1, 2, 4 bits, most significant first */
                    size_t bit = i * (size_t)s->depth;
                    row[bit / 8] |= (unsigned char)(v << (8 - s->depth - bit % 8));
                }
            }
    }
    return raw;
}

START_TEST(test_png_layouts)
{
    dsd_error err;
    static const png_color palette[5] = {
        {10, 20, 30}, {200, 100, 0}, {0, 255, 1}, {77, 77, 77}, {255, 254, 253}};
    static const png_byte palette_alpha[3] = {0, 128, 255};
    /* name, size, bit depth, colour type, interlacing; then palette and tRNS */
#define LAYOUT(n, w_, h_, d, c, i) .name = n, .w = w_, .h = h_, .depth = d, .color = c, .interlace = i
    const png_spec specs[] = {
        {LAYOUT("rgb16.png", 5, 3, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE)},
        {LAYOUT("rgba16.png", 7, 2, 16, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE)},
        {LAYOUT("graya16.png", 5, 3, 16, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE)},
        {LAYOUT("gray1.png", 9, 2, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE)},
        {LAYOUT("gray2.png", 5, 3, 2, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE)},
        {LAYOUT("gray4.png", 11, 3, 4, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE)},
        {LAYOUT("gray8trns.png", 6, 4, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE),
         .trans_gray = {.gray = 17}, .use_trans_gray = 1},
        {LAYOUT("pal4.png", 7, 3, 4, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE),
         .palette = palette, .n_palette = 5, .trans = palette_alpha, .n_trans = 3},
        {LAYOUT("pal8.png", 9, 5, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE),
         .palette = palette, .n_palette = 5},
        {LAYOUT("pal1.png", 10, 2, 1, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE),
         .palette = palette, .n_palette = 2},
        {LAYOUT("adam7.png", 13, 11, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7)},
        {LAYOUT("adam7gray2.png", 9, 9, 2, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7)},
    };
#undef LAYOUT
    for (int k = 0; k < TU_COUNT(specs); k++) {
        const png_spec *s = &specs[k];
        int channels = s->color == PNG_COLOR_TYPE_RGB         ? 3
                       : s->color == PNG_COLOR_TYPE_RGB_ALPHA  ? 4
                       : s->color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                                                               : 1;
        size_t row_bytes;
        unsigned char *raw = pack_png(s, channels, &row_bytes);
        char path[256];
        tu_path_into(path, sizeof path, tmp_dir, s->name);
        write_png_rows(path, s, raw, row_bytes);
        free(raw);
        dsd_image img = {0};
        TU_HOST_OK(dsd_image_load(path, &img, &err), err);
        ck_assert_msg(img.width == s->w && img.height == s->h && img.channels == 3,
                      "%s: %d x %d x %d, want %d x %d x 3", s->name, img.width, img.height,
                      img.channels, s->w, s->h);
        for (int y = 0; y < s->h; y++)
            for (int x = 0; x < s->w; x++)
                for (int c = 0; c < 3; c++) {
                    int want;
                    if (s->palette) {
                        /* the palette's RGB; tRNS alpha dropped */
                        unsigned idx = png_sample(x, y, 0, s->depth) % (unsigned)s->n_palette;
                        const png_color *p = &s->palette[idx];
                        want = c == 0 ? p->red : c == 1 ? p->green : p->blue;
                    } else {
                        /* gray: R = G = B; 16 bits: the high byte; below 8 bits:
                         * scaled to 0..255 */
                        unsigned v = png_sample(x, y, channels >= 3 ? c : 0, s->depth);
                        want = s->depth == 16 ? (int)(v >> 8)
                                              : (int)(v * 255 / ((1u << s->depth) - 1));
                    }
                    int got = img.data[((size_t)y * s->w + x) * 3 + c];
                    ck_assert_msg(got == want, "%s: pixel (%d, %d) channel %d: %d, want %d",
                                  s->name, x, y, c, got, want);
                }
        dsd_image_free(&img);
        ck_assert(remove(path) == 0);
    }
}
END_TEST

// ----------------------------------------------------------------------------
// JPEG through libjpeg-turbo: exact pixels against libjpeg's own decoding

/* Encodes w x h pixels of `components` channels in colour space `in` with
 * libjpeg into memory. */
static unsigned char *jpeg_encode(const unsigned char *px, int w, int h, int components,
                                  J_COLOR_SPACE in, int progressive, unsigned long *size)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    *size = 0;
    jpeg_mem_dest(&c, &out, size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = components;
    c.in_color_space = in;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    if (progressive)
        jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)px + (size_t)c.next_scanline * (size_t)w * (size_t)components;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return out;
}

/* libjpeg's decoding of bytes into colour space `out` (its default DCT and
 * upsampling, as src/io/image.c uses): the reference. */
static unsigned char *jpeg_decode_ref(const unsigned char *bytes, unsigned long size,
                                      J_COLOR_SPACE out, int *w, int *h, int *components)
{
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr jerr;
    d.err = jpeg_std_error(&jerr);
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, bytes, size);
    ck_assert(jpeg_read_header(&d, TRUE) == JPEG_HEADER_OK);
    d.out_color_space = out;
    jpeg_start_decompress(&d);
    *w = (int)d.output_width;
    *h = (int)d.output_height;
    *components = d.output_components;
    size_t row = (size_t)*w * (size_t)*components;
    unsigned char *px = malloc(row * (size_t)*h);
    ck_assert(px);
    while (d.output_scanline < d.output_height) {
        JSAMPROW r = px + (size_t)d.output_scanline * row;
        jpeg_read_scanlines(&d, &r, 1);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    return px;
}

START_TEST(test_jpeg_exact)
{
    dsd_error err;
    const int w = 37, h = 23; /* not multiples of the 16 x 16 MCU */
    struct {
        const char *name;
        int components;
        J_COLOR_SPACE in, ref_out;
        int progressive;
    } cases[] = {
        {"rgb.jpg", 3, JCS_RGB, JCS_RGB, 0},
        {"progressive.jpg", 3, JCS_RGB, JCS_RGB, 1},
        {"gray.jpg", 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 0},
        {"cmyk.jpg", 4, JCS_CMYK, JCS_CMYK, 0},
    };
    for (int k = 0; k < TU_COUNT(cases); k++) {
        int comps = cases[k].components;
        unsigned char *src = malloc((size_t)w * h * (size_t)comps);
        ck_assert(src);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < comps; c++)
                    src[((size_t)y * w + x) * (size_t)comps + (size_t)c] =
                        (unsigned char)(128 + 100 * sin(0.21 * x - 0.13 * y + 1.7 * c));
        unsigned long size;
        unsigned char *bytes = jpeg_encode(src, w, h, comps, cases[k].in, cases[k].progressive,
                                           &size);
        char path[256];
        tu_path_into(path, sizeof path, tmp_dir, cases[k].name);
        tu_write_file(path, bytes, size);
        int rw, rh, rc;
        unsigned char *ref = jpeg_decode_ref(bytes, size, cases[k].ref_out, &rw, &rh, &rc);
        ck_assert(rw == w && rh == h && rc == comps);
        dsd_image img = {0};
        TU_HOST_OK(dsd_image_load(path, &img, &err), err);
        ck_assert_int_eq(img.width, w);
        ck_assert_int_eq(img.height, h);
        for (int i = 0; i < w * h; i++)
            for (int c = 0; c < 3; c++) {
                const unsigned char *p = ref + (size_t)i * (size_t)comps;
                /* gray: R = G = B; CMYK (Adobe inverted, as libjpeg writes it):
                 * C * K / 255 rounded */
                int want = comps == 1 ? p[0] : comps == 3 ? p[c] : (p[c] * p[3] + 127) / 255;
                ck_assert_msg(img.data[(size_t)i * 3 + c] == want,
                              "%s: pixel (%d, %d) channel %d: %d, libjpeg gives %d", path, i % w,
                              i / w, c, img.data[(size_t)i * 3 + c], want);
            }
        dsd_image_free(&img);
        free(ref);
        free(bytes);
        free(src);
        ck_assert(remove(path) == 0);
    }
}
END_TEST

/* Offset of the first SOF0/SOF2 marker's height field in a JPEG, 0 if none. */
static size_t sof_size_offset(const unsigned char *b, size_t n)
{
    for (size_t i = 2; i + 9 < n; i++)
        if (b[i] == 0xFF && (b[i + 1] == 0xC0 || b[i + 1] == 0xC2))
            return i + 5; /* FF Cx, length (2), precision (1), then height, width */
    return 0;
}

/* A JPEG whose DHT segment gives 16 code lengths of 255 codes each: 4080
 * symbols where a table holds 256. Debian 12's stb_image 2.27 writes them
 * past its Huffman table while reading the header (stbi__build_huffman, from
 * stbi_info); libjpeg refuses the segment. The segment is otherwise well
 * formed: its length covers the 4080 symbol bytes. */
static unsigned char *crafted_dht_jpeg(size_t *n)
{
    const size_t symbols = 16 * 255, seg = 2 + 1 + 16 + symbols;
    *n = 2 + 2 + seg + 2;
    unsigned char *b = malloc(*n);
    ck_assert(b);
    size_t i = 0;
    b[i++] = 0xFF, b[i++] = 0xD8;                                     /* SOI */
    b[i++] = 0xFF, b[i++] = 0xC4;                                     /* DHT */
    b[i++] = (unsigned char)(seg >> 8), b[i++] = (unsigned char)seg; /* length */
    b[i++] = 0x13;                                                    /* AC table 3 */
    for (int k = 0; k < 16; k++)
        b[i++] = 255; /* counts of codes of length 1..16 */
    for (size_t k = 0; k < symbols; k++)
        b[i++] = (unsigned char)k;
    b[i++] = 0xFF, b[i++] = 0xD9; /* EOI */
    ck_assert_uint_eq(i, *n);
    return b;
}

START_TEST(test_jpeg_errors)
{
    dsd_error err;
    dsd_image img = {0};
    char path[256];

    /* the crafted DHT: one clean error, no memory error (ASan: make check-asan) */
    size_t n;
    unsigned char *dht = crafted_dht_jpeg(&n);
    tu_path_into(path, sizeof path, tmp_dir, "dht.jpg");
    tu_write_file(path, dht, n);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "dht.jpg",
                    "cannot decode JPEG image", "Huffman table");
    ck_assert(img.data == NULL && img.width == 0);
    /* the same after a fill byte (FF FF D8 ...), which stb's JPEG reader
     * also accepts: the fuzzer reached the same overflow that way through
     * the BMP/TGA path; it must go to libjpeg, which refuses it */
    unsigned char *filled = malloc(n + 1);
    ck_assert(filled);
    filled[0] = 0xFF;
    memcpy(filled + 1, dht, n);
    tu_write_file(path, filled, n + 1);
    free(filled);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "dht.jpg",
                    "cannot decode JPEG image", "Not a JPEG file");
    free(dht);

    /* a JPEG cut in half */
    dsd_image full = {0};
    make_image(&full, 61, 47, 8, 1);
    tu_path_into(path, sizeof path, tmp_dir, "cut.jpg");
    TU_HOST_OK(dsd_image_save(path, &full, &err), err);
    dsd_image_free(&full);
    unsigned char *bytes = tu_read_file(path, &n);
    tu_write_file(path, bytes, n / 2);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "cut.jpg",
                    "cannot decode 61 x 47 JPEG image", "Premature end");
    ck_assert(img.data == NULL);

    /* a frame header claiming too many pixels is refused before decoding; a
     * sane one is decoded and runs out of data */
    size_t at = sof_size_offset(bytes, n);
    ck_assert_msg(at > 0, "no SOF marker in the saved JPEG");
    const int claims[][3] = {{16384, 16385, 1}, {20000, 20000, 1}, {4000, 3000, 0}};
    for (int k = 0; k < TU_COUNT(claims); k++) {
        bytes[at] = (unsigned char)(claims[k][1] >> 8); /* height, then width */
        bytes[at + 1] = (unsigned char)claims[k][1];
        bytes[at + 2] = (unsigned char)(claims[k][0] >> 8);
        bytes[at + 3] = (unsigned char)claims[k][0];
        tu_path_into(path, sizeof path, tmp_dir, "claims.jpg");
        tu_write_file(path, bytes, n);
        char size_text[64];
        snprintf(size_text, sizeof size_text, "%d x %d", claims[k][0], claims[k][1]);
        if (claims[k][2])
            TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "claims.jpg",
                            "too large", size_text);
        else
            TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "claims.jpg",
                            "cannot decode", size_text, "JPEG");
        ck_assert(img.data == NULL);
    }
    free(bytes);

    /* SOI and then no JPEG */
    tu_path_into(path, sizeof path, tmp_dir, "soi.jpg");
    tu_write_file(path, "\xFF\xD8 not a jpeg at all", 20);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "soi.jpg",
                    "cannot decode JPEG image");
}
END_TEST

START_TEST(test_other_formats)
{
    dsd_error err;
    dsd_image img = {0};
    char path[256];
    /* formats stb_image would decode are refused by their magic bytes */
    const struct {
        const char *name, *bytes, *what;
        size_t n;
    } refused[] = {
        {"x.gif", "GIF89a\x01\x00\x01\x00\x00\x00\x00;", "a GIF image", 14},
        {"x.ppm", "P6\n1 1\n255\n\x01\x02\x03", "a PNM", 14},
        {"x.pgm", "P5\n1 1\n255\n\x01", "a PNM", 12},
        {"x.hdr", "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 1\n\x01\x02\x03\x04", "Radiance",
         50},
        {"x.psd", "8BPS\x00\x01\x00\x00\x00\x00\x00\x00\x00\x03", "Photoshop", 14},
    };
    for (int k = 0; k < TU_COUNT(refused); k++) {
        tu_path_into(path, sizeof path, tmp_dir, refused[k].name);
        tu_write_file(path, refused[k].bytes, refused[k].n);
        TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, refused[k].name,
                        refused[k].what, "dsdeblur reads PNG, JPEG, BMP and TGA");
    }

    /* BMP: a header stb refuses (an unknown version, RLE), and stb's reason
     * for a bad pixel data offset in words */
    unsigned char src[15 * 3];
    source_pixels(src, 3);
    tu_path_into(path, sizeof path, tmp_dir, "x.bmp");
    ck_assert(stbi_write_bmp(path, 5, 3, 3, src));
    size_t n;
    unsigned char *bmp = tu_read_file(path, &n);
    bmp[14] = 99; /* BITMAPINFOHEADER size */
    tu_write_file(path, bmp, n);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "x.bmp",
                    "BMP file whose header is corrupt or of a kind not supported");
    bmp[14] = 40;
    bmp[30] = 1; /* compression: BI_RLE8 */
    tu_write_file(path, bmp, n);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "x.bmp",
                    "BMP file whose header is corrupt", "RLE");
    bmp[30] = 0;
    bmp[10] = 50; /* pixel data offset: 54 */
    tu_write_file(path, bmp, n);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "x.bmp",
                    "cannot decode 5 x 3 BMP image", "the pixel data offset is wrong");
    bmp[10] = 54;

    /* Truncated BMP and TGA files: stb would decode the missing pixels as
     * zeros; they are refused before the pixels are allocated. A BMP and a
     * TGA missing their last byte, and 18 bytes of run-length TGA header
     * claiming 44808 x 1030 pixels (what the fuzzer found taking seconds). */
    tu_write_file(path, bmp, n - 1);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "x.bmp",
                    "cannot decode 5 x 3 BMP image", "truncated", "102 bytes",
                    "the file has 101");
    free(bmp);
    tu_path_into(path, sizeof path, tmp_dir, "x.tga");
    stbi_write_tga_with_rle = 0;
    ck_assert(stbi_write_tga(path, 5, 3, 3, src));
    stbi_write_tga_with_rle = 1;
    unsigned char *tga = tu_read_file(path, &n);
    ck_assert_uint_eq(n, 18 + 45); /* header, pixels */
    tu_write_file(path, tga, n - 1);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "x.tga",
                    "cannot decode 5 x 3 TGA image", "truncated");
    tga[2] = 10; /* run-length RGB */
    tga[12] = 0x08, tga[13] = 0xAF, tga[14] = 0x06, tga[15] = 0x04;
    tu_write_file(path, tga, 18 + 20);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "x.tga",
                    "cannot decode 44808 x 1030 TGA image", "truncated");
    free(tga);
    ck_assert(img.data == NULL);
}
END_TEST

// ----------------------------------------------------------------------------
// Load errors

/* CRC-32 (PNG's, ISO 3309) of the chunk type + data, so the hand-made header
 * is a valid PNG start even though stb does not check CRCs. */
static uint32_t png_crc(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* PNG signature + an IHDR chunk claiming w x h, 8-bit RGB; no image data. */
static void write_png_header(const char *path, uint32_t w, uint32_t h)
{
    unsigned char b[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    put_be32(b + 8, 13);
    memcpy(b + 12, "IHDR", 4);
    put_be32(b + 16, w);
    put_be32(b + 20, h);
    b[24] = 8; /* bit depth */
    b[25] = 2; /* colour type RGB */
    b[26] = b[27] = b[28] = 0;
    put_be32(b + 29, png_crc(b + 12, 17));
    tu_write_file(path, b, sizeof b);
}

START_TEST(test_load_errors)
{
    dsd_error err;
    dsd_image img = {0};
    char path[256];

    TU_EXPECT_ERROR(
        dsd_image_load(tu_path_into(path, sizeof path, tmp_dir, "missing.png"), &img, &err),
        DSD_ERR_IO, err, "missing.png", "cannot open", "No such file");

    tu_path_into(path, sizeof path, tmp_dir, "adir.png");
    ck_assert(mkdir(path, 0755) == 0);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_IO, err, "adir.png",
                    "is a directory");
    ck_assert(rmdir(path) == 0);

    tu_path_into(path, sizeof path, tmp_dir, "empty.png");
    tu_write_file(path, "", 0);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "empty.png",
                    "empty file", "0 bytes");

    tu_path_into(path, sizeof path, tmp_dir, "notes.png");
    const char text[] = "these are not the pixels you are looking for\n";
    tu_write_file(path, text, sizeof text - 1);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "notes.png",
                    "not an image");

    /* a PNG signature alone */
    tu_path_into(path, sizeof path, tmp_dir, "sig.png");
    tu_write_file(path, "\x89PNG\r\n\x1a\n", 8);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "sig.png",
                    "cannot decode PNG image", "the file ends early (truncated)");

    /* a real PNG cut in half: the header is fine, the data is not */
    dsd_image full = {0};
    make_image(&full, 61, 47, 7, 0);
    tu_path_into(path, sizeof path, tmp_dir, "cut.png");
    TU_HOST_OK(dsd_image_save(path, &full, &err), err);
    size_t n;
    unsigned char *bytes = tu_read_file(path, &n);
    tu_write_file(path, bytes, n / 2);
    free(bytes);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "cut.png",
                    "cannot decode 61 x 47 PNG image", "truncated");
    dsd_image_free(&full);

    /* Headers claiming absurd sizes. 100000^2 and 20000^2 are refused (by stb
     * itself or by the pixel limit) at the header; 70000 x 16 passes stb but
     * not the side limit; 16384 x 16385 is 2^28 + 16384 pixels. None of them
     * has any pixel data, so reaching the decoder would give "cannot
     * decode" instead. */
    const uint32_t absurd[][2] = {{100000, 100000}, {20000, 20000}, {70000, 16}, {16, 70000},
                                  {16384, 16385}};
    for (int k = 0; k < TU_COUNT(absurd); k++) {
        tu_path_into(path, sizeof path, tmp_dir, "huge.png");
        write_png_header(path, absurd[k][0], absurd[k][1]);
        dsd_status st = dsd_image_load(path, &img, &err);
        TU_EXPECT_ERROR(st, DSD_ERR_FORMAT, err, "huge.png", "too large");
        ck_assert_msg(!strstr(err.message, "cannot decode"), "%u x %u reached the decoder: %s",
                      absurd[k][0], absurd[k][1], err.message);
        ck_assert(img.data == NULL && img.width == 0);
    }
    /* the same header at a sane size passes the checks and fails in decoding */
    write_png_header(path, 640, 480);
    TU_EXPECT_ERROR(dsd_image_load(path, &img, &err), DSD_ERR_FORMAT, err, "huge.png",
                    "cannot decode", "640 x 480");

    TU_EXPECT_ERROR(dsd_image_load(NULL, &img, &err), DSD_ERR_INVALID_ARGUMENT, err, "path");
    dsd_image_free(&img);
}
END_TEST

// ----------------------------------------------------------------------------
// Saving

START_TEST(test_save_errors)
{
    dsd_error err;
    dsd_image img = {0};
    char path[256];
    make_image(&img, 9, 4, 3, 0);

    const char *bad[] = {"x.bmp", "x", "x.png.txt", ".png", "dir.jpg/", "x.jp"};
    for (int k = 0; k < TU_COUNT(bad); k++)
        TU_EXPECT_ERROR(
            dsd_image_save(tu_path_into(path, sizeof path, tmp_dir, bad[k]), &img, &err),
            DSD_ERR_INVALID_ARGUMENT, err, "unknown image extension", bad[k]);

    TU_EXPECT_ERROR(dsd_image_save("/nonexistent-dsd-dir/x.png", &img, &err), DSD_ERR_IO, err,
                    "/nonexistent-dsd-dir/x.png", "cannot create temporary");

    /* the target is a directory: everything works but the rename */
    tu_path_into(path, sizeof path, tmp_dir, "isdir.png");
    ck_assert(mkdir(path, 0755) == 0);
    TU_EXPECT_ERROR(dsd_image_save(path, &img, &err), DSD_ERR_IO, err, "isdir.png",
                    "cannot rename");
    ck_assert(rmdir(path) == 0);
    ck_assert_int_eq(tu_count_temporaries(tmp_dir), 0);

    dsd_image empty = {0};
    TU_EXPECT_ERROR(dsd_image_save(tu_path_into(path, sizeof path, tmp_dir, "e.png"), &empty, &err),
                    DSD_ERR_INVALID_ARGUMENT, err, "nothing to save");
    dsd_image_free(&img);
}
END_TEST

START_TEST(test_save_atomic)
{
    dsd_error err;
    char path[256];
    tu_path_into(path, sizeof path, tmp_dir, "keep.png");
    dsd_image old = {0}, big = {0}, back = {0};
    make_image(&old, 5, 5, 11, 0);
    TU_HOST_OK(dsd_image_save(path, &old, &err), err);
    size_t size_before, size_after;
    unsigned char *before = tu_read_file(path, &size_before);

    /* A save that fails mid-write (file size limit): the old file stays. */
    make_image(&big, 64, 64, 12, 0); /* noise: ~12 KB of PNG */
    struct rlimit saved, limited;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    limited = saved;
    limited.rlim_cur = 4096;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &limited), 0);
    dsd_status st = dsd_image_save(path, &big, &err);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    TU_EXPECT_ERROR(st, DSD_ERR_IO, err, "write failed", "File too large");
    ck_assert_int_eq(tu_count_temporaries(tmp_dir), 0);
    unsigned char *after = tu_read_file(path, &size_after);
    ck_assert_uint_eq(size_after, size_before);
    ck_assert(memcmp(before, after, size_before) == 0);
    free(after);

    /* A save that succeeds replaces it. */
    TU_HOST_OK(dsd_image_save(path, &big, &err), err);
    TU_HOST_OK(dsd_image_load(path, &back, &err), err);
    expect_same_pixels(&big, &back, "replaced keep.png");
    ck_assert_int_eq(tu_count_temporaries(tmp_dir), 0);

    free(before);
    dsd_image_free(&old);
    dsd_image_free(&big);
    dsd_image_free(&back);
    ck_assert(remove(path) == 0);
}
END_TEST

// ----------------------------------------------------------------------------
// Conversions, crop, pad

START_TEST(test_planar)
{
    dsd_error err;
    /* every value: u -> x -> u exactly, x in [-1, 1], endpoints exact */
    dsd_image img = {0};
    TU_HOST_OK(dsd_image_alloc(&img, 256, 1, &err), err);
    for (int i = 0; i < 256; i++)
        for (int c = 0; c < 3; c++)
            img.data[i * 3 + c] = (uint8_t)((i + 85 * c) % 256);
    float *x = malloc(dsd_image_numel(&img) * sizeof *x);
    ck_assert(x);
    dsd_image_to_planar(&img, x);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 256; i++) {
            int u = (i + 85 * c) % 256;
            double want = u / 127.5 - 1.0;
            float got = x[c * 256 + i]; /* planar: channel c's plane, then pixel i */
            ck_assert_msg(fabs(got - want) <= 1e-7 && got >= -1 && got <= 1,
                          "u=%d channel %d: x=%.9g, want %.9g", u, c, got, want);
        }
    ck_assert(x[0 * 256 + 0] == -1.0f); /* u = 0 */
    ck_assert(x[0 * 256 + 255] == 1.0f); /* u = 255 */
    dsd_image back = {0};
    TU_HOST_OK(dsd_image_alloc(&back, 256, 1, &err), err);
    ck_assert_uint_eq(dsd_image_from_planar(&back, x), 0);
    expect_same_pixels(&img, &back, "planar round trip");
    free(x);
    dsd_image_free(&img);

    /* rounding, clamping, NaN: one row of 9 pixels, same value in R, G, B */
    const float in[9] = {-2.0f, -1.0f, (float)(0.49 / 127.5 - 1), (float)(0.51 / 127.5 - 1),
                         0.0f,  1.5f,  INFINITY, -INFINITY, NAN};
    const int want[9] = {0, 0, 0, 1, 128, 255, 255, 0, 0};
    /* 0.0 -> 127.5 -> rounds half up to 128 */
    float planes[27];
    for (int c = 0; c < 3; c++)
        memcpy(planes + c * 9, in, sizeof in);
    TU_HOST_OK(dsd_image_alloc(&back, 9, 1, &err), err);
    ck_assert_uint_eq(dsd_image_from_planar(&back, planes), 3); /* one NaN per channel */
    for (int i = 0; i < 9; i++)
        for (int c = 0; c < 3; c++)
            ck_assert_msg(back.data[i * 3 + c] == want[i], "x=%g: u=%d, want %d", in[i],
                          back.data[i * 3 + c], want[i]);
    dsd_image_free(&back);
}
END_TEST

START_TEST(test_crop_pad)
{
    dsd_error err;
    dsd_image src = {0}, dst = {0}, pad = {0};
    make_image(&src, 61, 47, 21, 0);
    TU_HOST_OK(dsd_image_crop(&src, 3, 5, 17, 9, &dst, &err), err);
    ck_assert_int_eq(dst.width, 17);
    ck_assert_int_eq(dst.height, 9);
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 17; x++)
            for (int c = 0; c < 3; c++)
                ck_assert(dst.data[(y * 17 + x) * 3 + c] ==
                          src.data[((y + 5) * 61 + x + 3) * 3 + c]);
    TU_HOST_OK(dsd_image_crop(&src, 60, 46, 1, 1, &dst, &err), err);
    ck_assert(memcmp(dst.data, src.data + (46 * 61 + 60) * 3, 3) == 0);
    TU_EXPECT_ERROR(dsd_image_crop(&src, 50, 0, 12, 5, &dst, &err), DSD_ERR_INVALID_ARGUMENT, err,
                    "12 x 5 at (50, 0)", "61 x 47");
    TU_EXPECT_ERROR(dsd_image_crop(&src, -1, 0, 2, 2, &dst, &err), DSD_ERR_INVALID_ARGUMENT, err,
                    "not inside");
    TU_EXPECT_ERROR(dsd_image_crop(&src, 0, 0, 0, 2, &dst, &err), DSD_ERR_INVALID_ARGUMENT, err,
                    "not inside");

    TU_HOST_OK(dsd_image_pad_to_multiple(&src, 8, &pad, &err), err);
    ck_assert_int_eq(pad.width, 64);
    ck_assert_int_eq(pad.height, 48);
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++) {
            int sy = y < 47 ? y : 46, sx = x < 61 ? x : 60;
            for (int c = 0; c < 3; c++)
                ck_assert_msg(pad.data[(y * 64 + x) * 3 + c] == src.data[(sy * 61 + sx) * 3 + c],
                              "pad (%d, %d, %d)", x, y, c);
        }
    TU_HOST_OK(dsd_image_crop(&pad, 0, 0, 61, 47, &dst, &err), err);
    expect_same_pixels(&src, &dst, "pad then crop");
    TU_HOST_OK(dsd_image_pad_to_multiple(&src, 1, &pad, &err), err);
    expect_same_pixels(&src, &pad, "pad to multiple of 1");
    TU_EXPECT_ERROR(dsd_image_pad_to_multiple(&src, 0, &pad, &err), DSD_ERR_INVALID_ARGUMENT, err,
                    "multiple >= 1");

    /* allocation limits; free is idempotent */
    TU_EXPECT_ERROR(dsd_image_alloc(&dst, 0, 5, &err), DSD_ERR_INVALID_ARGUMENT, err, "0 x 5");
    TU_EXPECT_ERROR(dsd_image_alloc(&dst, 65536, 1, &err), DSD_ERR_INVALID_ARGUMENT, err,
                    "65536 x 1");
    TU_EXPECT_ERROR(dsd_image_alloc(&dst, 16384, 16385, &err), DSD_ERR_INVALID_ARGUMENT, err,
                    "16384 x 16385");
    ck_assert(dst.data == NULL);
    dsd_image_free(&src);
    dsd_image_free(&src);
    dsd_image_free(&dst);
    dsd_image_free(&pad);
}
END_TEST

int main(void)
{
    if (tu_make_tmp_dir(tmp_dir, sizeof tmp_dir, "image") != 0)
        return EXIT_FAILURE;
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("image");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_png_round_trip);
    tcase_add_test(tc, test_jpeg_round_trip);
    tcase_add_test(tc, test_input_layouts);
    tcase_add_test(tc, test_png16);
    tcase_add_test(tc, test_png_layouts);
    tcase_add_test(tc, test_jpeg_exact);
    tcase_add_test(tc, test_jpeg_errors);
    tcase_add_test(tc, test_other_formats);
    tcase_add_test(tc, test_load_errors);
    tcase_add_test(tc, test_save_errors);
    tcase_add_test(tc, test_save_atomic);
    tcase_add_test(tc, test_planar);
    tcase_add_test(tc, test_crop_pad);
    suite_add_tcase(s, tc);
    int status = tu_run(s); /* no OpenCL context is ever created */
    tu_rmtree(tmp_dir);
    return status;
}
