/*
 * test-loss.c: the mean-reduced losses (src/ops/loss.c, cl/loss.cl and the
 * fused terms of cl/reduce.cl) against the double-precision references in
 * tests/ref/loss.c, and the references against central finite differences.
 *
 * Device tensors are batch views starting at image 1 of a larger tensor, so
 * non-zero offsets reach the kernels; image 0 holds a sentinel no op may
 * touch. a - b stays at least 0.05 away from 0, so the L1 kink is never
 * crossed by the finite-difference step. test_exact uses integer differences
 * whose loss is exact in float, so a skipped or repeated element shows.
 */
#include "testutil.h"
#include "ref/loss.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* (N, C, H, W): odd sizes; 1x1; 2x3x37x29 = 6438 elements (several
 * work-groups); and 2x13x61x67 = 106262, more than pass 1 of the reduction
 * covers in one sweep. The last shape is the largest. */
static const int shapes_full[][4] = {
    {2, 3, 7, 5}, {2, 17, 9, 11}, {2, 5, 1, 1}, {1, 1, 1, 1}, {2, 3, 37, 29}, {2, 13, 61, 67},
};
static const int shapes_small[][4] = {
    {2, 3, 7, 5}, {2, 5, 1, 1}, {1, 1, 1, 1}, {2, 3, 37, 29},
};
static const int (*shapes)[4] = shapes_full;
static int n_shapes = TU_COUNT(shapes_full);

static const int scalar_shape[4] = {1, 1, 1, 1};

/* ------------------------------------------------------------------------ */
/* Helpers: tensors as views with a guarded image 0 */

/* b random, a = b + d with |d| in [0.05, 1.5] (no L1 kink), both floats. */
static void fill_pair(tu_rng *r, double *a, double *b, size_t n)
{
    tu_fill(r, b, n, -1.0, 1.0);
    tu_fill_nonzero(r, a, n, 0.05, 1.5);
    for (size_t i = 0; i < n; i++)
        a[i] += b[i];
    tu_round_to_float(a, n);
    tu_round_to_float(b, n);
}

/* A gradient pre-fill of the gradient's own magnitude (~ scale / n), so float
 * rounding of prefill + gradient stays near the gradient's ulp. */
static void fill_prefill(tu_rng *r, double *g, size_t n, double mag)
{
    tu_fill(r, g, n, -mag, mag);
    tu_round_to_float(g, n);
}

/* ------------------------------------------------------------------------ */
/* The losses under test, behind one signature: a pair loss (a, b) or BCE of
 * a against the constant target. */

typedef struct loss_case {
    const char *name;
    int is_bce;
    double target;           /* BCE only */
} loss_case;

static const loss_case cases[] = {
    {"mse", 0, 0.0},        {"l1", 0, 0.0},        {"bce t=1", 1, 1.0},
    {"bce t=0", 1, 0.0},    {"bce t=0.3", 1, 0.3},
};
enum { N_CASES = (int)(sizeof cases / sizeof cases[0]) };

static dsd_status dev_forward(const loss_case *lc, const dsd_tensor *a, const dsd_tensor *b,
                              dsd_tensor *loss)
{
    dsd_context *ctx = tu_ctx();
    if (lc->is_bce)
        return dsd_bce_logits_loss_forward(ctx, a, (float)lc->target, loss);
    if (!strcmp(lc->name, "mse"))
        return dsd_mse_loss_forward(ctx, a, b, loss);
    return dsd_l1_loss_forward(ctx, a, b, loss);
}

static dsd_status dev_backward(const loss_case *lc, float scale, const dsd_tensor *a,
                               const dsd_tensor *b, dsd_tensor *da, dsd_tensor *db)
{
    dsd_context *ctx = tu_ctx();
    if (lc->is_bce)
        return dsd_bce_logits_loss_backward(ctx, scale, a, (float)lc->target, da);
    if (!strcmp(lc->name, "mse"))
        return dsd_mse_loss_backward(ctx, scale, a, b, da, db);
    return dsd_l1_loss_backward(ctx, scale, a, b, da, db);
}

