/*
 * test-pixel-shuffle.c: PixelShuffle and PixelUnshuffle with r = 2 and 3
 * (src/ops/pixel_shuffle.c, cl/pixel_shuffle.cl) against the double-precision
 * references in tests/ref/pixel_shuffle.c, the references against central
 * finite differences, and both against a worked example of PyTorch's channel
 * order.
 *
 * Device tensors are batch views starting at image 1 of a larger tensor, so
 * non-zero offsets reach the kernels; image 0 holds a sentinel no op may
 * touch.
 */
#include "testutil.h"
#include "ref/pixel_shuffle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* (N, C, H, W) of the small side's C / (r*r) and spatial size: shuffle takes
 * x (N, C*r*r, H, W), unshuffle x (N, C, H*r, W*r). */
static const int bases_full[][4] = {{2, 3, 7, 5}, {2, 5, 9, 11}, {2, 17, 1, 1}, {3, 1, 4, 6}};
static const int bases_small[][4] = {{2, 3, 7, 5}, {2, 17, 1, 1}};
enum { N_FULL = 4 };

static int n_bases(void)
{
    return tu_small() ? (int)(sizeof bases_small / sizeof bases_small[0]) : N_FULL;
}

/* Small (N, C*r*r, H, W) and big (N, C, H*r, W*r) shapes of base. */
static void sides(const int base[4], int r, int small[4], int big[4])
{
    small[0] = big[0] = base[0];
    small[1] = base[1] * r * r;
    big[1] = base[1];
    small[2] = base[2];
    small[3] = base[3];
    big[2] = base[2] * r;
    big[3] = base[3] * r;
}

/* ------------------------------------------------------------------------ */
/* Helpers */

static double *random_nonzero(tu_rng *r, size_t n)
{
    double *x = tu_alloc(n);
    tu_fill_nonzero(r, x, n, 0.1, 2.0);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)x[i];
    return x;
}

/* ------------------------------------------------------------------------ */
/* The two ops behind one signature */

typedef struct ps_op {
    const char *name;
    int unshuffle;
    dsd_status (*fwd)(dsd_context *ctx, int r, const dsd_tensor *x, dsd_tensor *y);
    dsd_status (*bwd)(dsd_context *ctx, int r, const dsd_tensor *dy, dsd_tensor *dx);
    void (*ref_fwd)(int r, int n, int c, int h, int w, const double *x, double *y);
    void (*ref_bwd)(int r, int n, int c, int h, int w, const double *dy, double *dx);
} ps_op;

static const ps_op ops[2] = {
    {"pixel_shuffle", 0, dsd_pixel_shuffle_forward, dsd_pixel_shuffle_backward,
     ref_pixel_shuffle_forward, ref_pixel_shuffle_backward},
    {"pixel_unshuffle", 1, dsd_pixel_unshuffle_forward, dsd_pixel_unshuffle_backward,
     ref_pixel_unshuffle_forward, ref_pixel_unshuffle_backward},
};

/* Input and output shapes of op for base and r. */
static void io_shapes(const ps_op *op, const int base[4], int r, int in[4], int out[4])
{
    int small[4], big[4];
    sides(base, r, small, big);
    memcpy(in, op->unshuffle ? big : small, 4 * sizeof(int));
    memcpy(out, op->unshuffle ? small : big, 4 * sizeof(int));
}

