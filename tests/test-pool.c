/*
 * test-pool.c: global average / max pooling, channel mean / max and 2x2 max
 * pooling (src/ops/pool.c, cl/pool.cl) against the double-precision
 * references in tests/ref/pool.c, and the references against central finite
 * differences.
 *
 * Every device tensor is a batch view starting at image 1 of a larger tensor,
 * so non-zero offsets reach the kernels; image 0 holds a sentinel that no op
 * may touch. Max ops get inputs with well separated distinct values (a
 * shuffled ramp) so the arg-max is unambiguous and stable under the finite
 * difference step; test_ties covers equal values (the first index wins).
 */
#include "testutil.h"
#include "ref/pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* The ops under test, behind one signature */

typedef struct pool_op {
    const char *name;
    int is_max;
    void (*out_shape)(const int in[4], int out[4]);
    dsd_status (*fwd)(dsd_context *ctx, const dsd_tensor *x, dsd_tensor *y);
    dsd_status (*bwd)(dsd_context *ctx, const dsd_tensor *x, const dsd_tensor *dy, dsd_tensor *dx);
    void (*ref_fwd)(const double *x, int n, int c, int h, int w, double *y);
    void (*ref_bwd)(const double *x, const double *dy, int n, int c, int h, int w, double *dx);
} pool_op;

static void shape_global(const int in[4], int out[4])
{
    out[0] = in[0], out[1] = in[1], out[2] = 1, out[3] = 1;
}
static void shape_channel(const int in[4], int out[4])
{
    out[0] = in[0], out[1] = 1, out[2] = in[2], out[3] = in[3];
}
static void shape_half(const int in[4], int out[4])
{
    out[0] = in[0], out[1] = in[1], out[2] = in[2] / 2, out[3] = in[3] / 2;
}

/* The mean ops' backward does not read x. */
static dsd_status gap_bwd(dsd_context *ctx, const dsd_tensor *x, const dsd_tensor *dy,
                          dsd_tensor *dx)
{
    (void)x;
    return dsd_global_avg_pool_backward(ctx, dy, dx);
}
static dsd_status cmean_bwd(dsd_context *ctx, const dsd_tensor *x, const dsd_tensor *dy,
                            dsd_tensor *dx)
{
    (void)x;
    return dsd_channel_mean_backward(ctx, dy, dx);
}
static void ref_gap_bwd(const double *x, const double *dy, int n, int c, int h, int w,
                        double *dx)
{
    (void)x;
    ref_global_avg_pool_backward(dy, n, c, h, w, dx);
}
static void ref_cmean_bwd(const double *x, const double *dy, int n, int c, int h, int w,
                          double *dx)
{
    (void)x;
    ref_channel_mean_backward(dy, n, c, h, w, dx);
}

static const pool_op ops[] = {
    {"global_avg_pool", 0, shape_global, dsd_global_avg_pool_forward, gap_bwd,
     ref_global_avg_pool_forward, ref_gap_bwd},
    {"global_max_pool", 1, shape_global, dsd_global_max_pool_forward,
     dsd_global_max_pool_backward, ref_global_max_pool_forward, ref_global_max_pool_backward},
    {"channel_mean", 0, shape_channel, dsd_channel_mean_forward, cmean_bwd,
     ref_channel_mean_forward, ref_cmean_bwd},
    {"channel_max", 1, shape_channel, dsd_channel_max_forward, dsd_channel_max_backward,
     ref_channel_max_forward, ref_channel_max_backward},
    {"maxpool2x2", 1, shape_half, dsd_maxpool2x2_forward, dsd_maxpool2x2_backward,
     ref_maxpool2x2_forward, ref_maxpool2x2_backward},
};
enum { N_OPS = (int)(sizeof ops / sizeof ops[0]) };

/* Shapes (N, C, H, W). 37 x 29 = 1073 elements per plane is more than one
 * pass of a 256-wide work-group; 1 x 1 is a single element. */
static const int shapes_full[][4] = {
    {2, 3, 7, 5}, {2, 5, 9, 11}, {2, 17, 1, 1}, {2, 3, 37, 29}, {2, 17, 9, 11},
};
static const int shapes_small[][4] = {{2, 3, 7, 5}, {2, 5, 1, 1}, {2, 3, 37, 29}};
static const int (*shapes)[4] = shapes_full;
static int n_shapes = TU_COUNT(shapes_full);