static void ref_forward(const loss_case *lc, const double *a, const double *b, size_t n,
                        double *loss)
{
    if (lc->is_bce)
        ref_bce_logits_loss_forward(a, n, lc->target, loss);
    else if (!strcmp(lc->name, "mse"))
        ref_mse_loss_forward(a, b, n, loss);
    else
        ref_l1_loss_forward(a, b, n, loss);
}

static void ref_backward(const loss_case *lc, double scale, const double *a, const double *b,
                         size_t n, double *da, double *db)
{
    if (lc->is_bce)
        ref_bce_logits_loss_backward(scale, a, n, lc->target, da);
    else if (!strcmp(lc->name, "mse"))
        ref_mse_loss_backward(scale, a, b, n, da, db);
    else
        ref_l1_loss_backward(scale, a, b, n, da, db);
}

/* Inputs for a case: logits in [-6, 6] away from 0 for BCE, a pair otherwise. */
static void fill_inputs(const loss_case *lc, tu_rng *r, double *a, double *b, size_t n)
{
    if (lc->is_bce) {
        tu_fill_nonzero(r, a, n, 0.05, 6.0);
        tu_round_to_float(a, n);
        memset(b, 0, n * sizeof *b);
    } else {
        fill_pair(r, a, b, n);
    }
}

/* ------------------------------------------------------------------------ */
/* Forward and backward vs the reference */

/* Forward, then backward into pre-filled gradients with mask `grads` (bit 0:
 * da, bit 1: db; BCE has only da). */
static void check_case(const loss_case *lc, const int s[4], const double *a, const double *b,
                       int grads, uint64_t seed)
{
    tu_rng r = tu_rng_init(seed);
    size_t n = tu_numel4(s);
    const double scale = 0.7;
    char what[128];

    tu_guarded ta, tb, tl, tda, tdb;
    tu_guarded_from(&ta, s, a);
    tu_guarded_from(&tb, s, b);
    tu_guarded_from(&tl, scalar_shape, NULL);
    TU_OK(dev_forward(lc, &ta.v, &tb.v, &tl.v));
    double ref;
    ref_forward(lc, a, b, n, &ref);
    double got = tu_download_scalar(&tl.v);
    snprintf(what, sizeof what, "%s forward %dx%dx%dx%d", lc->name, s[0], s[1], s[2], s[3]);
    tu_check_close(what, &got, &ref, 1, 1e-5);
    tu_guarded_check(&tl, what);

    double *da0 = tu_alloc(n), *db0 = tu_alloc(n), *ga = tu_alloc(n), *gb = tu_alloc(n);
    fill_prefill(&r, da0, n, 2.0 * scale / (double)n);
    fill_prefill(&r, db0, n, 2.0 * scale / (double)n);
    tu_guarded_from(&tda, s, da0);
    tu_guarded_from(&tdb, s, db0);
    int want_db = (grads & 2) && !lc->is_bce;
    TU_OK(dev_backward(lc, (float)scale, &ta.v, &tb.v, (grads & 1) ? &tda.v : NULL,
                       want_db ? &tdb.v : NULL));
    ref_backward(lc, scale, a, b, n, ga, gb);
    if (!(grads & 1))
        memset(ga, 0, n * sizeof *ga); /* untouched */
    if (!want_db)
        memset(gb, 0, n * sizeof *gb);
    snprintf(what, sizeof what, "%s backward d%s %dx%dx%dx%d (grads %d)", lc->name,
             lc->is_bce ? "logits" : "a", s[0], s[1], s[2], s[3], grads);
    tu_check_accum(what, &tda.v, da0, ga, 1e-5);
    tu_guarded_check(&tda, what);
    snprintf(what, sizeof what, "%s backward db %dx%dx%dx%d (grads %d)", lc->name, s[0], s[1],
             s[2], s[3], grads);
    tu_check_accum(what, &tdb.v, db0, gb, 1e-5);
    tu_guarded_check(&tdb, what);

    tu_guarded_free(&ta);
    tu_guarded_free(&tb);
    tu_guarded_free(&tl);
    tu_guarded_free(&tda);
    tu_guarded_free(&tdb);
    free(da0);
    free(db0);
    free(ga);
    free(gb);
}

