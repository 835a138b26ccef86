/*
 * test-reduce.c: the whole-tensor reductions (src/ops/reduce.c,
 * cl/reduce.cl) against the double-precision references in
 * tests/ref/reduce.c, and the references against central finite differences.
 *
 * Device tensors are batch views starting at image 1 of a larger tensor, so
 * non-zero offsets reach the kernels; image 0 holds a sentinel no op may
 * touch (the 1x1x1x1 outputs too). Besides the relative-error checks, sums of
 * small integers are exact in float whatever the order, so test_exact catches
 * a single element read twice or skipped among ~100k, which a 1e-5 relative
 * tolerance could not.
 */
#include "testutil.h"
#include "ref/reduce.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* (N, C, H, W): odd sizes; 1x1; 2x3x37x29 = 6438 elements, 26 work-groups of
 * 256; and 2x13x61x67 = 106262, more than the 128 x 256 work-items of pass 1,
 * so every work-item loops. The last shape is the largest. */
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

/* ------------------------------------------------------------------------ */
/* The reductions under test */

typedef struct reduce_op {
    const char *name;
    dsd_status (*fwd)(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y);
    void (*ref_fwd)(const double *x, size_t count, double *y);
} reduce_op;

static const reduce_op ops[] = {
    {"reduce_sum", dsd_reduce_sum, ref_reduce_sum_forward},
    {"reduce_mean", dsd_reduce_mean, ref_reduce_mean_forward},
    {"reduce_sum_squares", dsd_reduce_sum_squares, ref_reduce_sum_squares_forward},
};
enum { N_OPS = (int)(sizeof ops / sizeof ops[0]) };

/* ------------------------------------------------------------------------ */
/* Forward */

/* Device vs reference for op on x of shape s; the error is measured against
 * the sum of |terms| (the scale float rounding works on), which for
 * same-signed inputs is |result| itself. */
static void check_forward(const reduce_op *op, const int s[4], const double *x, double tol)
{
    dsd_context *ctx = tu_ctx();
    size_t n = tu_numel4(s);
    tu_guarded tx, ty;
    tu_guarded_from(&tx, s, x);
    tu_guarded_from(&ty, scalar_shape, NULL);
    TU_OK(op->fwd(ctx, &tx.v, &ty.v));
    double got = tu_download_scalar(&ty.v), ref;
    op->ref_fwd(x, n, &ref);
    double mag = 0.0;
    for (size_t i = 0; i < n; i++)
        mag += op->ref_fwd == ref_reduce_sum_squares_forward ? x[i] * x[i] : fabs(x[i]);
    if (op->ref_fwd == ref_reduce_mean_forward)
        mag /= (double)n;
    double err = fabs(got - ref) / mag;
    ck_assert_msg(err <= tol, "%s %dx%dx%dx%d: got %.9g, reference %.9g (error %.3g of "
                  "sum |x| %.6g > %.3g)", op->name, s[0], s[1], s[2], s[3], got, ref, err, mag,
                  tol);
    char what[96];
    snprintf(what, sizeof what, "%s output", op->name);
    tu_guarded_check(&ty, what);
    tu_guarded_free(&tx);
    tu_guarded_free(&ty);
}

/* _i = op * n_shapes + shape. Positive-mean inputs (|result| ~ sum |x|) and
 * mixed signs (cancellation: error judged against sum |x|). */
START_TEST(test_forward)
{
    const reduce_op *op = &ops[_i / n_shapes];
    const int *s = shapes[_i % n_shapes];
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(10 + (uint64_t)_i);
    double *x = tu_alloc(n);
    tu_fill(&r, x, n, 0.05, 2.0);
    tu_round_to_float(x, n);
    check_forward(op, s, x, 1e-5);
    tu_fill_nonzero(&r, x, n, 0.05, 2.0);
    tu_round_to_float(x, n);
    check_forward(op, s, x, 1e-5);
    free(x);
}
END_TEST

/* Sums of integers in 1..9 are exact in float (every partial < 2^24): any
 * element skipped or counted twice changes the result. */
