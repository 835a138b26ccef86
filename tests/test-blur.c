/*
 * test-blur.c: the synthetic blur. The host side (src/train/blur_psf.c):
 * the Philox stream against the independent ref_philox4x32_10 and its
 * known-answer vector, PSF invariants (sum 1, non-negative, inside the
 * requested size, trimmed to the support, centred), reproducibility (same
 * seed and index: the same bits; another seed or index: another PSF),
 * pinned checksums of a few PSFs, parameter errors. The device side
 * (src/train/blur_apply.c on clFFT, cl/blur.cl): the FFT convolution against
 * the direct double-precision reflect-bordered convolution of tests/ref/blur.c
 * on odd shapes, batch > 1, per-image and shared PSFs, even PSF sides,
 * a PSF wider than half the image, in place and on views with a guard
 * image; a delta PSF is the identity; the noise against its host formula,
 * its statistics and its reproducibility; shape and argument errors.
 */
#include "testutil.h"
#include "ref/blur.h"
#include "ref/dropout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double TOL = 1e-4;
/* The clFFT plans of every blur here, on tu_ctx(), kept for the whole run as
 * the library's own owners keep theirs (freed in main). Destroying and
 * re-baking plans of the same shapes between tests gives the same results,
 * but Oclgrind 21.10 then reports uninitialized writes in clFFT's fft_fwd. */
static dsd_fft_plans plans;

/* 64-bit FNV-1a over the PSF's size and float bits (little-endian hosts
 * and IEEE floats are all the suite runs on). */
static uint64_t psf_hash(const dsd_blur_psf *k)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    const int hw[2] = {k->h, k->w};
    const unsigned char *b = (const unsigned char *)hw;
    for (size_t i = 0; i < sizeof hw; i++)
        h = (h ^ b[i]) * UINT64_C(0x100000001b3);
    b = (const unsigned char *)k->data;
    for (size_t i = 0; i < (size_t)k->h * (size_t)k->w * sizeof(float); i++)
        h = (h ^ b[i]) * UINT64_C(0x100000001b3);
    return h;
}

static void generate(const dsd_blur_psf_params *p, uint64_t seed, uint64_t index,
                     dsd_blur_psf *k)
{
    dsd_rng r;
    dsd_rng_init(&r, seed, index);
    dsd_error err = {0};
    dsd_status st = dsd_blur_psf_generate(p, &r, k, &err);
    char line[DSD_ERROR_LINE_MAX];
    ck_assert_msg(st == DSD_OK, "dsd_blur_psf_generate(seed %llu, index %llu): %s",
                  (unsigned long long)seed, (unsigned long long)index,
                  dsd_error_format(&err, line, sizeof line));
}

/* ------------------------------------------------------------------------ */
/* Random numbers */