/* _i = case * n_shapes + shape; both gradients. */
START_TEST(test_forward_backward)
{
    const loss_case *lc = &cases[_i / n_shapes];
    const int *s = shapes[_i % n_shapes];
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(500 + (uint64_t)_i);
    double *a = tu_alloc(n), *b = tu_alloc(n);
    fill_inputs(lc, &r, a, b, n);
    check_case(lc, s, a, b, 3, 600 + (uint64_t)_i);
    free(a);
    free(b);
}
END_TEST

/* _i = case * 2 + (0: da only, 1: db only), on the first shape. */
START_TEST(test_null_gradients)
{
    const loss_case *lc = &cases[_i / 2];
    if (lc->is_bce)
        return;
    const int *s = shapes[0];
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(700 + (uint64_t)_i);
    double *a = tu_alloc(n), *b = tu_alloc(n);
    fill_inputs(lc, &r, a, b, n);
    check_case(lc, s, a, b, _i % 2 ? 2 : 1, 800 + (uint64_t)_i);
    free(a);
    free(b);
}
END_TEST

/* Integer differences in 1..3 over ~100k elements: the sums are exact in
 * float, and the device's mean is exactly sum * float(1/n). */
START_TEST(test_exact)
{
    dsd_context *ctx = tu_ctx();
    const int *s = shapes[n_shapes - 1];
    size_t n = tu_numel4(s);
    double *a = tu_alloc(n), *b = tu_alloc(n), sq = 0.0, ab = 0.0;
    for (size_t i = 0; i < n; i++) {
        b[i] = (double)((int)(i % 11) - 5);
        double d = (double)(1 + (i * 31 + i / 7) % 3) * ((i * 13) % 5 < 2 ? -1.0 : 1.0);
        a[i] = b[i] + d;
        sq += d * d;
        ab += fabs(d);
    }
    tu_guarded ta, tb, tl;
    tu_guarded_from(&ta, s, a);
    tu_guarded_from(&tb, s, b);
    tu_guarded_from(&tl, scalar_shape, NULL);
    float inv = (float)(1.0 / (double)n);
    TU_OK(dsd_mse_loss_forward(ctx, &ta.v, &tb.v, &tl.v));
    float want = (float)sq * inv;
    ck_assert_msg(tu_download_scalar(&tl.v) == want, "mse %zu: %.9g != %.9g", n,
                  tu_download_scalar(&tl.v), (double)want);
    TU_OK(dsd_l1_loss_forward(ctx, &ta.v, &tb.v, &tl.v));
    want = (float)ab * inv;
    ck_assert_msg(tu_download_scalar(&tl.v) == want, "l1 %zu: %.9g != %.9g", n,
                  tu_download_scalar(&tl.v), (double)want);
    tu_guarded_free(&ta);
    tu_guarded_free(&tb);
    tu_guarded_free(&tl);
    free(a);
    free(b);
}
END_TEST

/* L1 at a == b: sign(0) = 0, so those elements get no gradient. */
START_TEST(test_l1_zero)
{
    dsd_context *ctx = tu_ctx();
    const int s[4] = {2, 3, 7, 5};
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(31);
    double *a = tu_alloc(n), *b = tu_alloc(n), *d0 = tu_alloc(n), *g = tu_alloc(n);
    fill_pair(&r, a, b, n);
    for (size_t i = 0; i < n; i += 3)
        a[i] = b[i];
    fill_prefill(&r, d0, n, 1.0 / (double)n);
    tu_guarded ta, tb, tda;
    tu_guarded_from(&ta, s, a);
    tu_guarded_from(&tb, s, b);
    tu_guarded_from(&tda, s, d0);
    TU_OK(dsd_l1_loss_backward(ctx, 1.0f, &ta.v, &tb.v, &tda.v, NULL));
    ref_l1_loss_backward(1.0, a, b, n, g, NULL);
    for (size_t i = 0; i < n; i += 3)
        ck_assert(g[i] == 0.0);
    tu_check_accum("l1 backward with a == b at every third element", &tda.v, d0, g, 1e-5);
    double *got = tu_alloc(n);
    tu_download(&tda.v, got);
    for (size_t i = 0; i < n; i += 3)
        ck_assert_msg(got[i] == d0[i], "element %zu: %g != pre-fill %g", i, got[i], d0[i]);
    tu_guarded_free(&ta);
    tu_guarded_free(&tb);
    tu_guarded_free(&tda);
    free(a);
    free(b);
    free(d0);
    free(g);
    free(got);
}
END_TEST

