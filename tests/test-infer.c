/*
 * test-infer.c: dsd_deblur_planar / dsd_deblur_image (src/infer/deblur.c).
 *
 * The reference is dsd_generator_forward (itself checked against a
 * double-precision network in test-generator.c) on the input padded by this
 * file's own reading of the padding rule (reflection without repeating the
 * edge, edge replication where a side is too short to mirror), cropped back.
 * With a small random generator (B 8, r 4, 2 blocks) whose weights are
 * scaled up so that the network's part y - x is large (checked: otherwise
 * tiled == untiled could hold through the global residual alone):
 *   - odd sizes (37x29, 61x45, 13x50): untiled result == reference, right size;
 *   - tiles 16, 24, 28 (not dividing the padded 64x48) and 100 (one tile)
 *     with the default halo: max |tiled - untiled| <= 1e-4 over the WHOLE
 *     image (margin 0: border tiles see the same padding as the whole image);
 *     a 4-pixel halo must FAIL that bound (the test can fail);
 *   - the seam error against the halo, and naive tiling (the whole generator
 *     per tile), printed for the documentation;
 *   - tiny images 3x2, 1x1, 5x7 against the reference; dsd_deblur_image;
 *   - determinism (bit-identical reruns, tiled and untiled);
 *   - the out-of-memory fallback through memory_limit; argument errors.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The network's part must be at least this large somewhere (mean |y - x|). */
#define MIN_NETWORK_PART 0.05

static void make_generator(dsd_generator *g, float scale)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator_config cfg = dsd_generator_default_config();
    cfg.base_width = 8;
    cfg.mlp_ratio = 4;
    cfg.n_blocks = 2;
    TU_OK(dsd_generator_init(ctx, g, &cfg));
    TU_OK(dsd_generator_init_weights(ctx, g, 7));
    size_t n = g->params.count;
    float *w = malloc(n * sizeof *w);
    ck_assert(w);
    TU_OK(dsd_tensor_download(ctx, &g->params.values, w, n));
    for (size_t i = 0; i < n; i++)
        w[i] *= scale;
    TU_OK(dsd_tensor_upload(ctx, &g->params.values, w, n));
    free(w);
}

static float *random_image(int h, int w, uint64_t seed)
{
    tu_rng r = tu_rng_init(seed);
    float *x = malloc((size_t)3 * h * w * sizeof *x);
    ck_assert(x);
    /* a smooth pattern plus noise, so the network sees structure */
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++)
                x[((size_t)c * h + i) * w + j] =
                    (float)(0.6 * sin(0.3 * i + 0.2 * j + c) + tu_uniform(&r, -0.3, 0.3));
    return x;
}

/* The padding rule, written independently of src/infer/deblur.c. */
static int pad_index(int i, int n, int padded)
{
    if (i < n)
        return i;
    if (padded - n >= n) /* cannot mirror: replicate */
        return n - 1;
    return 2 * (n - 1) - i;
}

/* Reference: generator_forward on the padded image, cropped. */
static float *reference(dsd_generator *g, const float *x, int h, int w)
{
    dsd_context *ctx = tu_ctx();
    int ph = h < 8 ? 8 : (h + 3) / 4 * 4, pw = w < 8 ? 8 : (w + 3) / 4 * 4;
    float *xp = malloc((size_t)3 * ph * pw * sizeof *xp), *y = malloc((size_t)3 * h * w * 4);
    ck_assert(xp && y);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < ph; i++)
            for (int j = 0; j < pw; j++)
                xp[((size_t)c * ph + i) * pw + j] =
                    x[((size_t)c * h + pad_index(i, h, ph)) * w + pad_index(j, w, pw)];
    dsd_tensor tx, ty;
    TU_OK(dsd_tensor_init(ctx, &tx, 1, 3, ph, pw));
    TU_OK(dsd_tensor_init(ctx, &ty, 1, 3, ph, pw));
    TU_OK(dsd_tensor_upload(ctx, &tx, xp, (size_t)3 * ph * pw));
    TU_OK(dsd_generator_forward(ctx, g, &tx, &ty, NULL));
    TU_OK(dsd_tensor_download(ctx, &ty, xp, (size_t)3 * ph * pw));
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < h; i++)
            memcpy(y + ((size_t)c * h + i) * w, xp + ((size_t)c * ph + i) * pw,
                   (size_t)w * sizeof *y);
    dsd_tensor_free(ctx, &tx);
    dsd_tensor_free(ctx, &ty);
    free(xp);
    return y;
}

/* max |a - b| over (3, h, w), with the worst index. */
static double max_abs(const float *a, const float *b, int h, int w, size_t *worst)
{
    double m = -1;
    for (size_t i = 0; i < (size_t)3 * h * w; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) { /* NaN counts as worst */
            m = isnan(d) ? INFINITY : d;
            *worst = i;
        }
    }
    return m;
}

