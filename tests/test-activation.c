/*
 * test-activation.c: LeakyReLU, ReLU, sigmoid and tanh (src/ops/activation.c,
 * cl/activation.cl) against the double-precision references in
 * tests/ref/activation.c, and the references against central finite
 * differences.
 *
 * Device tensors are batch views starting at image 1 of a larger tensor, so a
 * non-zero offset reaches the kernels; image 0 holds a sentinel no op may
 * touch. Inputs stay at least 0.05 away from the kink at 0; test_extremes
 * covers exact zeros (PyTorch's gradient convention) and large |x|.
 */
#include "testutil.h"
#include "ref/activation.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dsd_activation acts[] = {DSD_ACT_LEAKY_RELU, DSD_ACT_RELU, DSD_ACT_SIGMOID,
                                      DSD_ACT_TANH};
static const char *const act_names[] = {"leaky_relu", "relu", "sigmoid", "tanh"};
enum { N_ACTS = 4 };

static const int shapes_full[][4] = {{2, 3, 7, 5}, {2, 5, 9, 11}, {2, 17, 1, 1}, {3, 4, 13, 6}};
static const int shapes_small[][4] = {{2, 3, 7, 5}, {2, 17, 1, 1}};

static int n_shapes(void)
{
    return tu_small() ? (int)(sizeof shapes_small / sizeof shapes_small[0])
                      : (int)(sizeof shapes_full / sizeof shapes_full[0]);
}

static const int *shape_at(int i)
{
    return tu_small() ? shapes_small[i] : shapes_full[i];
}

/* ------------------------------------------------------------------------ */

static double slope_for(int i)
{
    return i % 2 ? 0.37 : 0.2; /* 0.2 in the model; another value catches a hard-coded one */
}

/* Forward and backward of acts[a] on shape s against the references. */
static void check_act(int a, const int s[4], double slope, uint64_t seed)
{
    dsd_context *ctx = tu_ctx();
    dsd_activation act = acts[a];
    tu_rng r = tu_rng_init(seed);
    size_t n = tu_numel4(s);
    double *x = tu_alloc(n), *y = tu_alloc(n), *dy = tu_alloc(n), *dx = tu_alloc(n);
    tu_fill_nonzero(&r, x, n, 0.05, 4.0);
    tu_fill(&r, dy, n, -1.0, 1.0);
    tu_fill(&r, dx, n, -1.0, 1.0); /* the accumulator's prefill */
    for (size_t i = 0; i < n; i++) /* the device sees floats */
        x[i] = (float)x[i], dy[i] = (float)dy[i], dx[i] = (float)dx[i];

    tu_guarded tx, ty, tdy, tdx;
    tu_guarded_from(&tx, s, x);
    tu_guarded_init(&ty, s);
    tu_guarded_from(&tdy, s, dy);
    tu_guarded_from(&tdx, s, dx);

    char what[96];
    snprintf(what, sizeof what, "%s forward %dx%dx%dx%d", act_names[a], s[0], s[1], s[2], s[3]);
    TU_OK(dsd_activation_forward(ctx, act, (float)slope, &tx.v, &ty.v));
    ref_activation_forward((int)act, slope, x, y, n);
    tu_check_tensor(what, &ty.v, y, 1e-4);

    /* backward twice: once with the tensor it does not read NULL, once with both */
    int reads_x = act == DSD_ACT_LEAKY_RELU || act == DSD_ACT_RELU;
    TU_OK(dsd_activation_backward(ctx, act, (float)slope, reads_x ? &tx.v : NULL,
                                  reads_x ? NULL : &ty.v, &tdy.v, &tdx.v));
    ref_activation_backward((int)act, slope, x, y, dy, dx, n);
    snprintf(what, sizeof what, "%s backward %dx%dx%dx%d", act_names[a], s[0], s[1], s[2], s[3]);
    tu_check_tensor(what, &tdx.v, dx, 1e-4);
    TU_OK(dsd_activation_backward(ctx, act, (float)slope, &tx.v, &ty.v, &tdy.v, &tdx.v));
    ref_activation_backward((int)act, slope, x, y, dy, dx, n);
    snprintf(what, sizeof what, "%s backward x2 %dx%dx%dx%d", act_names[a], s[0], s[1], s[2],
             s[3]);
    tu_check_tensor(what, &tdx.v, dx, 1e-4);

    tu_guarded_check(&tx, "x");
    tu_guarded_check(&ty, "y");
    tu_guarded_check(&tdy, "dy");
    tu_guarded_check(&tdx, "dx");
    tu_guarded_free(&tx);
    tu_guarded_free(&ty);
    tu_guarded_free(&tdy);
    tu_guarded_free(&tdx);
    free(x);
    free(y);
    free(dy);
    free(dx);
}