/* Logits up to |z| = 100: finite, and correct to float rounding. */
START_TEST(test_bce_extreme)
{
    dsd_context *ctx = tu_ctx();
    static const double zs[] = {80.0, -80.0, 100.0, -100.0, 30.0, -30.0, 17.5, -0.001};
    static const double ts[] = {0.0, 1.0, 0.5};
    for (size_t k = 0; k < sizeof zs / sizeof zs[0]; k++) {
        for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) {
            /* a 1x2x1x3 tensor of the same logit */
            double z[6], ref, got;
            for (int i = 0; i < 6; i++)
                z[i] = zs[k];
            const int s[4] = {1, 2, 1, 3};
            tu_guarded tz, tl, tdz;
            tu_guarded_from(&tz, s, z);
            tu_guarded_from(&tl, scalar_shape, NULL);
            double d0[6] = {0}, g[6] = {0};
            tu_guarded_from(&tdz, s, d0);
            TU_OK(dsd_bce_logits_loss_forward(ctx, &tz.v, (float)ts[j], &tl.v));
            got = tu_download_scalar(&tl.v);
            ref_bce_logits_loss_forward(z, 6, ts[j], &ref);
            char what[96];
            snprintf(what, sizeof what, "bce forward z=%g t=%g", zs[k], ts[j]);
            ck_assert_msg(isfinite(got), "%s: %g", what, got);
            ck_assert_msg(fabs(got - ref) <= 1e-5 * fmax(fabs(ref), 1e-3), "%s: got %.9g, "
                          "reference %.9g", what, got, ref);
            TU_OK(dsd_bce_logits_loss_backward(ctx, 3.0f, &tz.v, (float)ts[j], &tdz.v));
            ref_bce_logits_loss_backward(3.0, z, 6, ts[j], g);
            snprintf(what, sizeof what, "bce backward z=%g t=%g", zs[k], ts[j]);
            double gd[6];
            tu_download(&tdz.v, gd);
            /* Near 0, sigmoid(z) - t cancels: judge at the gradient's unit
             * scale / n. Saturated (|z| >= 10) the kernel must keep the tiny
             * gradient to float precision (target 1 at z = 17.5 is -1.3e-8,
             * which a naive sigmoid(z) - 1 rounds to 0). */
            double tol = fabs(zs[k]) >= 10.0 ? 1e-5 * fabs(g[0]) + 1e-30 : 1e-6 * 3.0 / 6.0;
            for (int i = 0; i < 6; i++) {
                ck_assert_msg(isfinite(gd[i]), "%s: %g", what, gd[i]);
                ck_assert_msg(fabs(gd[i] - g[i]) <= tol,
                              "%s: got %.9g, reference %.9g", what, gd[i], g[i]);
            }
            tu_guarded_free(&tz);
            tu_guarded_free(&tl);
            tu_guarded_free(&tdz);
        }
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The reference backward vs central finite differences */

typedef struct fd_state {
    const loss_case *lc;
    double *a, *b;
    size_t n;
    double scale;
} fd_state;

static double fd_loss(void *user)
{
    fd_state *s = user;
    double loss;
    ref_forward(s->lc, s->a, s->b, s->n, &loss);
    return s->scale * loss;
}

START_TEST(test_ref_grad)
{
    const loss_case *lc = &cases[_i];
    const int sh[4] = {2, 3, 7, 5};
    tu_rng r = tu_rng_init(900 + (uint64_t)_i);
    fd_state s = {.lc = lc, .n = tu_numel4(sh), .scale = 1.7};
    s.a = tu_alloc(s.n);
    s.b = tu_alloc(s.n);
    fill_inputs(lc, &r, s.a, s.b, s.n);
    double *num = tu_alloc(s.n), *ga = tu_alloc(s.n), *gb = tu_alloc(s.n);
    ref_backward(lc, s.scale, s.a, s.b, s.n, ga, gb);
    char what[96];
    /* the loss is ~1 while the gradients are ~1/n: compare at the gradient's scale */
    tu_numeric_grad(fd_loss, &s, s.a, s.n, 1e-6, num);
    snprintf(what, sizeof what, "%s reference backward (a) vs finite differences", lc->name);
    tu_check_close(what, ga, num, s.n, 1e-6);
    if (!lc->is_bce) {
        tu_numeric_grad(fd_loss, &s, s.b, s.n, 1e-6, num);
        snprintf(what, sizeof what, "%s reference backward (b) vs finite differences", lc->name);
        tu_check_close(what, gb, num, s.n, 1e-6);
    }
    free(s.a);
    free(s.b);
    free(num);
    free(ga);
    free(gb);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Shape errors and determinism */

START_TEST(test_shape_errors)
{
    dsd_context *ctx = tu_ctx();
    const int s[4] = {2, 3, 7, 5}, t[4] = {2, 3, 5, 7}, two[4] = {1, 1, 1, 2};
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(3);
    double *a = tu_alloc(n), *b = tu_alloc(n);
    fill_pair(&r, a, b, n);
    tu_guarded ta, tb, tt, tl, ttwo, tda;
    tu_guarded_from(&ta, s, a);
    tu_guarded_from(&tb, s, b);
    tu_guarded_from(&tt, t, b);
    tu_guarded_from(&tl, scalar_shape, NULL);
    tu_guarded_from(&ttwo, two, NULL);
    tu_guarded_from(&tda, s, NULL);

    /* a and b of different shapes: the message names both */
    ck_assert_int_eq(dsd_mse_loss_forward(ctx, &ta.v, &tt.v, &tl.v), DSD_ERR_SHAPE);
    ck_assert_msg(strstr(dsd_context_error(ctx)->message, "2x3x7x5") &&
                      strstr(dsd_context_error(ctx)->message, "2x3x5x7"),
                  "%s", dsd_context_error(ctx)->message);
    ck_assert_int_eq(dsd_l1_loss_forward(ctx, &tt.v, &ta.v, &tl.v), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_mse_loss_backward(ctx, 1.0f, &ta.v, &tt.v, &tda.v, NULL),
                     DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_l1_loss_backward(ctx, 1.0f, &ta.v, &tt.v, &tda.v, NULL),
                     DSD_ERR_SHAPE);
    /* a loss that is not 1x1x1x1 */
    ck_assert_int_eq(dsd_mse_loss_forward(ctx, &ta.v, &tb.v, &ttwo.v), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_l1_loss_forward(ctx, &ta.v, &tb.v, &ttwo.v), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_bce_logits_loss_forward(ctx, &ta.v, 1.0f, &ttwo.v), DSD_ERR_SHAPE);
    /* gradients of the wrong shape */
    ck_assert_int_eq(dsd_mse_loss_backward(ctx, 1.0f, &ta.v, &tb.v, &tda.v, &tt.v),
                     DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_l1_loss_backward(ctx, 1.0f, &ta.v, &tb.v, &tt.v, NULL),
                     DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_bce_logits_loss_backward(ctx, 1.0f, &ta.v, 1.0f, &tt.v),
                     DSD_ERR_SHAPE);
    /* NULL inputs, a non-finite target */
    ck_assert_int_eq(dsd_mse_loss_forward(ctx, NULL, &tb.v, &tl.v), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_l1_loss_forward(ctx, &ta.v, NULL, &tl.v), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_bce_logits_loss_forward(ctx, &ta.v, 1.0f, NULL),
                     DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_bce_logits_loss_forward(ctx, &ta.v, NAN, &tl.v),
                     DSD_ERR_INVALID_ARGUMENT);
    /* both gradients NULL: nothing to do */
    ck_assert_int_eq(dsd_mse_loss_backward(ctx, 1.0f, &ta.v, &tb.v, NULL, NULL), DSD_OK);
    ck_assert_int_eq(dsd_bce_logits_loss_backward(ctx, 1.0f, &ta.v, 1.0f, NULL), DSD_OK);

    /* nothing was enqueued */
    ck_assert(tu_download_scalar(&tl.v) == TU_SENTINEL);
    double *got = tu_alloc(n), two_v[2];
    tu_download(&tda.v, got);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == TU_SENTINEL, "da[%zu] changed to %g", i, got[i]);
    tu_download(&tt.v, got);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == b[i], "t[%zu] changed to %g", i, got[i]);
    tu_download(&ttwo.v, two_v);
    ck_assert(two_v[0] == TU_SENTINEL && two_v[1] == TU_SENTINEL);

    tu_guarded_free(&ta);
    tu_guarded_free(&tb);
    tu_guarded_free(&tt);
    tu_guarded_free(&tl);
    tu_guarded_free(&ttwo);
    tu_guarded_free(&tda);
    free(a);
    free(b);
    free(got);
}
END_TEST

