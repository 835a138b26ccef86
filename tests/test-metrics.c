/*
 * test-metrics.c: PSNR and SSIM (src/metrics/psnr.c, src/metrics/ssim.c),
 * host-only: no OpenCL context is created.
 *
 * 1. Reference values for six image pairs (odd sizes from 11x11 to 200x13;
 *    noise, blur, motion blur, a shift, a tone change) stored as PNGs under
 *    tests/data/metrics/ and scored once by tests/data/metrics/make_refs.py:
 *    PSNR and SSIM(skimage) by Debian's scikit-image 0.19.3 itself, and
 *    SSIM(matlab) by two independent scipy computations of MATLAB's ssim on
 *    an RGB volume. Agreement: 1e-4 relative on PSNR, 1e-4 absolute on SSIM.
 * 2. A brute-force double reference written straight from the definitions
 *    (an explicit 2-D / 3-D Gaussian window and per-pixel border rules, no
 *    separability, no shared code) on random images of odd sizes, including
 *    volumes thinner than the window for the matlab protocol.
 * 3. Analytic cases: identical images (PSNR +inf, SSIM 1), a constant offset
 *    (PSNR known in closed form), constant images (SSIM in closed form).
 * 4. Errors: mismatched sizes, too small for skimage, bad protocol names.
 */
#include "testutil.h"

#include "dsdeblur_image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// 1. Reference values from scikit-image / scipy

/* Printed by tests/data/metrics/make_refs.py (scikit-image 0.19.3, scipy
 * 1.10.1, numpy 1.24.2); names give width x height. */
static const struct {
    const char *name;
    double psnr, ssim_skimage, ssim_matlab;
} refs[] = {
    {"astro_61x47_noise", 26.5949853776, 0.6969915003, 0.9233622837},
    {"chelsea_64x64_blur", 30.6492199773, 0.9089990292, 0.9606483037},
    {"coffee_33x29_motion", 33.8646543284, 0.7375195369, 0.9972337069},
    {"astro_11x11_shift", 19.8099743592, 0.3578750504, 0.7642363503},
    {"chelsea_97x75_tone", 26.6750145670, 0.8127717133, 0.9448752001},
    {"coffee_200x13_noise", 20.9319614471, 0.3985306473, 0.8933910733},
};

static void load_data(const char *name, const char *tag, dsd_image *img)
{
    const char *srcdir = getenv("DSDEBLUR_TEST_SRCDIR");
    ck_assert_msg(srcdir, "DSDEBLUR_TEST_SRCDIR is not set (run through make check)");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/metrics/%s_%s.png", srcdir, name, tag);
    dsd_error err;
    TU_HOST_OK(dsd_image_load(path, img, &err), err);
}

START_TEST(test_reference_values)
{
    dsd_error err;
    int k = _i;
    dsd_image a = {0}, b = {0};
    load_data(refs[k].name, "a", &a);
    load_data(refs[k].name, "b", &b);
    double psnr, sk, ml, sk_ba, ml_ba;
    TU_HOST_OK(dsd_psnr(&a, &b, &psnr, &err), err);
    TU_HOST_OK(dsd_ssim(&a, &b, DSD_SSIM_SKIMAGE, &sk, &err), err);
    TU_HOST_OK(dsd_ssim(&a, &b, DSD_SSIM_MATLAB, &ml, &err), err);
    TU_HOST_OK(dsd_ssim(&b, &a, DSD_SSIM_SKIMAGE, &sk_ba, &err), err);
    TU_HOST_OK(dsd_ssim(&b, &a, DSD_SSIM_MATLAB, &ml_ba, &err), err);
    double e_psnr = fabs(psnr - refs[k].psnr) / refs[k].psnr;
    double e_sk = fabs(sk - refs[k].ssim_skimage), e_ml = fabs(ml - refs[k].ssim_matlab);
    printf("%-22s psnr %.10f (rel err %.1e)  skimage %.10f (abs err %.1e)  matlab %.10f "
           "(abs err %.1e)\n",
           refs[k].name, psnr, e_psnr, sk, e_sk, ml, e_ml);
    ck_assert_msg(e_psnr <= 1e-4, "%s: PSNR %.10f, reference %.10f", refs[k].name, psnr,
                  refs[k].psnr);
    ck_assert_msg(e_sk <= 1e-4, "%s: SSIM(skimage) %.10f, reference %.10f", refs[k].name, sk,
                  refs[k].ssim_skimage);
    ck_assert_msg(e_ml <= 1e-4, "%s: SSIM(matlab) %.10f, reference %.10f", refs[k].name, ml,
                  refs[k].ssim_matlab);
    /* SSIM is symmetric in its arguments */
    ck_assert_msg(fabs(sk - sk_ba) <= 1e-12 && fabs(ml - ml_ba) <= 1e-12,
                  "%s: not symmetric: %.15f vs %.15f, %.15f vs %.15f", refs[k].name, sk, sk_ba,
                  ml, ml_ba);
    dsd_image_free(&a);
    dsd_image_free(&b);
}
END_TEST