START_TEST(test_rng)
{
    /* Block 0 of seed 0, stream 0 is Philox4x32-10(0, 0): Random123's vector. */
    static const uint32_t kat[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
    dsd_rng r;
    dsd_rng_init(&r, 0, 0);
    for (int i = 0; i < 4; i++) {
        uint32_t got = dsd_rng_u32(&r);
        ck_assert_msg(got == kat[i], "word %d of seed 0 stream 0 is 0x%08x, want 0x%08x", i,
                      got, kat[i]);
    }
    /* Counter layout (block lo, block hi, stream lo, stream hi), key = seed. */
    const uint64_t seed = UINT64_C(0x0123456789abcdef), stream = UINT64_C(0xfedcba9876543210);
    dsd_rng_init(&r, seed, stream);
    for (uint32_t blk = 0; blk < 5; blk++) {
        uint32_t ctr[4] = {blk, 0, (uint32_t)stream, (uint32_t)(stream >> 32)};
        uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, want[4];
        ref_philox4x32_10(ctr, key, want);
        for (int i = 0; i < 4; i++) {
            uint32_t got = dsd_rng_u32(&r);
            ck_assert_msg(got == want[i], "block %u word %d: 0x%08x, want 0x%08x", blk, i, got,
                          want[i]);
        }
    }
    /* Uniform and normal moments over 200000 draws (4-sigma bounds). */
    enum { N = 200000 };
    double su = 0, suu = 0, sn = 0, snn = 0, umin = 1, umax = 0;
    dsd_rng_init(&r, 42, 1);
    for (int i = 0; i < N; i++) {
        double u = dsd_rng_uniform(&r), g = dsd_rng_normal(&r);
        ck_assert_msg(u >= 0.0 && u < 1.0, "uniform %d = %.17g is outside [0, 1)", i, u);
        su += u;
        suu += u * u;
        sn += g;
        snn += g * g;
        umin = fmin(umin, u);
        umax = fmax(umax, u);
    }
    double mu = su / N, vu = suu / N - mu * mu, mn = sn / N, vn = snn / N - mn * mn;
    ck_assert_msg(fabs(mu - 0.5) < 4 * sqrt(1.0 / 12 / N), "uniform mean %.6f", mu);
    ck_assert_msg(fabs(vu - 1.0 / 12) < 0.002, "uniform variance %.6f, want 1/12", vu);
    ck_assert_msg(umin < 1e-4 && umax > 1 - 1e-4, "uniform range [%g, %g]", umin, umax);
    ck_assert_msg(fabs(mn) < 4 / sqrt((double)N), "normal mean %.6f", mn);
    ck_assert_msg(fabs(vn - 1) < 4 * sqrt(2.0 / N), "normal variance %.6f", vn);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* PSFs */

/* Checks the invariants of k made with p. */
static void check_psf(const dsd_blur_psf *k, const dsd_blur_psf_params *p,
                         const char *what)
{
    ck_assert_msg(k->h >= 1 && k->w >= 1 && k->h <= p->size && k->w <= p->size,
                  "%s: %dx%d PSF for size %d", what, k->h, k->w, p->size);
    if (!p->trim)
        ck_assert_msg(k->h == p->size && k->w == p->size, "%s: untrimmed PSF is %dx%d, "
                      "want %dx%d", what, k->h, k->w, p->size, p->size);
    double sum = 0;
    int row0 = 0, row1 = 0, col0 = 0, col1 = 0;
    for (int i = 0; i < k->h; i++)
        for (int j = 0; j < k->w; j++) {
            float v = k->data[i * k->w + j];
            ck_assert_msg(v >= 0.0f && isfinite(v), "%s: element (%d, %d) = %g", what, i, j,
                          (double)v);
            sum += v;
            if (v > 0) {
                row0 |= i == 0;
                row1 |= i == k->h - 1;
                col0 |= j == 0;
                col1 |= j == k->w - 1;
            }
        }
    ck_assert_msg(fabs(sum - 1.0) <= 1e-6, "%s: the %dx%d PSF sums to %.9f", what, k->h,
                  k->w, sum);
    if (p->trim)
        ck_assert_msg(row0 && row1 && col0 && col1, "%s: the trimmed %dx%d PSF has an empty "
                      "border row or column (top %d bottom %d left %d right %d)", what, k->h,
                      k->w, row0, row1, col0, col1);
}

START_TEST(test_psf_invariants)
{
    dsd_blur_psf_params p;
    dsd_blur_psf_params_default(&p);
    ck_assert_int_eq(p.size, 64);
    ck_assert_int_eq(p.steps, 2000);
    ck_assert(p.length == 60.0 && p.anxiety == DSD_BLUR_RANDOM &&
              p.exposure == DSD_BLUR_RANDOM && p.trim == 1);
    dsd_blur_psf_params variants[4] = {p, p, p, p};
    variants[1].trim = 0;
    variants[2].size = 21; /* odd canvas, fixed parameters */
    variants[2].length = 20;
    variants[2].anxiety = 0.008;
    variants[2].exposure = 0.5;
    variants[3].size = 9;  /* tiny, few steps, strong shake */
    variants[3].length = 8;
    variants[3].steps = 37;
    variants[3].anxiety = 0.9;
    variants[3].exposure = 1;
    int max_side = 0;
    for (int v = 0; v < 4; v++)
        for (uint64_t idx = 0; idx < 12; idx++) {
            dsd_blur_psf k;
            generate(&variants[v], 1000 + (uint64_t)v, idx, &k);
            char what[64];
            snprintf(what, sizeof what, "variant %d index %llu", v, (unsigned long long)idx);
            check_psf(&k, &variants[v], what);
            if (v == 0)
                max_side = k.h > max_side ? k.h : max_side;
        }
    /* DeblurGAN's 60-pixel paths fill a good part of the canvas. */
    ck_assert_msg(max_side >= 16, "the largest of 12 default PSFs is only %d rows", max_side);
}
END_TEST

/* anxiety 0 is a straight path of length L; its trimmed PSF spans about L
 * along the direction and its centroid (the path's midpoint: bilinear
 * splatting keeps first moments) is the PSF's anchor, so the blur does not
 * shift the image. */
START_TEST(test_psf_straight)
{
    dsd_blur_psf_params p;
    dsd_blur_psf_params_default(&p);
    p.anxiety = 0;
    p.exposure = 1;
    for (uint64_t idx = 0; idx < 8; idx++) {
        for (int lv = 0; lv < 2; lv++) {
            p.length = lv ? 60.0 : 17.5;
            dsd_blur_psf k;
            generate(&p, 7, idx, &k);
            double span = sqrt((double)(k.h - 1) * (k.h - 1) + (double)(k.w - 1) * (k.w - 1));
            ck_assert_msg(span >= p.length - 2 && span <= p.length + 3, "index %llu: a straight "
                          "path of %g px gives a %dx%d PSF", (unsigned long long)idx,
                          p.length, k.h, k.w);
            double ci = 0, cj = 0;
            for (int i = 0; i < k.h; i++)
                for (int j = 0; j < k.w; j++) {
                    ci += i * (double)k.data[i * k.w + j];
                    cj += j * (double)k.data[i * k.w + j];
                }
            ck_assert_msg(fabs(ci - (k.h - 1) / 2) <= 1e-3 && fabs(cj - (k.w - 1) / 2) <= 1e-3,
                          "index %llu: centroid (%.4f, %.4f) of the %dx%d PSF is off its "
                          "anchor", (unsigned long long)idx, ci, cj, k.h, k.w);
        }
    }
    /* dsdeblur-blur --length 40 (real camera shake at 1280 x 720, issue 12):
     * a 43 x 43 canvas holds a straight 40-pixel path, whose PSF spans it. */
    p.size = 43;
    p.length = 40;
    for (uint64_t idx = 0; idx < 8; idx++) {
        dsd_blur_psf k;
        generate(&p, 11, idx, &k);
        double span = sqrt((double)(k.h - 1) * (k.h - 1) + (double)(k.w - 1) * (k.w - 1));
        ck_assert_msg(span >= 38 && span <= 43 && k.h <= 43 && k.w <= 43,
                      "index %llu: a straight 40 px path in a 43 canvas gives a %dx%d PSF",
                      (unsigned long long)idx, k.h, k.w);
    }
    p.size = DSD_BLUR_PSF_MAX;
    /* length 0: a single pixel. */
    p.length = 0;
    dsd_blur_psf k;
    generate(&p, 7, 0, &k);
    ck_assert_msg(k.h == 1 && k.w == 1 && k.data[0] == 1.0f, "length 0 gives %dx%d, [0] = %g",
                  k.h, k.w, (double)k.data[0]);
}
END_TEST

START_TEST(test_psf_reproducible)
{
    dsd_blur_psf_params p;
    dsd_blur_psf_params_default(&p);
    static dsd_blur_psf a, b;
    for (uint64_t idx = 0; idx < 6; idx++) {
        generate(&p, 99, idx, &a);
        generate(&p, 99, idx, &b);
        ck_assert_msg(a.h == b.h && a.w == b.w &&
                      memcmp(a.data, b.data, (size_t)a.h * a.w * sizeof(float)) == 0,
                      "index %llu: two runs differ", (unsigned long long)idx);
        generate(&p, 100, idx, &b); /* another seed */
        ck_assert_msg(psf_hash(&a) != psf_hash(&b), "seeds 99 and 100 give the same "
                      "PSF at index %llu", (unsigned long long)idx);
        generate(&p, 99, idx + 1000, &b); /* another index */
        ck_assert_msg(psf_hash(&a) != psf_hash(&b), "indices %llu and %llu of seed 99 "
                      "give the same PSF", (unsigned long long)idx,
                      (unsigned long long)(idx + 1000));
    }
    /* The stream advances by the same number of words whatever the exposure,
     * and a copied stream replays the same PSF. */
    dsd_rng r1, r2;
    dsd_rng_init(&r1, 5, 5);
    r2 = r1;
    p.exposure = 0.1;
    ck_assert(dsd_blur_psf_generate(&p, &r1, &a, NULL) == DSD_OK);
    p.exposure = 1.0;
    ck_assert(dsd_blur_psf_generate(&p, &r2, &b, NULL) == DSD_OK);
    ck_assert_msg(memcmp(&r1, &r2, sizeof r1) == 0, "exposure changes how far the stream moves");
    ck_assert_msg(a.h * a.w < b.h * b.w, "exposure 0.1 (%dx%d) is not smaller than 1 (%dx%d)",
                  a.h, a.w, b.h, b.w);
    dsd_rng r3 = r1, r4 = r1;
    ck_assert(dsd_blur_psf_generate(&p, &r3, &a, NULL) == DSD_OK);
    ck_assert(dsd_blur_psf_generate(&p, &r4, &b, NULL) == DSD_OK);
    ck_assert(psf_hash(&a) == psf_hash(&b));
}
END_TEST

/* Pinned checksums: any change to the generator, its draw order or its
 * arithmetic changes these. Update them only for an intended change, and say
 * so in the commit (training runs with the old PSFs are not reproducible
 * across it). */
START_TEST(test_psf_checksums)
{
    dsd_blur_psf_params d;
    dsd_blur_psf_params_default(&d);
    dsd_blur_psf_params line = d, fixed = d;
    line.size = 33, line.length = 30, line.anxiety = 0, line.exposure = 1;
    fixed.size = 48, fixed.length = 40, fixed.anxiety = 0.005, fixed.exposure = 0.5;
    fixed.trim = 0;
    struct {
        const dsd_blur_psf_params *p;
        uint64_t seed, index;
        int h, w;
        uint64_t hash;
    } pins[] = {
        {&d, 1, 0, 29, 19, UINT64_C(0x340372a6755b1b84)},
        {&d, 2024, 7, 13, 5, UINT64_C(0x4688f2e2b1c81ddb)},
        {&d, UINT64_C(0xdeadbeefcafef00d), 123456789, 9, 11, UINT64_C(0xf9e938be36743c7f)},
        {&line, 5, 3, 7, 31, UINT64_C(0xbfbb4d537966208e)},
        {&fixed, 9, 1, 48, 48, UINT64_C(0x7ee9d1b389a9f9f4)},
    };
    int bad = 0;
    for (int i = 0; i < TU_COUNT(pins); i++) {
        static dsd_blur_psf k;
        generate(pins[i].p, pins[i].seed, pins[i].index, &k);
        uint64_t h = psf_hash(&k);
        if (k.h != pins[i].h || k.w != pins[i].w || h != pins[i].hash) {
            fprintf(stderr, "pin %d (seed %llu, index %llu): got %dx%d 0x%016llx, want %dx%d "
                    "0x%016llx\n", i, (unsigned long long)pins[i].seed,
                    (unsigned long long)pins[i].index, k.h, k.w, (unsigned long long)h,
                    pins[i].h, pins[i].w, (unsigned long long)pins[i].hash);
            bad++;
        }
    }
    ck_assert_msg(bad == 0, "%d of %d pinned PSFs changed (see stderr)", bad,
                  TU_COUNT(pins));
}
END_TEST

START_TEST(test_psf_errors)
{
    static const struct {
        const char *field;
        int size, steps, trim;
        double length, anxiety, exposure;
    } bad[] = {
        {"size", 0, 2000, 1, 0, 0, 1},       {"size", 65, 2000, 1, 60, 0, 1},
        {"steps", 64, 1, 1, 60, 0, 1},       {"steps", 64, 100001, 1, 60, 0, 1},
        {"length", 64, 2000, 1, 62.5, 0, 1}, {"length", 64, 2000, 1, -1, 0, 1},
        {"length", 64, 2000, 1, NAN, 0, 1},  {"anxiety", 64, 2000, 1, 60, 1.5, 1},
        {"anxiety", 64, 2000, 1, 60, -0.5, 1}, {"anxiety", 64, 2000, 1, 60, NAN, 1},
        {"exposure", 64, 2000, 1, 60, 0, 0}, {"exposure", 64, 2000, 1, 60, 0, 1.01},
        {"trim", 64, 2000, 2, 60, 0, 1},
    };
    dsd_blur_psf k;
    for (int i = 0; i < TU_COUNT(bad); i++) {
        dsd_blur_psf_params p = {bad[i].size, bad[i].steps, bad[i].length, bad[i].anxiety,
                                    bad[i].exposure, bad[i].trim};
        dsd_rng r;
        dsd_rng_init(&r, 1, 1);
        dsd_error err = {0};
        dsd_status st = dsd_blur_psf_generate(&p, &r, &k, &err);
        ck_assert_msg(st == DSD_ERR_INVALID_ARGUMENT && strstr(err.message, bad[i].field),
                      "case %d (%s): %s, \"%s\"", i, bad[i].field, dsd_status_name(st),
                      err.message);
    }
    dsd_blur_psf_params p;
    dsd_blur_psf_params_default(&p);
    dsd_rng r;
    dsd_rng_init(&r, 1, 1);
    ck_assert(dsd_blur_psf_generate(NULL, &r, &k, NULL) == DSD_ERR_INVALID_ARGUMENT);
    ck_assert(dsd_blur_psf_generate(&p, NULL, &k, NULL) == DSD_ERR_INVALID_ARGUMENT);
    ck_assert(dsd_blur_psf_generate(&p, &r, NULL, NULL) == DSD_ERR_INVALID_ARGUMENT);
    /* The boundary values are accepted. */
    p.size = 1, p.length = 0, p.steps = 2, p.anxiety = 1, p.exposure = 1e-9;
    ck_assert(dsd_blur_psf_generate(&p, &r, &k, NULL) == DSD_OK);
    ck_assert(k.h == 1 && k.w == 1 && k.data[0] == 1.0f);
    /* Embedding into a smaller frame. */
    float frame[4];
    k.h = 3, k.w = 1;
    dsd_error err = {0};
    ck_assert(dsd_blur_psf_embed(&k, 2, 2, frame, &err) == DSD_ERR_SHAPE);
    ck_assert_msg(strstr(err.message, "3x1") && strstr(err.message, "2x2"), "%s", err.message);
}
END_TEST

START_TEST(test_fft_size)
{
    static const int known[][2] = {{1, 1}, {17, 18}, {37, 39}, {49, 49}, {94, 96},
                                   {97, 98}, {127, 128}, {289, 294}, {1031, 1040}};
    for (int i = 0; i < TU_COUNT(known); i++)
        ck_assert_msg(dsd_blur_fft_size(known[i][0]) == known[i][1], "fft size of %d is %d, "
                      "want %d", known[i][0], dsd_blur_fft_size(known[i][0]), known[i][1]);
    /* Minimal and smooth for every n up to 3000. */
    for (int n = 1; n <= 3000; n++) {
        int m = dsd_blur_fft_size(n);
        ck_assert_msg(m >= n, "fft size of %d is %d", n, m);
        for (int c = n; c <= m; c++) {
            int r = c;
            for (int f = 2; f <= 13; f++)
                while (r % f == 0)
                    r /= f;
            ck_assert_msg((r == 1) == (c == m), "fft size of %d is %d but %d %s", n, m, c,
                          r == 1 ? "is smooth and smaller" : "is not smooth");
        }
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Convolution */

typedef struct conv_case {
    int n, c, h, w;   /* image */
    int kn, kh, kw;   /* PSF (kn = 1 or n) */
    int camera;       /* 1: a generated camera-shake PSF (kn == 1), else random */
    int in_place;     /* y is x */
} conv_case;

static const conv_case conv_cases[] = {
    {2, 3, 37, 29, 2, 13, 9, 0, 0},   /* odd everything, per-image PSFs */
    {2, 3, 64, 48, 1, 31, 31, 0, 0},  /* shared PSF */
    {1, 2, 10, 9, 1, 19, 17, 0, 0},   /* PSF wider than half the image: pads 9 < 10, 8 < 9 */
    {3, 1, 11, 7, 3, 6, 4, 0, 0},     /* even PSF sides */
    {2, 3, 40, 45, 1, 0, 0, 1, 0},    /* a camera-shake PSF */
    {2, 1, 23, 17, 2, 5, 8, 0, 1},    /* in place */
    {1, 1, 1, 5, 1, 1, 3, 0, 0},      /* a single row */
};
/* Under Oclgrind (DSDEBLUR_TEST_SMALL=1): the same kinds of case, smaller. */
static const conv_case conv_cases_small[] = {
    {2, 3, 5, 3, 2, 3, 3, 0, 0},
    {1, 2, 6, 5, 1, 11, 9, 0, 0}, /* PSF wider than half the image */
    {2, 1, 3, 5, 2, 2, 2, 0, 1},  /* even, in place */
};
static const conv_case *cases = conv_cases;
static int n_cases = TU_COUNT(conv_cases);

START_TEST(test_conv)
{
    const conv_case *cc = &cases[_i];
    tu_rng r = tu_rng_init(0xb1u + (uint64_t)_i);
    int kh = cc->kh, kw = cc->kw;
    static dsd_blur_psf cam;
    if (cc->camera) {
        dsd_blur_psf_params p;
        dsd_blur_psf_params_default(&p);
        p.exposure = 1;
        generate(&p, 31337, 2, &cam);
        kh = cam.h, kw = cam.w;
        ck_assert_msg(kh > 4 && kw > 4 && kh <= cc->h && kw <= cc->w, "camera PSF %dx%d", kh,
                      kw);
    }
    const int xs[4] = {cc->n, cc->c, cc->h, cc->w}, ks[4] = {cc->kn, 1, kh, kw};
    size_t nx = tu_numel4(xs), nk = tu_numel4(ks);
    double *x = tu_alloc(nx), *k = tu_alloc(nk), *ref = tu_alloc(nx);
    tu_fill(&r, x, nx, -1, 1);
    if (cc->camera)
        for (size_t i = 0; i < nk; i++)
            k[i] = cam.data[i];
    else
        tu_fill(&r, k, nk, -1, 1);
    tu_round_to_float(x, nx);
    tu_round_to_float(k, nk);
    ref_blur_forward(x, cc->n, cc->c, cc->h, cc->w, k, cc->kn, kh, kw, ref);

    tu_guarded tx, tk, ty;
    tu_guarded_from(&tx, xs, x);
    tu_guarded_from(&tk, ks, k);
    tu_guarded_init(&ty, xs);
    dsd_tensor *y = cc->in_place ? &tx.v : &ty.v;
    TU_OK(dsd_blur_apply(tu_ctx(), &plans, &tx.v, &tk.v, 0.0f, 1, 2, y));
    char what[96];
    snprintf(what, sizeof what, "blur %dx%dx%dx%d with %dx1x%dx%d", cc->n, cc->c, cc->h, cc->w,
             cc->kn, kh, kw);
    tu_check_tensor(what, y, ref, TOL);
    tu_guarded_check(&tx, "x");
    tu_guarded_check(&tk, "PSF");
    if (!cc->in_place)
        tu_guarded_check(&ty, "y");
    /* Deterministic run to run. */
    double *again = tu_alloc(nx), *first = tu_alloc(nx);
    tu_download(y, first);
    if (!cc->in_place) {
        TU_OK(dsd_blur_apply(tu_ctx(), &plans, &tx.v, &tk.v, 0.0f, 1, 2, y));
        tu_download(y, again);
        ck_assert_msg(memcmp(first, again, nx * sizeof *first) == 0, "%s: two runs differ",
                      what);
    }
    tu_guarded_free(&tx);
    tu_guarded_free(&tk);
    tu_guarded_free(&ty);
    free(x), free(k), free(ref), free(again), free(first);
}
END_TEST

/* A delta at the anchor leaves the image as it is; a framed PSF blurs as
 * the PSF itself (dsd_blur_psf_embed keeps the anchor). */
START_TEST(test_delta_and_embed)
{
    /* (image H, W, PSF KH, KW) */
    static const int full[][4] = {{21, 26, 1, 1}, {21, 26, 5, 7}, {21, 26, 6, 3}};
    static const int small[][4] = {{7, 5, 1, 1}, {5, 3, 3, 3}, {3, 5, 2, 2}};
    const int (*cases_d)[4] = tu_small() ? small : full;
    const int n_d = tu_small() ? TU_COUNT(small) : TU_COUNT(full);
    tu_rng r = tu_rng_init(77);
    for (int s = 0; s < n_d; s++) {
        int h = cases_d[s][0], w = cases_d[s][1], kh = cases_d[s][2], kw = cases_d[s][3];
        size_t nx = (size_t)2 * 3 * h * w;
        double *x = tu_alloc(nx), *k = tu_alloc((size_t)kh * kw);
        tu_fill(&r, x, nx, -1, 1);
        tu_round_to_float(x, nx);
        memset(k, 0, (size_t)kh * kw * sizeof *k);
        k[((kh - 1) / 2) * kw + (kw - 1) / 2] = 1.0;
        dsd_tensor tx, ty, tk;
        tu_tensor_from(&tx, 2, 3, h, w, x);
        tu_tensor(&ty, 2, 3, h, w);
        tu_tensor_from(&tk, 1, 1, kh, kw, k);
        TU_OK(dsd_blur_apply(tu_ctx(), &plans, &tx, &tk, 0.0f, 0, 0, &ty));
        char what[64];
        snprintf(what, sizeof what, "%dx%d delta on %dx%d", kh, kw, h, w);
        tu_check_tensor(what, &ty, x, 1e-5);
        tu_tensor_free(&tk);
        tu_tensor_free(&tx);
        tu_tensor_free(&ty);
        free(x), free(k);
    }
    /* A trimmed camera-shake PSF and the same PSF framed in 31x30. */
    dsd_blur_psf_params p;
    dsd_blur_psf_params_default(&p);
    p.size = 24, p.length = 20, p.exposure = 1;
    static dsd_blur_psf cam;
    generate(&p, 3, 3, &cam);
    ck_assert_msg(cam.h < 31 && cam.w < 30, "PSF %dx%d", cam.h, cam.w);
    float framed[31 * 30];
    dsd_error err = {0};
    ck_assert(dsd_blur_psf_embed(&cam, 31, 30, framed, &err) == DSD_OK);
    double sum = 0;
    for (int i = 0; i < 31 * 30; i++)
        sum += framed[i];
    ck_assert_msg(fabs(sum - 1) < 1e-6, "framed PSF sums to %.9f", sum);
    const int xs[4] = {2, 3, 21, 26};
    size_t nx = tu_numel4(xs);
    double *x = tu_alloc(nx), *want = tu_alloc(nx);
    tu_fill(&r, x, nx, -1, 1);
    dsd_tensor tx, ty, tk;
    tu_tensor_from(&tx, 2, 3, 21, 26, x);
    tu_tensor(&ty, 2, 3, 21, 26);
    double kd[31 * 30];
    for (int i = 0; i < cam.h * cam.w; i++)
        kd[i] = cam.data[i];
    tu_tensor_from(&tk, 1, 1, cam.h, cam.w, kd);
    TU_OK(dsd_blur_apply(tu_ctx(), &plans, &tx, &tk, 0.0f, 0, 0, &ty));
    tu_download(&ty, want);
    tu_tensor_free(&tk);
    for (int i = 0; i < 31 * 30; i++)
        kd[i] = framed[i];
    tu_tensor_from(&tk, 1, 1, 31, 30, kd);
    TU_OK(dsd_blur_apply(tu_ctx(), &plans, &tx, &tk, 0.0f, 0, 0, &ty));
    tu_check_tensor("framed vs trimmed PSF", &ty, want, 1e-5);
    tu_tensor_free(&tk);
    tu_tensor_free(&tx);
    tu_tensor_free(&ty);
    free(x), free(want);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Noise */

START_TEST(test_noise)
{
    /* 59946 values (1680 under Oclgrind) */
    const int n = tu_small() ? 16 : 2, c = 3, h = tu_small() ? 7 : 97, w = tu_small() ? 5 : 103;
    const float sigma = 0.1f;
    const uint64_t seed = UINT64_C(0x1234567890), stream = 17;
    size_t count = (size_t)n * c * h * w;
    double *x = tu_alloc(count), *got = tu_alloc(count), *want = tu_alloc(count);
    double *other = tu_alloc(count);
    memset(x, 0, count * sizeof *x);
    dsd_tensor tx, ty, tk;
    tu_tensor_from(&tx, n, c, h, w, x);
    tu_tensor(&ty, n, c, h, w);
    double one = 1.0;
    tu_tensor_from(&tk, 1, 1, 1, 1, &one);
    TU_OK(dsd_blur_apply(tu_ctx(), &plans, &tx, &tk, sigma, seed, stream, &ty));
    tu_download(&ty, got);
    /* Against the host formula, element by element (|g| <= 5.8 keeps the
     * zero image off the clamp). */
    double s = 0, ss = 0;
    for (size_t i = 0; i < count; i++) {
        want[i] = (double)sigma * dsd_blur_noise_host(seed, stream, (uint32_t)i);
        s += got[i];
        ss += got[i] * got[i];
    }
    tu_check_close("noise vs dsd_blur_noise_host", got, want, count, 1e-5);
    double mean = s / count, sd = sqrt(ss / count - mean * mean);
    ck_assert_msg(fabs(mean) < 4 * sigma / sqrt((double)count), "noise mean %.6f", mean);
    ck_assert_msg(fabs(sd / sigma - 1) < 4 / sqrt(2.0 * count), "noise std %.6f, want %.3f", sd,
                  (double)sigma);
    /* Reproducible; another stream or seed gives other noise. */
    TU_OK(dsd_blur_apply(tu_ctx(), &plans, &tx, &tk, sigma, seed, stream, &ty));
    tu_download(&ty, other);
    ck_assert_msg(memcmp(got, other, count * sizeof *got) == 0, "same seed, different noise");
    TU_OK(dsd_blur_apply(tu_ctx(), &plans, &tx, &tk, sigma, seed, stream + 1, &ty));
    tu_download(&ty, other);
    double corr = 0;
    for (size_t i = 0; i < count; i++)
        corr += got[i] * other[i];
    corr /= ss;
    ck_assert_msg(fabs(corr) < 4 / sqrt((double)count), "streams %llu and %llu correlate (%.4f)",
                  (unsigned long long)stream, (unsigned long long)stream + 1, corr);
    TU_OK(dsd_blur_apply(tu_ctx(), &plans, &tx, &tk, sigma, seed + 1, stream, &ty));
    tu_download(&ty, other);
    ck_assert(memcmp(got, other, count * sizeof *got) != 0);
    /* Clamp: an image at 0.9 with sigma 0.5 stays in [-1, 1] and hits 1. */
    for (size_t i = 0; i < count; i++)
        x[i] = 0.9;
    tu_upload(&tx, x);
    TU_OK(dsd_blur_apply(tu_ctx(), &plans, &tx, &tk, 0.5f, seed, stream, &ty));
    tu_download(&ty, got);
    size_t at_one = 0;
    for (size_t i = 0; i < count; i++) {
        ck_assert_msg(got[i] >= -1 && got[i] <= 1, "element %zu = %g is outside [-1, 1]", i,
                      got[i]);
        double v = 0.9f + 0.5f * (float)dsd_blur_noise_host(seed, stream, (uint32_t)i);
        double wv = v > 1 ? 1 : v < -1 ? -1 : v;
        ck_assert_msg(fabs(got[i] - wv) < 1e-5, "element %zu = %.7f, want %.7f", i, got[i], wv);
        at_one += got[i] == 1.0;
    }
    ck_assert_msg(at_one > count / 10, "only %zu of %zu values clamped to 1", at_one, count);
    tu_tensor_free(&tx);
    tu_tensor_free(&ty);
    tu_tensor_free(&tk);
    free(x), free(got), free(want), free(other);
}
END_TEST

/* Data-parallel slices (dsd_blur_apply_at): images 1..2 of a batch of 4,
 * blurred alone with first = 1 * C * H * W, get the noise those images get in
 * the whole batch (the same words; values to float rounding of the FFT). */
START_TEST(test_noise_slice_of_batch)
{
    const int n = 4, c = 3, h = 9, w = 11;
    const float sigma = 0.1f;
    const uint64_t seed = 99, stream = 5;
    size_t count = (size_t)n * c * h * w, per = (size_t)c * h * w;
    double *x = tu_alloc(count), *got = tu_alloc(2 * per), *want = tu_alloc(2 * per);
    memset(x, 0, count * sizeof *x);
    dsd_tensor tx, ty, tk;
    tu_tensor_from(&tx, 2, c, h, w, x);
    tu_tensor(&ty, 2, c, h, w);
    double one = 1.0;
    tu_tensor_from(&tk, 1, 1, 1, 1, &one);
    TU_OK(dsd_blur_apply_at(tu_ctx(), &plans, &tx, &tk, sigma, seed, stream, (uint32_t)per,
                            &ty));
    tu_download(&ty, got);
    for (size_t i = 0; i < 2 * per; i++)
        want[i] = (double)sigma * dsd_blur_noise_host(seed, stream, (uint32_t)(per + i));
    tu_check_close("slice noise vs the batch's", got, want, 2 * per, 1e-5);
    TU_EXPECT_CTX_ERROR(dsd_blur_apply_at(tu_ctx(), &plans, &tx, &tk, sigma, seed, stream,
                                      UINT32_MAX - 10, &ty),
                    DSD_ERR_SHAPE, "32-bit noise counter");
    tu_tensor_free(&tx);
    tu_tensor_free(&ty);
    tu_tensor_free(&tk);
    free(x), free(got), free(want);
}
END_TEST

START_TEST(test_noise_host)
{
    /* The host formula's words are Philox4x32-10 with counter (i, stream lo,
     * stream hi, "blur") and key = seed, checked with the independent ref. */
    const uint64_t seed = UINT64_C(0xfeedfacecafebeef), stream = UINT64_C(0x300000002);
    for (uint32_t i = 0; i < 64; i++) {
        uint32_t ctr[4] = {i, 2, 3, 0x626c7572}, key[2] = {0xcafebeef, 0xfeedface}, wd[4];
        ref_philox4x32_10(ctr, key, wd);
        double u1 = ((wd[0] >> 8) + 1) / 16777216.0, u2 = (wd[1] >> 8) / 16777216.0;
        double want = sqrt(-2 * log(u1)) * cos(2 * 3.14159265358979323846 * u2);
        double got = dsd_blur_noise_host(seed, stream, i);
        ck_assert_msg(fabs(got - want) < 1e-12, "noise %u = %.15g, want %.15g", i, got, want);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors */

/* The per-step noise std of a range (data.noise_sigma_max): inside the
 * range, spread over it, reproducible, another per step; an empty or
 * reversed range is its low end exactly. */
START_TEST(test_noise_sigma_draw)
{
    const double lo = 2.0 / 255, hi = 4.0 / 255; /* 1 to 2 gray levels */
    ck_assert(dsd_blur_noise_sigma_draw(lo, lo, 1, 5) == lo);
    ck_assert(dsd_blur_noise_sigma_draw(hi, lo, 1, 5) == hi);
    ck_assert(dsd_blur_noise_sigma_draw(0.01, 0, 1, 5) == 0.01);
    double sum = 0, mn = 1, mx = 0;
    int same = 0;
    const int n = 4000;
    for (int s = 0; s < n; s++) {
        double v = dsd_blur_noise_sigma_draw(lo, hi, 9, (uint64_t)s);
        ck_assert_msg(v >= lo && v <= hi, "step %d: %.6f not in [%.6f, %.6f]", s, v, lo, hi);
        ck_assert(v == dsd_blur_noise_sigma_draw(lo, hi, 9, (uint64_t)s));
        same += v == dsd_blur_noise_sigma_draw(lo, hi, 10, (uint64_t)s);
        sum += v;
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    double mean = sum / n, width = hi - lo;
    /* uniform: mean within 4 standard errors (width / sqrt(12 n)) of the middle */
    ck_assert_msg(fabs(mean - (lo + hi) / 2) < 4 * width / sqrt(12.0 * n), "mean %.6f", mean);
    ck_assert_msg(mn < lo + 0.01 * width && mx > hi - 0.01 * width, "range [%.6f, %.6f]", mn, mx);
    ck_assert_msg(same == 0, "%d steps draw the same std under another seed", same);
}
END_TEST

/* Per-PSF ranges (data.blur_length .. data.anxiety_max, dsdeblur-blur's
 * L:L_MAX): unset settings keep the params and draw nothing; a range draws
 * one uniform each, in the order length, exposure, anxiety, inside it; a
 * reversed or empty range is its low end. */
START_TEST(test_psf_params_draw)
{
    dsd_blur_psf_params base;
    dsd_blur_psf_params_default(&base);
    base.length = 17.0;
    const dsd_blur_psf_ranges unset = {-1, 0, 0, 0, -1, 0};
    dsd_rng r, r0;
    dsd_rng_init(&r, 3, 4);
    r0 = r;
    dsd_blur_psf_params p = base;
    dsd_blur_psf_params_draw(&unset, &r, &p);
    ck_assert(p.length == 17.0 && p.exposure == DSD_BLUR_RANDOM && p.anxiety == DSD_BLUR_RANDOM);
    ck_assert(dsd_rng_uniform(&r) == dsd_rng_uniform(&r0)); /* nothing drawn */

    const dsd_blur_psf_ranges fixed = {40, 20, 0.5, 0.5, 0, 0};
    dsd_rng_init(&r, 3, 4);
    r0 = r;
    p = base;
    dsd_blur_psf_params_draw(&fixed, &r, &p);
    ck_assert(p.length == 40 && p.exposure == 0.5 && p.anxiety == 0);
    ck_assert(dsd_rng_uniform(&r) == dsd_rng_uniform(&r0));

    const dsd_blur_psf_ranges ranges = {20, 40, 0.5, 1, 0, 0.005};
    double mn = 100, mx = 0;
    for (uint64_t s = 0; s < 500; s++) {
        dsd_rng_init(&r, 3, s);
        r0 = r;
        p = base;
        dsd_blur_psf_params_draw(&ranges, &r, &p);
        ck_assert(p.length >= 20 && p.length < 40);
        ck_assert(p.exposure >= 0.5 && p.exposure < 1);
        ck_assert(p.anxiety >= 0 && p.anxiety < 0.005);
        /* the order: one uniform each for length, exposure, anxiety */
        ck_assert(p.length == 20 + 20 * dsd_rng_uniform(&r0));
        ck_assert(p.exposure == 0.5 + 0.5 * dsd_rng_uniform(&r0));
        ck_assert(p.anxiety == 0.005 * dsd_rng_uniform(&r0));
        mn = p.length < mn ? p.length : mn;
        mx = p.length > mx ? p.length : mx;
    }
    ck_assert_msg(mn < 21 && mx > 39, "lengths span [%g, %g]", mn, mx);
    /* the drawn settings make a valid PSF of about that length */
    dsd_rng_init(&r, 3, 7);
    p = base;
    p.size = 43;
    dsd_blur_psf_params_draw(&(dsd_blur_psf_ranges){40, 40, 1, 1, 0, 0}, &r, &p);
    dsd_blur_psf psf;
    dsd_error err;
    ck_assert_int_eq(dsd_blur_psf_generate(&p, &r, &psf, &err), DSD_OK);
    /* straight at a random angle: the support's diagonal is the path (+- the
     * bilinear splat's pixel) */
    double diag = hypot(psf.h - 1.0, psf.w - 1.0);
    ck_assert_msg(diag > 39 && diag < 42.5, "a straight 40-pixel path gave %dx%d", psf.h, psf.w);
}
END_TEST

START_TEST(test_errors)
{
    dsd_context *ctx = tu_ctx();
    dsd_tensor x, y, k, ybad, kbad_c, kbad_n, kbig_h, kbig_w;
    tu_tensor(&x, 2, 3, 10, 9);
    tu_tensor(&y, 2, 3, 10, 9);
    tu_tensor(&k, 2, 1, 3, 3);
    tu_tensor(&ybad, 2, 3, 9, 10);
    tu_tensor(&kbad_c, 1, 3, 3, 3);
    tu_tensor(&kbad_n, 3, 1, 3, 3);
    tu_tensor(&kbig_h, 1, 1, 21, 3); /* needs 10 rows of reflection, H = 10 */
    tu_tensor(&kbig_w, 1, 1, 3, 18); /* needs 9 columns, W = 9 */
    dsd_tensor empty = {0};
    tu_expect_status(dsd_blur_apply(ctx, &plans, NULL, &k, 0, 0, 0, &y), DSD_ERR_INVALID_ARGUMENT,
                     "x NULL");
    tu_expect_status(dsd_blur_apply(ctx, &plans, &x, NULL, 0, 0, 0, &y), DSD_ERR_INVALID_ARGUMENT,
                     "PSF NULL");
    tu_expect_status(dsd_blur_apply(ctx, &plans, &x, &k, 0, 0, 0, NULL), DSD_ERR_INVALID_ARGUMENT,
                     "y NULL");
    tu_expect_status(dsd_blur_apply(ctx, &plans, &empty, &k, 0, 0, 0, &y), DSD_ERR_SHAPE,
                     "x empty");
    tu_expect_status(dsd_blur_apply(ctx, &plans, &x, &k, 0, 0, 0, &ybad), DSD_ERR_SHAPE, "y shape");
    tu_expect_status(dsd_blur_apply(ctx, &plans, &x, &kbad_c, 0, 0, 0, &y), DSD_ERR_SHAPE,
                     "PSF channels");
    tu_expect_status(dsd_blur_apply(ctx, &plans, &x, &kbad_n, 0, 0, 0, &y), DSD_ERR_SHAPE,
                     "PSF batch");
    tu_expect_status(dsd_blur_apply(ctx, &plans, &x, &kbig_h, 0, 0, 0, &y), DSD_ERR_SHAPE,
                     "PSF taller than 2H - 1");
    const char *msg = dsd_context_error(ctx)->message;
    /* in a user's words: image and kernel width x height, the size needed,
     * no function name */
    ck_assert_msg(!strcmp(msg, "the image is 9x10 pixels, too small for its 3x21 blur kernel "
                               "(width x height): the blur mirrors the image by half the kernel "
                               "at each border and needs at least 2x11 pixels"),
                  "message: %s", msg);
    tu_expect_status(dsd_blur_apply(ctx, &plans, &x, &kbig_w, 0, 0, 0, &y), DSD_ERR_SHAPE,
                     "PSF wider than 2W - 1");
    msg = dsd_context_error(ctx)->message;
    ck_assert_msg(strstr(msg, "is 9x10 pixels, too small for its 18x3 blur kernel") &&
                      strstr(msg, "at least 10x2 pixels"),
                  "message: %s", msg);
    const float bad_sigma[] = {-0.1f, NAN, INFINITY};
    for (int i = 0; i < 3; i++) {
        tu_expect_status(dsd_blur_apply(ctx, &plans, &x, &k, bad_sigma[i], 0, 0, &y),
                         DSD_ERR_INVALID_ARGUMENT, "bad sigma");
        ck_assert_msg(strstr(dsd_context_error(ctx)->message, "noise_sigma"), "message: %s",
                      dsd_context_error(ctx)->message);
    }
    /* The largest PSFs that fit are accepted: 19 rows on H = 10, 17 columns
     * on W = 9 (under Oclgrind 5 rows on H = 3, a column PSF on W = 5). */
    dsd_tensor kmax, xm, ym;
    int mh = tu_small() ? 3 : 10, mw = tu_small() ? 5 : 9;
    tu_tensor(&kmax, 1, 1, 2 * mh - 1, tu_small() ? 1 : 2 * mw - 1);
    tu_tensor(&xm, 1, 2, mh, mw);
    tu_tensor(&ym, 1, 2, mh, mw);
    TU_OK(dsd_tensor_fill(ctx, &kmax, 0.01f));
    TU_OK(dsd_tensor_fill(ctx, &xm, 0.5f));
    TU_OK(dsd_blur_apply(ctx, &plans, &xm, &kmax, 0, 0, 0, &ym));
    tu_tensor_free(&kmax), tu_tensor_free(&xm), tu_tensor_free(&ym);
    tu_tensor_free(&x), tu_tensor_free(&y), tu_tensor_free(&k), tu_tensor_free(&ybad);
    tu_tensor_free(&kbad_c), tu_tensor_free(&kbad_n), tu_tensor_free(&kbig_h);
    tu_tensor_free(&kbig_w);
}
END_TEST

int main(void)
{
    /* As in test-fft-loss: Oclgrind 21.10 cannot run the LLVM `freeze` its
     * clang emits when optimizing clFFT's generated kernels; unoptimized
     * builds avoid it. Only Oclgrind reads this; a caller's value wins. */
    setenv("OCLGRIND_BUILD_OPTIONS", "-cl-opt-disable", 0);
    Suite *s = suite_create("blur");
    TCase *tc = tcase_create("blur");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_rng);
    tcase_add_test(tc, test_psf_invariants);
    tcase_add_test(tc, test_psf_straight);
    tcase_add_test(tc, test_psf_reproducible);
    tcase_add_test(tc, test_psf_checksums);
    tcase_add_test(tc, test_psf_errors);
    tcase_add_test(tc, test_fft_size);
    if (tu_small()) {
        cases = conv_cases_small;
        n_cases = TU_COUNT(conv_cases_small);
    }
    tcase_add_loop_test(tc, test_conv, 0, n_cases);
    tcase_add_test(tc, test_delta_and_embed);
    tcase_add_test(tc, test_noise);
    tcase_add_test(tc, test_noise_slice_of_batch);
    tcase_add_test(tc, test_noise_host);
    tcase_add_test(tc, test_noise_sigma_draw);
    tcase_add_test(tc, test_psf_params_draw);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    int rc = tu_run(s); /* frees the shared context first; the plans retain its cl_context */
    dsd_fft_plans_free(&plans);
    return rc;
}