START_TEST(test_forward_backward)
{
    int a = _i % N_ACTS, si = _i / N_ACTS;
    if (si >= n_shapes())
        return;
    check_act(a, shape_at(si), slope_for(si), 100 + (uint64_t)_i);
}
END_TEST

/* y == x: the same buffer and offset. */
START_TEST(test_in_place)
{
    dsd_context *ctx = tu_ctx();
    const int s[4] = {2, 5, 9, 11};
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(7 + (uint64_t)_i);
    double *x = tu_alloc(n), *y = tu_alloc(n);
    tu_fill_nonzero(&r, x, n, 0.05, 4.0);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)x[i];
    tu_guarded t;
    tu_guarded_from(&t, s, x);
    TU_OK(dsd_activation_forward(ctx, acts[_i], 0.2f, &t.v, &t.v));
    ref_activation_forward((int)acts[_i], 0.2, x, y, n);
    tu_check_tensor(act_names[_i], &t.v, y, 1e-4);
    tu_guarded_check(&t, "in place");
    tu_guarded_free(&t);
    free(x);
    free(y);
}
END_TEST

/* The reference backward against central differences of the reference
 * forward, loss = sum(f(x) * g). */
typedef struct fd_ctx {
    int act;
    double slope;
    double *x, *y, *g;
    size_t n;
} fd_ctx;

static double fd_loss(void *user)
{
    fd_ctx *f = user;
    ref_activation_forward(f->act, f->slope, f->x, f->y, f->n);
    return tu_dot(f->y, f->g, f->n);
}

START_TEST(test_ref_grad)
{
    const int s[4] = {2, 3, 7, 5};
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(31 + (uint64_t)_i);
    fd_ctx f = {(int)acts[_i], 0.2, tu_alloc(n), tu_alloc(n), tu_alloc(n), n};
    tu_fill_nonzero(&r, f.x, n, 0.05, 4.0); /* far from the kink compared with eps */
    tu_fill(&r, f.g, n, -1.0, 1.0);
    double *num = tu_alloc(n), *ana = tu_alloc(n);
    ref_activation_forward(f.act, f.slope, f.x, f.y, n);
    ref_activation_backward(f.act, f.slope, f.x, f.y, f.g, ana, n);
    tu_numeric_grad(fd_loss, &f, f.x, n, 1e-6, num);
    tu_check_close(act_names[_i], ana, num, n, 1e-6);
    free(f.x);
    free(f.y);
    free(f.g);
    free(num);
    free(ana);
}
END_TEST

/* Exact zeros (PyTorch: ReLU grad 0, LeakyReLU grad slope at 0), large |x|
 * (the sigmoid must not overflow to NaN) and NaN propagation. */