/* _i = ((base * 2) + r index) * 2 + op */
START_TEST(test_forward_backward)
{
    dsd_context *ctx = tu_ctx();
    const ps_op *op = &ops[_i % 2];
    int r = (_i / 2) % 2 ? 3 : 2, bi = _i / 4;
    if (bi >= n_bases())
        return;
    const int *base = tu_small() ? bases_small[bi] : bases_full[bi];
    int in[4], out[4];
    io_shapes(op, base, r, in, out);
    size_t n = tu_numel4(in);
    ck_assert_uint_eq(n, tu_numel4(out));
    tu_rng rng = tu_rng_init(100 + (uint64_t)_i);
    double *x = random_nonzero(&rng, n), *dy = random_nonzero(&rng, n);
    double *dx = random_nonzero(&rng, n), *y = tu_alloc(n);
    tu_guarded tx, ty, tdy, tdx;
    tu_guarded_from(&tx, in, x);
    tu_guarded_init(&ty, out);
    tu_guarded_from(&tdy, out, dy);
    tu_guarded_from(&tdx, in, dx);
    char what[96];
    snprintf(what, sizeof what, "%s r=%d x %dx%dx%dx%d", op->name, r, in[0], in[1], in[2], in[3]);

    TU_OK(op->fwd(ctx, r, &tx.v, &ty.v));
    op->ref_fwd(r, in[0], in[1], in[2], in[3], x, y);
    tu_check_tensor(what, &ty.v, y, 1e-4);

    TU_OK(op->bwd(ctx, r, &tdy.v, &tdx.v));
    op->ref_bwd(r, in[0], in[1], in[2], in[3], dy, dx);
    tu_check_tensor(what, &tdx.v, dx, 1e-4);
    TU_OK(op->bwd(ctx, r, &tdy.v, NULL)); /* nothing to do */
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
    free(dy);
    free(dx);
    free(y);
}
END_TEST

/* PyTorch's order on a worked example: pixel_shuffle(arange(8).view(1,4,1,2), 2)
 * is [[0,2,1,3],[4,6,5,7]] (channel i*r + j lands at row offset i, column
 * offset j), and pixel_unshuffle undoes it. */
START_TEST(test_known_values)
{
    dsd_context *ctx = tu_ctx();
    const double x[8] = {0, 1, 2, 3, 4, 5, 6, 7}, want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    double got[8], ref[8];
    dsd_tensor tx, ty, tz;
    tu_plain_from(&tx, 1, 4, 1, 2, x);
    tu_plain_from(&ty, 1, 1, 2, 4, NULL);
    tu_plain_from(&tz, 1, 4, 1, 2, NULL);
    TU_OK(dsd_pixel_shuffle_forward(ctx, 2, &tx, &ty));
    tu_download(&ty, got);
    ref_pixel_shuffle_forward(2, 1, 4, 1, 2, x, ref);
    for (int i = 0; i < 8; i++) {
        ck_assert_msg(got[i] == want[i], "shuffle element %d: %g, want %g", i, got[i], want[i]);
        ck_assert_msg(ref[i] == want[i], "reference element %d: %g, want %g", i, ref[i], want[i]);
    }
    TU_OK(dsd_pixel_unshuffle_forward(ctx, 2, &ty, &tz));
    tu_download(&tz, got);
    ref_pixel_unshuffle_forward(2, 1, 1, 2, 4, want, ref);
    for (int i = 0; i < 8; i++) {
        ck_assert_msg(got[i] == x[i], "unshuffle element %d: %g, want %g", i, got[i], x[i]);
        ck_assert_msg(ref[i] == x[i], "reference element %d: %g, want %g", i, ref[i], x[i]);
    }
    tu_tensor_free(&tx);
    tu_tensor_free(&ty);
    tu_tensor_free(&tz);
}
END_TEST