static void check_equal(const char *what, const float *got, const float *ref, int h, int w,
                        double tol)
{
    size_t k = 0;
    double e = max_abs(got, ref, h, w, &k);
    int c = (int)(k / ((size_t)h * w)), i = (int)(k / w % h), j = (int)(k % w);
    ck_assert_msg(e <= tol, "%s: max |got - ref| = %.3g > %.1g at (c %d, y %d, x %d): got %.7f, "
                  "ref %.7f", what, e, tol, c, i, j, got[k], ref[k]);
}

/* Mean |y - x|: the network's contribution beyond the global residual, over
 * pixels not saturated by the clamp. */
static double network_part(const float *x, const float *y, int h, int w)
{
    double s = 0;
    size_t n = 0;
    for (size_t i = 0; i < (size_t)3 * h * w; i++)
        if (fabsf(y[i]) < 0.999f) {
            s += fabs((double)y[i] - x[i]);
            n++;
        }
    ck_assert_msg(n > (size_t)h * w, "the clamp saturates %zu of %zu values", (size_t)3 * h * w - n,
                  (size_t)3 * h * w);
    return s / n;
}

static float *deblur(dsd_generator *g, const float *x, int h, int w, int tile, int overlap,
                     dsd_deblur_stats *st)
{
    float *y = malloc((size_t)3 * h * w * sizeof *y);
    ck_assert(y);
    dsd_deblur_options o = {tile, overlap, 0, 0};
    TU_OK(dsd_deblur_planar(tu_ctx(), g, x, h, w, y, &o, st));
    return y;
}

START_TEST(test_sizes)
{
    dsd_generator g;
    make_generator(&g, 2.0f);
    static const int sizes[][2] = {{29, 37}, {45, 61}, {50, 13}, {8, 8}};
    for (int k = 0; k < TU_COUNT(sizes); k++) {
        int h = sizes[k][0], w = sizes[k][1];
        float *x = random_image(h, w, 11 + k), *ref = reference(&g, x, h, w);
        dsd_deblur_stats st;
        float *y = deblur(&g, x, h, w, 0, -1, &st);
        char what[64];
        snprintf(what, sizeof what, "untiled %dx%d", w, h);
        check_equal(what, y, ref, h, w, 1e-6);
        ck_assert_int_eq(st.padded_h, h < 8 ? 8 : (h + 3) / 4 * 4);
        ck_assert_int_eq(st.padded_w, w < 8 ? 8 : (w + 3) / 4 * 4);
        ck_assert_int_eq(st.tile, 0);
        ck_assert_int_eq(st.n_tiles, 1);
        ck_assert(st.device_s > 0 && st.total_s >= st.device_s);
        ck_assert_msg(network_part(x, y, h, w) > MIN_NETWORK_PART, "%s: network part %.4f", what,
                      network_part(x, y, h, w));
        free(x);
        free(y);
        free(ref);
    }
    dsd_generator_free(tu_ctx(), &g);
}
END_TEST