START_TEST(test_exact)
{
    dsd_context *ctx = tu_ctx();
    const int *s = shapes[_i];
    size_t n = tu_numel4(s);
    double *x = tu_alloc(n);
    double sum = 0.0, sum2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        x[i] = (double)(1 + (i * 7919 + i / 3) % 9);
        sum += x[i];
        sum2 += x[i] * x[i];
    }
    tu_guarded tx, ty;
    tu_guarded_from(&tx, s, x);
    tu_guarded_from(&ty, scalar_shape, NULL);
    TU_OK(dsd_reduce_sum(ctx, &tx.v, &ty.v));
    ck_assert_msg(tu_download_scalar(&ty.v) == sum, "sum %zu: %.9g != %.9g", n,
                  tu_download_scalar(&ty.v), sum);
    TU_OK(dsd_reduce_sum_squares(ctx, &tx.v, &ty.v));
    ck_assert_msg(tu_download_scalar(&ty.v) == sum2, "sum of squares %zu: %.9g != %.9g", n,
                  tu_download_scalar(&ty.v), sum2);
    TU_OK(dsd_reduce_mean(ctx, &tx.v, &ty.v));
    float mean = (float)sum * (float)(1.0 / (double)n);
    ck_assert_msg(tu_download_scalar(&ty.v) == mean, "mean %zu: %.9g != %.9g", n,
                  tu_download_scalar(&ty.v), (double)mean);
    tu_guarded_free(&tx);
    tu_guarded_free(&ty);
    free(x);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Backward */