/* The input shape for op on shape s: the 2x2 pool needs H, W >= 2, so 1 x 1
 * becomes 3 x 2 (odd H, one output). */
static void input_shape(const pool_op *op, const int s[4], int in[4])
{
    memcpy(in, s, 4 * sizeof(int));
    if (op->out_shape == shape_half && (in[2] < 2 || in[3] < 2)) {
        in[2] = 3;
        in[3] = 2;
    }
}

/* ------------------------------------------------------------------------ */
/* Helpers */

/* Distinct values in [-2, 2), none zero, spaced 4/n apart, in random order:
 * the arg-max of any subset is unique and an eps perturbation keeps it. */
static void fill_distinct(tu_rng *r, double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = -2.0 + 4.0 * ((double)i + 0.3) / (double)n;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)tu_uniform(r, 0.0, (double)(i + 1));
        if (j > i)
            j = i;
        double t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    tu_round_to_float(x, n);
}

/* ------------------------------------------------------------------------ */
/* Device forward and backward vs the reference */

/* Runs op forward and backward on x (rounded to float) against the reference;
 * the backward accumulates into a random pre-fill. Returns nothing; asserts. */
static void check_op(const pool_op *op, const int in[4], const double *x, uint64_t seed)
{
    dsd_context *ctx = tu_ctx();
    tu_rng r = tu_rng_init(seed);
    int out[4];
    op->out_shape(in, out);
    size_t nx = tu_numel4(in), ny = tu_numel4(out);
    double *y_ref = tu_alloc(ny), *dy = tu_alloc(ny);
    double *dx0 = tu_alloc(nx), *dx_ref = tu_alloc(nx); /* pre-fill, gradient */
    tu_fill_nonzero(&r, dy, ny, 0.1, 2.0);
    tu_round_to_float(dy, ny);
    tu_fill(&r, dx0, nx, -1.0, 1.0); /* the pre-fill */
    tu_round_to_float(dx0, nx);

    tu_guarded tx, ty, tdy, tdx;
    tu_guarded_from(&tx, in, x);
    tu_guarded_init(&ty, out);
    tu_guarded_from(&tdy, out, dy);
    tu_guarded_from(&tdx, in, dx0);

    char what[128];
    TU_OK(op->fwd(ctx, &tx.v, &ty.v));
    op->ref_fwd(x, in[0], in[1], in[2], in[3], y_ref);
    snprintf(what, sizeof what, "%s forward %dx%dx%dx%d", op->name, in[0], in[1], in[2], in[3]);
    /* a max picks an input: exact */
    tu_check_tensor(what, &ty.v, y_ref, op->is_max ? 0.0 : 1e-4);
    tu_guarded_check(&ty, what);

    TU_OK(op->bwd(ctx, &tx.v, &tdy.v, &tdx.v));
    op->ref_bwd(x, dy, in[0], in[1], in[2], in[3], dx_ref);
    snprintf(what, sizeof what, "%s backward %dx%dx%dx%d", op->name, in[0], in[1], in[2], in[3]);
    tu_check_accum(what, &tdx.v, dx0, dx_ref, 1e-4);
    tu_guarded_check(&tdx, what);

    tu_guarded_free(&tx);
    tu_guarded_free(&ty);
    tu_guarded_free(&tdy);
    tu_guarded_free(&tdx);
    free(y_ref);
    free(dy);
    free(dx0);
    free(dx_ref);
}