START_TEST(test_tiled_equals_untiled)
{
    dsd_generator g;
    make_generator(&g, 2.0f);
    const int h = 45, w = 61; /* padded 48 x 64 */
    float *x = random_image(h, w, 5);
    dsd_deblur_stats st;
    float *whole = deblur(&g, x, h, w, 0, -1, &st);
    double part = network_part(x, whole, h, w);
    printf("test-infer: network part mean |y - x| = %.4f\n", part);
    ck_assert_msg(part > MIN_NETWORK_PART, "network part %.4f too small", part);
    int def = dsd_deblur_default_overlap(&g.cfg);
    ck_assert_int_eq(def, 12);

    static const int tiles[] = {16, 24, 28, 100};
    for (int k = 0; k < TU_COUNT(tiles); k++) {
        float *y = deblur(&g, x, h, w, tiles[k], -1, &st);
        char what[64];
        snprintf(what, sizeof what, "tile %d, default halo", tiles[k]);
        check_equal(what, y, whole, h, w, 1e-4);
        ck_assert_int_eq(st.tile, tiles[k]);
        ck_assert_int_eq(st.overlap, def);
        int n = ((48 + tiles[k] - 1) / tiles[k]) * ((64 + tiles[k] - 1) / tiles[k]);
        ck_assert_int_eq(st.n_tiles, n);
        free(y);
    }

    /* the seam error against the halo (printed for the documentation); too
     * small a halo must break the bound */
    printf("test-infer: max |tiled - untiled| on %dx%d by halo:\n", w, h);
    for (int k = 0; k < 2; k++) {
        int tile = k ? 24 : 16;
        printf("  tile %2d:", tile);
        for (int halo = 0; halo <= 16; halo += 4) {
            float *y = deblur(&g, x, h, w, tile, halo, &st);
            size_t worst;
            double e = max_abs(y, whole, h, w, &worst);
            printf("  halo %2d %.2e", halo, e);
            if (halo <= 4)
                ck_assert_msg(e > 1e-3, "tile %d halo %d: error %.3g, expected visible seams",
                              tile, halo, e);
            if (halo >= def)
                ck_assert_msg(e <= 1e-4, "tile %d halo %d: error %.3g", tile, halo, e);
            free(y);
        }
        printf("\n");
    }

    /* naive tiling: the whole generator on each tile (its own channel
     * attention), cores kept */
    {
        dsd_context *ctx = tu_ctx();
        const int tile = 24, halo = 16, ph = 48, pw = 64;
        float *xp = malloc((size_t)3 * ph * pw * sizeof *xp), *yp = malloc((size_t)3 * h * w * 4);
        float *buf = malloc((size_t)3 * 56 * 56 * sizeof *buf);
        ck_assert(xp && yp && buf);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < ph; i++)
                for (int j = 0; j < pw; j++)
                    xp[((size_t)c * ph + i) * pw + j] =
                        x[((size_t)c * h + pad_index(i, h, ph)) * w + pad_index(j, w, pw)];
        for (int ty = 0; ty < ph; ty += tile)
            for (int tx = 0; tx < pw; tx += tile) {
                int y0 = ty - halo < 0 ? 0 : ty - halo, x0 = tx - halo < 0 ? 0 : tx - halo;
                int y1 = ty + tile + halo > ph ? ph : ty + tile + halo;
                int x1 = tx + tile + halo > pw ? pw : tx + tile + halo;
                int eh = y1 - y0, ew = x1 - x0;
                for (int c = 0; c < 3; c++)
                    for (int i = 0; i < eh; i++)
                        memcpy(buf + ((size_t)c * eh + i) * ew, xp + ((size_t)c * ph + y0 + i) * pw + x0,
                               (size_t)ew * 4);
                dsd_tensor tx_, ty_;
                TU_OK(dsd_tensor_init(ctx, &tx_, 1, 3, eh, ew));
                TU_OK(dsd_tensor_init(ctx, &ty_, 1, 3, eh, ew));
                TU_OK(dsd_tensor_upload(ctx, &tx_, buf, (size_t)3 * eh * ew));
                TU_OK(dsd_generator_forward(ctx, &g, &tx_, &ty_, NULL));
                TU_OK(dsd_tensor_download(ctx, &ty_, buf, (size_t)3 * eh * ew));
                dsd_tensor_free(ctx, &tx_);
                dsd_tensor_free(ctx, &ty_);
                for (int c = 0; c < 3; c++)
                    for (int i = ty; i < ty + tile && i < h; i++)
                        for (int j = tx; j < tx + tile && j < w; j++)
                            yp[((size_t)c * h + i) * w + j] =
                                buf[((size_t)c * eh + i - y0) * ew + j - x0];
            }
        size_t worst;
        printf("test-infer: naive tiling (whole generator per tile, tile %d, halo %d): %.2e\n",
               tile, halo, max_abs(yp, whole, h, w, &worst));
        free(xp);
        free(yp);
        free(buf);
    }
    free(whole);
    free(x);
    dsd_generator_free(tu_ctx(), &g);
}
END_TEST

START_TEST(test_tiny_images)
{
    dsd_generator g;
    make_generator(&g, 2.0f);
    static const int sizes[][2] = {{2, 3}, {1, 1}, {7, 5}, {4, 9}};
    for (int k = 0; k < TU_COUNT(sizes); k++) {
        int h = sizes[k][0], w = sizes[k][1];
        float *x = random_image(h, w, 21 + k), *ref = reference(&g, x, h, w);
        dsd_deblur_stats st;
        float *y = deblur(&g, x, h, w, 0, -1, &st);
        char what[64];
        snprintf(what, sizeof what, "tiny %dx%d", w, h);
        check_equal(what, y, ref, h, w, 1e-6);
        ck_assert(st.padded_h == 8 || st.padded_h == (h + 3) / 4 * 4);
        free(y);
        y = deblur(&g, x, h, w, 8, -1, &st); /* tiled on the 8x8 padded image */
        check_equal(what, y, ref, h, w, 1e-4);
        free(x);
        free(y);
        free(ref);
    }

    /* the image entry point: right size, and the pixels of the planar path */
    dsd_image in = {0}, out = {0};
    dsd_error e;
    TU_OK(dsd_image_alloc(&in, 3, 2, &e));
    for (size_t i = 0; i < dsd_image_numel(&in); i++)
        in.data[i] = (uint8_t)(37 * i + 11);
    dsd_deblur_stats st;
    TU_OK(dsd_deblur_image(tu_ctx(), &g, &in, &out, NULL, &st));
    ck_assert_int_eq(out.width, 3);
    ck_assert_int_eq(out.height, 2);
    float x[18], y[18];
    dsd_image_to_planar(&in, x);
    float *ref = reference(&g, x, 2, 3);
    dsd_image exp_img = {0};
    TU_OK(dsd_image_alloc(&exp_img, 3, 2, &e));
    dsd_image_from_planar(&exp_img, ref);
    ck_assert_msg(!memcmp(exp_img.data, out.data, 18), "dsd_deblur_image differs from the reference");
    (void)y;
    free(ref);
    dsd_image_free(&in);
    dsd_image_free(&out);
    dsd_image_free(&exp_img);
    dsd_generator_free(tu_ctx(), &g);
}
END_TEST