/* shuffle then unshuffle is the identity, exactly; r = 2 and 3. */
START_TEST(test_round_trip)
{
    dsd_context *ctx = tu_ctx();
    int r = 2 + _i;
    const int base[4] = {2, 3, 7, 5};
    int small[4], big[4];
    sides(base, r, small, big);
    size_t n = tu_numel4(small);
    tu_rng rng = tu_rng_init(55 + (uint64_t)_i);
    double *x = random_nonzero(&rng, n), *z = tu_alloc(n);
    dsd_tensor tx, ty, tz;
    tu_plain_from(&tx, small[0], small[1], small[2], small[3], x);
    tu_plain_from(&ty, big[0], big[1], big[2], big[3], NULL);
    tu_plain_from(&tz, small[0], small[1], small[2], small[3], NULL);
    TU_OK(dsd_pixel_shuffle_forward(ctx, r, &tx, &ty));
    TU_OK(dsd_pixel_unshuffle_forward(ctx, r, &ty, &tz));
    tu_download(&tz, z);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(z[i] == x[i], "r=%d element %zu: %g != %g", r, i, z[i], x[i]);
    tu_tensor_free(&tx);
    tu_tensor_free(&ty);
    tu_tensor_free(&tz);
    free(x);
    free(z);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The reference backward against finite differences */

typedef struct fd_ctx {
    const ps_op *op;
    int r;
    const int *in;
    double *x, *y, *g;
} fd_ctx;

static double fd_loss(void *user)
{
    fd_ctx *f = user;
    f->op->ref_fwd(f->r, f->in[0], f->in[1], f->in[2], f->in[3], f->x, f->y);
    return tu_dot(f->y, f->g, tu_numel4(f->in));
}

START_TEST(test_ref_grad)
{
    const ps_op *op = &ops[_i % 2];
    int r = _i / 2 ? 3 : 2;
    const int base[4] = {2, 3, 7, 5};
    int in[4], out[4];
    io_shapes(op, base, r, in, out);
    size_t n = tu_numel4(in);
    tu_rng rng = tu_rng_init(77 + (uint64_t)_i);
    fd_ctx f = {op, r, in, random_nonzero(&rng, n), tu_alloc(n), tu_alloc(n)};
    tu_fill(&rng, f.g, n, -1.0, 1.0);
    double *num = tu_alloc(n), *ana = tu_alloc(n);
    op->ref_bwd(r, in[0], in[1], in[2], in[3], f.g, ana);
    tu_numeric_grad(fd_loss, &f, f.x, n, 1e-6, num);
    tu_check_close(op->name, ana, num, n, 1e-6);
    free(f.x);
    free(f.y);
    free(f.g);
    free(num);
    free(ana);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors: refused before anything is enqueued (outputs untouched) */

START_TEST(test_errors)
{
    dsd_context *ctx = tu_ctx();
    const int s5[4] = {2, 5, 7, 5}, y5[4] = {2, 1, 14, 10};   /* 5 channels, r = 2 */
    const int s12[4] = {2, 12, 7, 5}, y12[4] = {2, 3, 14, 10}; /* a valid pair */
    const int y12t[4] = {2, 3, 10, 14}, y12c[4] = {2, 4, 14, 10};
    const int odd[4] = {2, 3, 7, 6}, odd_y[4] = {2, 12, 3, 3};
    tu_guarded x5, ty5, x12, ty12, ty12t, ty12c, todd, todd_y;
    tu_guarded_const(&x5, s5, 1.0f);
    tu_guarded_const(&ty5, y5, 2.0f);
    tu_guarded_const(&x12, s12, 3.0f);
    tu_guarded_const(&ty12, y12, 4.0f);
    tu_guarded_const(&ty12t, y12t, 5.0f);
    tu_guarded_const(&ty12c, y12c, 6.0f);
    tu_guarded_const(&todd, odd, 7.0f);
    tu_guarded_const(&todd_y, odd_y, 8.0f);

    tu_expect_status(dsd_pixel_shuffle_forward(ctx, 2, &x5.v, &ty5.v), DSD_ERR_SHAPE,
                     "shuffle of 5 channels with r = 2");
    ck_assert_msg(strstr(dsd_context_error(ctx)->message, "2x5x7x5"), "%s",
                  dsd_context_error(ctx)->message);
    tu_expect_status(dsd_pixel_shuffle_backward(ctx, 2, &ty5.v, &x5.v), DSD_ERR_SHAPE,
                     "shuffle backward into 5 channels");
    tu_expect_status(dsd_pixel_shuffle_forward(ctx, 2, &x12.v, &ty12t.v), DSD_ERR_SHAPE,
                     "shuffle into 2x3x10x14");
    tu_expect_status(dsd_pixel_shuffle_forward(ctx, 2, &x12.v, &ty12c.v), DSD_ERR_SHAPE,
                     "shuffle into 4 channels");
    tu_expect_status(dsd_pixel_shuffle_forward(ctx, 3, &x12.v, &ty12.v), DSD_ERR_SHAPE,
                     "shuffle of 12 channels with r = 3");
    tu_expect_status(dsd_pixel_shuffle_forward(ctx, 0, &x12.v, &ty12.v), DSD_ERR_INVALID_ARGUMENT,
                     "shuffle with r = 0");
    tu_expect_status(dsd_pixel_shuffle_forward(ctx, 2, NULL, &ty12.v), DSD_ERR_INVALID_ARGUMENT,
                     "shuffle of NULL");
    tu_expect_status(dsd_pixel_unshuffle_forward(ctx, 2, &todd.v, &todd_y.v), DSD_ERR_SHAPE,
                     "unshuffle of 7x6 with r = 2");
    tu_expect_status(dsd_pixel_unshuffle_forward(ctx, 2, &ty12t.v, &x12.v), DSD_ERR_SHAPE,
                     "unshuffle of 2x3x10x14 into 2x12x7x5");
    tu_expect_status(dsd_pixel_unshuffle_backward(ctx, 2, &x12.v, &ty12t.v), DSD_ERR_SHAPE,
                     "unshuffle backward into 2x3x10x14");
    tu_expect_status(dsd_pixel_unshuffle_forward(ctx, -1, &ty12.v, &x12.v),
                     DSD_ERR_INVALID_ARGUMENT, "unshuffle with r = -1");
    /* output overlapping the input */
    dsd_tensor alias;
    TU_OK(dsd_tensor_view_reshape(ctx, &x12.v, 2, 3, 14, 10, &alias));
    tu_expect_status(dsd_pixel_shuffle_forward(ctx, 2, &x12.v, &alias), DSD_ERR_INVALID_ARGUMENT,
                     "shuffle in place");

    tu_guarded_check_untouched(&x5, 1.0, "x5");
    tu_guarded_check_untouched(&ty5, 2.0, "y5");
    tu_guarded_check_untouched(&x12, 3.0, "x12");
    tu_guarded_check_untouched(&ty12, 4.0, "y12");
    tu_guarded_check_untouched(&ty12t, 5.0, "y12t");
    tu_guarded_check_untouched(&ty12c, 6.0, "y12c");
    tu_guarded_check_untouched(&todd, 7.0, "odd");
    tu_guarded_check_untouched(&todd_y, 8.0, "odd y");

    tu_guarded *all[] = {&x5, &ty5, &x12, &ty12, &ty12t, &ty12c, &todd, &todd_y};
    for (int k = 0; k < 8; k++)
        tu_guarded_free(all[k]);
}
END_TEST

/* The same forward + backward twice gives bit-identical floats. */
START_TEST(test_determinism)
{
    dsd_context *ctx = tu_ctx();
    const ps_op *op = &ops[_i];
    const int base[4] = {2, 5, 9, 11};
    int in[4], out[4];
    io_shapes(op, base, 2, in, out);
    size_t n = tu_numel4(in);
    tu_rng rng = tu_rng_init(88 + (uint64_t)_i);
    double *x = random_nonzero(&rng, n), *dy = random_nonzero(&rng, n);
    float *res[2][2];
    for (int run = 0; run < 2; run++) {
        dsd_tensor tx, ty, tdy, tdx;
        tu_plain_from(&tx, in[0], in[1], in[2], in[3], x);
        tu_plain_from(&ty, out[0], out[1], out[2], out[3], NULL);
        tu_plain_from(&tdy, out[0], out[1], out[2], out[3], dy);
        tu_plain_from(&tdx, in[0], in[1], in[2], in[3], x);
        TU_OK(op->fwd(ctx, 2, &tx, &ty));
        TU_OK(op->bwd(ctx, 2, &tdy, &tdx));
        for (int k = 0; k < 2; k++) {
            res[run][k] = malloc(n * sizeof(float));
            ck_assert(res[run][k] != NULL);
            TU_OK(dsd_tensor_download(ctx, k ? &tdx : &ty, res[run][k], n));
        }
        tu_tensor_free(&tx);
        tu_tensor_free(&ty);
        tu_tensor_free(&tdy);
        tu_tensor_free(&tdx);
    }
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(!memcmp(res[0][k], res[1][k], n * sizeof(float)), "%s: %s differs",
                      op->name, k ? "backward" : "forward");
        free(res[0][k]);
        free(res[1][k]);
    }
    free(x);
    free(dy);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pixel_shuffle");
    TCase *tc = tcase_create("pixel_shuffle");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, test_forward_backward, 0, N_FULL * 4);
    tcase_add_test(tc, test_known_values);
    tcase_add_loop_test(tc, test_round_trip, 0, 2);
    tcase_add_loop_test(tc, test_ref_grad, 0, 4);
    tcase_add_test(tc, test_errors);
    tcase_add_loop_test(tc, test_determinism, 0, 2);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