/* _i = op * n_shapes + shape */
START_TEST(test_forward_backward)
{
    const pool_op *op = &ops[_i / n_shapes];
    int in[4];
    input_shape(op, shapes[_i % n_shapes], in);
    size_t nx = tu_numel4(in);
    tu_rng r = tu_rng_init(100 + (uint64_t)_i);
    double *x = tu_alloc(nx);
    if (op->is_max)
        fill_distinct(&r, x, nx);
    else {
        tu_fill_nonzero(&r, x, nx, 0.05, 3.0);
        tu_round_to_float(x, nx);
    }
    check_op(op, in, x, 200 + (uint64_t)_i);
    free(x);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The reference backward vs central finite differences */

typedef struct fd_state {
    const pool_op *op;
    int in[4];
    double *x, *y, *g;
    size_t ny;
} fd_state;

static double fd_loss(void *user)
{
    fd_state *s = user;
    s->op->ref_fwd(s->x, s->in[0], s->in[1], s->in[2], s->in[3], s->y);
    return tu_dot(s->y, s->g, s->ny);
}

START_TEST(test_ref_grad)
{
    const pool_op *op = &ops[_i / n_shapes];
    fd_state s = {.op = op};
    input_shape(op, shapes[_i % n_shapes], s.in);
    int out[4];
    op->out_shape(s.in, out);
    size_t nx = tu_numel4(s.in);
    s.ny = tu_numel4(out);
    tu_rng r = tu_rng_init(300 + (uint64_t)_i);
    s.x = tu_alloc(nx);
    s.y = tu_alloc(s.ny);
    s.g = tu_alloc(s.ny);
    fill_distinct(&r, s.x, nx); /* a gap of >= 4/nx >> eps between values */
    tu_fill_nonzero(&r, s.g, s.ny, 0.1, 2.0);
    double *num = tu_alloc(nx), *ana = tu_alloc(nx);
    tu_numeric_grad(fd_loss, &s, s.x, nx, 1e-6, num);
    op->ref_bwd(s.x, s.g, s.in[0], s.in[1], s.in[2], s.in[3], ana);
    char what[128];
    snprintf(what, sizeof what, "%s reference backward vs finite differences %dx%dx%dx%d",
             op->name, s.in[0], s.in[1], s.in[2], s.in[3]);
    tu_check_close(what, ana, num, nx, 1e-6);
    free(s.x);
    free(s.y);
    free(s.g);
    free(num);
    free(ana);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Ties: the first maximum gets the gradient */

/* Checks, on the reference alone, that with a constant input every gradient
 * lands on the first candidate of its window (the device is then compared
 * with this reference). */
static void check_ref_first(const pool_op *op, const int in[4])
{
    int out[4];
    op->out_shape(in, out);
    size_t nx = tu_numel4(in), ny = tu_numel4(out), hw = (size_t)in[2] * in[3];
    double *x = tu_alloc(nx), *dy = tu_alloc(ny), *dx = tu_alloc(nx);
    for (size_t i = 0; i < nx; i++)
        x[i] = 0.75;
    for (size_t i = 0; i < ny; i++)
        dy[i] = 1.0 + (double)i;
    op->ref_bwd(x, dy, in[0], in[1], in[2], in[3], dx);
    for (size_t i = 0; i < nx; i++) {
        size_t plane = i / hw, p = i % hw, hh = p / (size_t)in[3], ww = p % (size_t)in[3];
        size_t n = plane / (size_t)in[1], c = plane % (size_t)in[1];
        double want = 0.0;
        if (op->out_shape == shape_global && p == 0)
            want = dy[plane];
        else if (op->out_shape == shape_channel && c == 0)
            want = dy[n * hw + p];
        else if (op->out_shape == shape_half && hh % 2 == 0 && ww % 2 == 0 &&
                 hh / 2 < (size_t)out[2] && ww / 2 < (size_t)out[3])
            want = dy[(plane * out[2] + hh / 2) * out[3] + ww / 2];
        ck_assert_msg(dx[i] == want, "%s reference tie: dx[%zu] = %g, want %g", op->name, i,
                      dx[i], want);
    }
    free(x);
    free(dy);
    free(dx);
}

/* _i = max op index among ops (0..N_OPS-1; mean ops return at once) */
START_TEST(test_ties)
{
    const pool_op *op = &ops[_i];
    if (!op->is_max)
        return;
    const int in[4] = {2, 5, tu_small() ? 9 : 37, tu_small() ? 11 : 29};
    check_ref_first(op, in);
    size_t nx = tu_numel4(in);
    double *x = tu_alloc(nx);
    /* every value equal: across work-items and within one the first wins */
    for (size_t i = 0; i < nx; i++)
        x[i] = 0.75;
    check_op(op, in, x, 400 + (uint64_t)_i);
    /* three values: the maximum repeats many times at random places */
    tu_rng r = tu_rng_init(500 + (uint64_t)_i);
    static const double levels[3] = {-1.0, 0.5, 2.0};
    for (size_t i = 0; i < nx; i++) {
        int k = (int)tu_uniform(&r, 0.0, 3.0);
        x[i] = levels[k > 2 ? 2 : k];
    }
    check_op(op, in, x, 600 + (uint64_t)_i);
    /* increasing in memory order: the last candidate of every plane, pixel
     * column and window wins (the loops reach their last element) */
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)(-1.0 + 2.0 * ((double)i + 0.5) / (double)nx);
    check_op(op, in, x, 700 + (uint64_t)_i);
    free(x);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Shape errors: refused before anything is enqueued */

/* Asserts st is the expected error and that t (if given) still holds TU_SENTINEL. */
static void expect_error(dsd_status st, dsd_status want, const char *call, const dsd_tensor *t)
{
    ck_assert_msg(st == want, "%s returned %s, expected %s", call, dsd_status_name(st),
                  dsd_status_name(want));
    if (!t)
        return;
    size_t n = dsd_tensor_numel(t);
    double *h = tu_alloc(n);
    tu_download(t, h);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(h[i] == TU_SENTINEL, "%s wrote element %zu (%g) despite the error", call, i,
                      h[i]);
    free(h);
}

START_TEST(test_shape_errors)
{
    dsd_context *ctx = tu_ctx();
    dsd_tensor x, x2, y_nc, y_bad, y_hw, y_half, dx, dx_bad, empty;
    tu_plain_from(&x, 2, 3, 7, 5, NULL);
    tu_plain_from(&x2, 2, 3, 1, 5, NULL); /* too small for 2x2 */
    tu_plain_from(&y_nc, 2, 3, 1, 1, NULL);
    tu_plain_from(&y_bad, 2, 4, 1, 1, NULL);
    tu_plain_from(&y_hw, 2, 1, 7, 5, NULL);
    tu_plain_from(&y_half, 2, 3, 3, 2, NULL);
    tu_plain_from(&dx, 2, 3, 7, 5, NULL);
    tu_plain_from(&dx_bad, 2, 3, 5, 7, NULL);
    dsd_tensor *all[] = {&x, &x2, &y_nc, &y_bad, &y_hw, &y_half, &dx, &dx_bad};
    empty = dsd_tensor_view_batch(&x, 1, 5); /* out of range: n = 0 */

#define EXPECT(call, want, t) expect_error((call), (want), #call, (t))
    EXPECT(dsd_global_avg_pool_forward(ctx, &x, &y_bad), DSD_ERR_SHAPE, &y_bad);
    ck_assert_msg(strstr(dsd_context_error(ctx)->message, "2x4x1x1") &&
                      strstr(dsd_context_error(ctx)->message, "2x3x7x5"),
                  "message does not name both shapes: %s", dsd_context_error(ctx)->message);
    EXPECT(dsd_global_avg_pool_forward(ctx, &x, &y_hw), DSD_ERR_SHAPE, &y_hw);
    EXPECT(dsd_global_max_pool_forward(ctx, &x, &y_bad), DSD_ERR_SHAPE, &y_bad);
    EXPECT(dsd_global_avg_pool_backward(ctx, &y_bad, &dx), DSD_ERR_SHAPE, &dx);
    EXPECT(dsd_global_max_pool_backward(ctx, &x, &y_bad, &dx), DSD_ERR_SHAPE, &dx);
    EXPECT(dsd_global_max_pool_backward(ctx, &x, &y_nc, &dx_bad), DSD_ERR_SHAPE, &dx_bad);
    EXPECT(dsd_channel_mean_forward(ctx, &x, &y_nc), DSD_ERR_SHAPE, &y_nc);
    EXPECT(dsd_channel_max_forward(ctx, &x, &y_half), DSD_ERR_SHAPE, &y_half);
    EXPECT(dsd_channel_mean_backward(ctx, &y_nc, &dx), DSD_ERR_SHAPE, &dx);
    EXPECT(dsd_channel_max_backward(ctx, &x, &y_hw, &dx_bad), DSD_ERR_SHAPE, &dx_bad);
    EXPECT(dsd_channel_max_backward(ctx, &x, &y_nc, &dx), DSD_ERR_SHAPE, &dx);
    EXPECT(dsd_maxpool2x2_forward(ctx, &x, &y_hw), DSD_ERR_SHAPE, &y_hw);
    EXPECT(dsd_maxpool2x2_forward(ctx, &x2, &y_half), DSD_ERR_SHAPE, &y_half);
    EXPECT(dsd_maxpool2x2_backward(ctx, &x, &y_nc, &dx), DSD_ERR_SHAPE, &dx);
    EXPECT(dsd_maxpool2x2_backward(ctx, &x, &y_half, &dx_bad), DSD_ERR_SHAPE, &dx_bad);
    EXPECT(dsd_global_avg_pool_forward(ctx, &empty, &y_nc), DSD_ERR_SHAPE, &y_nc);
    EXPECT(dsd_channel_mean_forward(ctx, NULL, &y_hw), DSD_ERR_INVALID_ARGUMENT, &y_hw);
    EXPECT(dsd_maxpool2x2_forward(ctx, &x, NULL), DSD_ERR_INVALID_ARGUMENT, NULL);
    EXPECT(dsd_global_max_pool_backward(ctx, &x, NULL, &dx), DSD_ERR_INVALID_ARGUMENT, &dx);
    /* a NULL gradient is skipped, not an error */
    EXPECT(dsd_global_max_pool_backward(ctx, &x, &y_nc, NULL), DSD_OK, NULL);
    EXPECT(dsd_maxpool2x2_backward(ctx, &x, &y_half, NULL), DSD_OK, NULL);
    EXPECT(dsd_channel_mean_backward(ctx, &y_hw, NULL), DSD_OK, NULL);
#undef EXPECT
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_tensor_free(all[i]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Determinism: the same forward + backward twice, bit for bit */

static void run_once(const pool_op *op, const int in[4], const double *x, const double *dy,
                     const double *dx0, float *y_out, float *dx_out)
{
    dsd_context *ctx = tu_ctx();
    int out[4];
    op->out_shape(in, out);
    dsd_tensor tx, ty, tdy, tdx;
    tu_plain_from(&tx, in[0], in[1], in[2], in[3], x);
    tu_plain_from(&ty, out[0], out[1], out[2], out[3], NULL);
    tu_plain_from(&tdy, out[0], out[1], out[2], out[3], dy);
    tu_plain_from(&tdx, in[0], in[1], in[2], in[3], dx0);
    TU_OK(op->fwd(ctx, &tx, &ty));
    TU_OK(op->bwd(ctx, &tx, &tdy, &tdx));
    TU_OK(dsd_tensor_download(ctx, &ty, y_out, tu_numel4(out)));
    TU_OK(dsd_tensor_download(ctx, &tdx, dx_out, tu_numel4(in)));
    tu_tensor_free(&tx);
    tu_tensor_free(&ty);
    tu_tensor_free(&tdy);
    tu_tensor_free(&tdx);
}

START_TEST(test_determinism)
{
    const pool_op *op = &ops[_i];
    const int s[4] = {2, tu_small() ? 3 : 17, 37, 29};
    int in[4], out[4];
    input_shape(op, s, in);
    op->out_shape(in, out);
    size_t nx = tu_numel4(in), ny = tu_numel4(out);
    tu_rng r = tu_rng_init(800 + (uint64_t)_i);
    double *x = tu_alloc(nx), *dy = tu_alloc(ny), *dx0 = tu_alloc(nx);
    tu_fill_nonzero(&r, x, nx, 0.01, 5.0);
    tu_fill_nonzero(&r, dy, ny, 0.01, 5.0);
    tu_fill(&r, dx0, nx, -3.0, 3.0);
    float *y1 = malloc(ny * sizeof *y1), *y2 = malloc(ny * sizeof *y2);
    float *dx1 = malloc(nx * sizeof *dx1), *dx2 = malloc(nx * sizeof *dx2);
    ck_assert(y1 && y2 && dx1 && dx2);
    run_once(op, in, x, dy, dx0, y1, dx1);
    run_once(op, in, x, dy, dx0, y2, dx2);
    ck_assert_msg(memcmp(y1, y2, ny * sizeof *y1) == 0, "%s forward differs run to run",
                  op->name);
    ck_assert_msg(memcmp(dx1, dx2, nx * sizeof *dx1) == 0, "%s backward differs run to run",
                  op->name);
    free(x);
    free(dy);
    free(dx0);
    free(y1);
    free(y2);
    free(dx1);
    free(dx2);
}
END_TEST

int main(void)
{
    shapes = TU_PICK_SHAPES(shapes_full, shapes_small, &n_shapes);
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, test_forward_backward, 0, N_OPS * n_shapes);
    tcase_add_loop_test(tc, test_ref_grad, 0, N_OPS * n_shapes);
    tcase_add_loop_test(tc, test_ties, 0, N_OPS);
    tcase_add_test(tc, test_shape_errors);
    tcase_add_loop_test(tc, test_determinism, 0, N_OPS);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