START_TEST(test_deterministic)
{
    dsd_generator g;
    make_generator(&g, 2.0f);
    const int h = 29, w = 37;
    float *x = random_image(h, w, 3);
    for (int tile = 0; tile <= 16; tile += 16) {
        float *a = deblur(&g, x, h, w, tile, -1, NULL), *b = deblur(&g, x, h, w, tile, -1, NULL);
        ck_assert_msg(!memcmp(a, b, (size_t)3 * h * w * sizeof *a), "tile %d: reruns differ",
                      tile);
        free(a);
        free(b);
    }
    free(x);
    dsd_generator_free(tu_ctx(), &g);
}
END_TEST

START_TEST(test_fallback_and_errors)
{
    dsd_context *ctx = tu_ctx();
    dsd_generator g;
    make_generator(&g, 2.0f);
    const int h = 45, w = 61;
    float *x = random_image(h, w, 9), *whole = deblur(&g, x, h, w, 0, -1, NULL);
    float *y = malloc((size_t)3 * h * w * sizeof *y);
    ck_assert(y);

    /* a device too small for the untiled estimate: tiles, same result */
    uint64_t peak0, big0, peak1, big1;
    dsd_deblur_estimate_bytes(&g.cfg, h, w, 0, &peak0, &big0);
    dsd_deblur_estimate_bytes(&g.cfg, h, w, 32, &peak1, &big1);
    ck_assert_msg(peak1 < peak0 && big1 < big0, "tiled estimate %llu/%llu not below %llu/%llu",
                  (unsigned long long)peak1, (unsigned long long)big1,
                  (unsigned long long)peak0, (unsigned long long)big0);
    dsd_deblur_options o = {0, -1, peak0 + g.arena_bytes - 1, 0};
    dsd_deblur_stats st;
    TU_OK(dsd_deblur_planar(ctx, &g, x, h, w, y, &o, &st));
    ck_assert_msg(st.fallbacks == 1 && st.tile == 32, "fallbacks %d tile %d", st.fallbacks,
                  st.tile);
    check_equal("fallback", y, whole, h, w, 1e-4);
    o.no_fallback = 1; /* estimate ignored, runs whole */
    TU_OK(dsd_deblur_planar(ctx, &g, x, h, w, y, &o, &st));
    ck_assert_int_eq(st.tile, 0);

    /* argument errors */
    dsd_deblur_options bad = {-4, -1, 0, 0};
    ck_assert_int_eq(dsd_deblur_planar(ctx, &g, x, h, w, y, &bad, NULL), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(dsd_context_error(ctx)->message, "tile -4"), "%s",
                  dsd_context_error(ctx)->message);
    ck_assert_int_eq(dsd_deblur_planar(ctx, &g, x, 0, w, y, NULL, NULL), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_deblur_planar(ctx, &g, x, h, w, x, NULL, NULL), DSD_ERR_INVALID_ARGUMENT);
    dsd_generator none = {0};
    ck_assert_int_eq(dsd_deblur_planar(ctx, &none, x, h, w, y, NULL, NULL),
                     DSD_ERR_INVALID_ARGUMENT);
    dsd_image empty = {0}, out = {0};
    ck_assert_int_eq(dsd_deblur_image(ctx, &g, &empty, &out, NULL, NULL),
                     DSD_ERR_INVALID_ARGUMENT);
    free(x);
    free(y);
    free(whole);
    dsd_generator_free(ctx, &g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("infer");
    TCase *tc = tcase_create("infer");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_tiled_equals_untiled);
    tcase_add_test(tc, test_tiny_images);
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_fallback_and_errors);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_ctx_free();
    return rc;
}