/* _i = 2 * shape + (0 sum, 1 mean) */
START_TEST(test_backward)
{
    dsd_context *ctx = tu_ctx();
    int mean = _i % 2;
    const int *s = shapes[_i / 2];
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(40 + (uint64_t)_i);
    double dy = tu_uniform(&r, 0.5, 3.0) * (mean ? -1.0 : 1.0);
    dy = (float)dy;
    double *dx0 = tu_alloc(n), *grad = tu_alloc(n);
    /* a pre-fill of the gradient's magnitude, so float rounding of the sum
     * does not swamp a mean's dy / n */
    tu_fill(&r, dx0, n, -1.0, 1.0);
    for (size_t i = 0; i < n; i++)
        dx0[i] *= mean ? 1.0 / (double)n : 1.0;
    tu_round_to_float(dx0, n);
    tu_guarded tdy, tdx;
    tu_guarded_from(&tdy, scalar_shape, &dy);
    tu_guarded_from(&tdx, s, dx0);
    if (mean) {
        TU_OK(dsd_reduce_mean_backward(ctx, &tdy.v, &tdx.v));
        ref_reduce_mean_backward(&dy, n, grad);
    } else {
        TU_OK(dsd_reduce_sum_backward(ctx, &tdy.v, &tdx.v));
        ref_reduce_sum_backward(&dy, n, grad);
    }
    char what[96];
    snprintf(what, sizeof what, "reduce_%s_backward %dx%dx%dx%d", mean ? "mean" : "sum", s[0],
             s[1], s[2], s[3]);
    tu_check_accum(what, &tdx.v, dx0, grad, 1e-5);
    tu_guarded_check(&tdx, what);
    /* dy must be untouched */
    ck_assert(tu_download_scalar(&tdy.v) == dy);
    tu_guarded_free(&tdy);
    tu_guarded_free(&tdx);
    free(dx0);
    free(grad);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The reference backward vs central finite differences */

typedef struct fd_state {
    void (*ref_fwd)(const double *x, size_t count, double *y);
    double *x, g;
    size_t n;
} fd_state;

static double fd_loss(void *user)
{
    fd_state *s = user;
    double y;
    s->ref_fwd(s->x, s->n, &y);
    return y * s->g;
}

START_TEST(test_ref_grad)
{
    const int s3[4] = {2, 3, 7, 5};
    tu_rng r = tu_rng_init(77);
    fd_state s = {.n = tu_numel4(s3)};
    s.x = tu_alloc(s.n);
    tu_fill_nonzero(&r, s.x, s.n, 0.1, 2.0);
    s.g = tu_uniform(&r, 0.5, 2.0);
    double *num = tu_alloc(s.n), *ana = tu_alloc(s.n);
    for (int k = 0; k < 3; k++) {
        memset(ana, 0, s.n * sizeof *ana);
        s.ref_fwd = ops[k].ref_fwd;
        tu_numeric_grad(fd_loss, &s, s.x, s.n, 1e-6, num);
        if (k == 0)
            ref_reduce_sum_backward(&s.g, s.n, ana);
        else if (k == 1)
            ref_reduce_mean_backward(&s.g, s.n, ana);
        else
            ref_reduce_sum_squares_backward(s.x, &s.g, s.n, ana);
        char what[96];
        snprintf(what, sizeof what, "%s reference backward vs finite differences", ops[k].name);
        tu_check_close(what, ana, num, s.n, 1e-6);
    }
    free(s.x);
    free(num);
    free(ana);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Shape errors and determinism */

START_TEST(test_shape_errors)
{
    dsd_context *ctx = tu_ctx();
    const int s[4] = {2, 3, 7, 5};
    const int pair[4] = {1, 1, 1, 2};
    double x[210];
    for (int i = 0; i < 210; i++)
        x[i] = 1.0 + i;
    tu_guarded tx, ty, tbad;
    tu_guarded_from(&tx, s, x);
    tu_guarded_from(&ty, scalar_shape, NULL);
    tu_guarded_from(&tbad, pair, NULL);
    for (int k = 0; k < N_OPS; k++) {
        ck_assert_int_eq(ops[k].fwd(ctx, &tx.v, &tbad.v), DSD_ERR_SHAPE);
        ck_assert_msg(strstr(dsd_context_error(ctx)->message, "1x1x1x2"), "%s",
                      dsd_context_error(ctx)->message);
        ck_assert_int_eq(ops[k].fwd(ctx, NULL, &ty.v), DSD_ERR_INVALID_ARGUMENT);
        ck_assert_int_eq(ops[k].fwd(ctx, &tx.v, NULL), DSD_ERR_INVALID_ARGUMENT);
        dsd_tensor empty = dsd_tensor_view_batch(&tx.base, 2, 2);
        ck_assert_int_eq(ops[k].fwd(ctx, &empty, &ty.v), DSD_ERR_SHAPE);
    }
    /* dy must be a single element; dx is x-shaped (anything) */
    ck_assert_int_eq(dsd_reduce_sum_backward(ctx, &tbad.v, &tx.v), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_reduce_mean_backward(ctx, &tx.v, &tx.v), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_reduce_mean_backward(ctx, NULL, &tx.v), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_reduce_sum_backward(ctx, &ty.v, NULL), DSD_OK); /* NULL dx: skip */
    /* nothing was enqueued: every tensor is as written */
    double *got = tu_alloc(210);
    tu_download(&tx.v, got);
    for (int i = 0; i < 210; i++)
        ck_assert_msg(got[i] == x[i], "x[%d] changed to %g", i, got[i]);
    ck_assert(tu_download_scalar(&ty.v) == TU_SENTINEL);
    double two[2];
    tu_download(&tbad.v, two);
    ck_assert(two[0] == TU_SENTINEL && two[1] == TU_SENTINEL);
    free(got);
    tu_guarded_free(&tx);
    tu_guarded_free(&ty);
    tu_guarded_free(&tbad);
}
END_TEST

/* Forward and backward twice on the largest shape: bit-identical. */
START_TEST(test_determinism)
{
    dsd_context *ctx = tu_ctx();
    const int *s = shapes[n_shapes - 1];
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(99);
    double *x = tu_alloc(n), *dx0 = tu_alloc(n);
    tu_fill_nonzero(&r, x, n, 0.01, 3.0);
    tu_fill(&r, dx0, n, -1.0, 1.0);
    float results[2][N_OPS], *grads[2];
    for (int run = 0; run < 2; run++) {
        tu_guarded tx, ty, tdx;
        tu_guarded_from(&tx, s, x);
        tu_guarded_from(&ty, scalar_shape, NULL);
        tu_guarded_from(&tdx, s, dx0);
        for (int k = 0; k < N_OPS; k++) {
            TU_OK(ops[k].fwd(ctx, &tx.v, &ty.v));
            TU_OK(dsd_context_finish(ctx));
            TU_OK(dsd_tensor_download(ctx, &ty.v, &results[run][k], 1));
        }
        TU_OK(dsd_reduce_sum_backward(ctx, &ty.v, &tdx.v));
        TU_OK(dsd_reduce_mean_backward(ctx, &ty.v, &tdx.v));
        grads[run] = malloc(n * sizeof(float));
        ck_assert(grads[run] != NULL);
        TU_OK(dsd_tensor_download(ctx, &tdx.v, grads[run], n));
        tu_guarded_free(&tx);
        tu_guarded_free(&ty);
        tu_guarded_free(&tdx);
    }
    ck_assert_msg(!memcmp(results[0], results[1], sizeof results[0]),
                  "forward differs between runs: %.9g %.9g %.9g vs %.9g %.9g %.9g",
                  results[0][0], results[0][1], results[0][2], results[1][0], results[1][1],
                  results[1][2]);
    ck_assert_msg(!memcmp(grads[0], grads[1], n * sizeof(float)), "backward differs");
    free(grads[0]);
    free(grads[1]);
    free(x);
    free(dx0);
}
END_TEST

int main(void)
{
    shapes = TU_PICK_SHAPES(shapes_full, shapes_small, &n_shapes);
    Suite *s = suite_create("reduce");
    TCase *tc = tcase_create("reduce");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, test_forward, 0, N_OPS * n_shapes);
    tcase_add_loop_test(tc, test_exact, 0, n_shapes);
    tcase_add_loop_test(tc, test_backward, 0, 2 * n_shapes);
    tcase_add_test(tc, test_ref_grad);
    tcase_add_test(tc, test_shape_errors);
    tcase_add_test(tc, test_determinism);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