START_TEST(test_extremes)
{
    dsd_context *ctx = tu_ctx();
    static const double vals[] = {0.0,   -0.0,  1e-30,  -1e-30, 20.0,  -20.0,
                                  88.5,  -88.5, 100.0,  -100.0, 1000.0, -1000.0,
                                  3e38,  -3e38, 0.5,    -0.5,   1.0,   -1.0};
    const int n = (int)(sizeof vals / sizeof vals[0]);
    const int s[4] = {1, 1, 2, n / 2};
    dsd_activation act = acts[_i];
    double y[sizeof vals / sizeof vals[0]], dy[sizeof vals / sizeof vals[0]];
    double dx[sizeof vals / sizeof vals[0]], got[sizeof vals / sizeof vals[0]];
    for (int i = 0; i < n; i++)
        dy[i] = 1.0 + 0.125 * i, dx[i] = 0.0;
    dsd_tensor tx, ty, tdy, tdx;
    tu_plain_from(&tx, s[0], s[1], s[2], s[3], vals);
    tu_plain_from(&ty, s[0], s[1], s[2], s[3], NULL);
    tu_plain_from(&tdy, s[0], s[1], s[2], s[3], dy);
    tu_plain_from(&tdx, s[0], s[1], s[2], s[3], dx);
    TU_OK(dsd_activation_forward(ctx, act, 0.2f, &tx, &ty));
    double xf[sizeof vals / sizeof vals[0]];
    for (int i = 0; i < n; i++)
        xf[i] = (float)vals[i];
    ref_activation_forward((int)act, (double)0.2f, xf, y, (size_t)n);
    tu_download(&ty, got);
    for (int i = 0; i < n; i++)
        ck_assert_msg(isfinite(got[i]), "%s(%g) = %g", act_names[_i], xf[i], got[i]);
    tu_check_close(act_names[_i], got, y, (size_t)n, 1e-4);
    if (act == DSD_ACT_SIGMOID) {
        ck_assert(got[10] == 1.0 && got[11] == 0.0); /* sigmoid(+-1000) */
        ck_assert(got[6] > 0.99 && got[7] >= 0.0 && got[7] < 1e-37); /* +-88.5 (denormal may flush) */
    }

    TU_OK(dsd_activation_backward(ctx, act, 0.2f, &tx, &ty, &tdy, &tdx));
    for (int i = 0; i < n; i++) /* sigmoid/tanh differentiate at the float y */
        y[i] = got[i];
    ref_activation_backward((int)act, (double)0.2f, xf, y, dy, dx, (size_t)n);
    tu_download(&tdx, got);
    tu_check_close(act_names[_i], got, dx, (size_t)n, 1e-4);
    if (act == DSD_ACT_RELU)
        ck_assert_msg(got[0] == 0.0 && got[1] == 0.0, "relu grad at 0: %g %g", got[0], got[1]);
    if (act == DSD_ACT_LEAKY_RELU)
        ck_assert_msg(got[0] == (double)(0.2f * 1.0f) && got[1] == (double)(0.2f * 1.125f),
                      "leaky relu grad at 0: %g %g", got[0], got[1]);

    /* NaN stays NaN in forward (as PyTorch) */
    double nan_in[2] = {NAN, -NAN}, nan_out[2];
    dsd_tensor tn;
    tu_plain_from(&tn, 1, 1, 1, 2, nan_in);
    TU_OK(dsd_activation_forward(ctx, act, 0.2f, &tn, &tn));
    tu_download(&tn, nan_out);
    ck_assert_msg(isnan(nan_out[0]) && isnan(nan_out[1]), "%s(NaN) = %g, %g", act_names[_i],
                  nan_out[0], nan_out[1]);

    tu_tensor_free(&tn);
    tu_tensor_free(&tx);
    tu_tensor_free(&ty);
    tu_tensor_free(&tdy);
    tu_tensor_free(&tdx);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors: refused before anything is enqueued (guarded outputs untouched) */

START_TEST(test_errors)
{
    dsd_context *ctx = tu_ctx();
    const int s[4] = {2, 3, 7, 5}, t_[4] = {2, 3, 5, 7};
    tu_guarded x, y, yt, dy, dx, dxt;
    tu_guarded_init(&x, s);
    tu_guarded_init(&y, s);
    tu_guarded_init(&yt, t_);
    tu_guarded_init(&dy, s);
    tu_guarded_init(&dx, s);
    tu_guarded_init(&dxt, t_);
    TU_OK(dsd_tensor_fill(ctx, &x.v, 1.0f));
    TU_OK(dsd_tensor_fill(ctx, &y.v, 2.0f));
    TU_OK(dsd_tensor_fill(ctx, &yt.v, 3.0f));
    TU_OK(dsd_tensor_fill(ctx, &dy.v, 4.0f));
    TU_OK(dsd_tensor_fill(ctx, &dx.v, 5.0f));
    TU_OK(dsd_tensor_fill(ctx, &dxt.v, 6.0f));

    /* forward: y 2x3x5x7 against x 2x3x7x5 (same count, other shape) */
    tu_expect_status(dsd_activation_forward(ctx, DSD_ACT_LEAKY_RELU, 0.2f, &x.v, &yt.v),
                     DSD_ERR_SHAPE, "forward x 2x3x7x5 -> y 2x3x5x7");
    ck_assert_msg(strstr(dsd_context_error(ctx)->message, "2x3x5x7") &&
                  strstr(dsd_context_error(ctx)->message, "2x3x7x5"), "message: %s",
                  dsd_context_error(ctx)->message);
    tu_guarded_check_untouched(&yt, 3.0, "y of the wrong shape");
    tu_expect_status(dsd_activation_forward(ctx, (dsd_activation)7, 0.2f, &x.v, &y.v),
                     DSD_ERR_INVALID_ARGUMENT, "forward with activation 7");
    tu_expect_status(dsd_activation_forward(ctx, DSD_ACT_RELU, 0.2f, NULL, &y.v),
                     DSD_ERR_INVALID_ARGUMENT, "forward with x NULL");
    tu_expect_status(dsd_activation_forward(ctx, DSD_ACT_RELU, 0.2f, &x.v, NULL),
                     DSD_ERR_INVALID_ARGUMENT, "forward with y NULL");
    dsd_tensor empty = dsd_tensor_view_batch(&x.base, 2, 2);
    tu_expect_status(dsd_activation_forward(ctx, DSD_ACT_RELU, 0.2f, &empty, &y.v), DSD_ERR_SHAPE,
                     "forward of an empty view");
    /* y overlapping x by one image: not in place, not disjoint */
    dsd_tensor shifted = dsd_tensor_view_batch(&x.base, 0, 2);
    tu_expect_status(dsd_activation_forward(ctx, DSD_ACT_TANH, 0.2f, &x.v, &shifted),
                     DSD_ERR_INVALID_ARGUMENT, "forward with a partly overlapping y");
    tu_guarded_check_untouched(&y, 2.0, "y");
    tu_guarded_check_untouched(&x, 1.0, "x");

    /* backward */
    tu_expect_status(dsd_activation_backward(ctx, DSD_ACT_RELU, 0.2f, NULL, &y.v, &dy.v, &dx.v),
                     DSD_ERR_INVALID_ARGUMENT, "relu backward without x");
    tu_expect_status(dsd_activation_backward(ctx, DSD_ACT_SIGMOID, 0.2f, &x.v, NULL, &dy.v, &dx.v),
                     DSD_ERR_INVALID_ARGUMENT, "sigmoid backward without y");
    tu_expect_status(dsd_activation_backward(ctx, DSD_ACT_TANH, 0.2f, &x.v, &y.v, NULL, &dx.v),
                     DSD_ERR_INVALID_ARGUMENT, "backward without dy");
    tu_expect_status(
        dsd_activation_backward(ctx, DSD_ACT_LEAKY_RELU, 0.2f, &x.v, &y.v, &dy.v, &dxt.v),
        DSD_ERR_SHAPE, "backward into dx 2x3x5x7");
    tu_expect_status(dsd_activation_backward(ctx, DSD_ACT_TANH, 0.2f, &x.v, &yt.v, &dy.v, &dx.v),
                     DSD_ERR_SHAPE, "tanh backward with y 2x3x5x7");
    tu_expect_status(dsd_activation_backward(ctx, DSD_ACT_RELU, 0.2f, &x.v, &yt.v, &dy.v, &dx.v),
                     DSD_ERR_SHAPE, "relu backward with an extra y of another shape");
    tu_expect_status(
        dsd_activation_backward(ctx, (dsd_activation)-1, 0.2f, &x.v, &y.v, &dy.v, &dx.v),
        DSD_ERR_INVALID_ARGUMENT, "backward with activation -1");
    /* dx NULL: nothing to do, not an error */
    TU_OK(dsd_activation_backward(ctx, DSD_ACT_RELU, 0.2f, &x.v, NULL, &dy.v, NULL));
    tu_guarded_check_untouched(&dx, 5.0, "dx");
    tu_guarded_check_untouched(&dxt, 6.0, "dx of the wrong shape");

    tu_guarded_free(&x);
    tu_guarded_free(&y);
    tu_guarded_free(&yt);
    tu_guarded_free(&dy);
    tu_guarded_free(&dx);
    tu_guarded_free(&dxt);
}
END_TEST

/* The same forward + backward twice gives bit-identical floats. */
START_TEST(test_determinism)
{
    dsd_context *ctx = tu_ctx();
    const int s[4] = {2, 5, 9, 11};
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(99 + (uint64_t)_i);
    double *x = tu_alloc(n), *dy = tu_alloc(n);
    tu_fill_nonzero(&r, x, n, 0.05, 4.0);
    tu_fill(&r, dy, n, -1.0, 1.0);
    float *out[2][2];
    for (int run = 0; run < 2; run++) {
        dsd_tensor tx, ty, tdy, tdx;
        tu_plain_from(&tx, s[0], s[1], s[2], s[3], x);
        tu_plain_from(&ty, s[0], s[1], s[2], s[3], NULL);
        tu_plain_from(&tdy, s[0], s[1], s[2], s[3], dy);
        tu_plain_from(&tdx, s[0], s[1], s[2], s[3], x);
        TU_OK(dsd_activation_forward(ctx, acts[_i], 0.2f, &tx, &ty));
        TU_OK(dsd_activation_backward(ctx, acts[_i], 0.2f, &tx, &ty, &tdy, &tdx));
        for (int k = 0; k < 2; k++) {
            out[run][k] = malloc(n * sizeof(float));
            ck_assert(out[run][k] != NULL);
            TU_OK(dsd_tensor_download(ctx, k ? &tdx : &ty, out[run][k], n));
        }
        tu_tensor_free(&tx);
        tu_tensor_free(&ty);
        tu_tensor_free(&tdy);
        tu_tensor_free(&tdx);
    }
    ck_assert_msg(!memcmp(out[0][0], out[1][0], n * sizeof(float)), "%s forward differs",
                  act_names[_i]);
    ck_assert_msg(!memcmp(out[0][1], out[1][1], n * sizeof(float)), "%s backward differs",
                  act_names[_i]);
    for (int run = 0; run < 2; run++)
        free(out[run][0]), free(out[run][1]);
    free(x);
    free(dy);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("activation");
    TCase *tc = tcase_create("activation");
    tcase_set_timeout(tc, 900);
    int n_full = (int)(sizeof shapes_full / sizeof shapes_full[0]);
    tcase_add_loop_test(tc, test_forward_backward, 0, N_ACTS * n_full);
    tcase_add_loop_test(tc, test_in_place, 0, N_ACTS);
    tcase_add_loop_test(tc, test_ref_grad, 0, N_ACTS);
    tcase_add_loop_test(tc, test_extremes, 0, N_ACTS);
    tcase_add_test(tc, test_errors);
    tcase_add_loop_test(tc, test_determinism, 0, N_ACTS);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