// ----------------------------------------------------------------------------
// 2. Brute-force references from the definitions

static int clampi(int i, int n)
{
    return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/* scipy 'reflect' (d c b a | a b c d | d c b a) by walking: fold until inside. */
static int reflecti(int i, int n)
{
    while (i < 0 || i >= n)
        i = i < 0 ? -i - 1 : 2 * n - 1 - i;
    return i;
}

/* SSIM by direct window sums: for each output pixel (and channel), the
 * weighted moments over an explicit (2R+1)^2 or (2R+1)^3 Gaussian window with
 * each tap's source position chosen by the border rule. */
static double ssim_brute(const dsd_image *a, const dsd_image *b, int matlab)
{
    const int R = 5, h = a->height, w = a->width;
    const double s2 = 2 * 1.5 * 1.5, C1 = 6.5025, C2 = 58.5225;
    double norm = 0;
    for (int dz = -R; dz <= R; dz++)
        for (int dy = -R; dy <= R; dy++)
            for (int dx = -R; dx <= R; dx++)
                if (matlab || dz == 0)
                    norm += exp(-(dx * dx + dy * dy + (matlab ? dz * dz : 0)) / s2);
    double total = 0, count = 0, channel_total[3] = {0};
    const int r0 = matlab ? 0 : R;
    for (int c = 0; c < 3; c++) {
        double sum = 0;
        int n = 0;
        for (int y = r0; y < h - r0; y++)
            for (int x = r0; x < w - r0; x++) {
                double mx = 0, my = 0, mxx = 0, myy = 0, mxy = 0;
                for (int dz = matlab ? -R : 0; dz <= (matlab ? R : 0); dz++)
                    for (int dy = -R; dy <= R; dy++)
                        for (int dx = -R; dx <= R; dx++) {
                            double g = exp(-(dx * dx + dy * dy + dz * dz) / s2) / norm;
                            int sy = matlab ? clampi(y + dy, h) : reflecti(y + dy, h);
                            int sx = matlab ? clampi(x + dx, w) : reflecti(x + dx, w);
                            int sc = matlab ? clampi(c + dz, 3) : c;
                            size_t i = ((size_t)sy * w + sx) * 3 + sc;
                            double p = a->data[i], q = b->data[i];
                            mx += g * p;
                            my += g * q;
                            mxx += g * p * p;
                            myy += g * q * q;
                            mxy += g * p * q;
                        }
                double vx = mxx - mx * mx, vy = myy - my * my, vxy = mxy - mx * my;
                double s = (2 * mx * my + C1) * (2 * vxy + C2) /
                           ((mx * mx + my * my + C1) * (vx + vy + C2));
                sum += s;
                n++;
            }
        channel_total[c] = sum / n;
        total += sum;
        count += n;
    }
    /* skimage: mean of channel means; matlab: mean over voxels (the same here,
     * since every channel has the same count, but written as each defines it) */
    return matlab ? total / count
                  : (channel_total[0] + channel_total[1] + channel_total[2]) / 3;
}

static void random_pair(dsd_image *a, dsd_image *b, int w, int h, uint64_t seed)
{
    dsd_error err;
    TU_HOST_OK(dsd_image_alloc(a, w, h, &err), err);
    TU_HOST_OK(dsd_image_alloc(b, w, h, &err), err);
    tu_rng r = tu_rng_init(seed);
    for (size_t i = 0; i < dsd_image_numel(a); i++) {
        /* b = a + noise, so the SSIM is well inside (0, 1) */
        double v = tu_uniform(&r, 0, 256);
        double u = v + tu_uniform(&r, -40, 40);
        a->data[i] = (uint8_t)v;
        b->data[i] = (uint8_t)(u < 0 ? 0 : u > 255 ? 255 : u);
    }
}

START_TEST(test_brute_force)
{
    dsd_error err;
    /* skimage needs sides >= 11; matlab takes anything, including volumes
     * thinner than the window in every direction */
    const struct {
        int w, h, matlab;
    } cases[] = {{11, 11, 0}, {13, 12, 0}, {23, 14, 0}, {5, 3, 1}, {1, 1, 1},
                 {13, 12, 1}, {17, 9, 1},  {2, 19, 1}};
    for (int k = 0; k < TU_COUNT(cases); k++) {
        dsd_image a = {0}, b = {0};
        random_pair(&a, &b, cases[k].w, cases[k].h, 500 + (uint64_t)k);
        double got, want = ssim_brute(&a, &b, cases[k].matlab);
        TU_HOST_OK(
            dsd_ssim(&a, &b, cases[k].matlab ? DSD_SSIM_MATLAB : DSD_SSIM_SKIMAGE, &got, &err),
            err);
        ck_assert_msg(fabs(got - want) <= 1e-9, "%s %d x %d: %.12f, brute force %.12f",
                      cases[k].matlab ? "matlab" : "skimage", cases[k].w, cases[k].h, got, want);
        ck_assert_msg(want > 0.01 && want < 0.99, "case %d: degenerate reference %.6f", k, want);
        dsd_image_free(&a);
        dsd_image_free(&b);
    }
}
END_TEST

// ----------------------------------------------------------------------------
// 3. Analytic cases

START_TEST(test_analytic)
{
    dsd_error err;
    dsd_image a = {0}, b = {0};
    random_pair(&a, &b, 37, 23, 900);
    double v;

    /* identical: PSNR +inf, SSIM 1 in both protocols */
    TU_HOST_OK(dsd_psnr(&a, &a, &v, &err), err);
    ck_assert_msg(isinf(v) && v > 0, "PSNR of identical images: %g", v);
    TU_HOST_OK(dsd_mse(&a, &a, &v, &err), err);
    ck_assert(v == 0);
    TU_HOST_OK(dsd_ssim(&a, &a, DSD_SSIM_SKIMAGE, &v, &err), err);
    ck_assert_msg(fabs(v - 1) <= 1e-12, "SSIM(skimage) of identical images: %.15f", v);
    TU_HOST_OK(dsd_ssim(&a, &a, DSD_SSIM_MATLAB, &v, &err), err);
    ck_assert_msg(fabs(v - 1) <= 1e-12, "SSIM(matlab) of identical images: %.15f", v);

    /* constant offset d on every value: MSE = d^2, PSNR = 20 log10(255 / d) */
    for (int d = 1; d <= 30; d += 29) {
        for (size_t i = 0; i < dsd_image_numel(&a); i++) {
            a.data[i] = (uint8_t)(a.data[i] % 200);
            b.data[i] = (uint8_t)(a.data[i] + d);
        }
        TU_HOST_OK(dsd_mse(&a, &b, &v, &err), err);
        ck_assert_msg(v == (double)d * d, "MSE with offset %d: %g", d, v);
        TU_HOST_OK(dsd_psnr(&b, &a, &v, &err), err);
        double want = 20 * log10(255.0 / d);
        ck_assert_msg(fabs(v - want) <= 1e-12 * want, "PSNR with offset %d: %.12f, want %.12f",
                      d, v, want);
    }
    ck_assert(fabs(20 * log10(255.0)  - 48.1308036086791) < 1e-9);

    /* constant images p and q: zero variances, so SSIM = the luminance term
     * (2pq + C1) / (p^2 + q^2 + C1), in both protocols */
    dsd_image p = {0}, q = {0};
    TU_HOST_OK(dsd_image_alloc(&p, 15, 12, &err), err);
    TU_HOST_OK(dsd_image_alloc(&q, 15, 12, &err), err);
    memset(p.data, 100, dsd_image_numel(&p));
    memset(q.data, 140, dsd_image_numel(&q));
    const double C1 = (0.01 * 255) * (0.01 * 255);
    double want = (2.0 * 100 * 140 + C1) / (100.0 * 100 + 140.0 * 140 + C1);
    TU_HOST_OK(dsd_ssim(&p, &q, DSD_SSIM_SKIMAGE, &v, &err), err);
    ck_assert_msg(fabs(v - want) <= 1e-12, "SSIM(skimage) of constants: %.15f, want %.15f", v,
                  want);
    TU_HOST_OK(dsd_ssim(&p, &q, DSD_SSIM_MATLAB, &v, &err), err);
    ck_assert_msg(fabs(v - want) <= 1e-12, "SSIM(matlab) of constants: %.15f, want %.15f", v,
                  want);

    /* Border pixels count in both protocols. */
    dsd_image e = {0};
    random_pair(&a, &b, 31, 27, 901);
    TU_HOST_OK(dsd_image_crop(&a, 0, 0, 31, 27, &e, &err), err);
    double sk0, ml0, sk1, ml1;
    TU_HOST_OK(dsd_ssim(&a, &b, DSD_SSIM_SKIMAGE, &sk0, &err), err);
    TU_HOST_OK(dsd_ssim(&a, &b, DSD_SSIM_MATLAB, &ml0, &err), err);
    e.data[0] ^= 0x80; /* pixel (0, 0), red */
    TU_HOST_OK(dsd_ssim(&e, &b, DSD_SSIM_SKIMAGE, &sk1, &err), err);
    TU_HOST_OK(dsd_ssim(&e, &b, DSD_SSIM_MATLAB, &ml1, &err), err);
    /* (0, 0) is inside the window of the first kept pixel (5, 5), so it
     * counts for skimage too; only the border RULE never matters there (no
     * kept window reaches past the edge, see doc/metrics.md) */
    ck_assert_msg(sk1 != sk0, "skimage ignores a corner change: %.15f", sk1);
    ck_assert_msg(ml1 != ml0, "matlab ignores a corner change: %.15f", ml1);
    e.data[0] = a.data[0];
    e.data[(0 * 31 + 30) * 3 + 2] ^= 0x40; /* top-right corner, blue */
    TU_HOST_OK(dsd_ssim(&e, &b, DSD_SSIM_SKIMAGE, &sk1, &err), err);
    ck_assert(sk1 != sk0);

    dsd_image_free(&a);
    dsd_image_free(&b);
    dsd_image_free(&e);
    dsd_image_free(&p);
    dsd_image_free(&q);
}
END_TEST

// ----------------------------------------------------------------------------
// 4. Errors

START_TEST(test_errors)
{
    dsd_error err;
    dsd_image a = {0}, b = {0}, empty = {0};
    double v;
    random_pair(&a, &b, 12, 11, 1);
    dsd_image c = {0};
    TU_HOST_OK(dsd_image_alloc(&c, 11, 12, &err), err);
    TU_EXPECT_ERROR(dsd_psnr(&a, &c, &v, &err), DSD_ERR_SHAPE, err, "dsd_psnr",
                    "12 x 11 vs 11 x 12");
    TU_EXPECT_ERROR(dsd_mse(&a, &c, &v, &err), DSD_ERR_SHAPE, err, "dsd_mse");
    TU_EXPECT_ERROR(dsd_ssim(&a, &c, DSD_SSIM_MATLAB, &v, &err), DSD_ERR_SHAPE, err,
                    "12 x 11 vs 11 x 12");
    TU_EXPECT_ERROR(dsd_psnr(&a, &empty, &v, &err), DSD_ERR_INVALID_ARGUMENT, err, "loaded");
    TU_EXPECT_ERROR(dsd_ssim(&empty, &a, DSD_SSIM_SKIMAGE, &v, &err), DSD_ERR_INVALID_ARGUMENT, err,
                    "loaded");
    TU_EXPECT_ERROR(dsd_ssim(&a, &b, (dsd_ssim_protocol)7, &v, &err), DSD_ERR_INVALID_ARGUMENT, err,
                    "unknown protocol 7");

    dsd_image s = {0}, t = {0};
    random_pair(&s, &t, 10, 40, 2);
    TU_EXPECT_ERROR(dsd_ssim(&s, &t, DSD_SSIM_SKIMAGE, &v, &err), DSD_ERR_SHAPE, err, "10 x 40",
                    "11 x 11");
    TU_HOST_OK(dsd_ssim(&s, &t, DSD_SSIM_MATLAB, &v, &err), err);

    dsd_ssim_protocol p;
    TU_HOST_OK(dsd_ssim_protocol_parse("MATLAB", &p, &err), err);
    ck_assert_int_eq(p, DSD_SSIM_MATLAB);
    TU_HOST_OK(dsd_ssim_protocol_parse("skimage", &p, &err), err);
    ck_assert_int_eq(p, DSD_SSIM_SKIMAGE);
    TU_EXPECT_ERROR(dsd_ssim_protocol_parse("matlab2", &p, &err), DSD_ERR_INVALID_ARGUMENT, err,
                    "'matlab2'");
    ck_assert_str_eq(dsd_ssim_protocol_name(DSD_SSIM_MATLAB), "matlab");
    ck_assert_str_eq(dsd_ssim_protocol_name(DSD_SSIM_SKIMAGE), "skimage");

    dsd_image_free(&a);
    dsd_image_free(&b);
    dsd_image_free(&c);
    dsd_image_free(&s);
    dsd_image_free(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_reference_values, 0, TU_COUNT(refs));
    tcase_add_test(tc, test_brute_force);
    tcase_add_test(tc, test_analytic);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return tu_run(s); /* no OpenCL context is ever created */
}