/* Every loss forward + backward twice on the largest shape: bit-identical. */
START_TEST(test_determinism)
{
    const int *s = shapes[n_shapes - 1];
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(1234);
    double *a = tu_alloc(n), *b = tu_alloc(n), *d0 = tu_alloc(n);
    fill_pair(&r, a, b, n);
    fill_prefill(&r, d0, n, 1.0);
    float loss[2][N_CASES], *ga[2], *gb[2];
    for (int run = 0; run < 2; run++) {
        tu_guarded ta, tb, tl, tda, tdb;
        tu_guarded_from(&ta, s, a);
        tu_guarded_from(&tb, s, b);
        tu_guarded_from(&tl, scalar_shape, NULL);
        tu_guarded_from(&tda, s, d0);
        tu_guarded_from(&tdb, s, d0);
        for (int k = 0; k < N_CASES; k++) {
            TU_OK(dev_forward(&cases[k], &ta.v, &tb.v, &tl.v));
            TU_OK(dsd_tensor_download(tu_ctx(), &tl.v, &loss[run][k], 1));
            TU_OK(dev_backward(&cases[k], 0.9f, &ta.v, &tb.v, &tda.v, &tdb.v));
        }
        ga[run] = malloc(n * sizeof(float));
        gb[run] = malloc(n * sizeof(float));
        ck_assert(ga[run] && gb[run]);
        TU_OK(dsd_tensor_download(tu_ctx(), &tda.v, ga[run], n));
        TU_OK(dsd_tensor_download(tu_ctx(), &tdb.v, gb[run], n));
        tu_guarded_free(&ta);
        tu_guarded_free(&tb);
        tu_guarded_free(&tl);
        tu_guarded_free(&tda);
        tu_guarded_free(&tdb);
    }
    for (int k = 0; k < N_CASES; k++)
        ck_assert_msg(!memcmp(&loss[0][k], &loss[1][k], sizeof(float)),
                      "%s forward differs between runs: %.9g vs %.9g", cases[k].name,
                      loss[0][k], loss[1][k]);
    ck_assert_msg(!memcmp(ga[0], ga[1], n * sizeof(float)), "da differs between runs");
    ck_assert_msg(!memcmp(gb[0], gb[1], n * sizeof(float)), "db differs between runs");
    for (int run = 0; run < 2; run++) {
        free(ga[run]);
        free(gb[run]);
    }
    free(a);
    free(b);
    free(d0);
}
END_TEST

int main(void)
{
    shapes = TU_PICK_SHAPES(shapes_full, shapes_small, &n_shapes);
    Suite *s = suite_create("loss");
    TCase *tc = tcase_create("loss");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, test_forward_backward, 0, N_CASES * n_shapes);
    tcase_add_loop_test(tc, test_null_gradients, 0, 2 * N_CASES);
    tcase_add_test(tc, test_exact);
    tcase_add_test(tc, test_l1_zero);
    tcase_add_test(tc, test_bce_extreme);
    tcase_add_loop_test(tc, test_ref_grad, 0, N_CASES);
    tcase_add_test(tc, test_shape_errors);
    tcase_add_test(tc, test_determinism);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
