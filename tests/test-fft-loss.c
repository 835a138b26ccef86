/*
 * test-fft-loss.c: the frequency loss (src/ops/fft_loss.c on clFFT, with
 * cl/fft_loss.cl) against the double-precision DFT reference in
 * tests/ref/fft.c, and the reference's gradient against central finite
 * differences of its loss.
 *
 * Inputs are float-rounded before the reference sees them and are drawn
 * (re-drawn with the next seed if needed) so that no |Re D| or |Im D| is
 * within MARGIN of zero, except Im at the frequencies where it is zero for
 * every real input: then float rounding on the device cannot flip a sign of
 * the gradient, and a finite-difference step (EPS < MARGIN moves each Re/Im D
 * by at most EPS) never crosses a kink, so the loss is linear over the step.
 *
 * Device tensors are batch views starting at image 1 of a larger tensor whose
 * image 0 holds a sentinel, so non-zero offsets reach the kernels and a stray
 * write shows. Gradient accumulators are pre-filled with values of the
 * gradient's own size, so an error in the gradient is not hidden by a large
 * pre-fill.
 */
#include "testutil.h"
#include "ref/fft.h"

#include <clFFT.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_TRIES = 1000 };
static const double MARGIN = 2e-3; /* min |Re D|, |Im D| of test inputs */
static const double EPS = 1e-4;    /* finite-difference step, < MARGIN */
static const float SCALE = 2.5f;   /* backward's scale argument */

/* Shapes (N, C, H, W): odd lengths, the radices 11 (9 x 11) and 2*5, 2^2*3
 * (12 x 10, with Nyquist rows and columns), one point (1 x 1), a power of
 * two (16 x 16). */
static const int shapes_full[][4] = {
    {2, 3, 7, 5}, {2, 3, 9, 11}, {2, 3, 12, 10}, {2, 3, 1, 1}, {2, 3, 16, 16},
};
static const int shapes_small[][4] = {{2, 3, 7, 5}, {2, 3, 1, 1}, {2, 3, 4, 6}};
static const int (*shapes)[4] = shapes_full;
static int n_shapes = TU_COUNT(shapes_full);

/* ------------------------------------------------------------------------ */
/* Helpers that work on any context (test_two_contexts uses several) */

#define CTX_OK(ctx, expr) ctx_ok_((ctx), (expr), #expr, __FILE__, __LINE__)
static void ctx_ok_(dsd_context *ctx, dsd_status st, const char *expr, const char *file,
                    int line)
{
    if (st == DSD_OK)
        return;
    char msg[DSD_ERROR_LINE_MAX];
    dsd_error_format(dsd_context_error(ctx), msg, sizeof msg);
    ck_abort_msg("%s:%d: %s returned %s: %s", file, line, expr, dsd_status_name(st), msg);
}

/* A tensor of shape s holding host (NULL: TU_SENTINEL), written whole
 * (tu_write_whole_ctx, for Oclgrind). */
static void tensor_init(dsd_context *ctx, dsd_tensor *t, const int s[4], const double *host)
{
    CTX_OK(ctx, dsd_tensor_init(ctx, t, s[0], s[1], s[2], s[3]));
    tu_write_whole_ctx(ctx, t, host, 0, dsd_tensor_numel(t), TU_SENTINEL);
}

/* Allocates vt: TU_SENTINEL in image 0, host (if not NULL) in images 1..N. */
static void vt_init(dsd_context *ctx, tu_guarded *vt, const int s[4], const double *host)
{
    CTX_OK(ctx, dsd_tensor_init(ctx, &vt->base, s[0] + 1, s[1], s[2], s[3]));
    vt->v = dsd_tensor_view_batch(&vt->base, 1, s[0]);
    tu_write_whole_ctx(ctx, &vt->base, host, vt->v.offset, tu_numel4(s), TU_SENTINEL);
}

static void vt_free(dsd_context *ctx, tu_guarded *vt)
{
    dsd_tensor_free(ctx, &vt->base);
}

static void download(dsd_context *ctx, const dsd_tensor *t, double *host)
{
    size_t n = dsd_tensor_numel(t);
    float *f = malloc(n * sizeof *f);
    ck_assert(f != NULL);
    CTX_OK(ctx, dsd_tensor_download(ctx, t, f, n));
    for (size_t i = 0; i < n; i++)
        host[i] = f[i];
    free(f);
}

/* Image 0 of vt still holds TU_SENTINEL everywhere. */
static void vt_check_sentinel(dsd_context *ctx, const tu_guarded *vt, const char *what)
{
    dsd_tensor img0 = dsd_tensor_view_batch(&vt->base, 0, 1);
    size_t n = dsd_tensor_numel(&img0);
    double *h = tu_alloc(n);
    download(ctx, &img0, h);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(h[i] == TU_SENTINEL, "%s: sentinel element %zu overwritten with %g", what, i,
                      h[i]);
    free(h);
}

/* Float-representable a, b of shape s with min |Re D|, |Im D| >= MARGIN. */
static void make_inputs(uint64_t seed, const int s[4], double *a, double *b)
{
    size_t n = tu_numel4(s);
    for (int t = 0; t < MAX_TRIES; t++) {
        tu_rng r = tu_rng_init(seed + 7919u * (uint64_t)t);
        tu_fill_nonzero(&r, a, n, 0.1, 1.0);
        tu_fill_nonzero(&r, b, n, 0.1, 1.0);
        tu_round_to_float(a, n);
        tu_round_to_float(b, n);
        if (ref_fft_loss_min_abs(a, b, s[0], s[1], s[2], s[3]) >= MARGIN)
            return;
    }
    ck_abort_msg("no inputs of shape %dx%dx%dx%d with min |Re D|, |Im D| >= %g in %d tries",
                 s[0], s[1], s[2], s[3], MARGIN, MAX_TRIES);
}

static double max_abs(const double *x, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* Runs forward and backward on ctx (with its FFT plans) for inputs a, b of
 * shape s and checks them against the reference (da, db pre-filled; NULL
 * skips that gradient on the device, which then must not touch it). */
static void check_op(dsd_context *ctx, dsd_fft_plans *plans, const int s[4], const double *a,
                     const double *b, int with_da, int with_db, uint64_t seed)
{
    size_t n = tu_numel4(s);
    char what[96];

    /* forward */
    double want_loss = ref_fft_loss_forward(a, b, s[0], s[1], s[2], s[3]);
    tu_guarded va, vb;
    vt_init(ctx, &va, s, a);
    vt_init(ctx, &vb, s, b);
    dsd_tensor loss;
    const int one[4] = {1, 1, 1, 1};
    tensor_init(ctx, &loss, one, NULL);
    CTX_OK(ctx, dsd_fft_loss_forward(ctx, plans, &va.v, &vb.v, &loss));
    double got_loss;
    download(ctx, &loss, &got_loss);
    snprintf(what, sizeof what, "loss %dx%dx%dx%d", s[0], s[1], s[2], s[3]);
    tu_check_close(what, &got_loss, &want_loss, 1, 1e-4);

    /* backward: pre-fill of the gradient's size, then prefill + reference */
    double *ga = tu_alloc(n), *gb = tu_alloc(n), *pa = tu_alloc(n), *pb = tu_alloc(n);
    double *got = tu_alloc(n);
    memset(ga, 0, n * sizeof *ga);
    ref_fft_loss_backward(SCALE, a, b, s[0], s[1], s[2], s[3], ga, NULL);
    double gmax = max_abs(ga, n);
    ck_assert_msg(gmax > 0.0, "reference gradient is zero");
    tu_rng r = tu_rng_init(seed ^ 0x5eedu);
    tu_fill_nonzero(&r, pa, n, 0.1 * gmax, gmax);
    tu_fill_nonzero(&r, pb, n, 0.1 * gmax, gmax);
    tu_round_to_float(pa, n);
    tu_round_to_float(pb, n);
    memcpy(ga, pa, n * sizeof *ga);
    memcpy(gb, pb, n * sizeof *gb);
    ref_fft_loss_backward(SCALE, a, b, s[0], s[1], s[2], s[3], with_da ? ga : NULL,
                          with_db ? gb : NULL);
    tu_guarded vda, vdb;
    vt_init(ctx, &vda, s, pa);
    vt_init(ctx, &vdb, s, pb);
    CTX_OK(ctx, dsd_fft_loss_backward(ctx, plans, SCALE, &va.v, &vb.v, with_da ? &vda.v : NULL,
                                      with_db ? &vdb.v : NULL));
    download(ctx, &vda.v, got);
    snprintf(what, sizeof what, "da %dx%dx%dx%d%s", s[0], s[1], s[2], s[3],
             with_da ? "" : " (not requested)");
    tu_check_close(what, got, ga, n, with_da ? 1e-4 : 0.0);
    download(ctx, &vdb.v, got);
    snprintf(what, sizeof what, "db %dx%dx%dx%d%s", s[0], s[1], s[2], s[3],
             with_db ? "" : " (not requested)");
    tu_check_close(what, got, gb, n, with_db ? 1e-4 : 0.0);

    vt_check_sentinel(ctx, &vda, "da");
    vt_check_sentinel(ctx, &vdb, "db");
    vt_check_sentinel(ctx, &va, "a");
    vt_check_sentinel(ctx, &vb, "b");
    vt_free(ctx, &va);
    vt_free(ctx, &vb);
    vt_free(ctx, &vda);
    vt_free(ctx, &vdb);
    dsd_tensor_free(ctx, &loss);
    free(ga);
    free(gb);
    free(pa);
    free(pb);
    free(got);
}

/* ------------------------------------------------------------------------ */
/* Device vs reference */

START_TEST(test_forward_backward)
{
    const int *s = shapes[_i];
    size_t n = tu_numel4(s);
    double *a = tu_alloc(n), *b = tu_alloc(n);
    make_inputs(100 + (uint64_t)_i, s, a, b);
    dsd_fft_plans plans = {0};
    check_op(tu_ctx(), &plans, s, a, b, 1, 1, 100 + (uint64_t)_i);
    dsd_fft_plans_free(&plans);
    free(a);
    free(b);
}
END_TEST

/* One gradient requested: the other is left alone (its buffer is still
 * passed to the kernel as a stand-in). */
START_TEST(test_one_gradient)
{
    const int s[4] = {2, 3, 7, 5};
    size_t n = tu_numel4(s);
    double *a = tu_alloc(n), *b = tu_alloc(n);
    make_inputs(300, s, a, b);
    dsd_fft_plans plans = {0};
    check_op(tu_ctx(), &plans, s, a, b, _i == 0, _i == 1, 300);
    dsd_fft_plans_free(&plans);
    free(a);
    free(b);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Reference gradient vs finite differences */

typedef struct fd_user {
    const int *s;
    const double *a, *b; /* the perturbed array is one of these */
} fd_user;

static double fd_loss(void *user)
{
    const fd_user *u = user;
    return SCALE * ref_fft_loss_forward(u->a, u->b, u->s[0], u->s[1], u->s[2], u->s[3]);
}

START_TEST(test_ref_grad)
{
    const int *s = shapes[_i];
    size_t n = tu_numel4(s);
    double *a = tu_alloc(n), *b = tu_alloc(n), *ga = tu_alloc(n), *gb = tu_alloc(n);
    make_inputs(200 + (uint64_t)_i, s, a, b);
    memset(ga, 0, n * sizeof *ga);
    memset(gb, 0, n * sizeof *gb);
    ref_fft_loss_backward(SCALE, a, b, s[0], s[1], s[2], s[3], ga, gb);

    /* every element, or an odd stride of them on the larger shapes (each loss
     * evaluation is O(N C (HW)^2)) */
    size_t step = n > 800 ? 7 : 1, m = 0;
    double *num = tu_alloc(n), *ref = tu_alloc(n);
    fd_user u = {s, a, b};
    for (int which = 0; which < 2; which++) {
        double *x = which == 0 ? a : b, *g = which == 0 ? ga : gb;
        m = 0;
        for (size_t i = 0; i < n; i += step, m++) {
            tu_numeric_grad(fd_loss, &u, &x[i], 1, EPS, &num[m]);
            ref[m] = g[i];
        }
        char what[64];
        snprintf(what, sizeof what, "reference d%s vs finite differences, %dx%dx%dx%d",
                 which == 0 ? "a" : "b", s[0], s[1], s[2], s[3]);
        tu_check_close(what, ref, num, m, 1e-6);
    }
    /* da = -db exactly in the reference */
    for (size_t i = 0; i < n; i++)
        ck_assert(ga[i] == -gb[i]);
    free(a);
    free(b);
    free(ga);
    free(gb);
    free(num);
    free(ref);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors: nothing is enqueued, nothing is written */

static void expect_error(dsd_context *ctx, dsd_status got, dsd_status want, const char *needle)
{
    const dsd_error *e = dsd_context_error(ctx);
    ck_assert_msg(got == want, "returned %s, expected %s: %s", dsd_status_name(got),
                  dsd_status_name(want), e->message);
    ck_assert_msg(strstr(e->message, needle), "message \"%s\" does not mention \"%s\"",
                  e->message, needle);
}

START_TEST(test_shape_errors)
{
    dsd_context *ctx = tu_ctx();
    const int good[4] = {2, 3, 7, 5};
    size_t n = tu_numel4(good);
    double *x = tu_alloc(n), *h = tu_alloc(n);
    tu_rng r = tu_rng_init(9);
    tu_fill_nonzero(&r, x, n, 0.1, 1.0);
    dsd_tensor a, b, loss, da, db, a17, b17, w34a, w34b, b6, loss2, da6;
    const int s17[4] = {2, 3, 17, 5}, s34[4] = {1, 2, 7, 34}, s6[4] = {2, 3, 7, 6};
    const int s1[4] = {1, 1, 1, 1}, s2[4] = {1, 1, 1, 2};
    double seven = 7.0;
    tensor_init(ctx, &a, good, x);
    tensor_init(ctx, &b, good, x);
    tensor_init(ctx, &da, good, x);
    tensor_init(ctx, &db, good, x);
    tensor_init(ctx, &loss, s1, &seven);
    tensor_init(ctx, &a17, s17, NULL);
    tensor_init(ctx, &b17, s17, NULL);
    tensor_init(ctx, &w34a, s34, NULL);
    tensor_init(ctx, &w34b, s34, NULL);
    tensor_init(ctx, &b6, s6, NULL);
    tensor_init(ctx, &loss2, s2, NULL);
    tensor_init(ctx, &da6, s6, NULL);
    dsd_fft_plans plans = {0}, *fp = &plans;
    unsigned created = dsd_pool_get_stats(ctx).buffers_created;

    /* lengths with a prime factor clFFT lacks */
    expect_error(ctx, dsd_fft_loss_forward(ctx, fp, &a17, &b17, &loss), DSD_ERR_SHAPE, "H = 17");
    expect_error(ctx, dsd_fft_loss_forward(ctx, fp, &a17, &b17, &loss), DSD_ERR_SHAPE,
                 "prime factor 17");
    expect_error(ctx, dsd_fft_loss_backward(ctx, fp, 1.0f, &a17, &b17, &da, NULL), DSD_ERR_SHAPE,
                 "H = 17");
    expect_error(ctx, dsd_fft_loss_forward(ctx, fp, &w34a, &w34b, &loss), DSD_ERR_SHAPE, "W = 34");
    expect_error(ctx, dsd_fft_loss_backward(ctx, fp, 1.0f, &w34a, &w34b, NULL, NULL), DSD_ERR_SHAPE,
                 "prime factor 17");
    /* mismatched shapes */
    expect_error(ctx, dsd_fft_loss_forward(ctx, fp, &a, &b6, &loss), DSD_ERR_SHAPE, "2x3x7x6");
    expect_error(ctx, dsd_fft_loss_forward(ctx, fp, &a, &b, &loss2), DSD_ERR_SHAPE, "1x1x1x1");
    expect_error(ctx, dsd_fft_loss_backward(ctx, fp, 1.0f, &a, &b6, &da, &db), DSD_ERR_SHAPE,
                 "2x3x7x6");
    expect_error(ctx, dsd_fft_loss_backward(ctx, fp, 1.0f, &a, &b, &da6, &db), DSD_ERR_SHAPE, "da");
    expect_error(ctx, dsd_fft_loss_backward(ctx, fp, 1.0f, &a, &b, &da, &da6), DSD_ERR_SHAPE, "db");
    /* missing and empty tensors */
    expect_error(ctx, dsd_fft_loss_forward(ctx, fp, NULL, &b, &loss), DSD_ERR_INVALID_ARGUMENT,
                 "a");
    expect_error(ctx, dsd_fft_loss_forward(ctx, fp, &a, &b, NULL), DSD_ERR_INVALID_ARGUMENT,
                 "loss");
    dsd_tensor empty = dsd_tensor_view_batch(&a, 1, 5);
    expect_error(ctx, dsd_fft_loss_forward(ctx, fp, &empty, &b, &loss), DSD_ERR_SHAPE, "empty");

    /* nothing was leased or written */
    ck_assert_uint_eq(dsd_pool_get_stats(ctx).buffers_created, created);
    double l;
    tu_download(&loss, &l);
    ck_assert(l == seven);
    tu_download(&da, h);
    for (size_t i = 0; i < n; i++)
        ck_assert(h[i] == (double)(float)x[i]);
    /* neither gradient requested: valid, and a no-op */
    TU_OK(dsd_fft_loss_backward(ctx, fp, 1.0f, &a, &b, NULL, NULL));

    dsd_tensor *all[] = {&a, &b, &loss, &da, &db, &a17, &b17, &w34a, &w34b, &b6, &loss2, &da6};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_tensor_free(all[i]);
    dsd_fft_plans_free(&plans);
    free(x);
    free(h);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Several contexts: clFFT's process-global state must not tie them together */

static dsd_context *new_context(int profiling)
{
    dsd_error err;
    dsd_context *ctx = NULL;
    dsd_context_options opts = {0};
    opts.profiling = profiling;
    if (dsd_context_init(&ctx, &opts, &err) != DSD_OK) {
        char line[DSD_ERROR_LINE_MAX];
        ck_abort_msg("dsd_context_init: %s", dsd_error_format(&err, line, sizeof line));
    }
    return ctx;
}

START_TEST(test_two_contexts)
{
    const int s1[4] = {2, 3, 9, 11}, s2[4] = {2, 3, 12, 10};
    const int *t1 = tu_small() ? shapes_small[0] : s1, *t2 = tu_small() ? shapes_small[2] : s2;
    size_t n = tu_numel4(t1) > tu_numel4(t2) ? tu_numel4(t1) : tu_numel4(t2);
    double *a = tu_alloc(n), *b = tu_alloc(n), *c = tu_alloc(n), *d = tu_alloc(n);
    make_inputs(400, t1, a, b);
    make_inputs(401, t2, c, d);

    /* in sequence: the second context works after the first is freed */
    dsd_fft_plans px = {0}, py = {0}, pz = {0};
    dsd_context *x = new_context(0);
    check_op(x, &px, t1, a, b, 1, 1, 400);
    dsd_fft_plans_free(&px);
    dsd_context_free(x);
    dsd_context *y = new_context(1);
    check_op(y, &py, t1, a, b, 1, 1, 400);

    /* overlapping: freeing one context leaves the other's plans working */
    dsd_context *z = new_context(0);
    check_op(z, &pz, t2, c, d, 1, 1, 401);
    check_op(y, &py, t2, c, d, 1, 1, 401);
    /* plans belong to the context that made them */
    dsd_tensor loss;
    const int one[4] = {1, 1, 1, 1};
    tensor_init(z, &loss, one, NULL);
    expect_error(z, dsd_fft_loss_forward(z, &py, &loss, &loss, &loss), DSD_ERR_INVALID_ARGUMENT,
                 "another context");
    dsd_tensor_free(z, &loss);
    dsd_fft_plans_free(&pz);
    dsd_context_free(z);
    check_op(y, &py, t1, a, b, 1, 1, 400);
    check_op(y, &py, t2, c, d, 1, 1, 401);

    /* profiling records clFFT's transforms next to the kernels */
    dsd_profile_entry *prof;
    size_t np;
    CTX_OK(y, dsd_profile_collect(y, &prof, &np));
    int seen_fwd = 0, seen_bwd = 0, seen_final = 0;
    for (size_t i = 0; i < np; i++) {
        seen_fwd |= !strcmp(prof[i].name, "clfft_forward");
        seen_bwd |= !strcmp(prof[i].name, "clfft_backward");
        seen_final |= !strcmp(prof[i].name, "fft_loss_abs_final");
    }
    free(prof);
    ck_assert_msg(seen_fwd && seen_bwd && seen_final, "profile lacks clFFT or reduction entries");
    dsd_fft_plans_free(&py);
    dsd_context_free(y);
    free(a);
    free(b);
    free(c);
    free(d);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Determinism and buffer reuse */

START_TEST(test_determinism)
{
    dsd_context *ctx = tu_ctx();
    const int *s = tu_small() ? shapes_small[0] : shapes_full[2];
    size_t n = tu_numel4(s);
    double *a = tu_alloc(n), *b = tu_alloc(n), *p = tu_alloc(n);
    make_inputs(500, s, a, b);
    tu_rng r = tu_rng_init(501);
    tu_fill_nonzero(&r, p, n, 0.001, 0.01);
    dsd_fft_plans plans = {0};
    float *res[2][3];
    unsigned created = 0;
    uint64_t in_use = 0;
    for (int run = 0; run < 2; run++) {
        dsd_tensor ta, tb, loss, da, db;
        const int one[4] = {1, 1, 1, 1};
        tensor_init(ctx, &ta, s, a);
        tensor_init(ctx, &tb, s, b);
        tensor_init(ctx, &da, s, p);
        tensor_init(ctx, &db, s, p);
        tensor_init(ctx, &loss, one, NULL);
        dsd_pool_stats before = dsd_pool_get_stats(ctx);
        TU_OK(dsd_fft_loss_forward(ctx, &plans, &ta, &tb, &loss));
        TU_OK(dsd_fft_loss_backward(ctx, &plans, 0.75f, &ta, &tb, &da, &db));
        dsd_pool_stats after = dsd_pool_get_stats(ctx);
        /* the op's temporaries all went back to the pool */
        ck_assert_uint_eq(after.bytes_in_use, before.bytes_in_use);
        if (run == 0) {
            created = after.buffers_created;
            in_use = after.bytes_in_use;
        } else { /* the second run reuses every buffer */
            ck_assert_uint_eq(after.buffers_created, created);
            ck_assert_uint_eq(after.bytes_in_use, in_use);
        }
        const dsd_tensor *outs[3] = {&loss, &da, &db};
        for (int k = 0; k < 3; k++) {
            size_t m = dsd_tensor_numel(outs[k]);
            res[run][k] = malloc(m * sizeof(float));
            ck_assert(res[run][k] != NULL);
            TU_OK(dsd_tensor_download(ctx, outs[k], res[run][k], m));
        }
        tu_tensor_free(&ta);
        tu_tensor_free(&tb);
        tu_tensor_free(&da);
        tu_tensor_free(&db);
        tu_tensor_free(&loss);
    }
    ck_assert_msg(memcmp(res[0][0], res[1][0], sizeof(float)) == 0, "loss differs: %.9g %.9g",
                  res[0][0][0], res[1][0][0]);
    ck_assert_msg(memcmp(res[0][1], res[1][1], n * sizeof(float)) == 0, "da differs");
    ck_assert_msg(memcmp(res[0][2], res[1][2], n * sizeof(float)) == 0, "db differs");
    for (int run = 0; run < 2; run++)
        for (int k = 0; k < 3; k++)
            free(res[run][k]);
    dsd_fft_plans_free(&plans);
    free(a);
    free(b);
    free(p);
}
END_TEST

int main(void)
{
    /* Under Oclgrind 21.10, --uninitialized aborts on LLVM's `freeze`
     * instruction ("Unsupported instruction: freeze"), which its clang emits
     * when optimizing clFFT's generated fft_fwd/fft_back kernels, and the
     * aborted instruction then corrupts the results. Compiling unoptimized
     * avoids it and keeps every check on. Only Oclgrind reads this variable
     * (at each program build); a value set by the caller wins. */
    setenv("OCLGRIND_BUILD_OPTIONS", "-cl-opt-disable", 0);
    shapes = TU_PICK_SHAPES(shapes_full, shapes_small, &n_shapes);
    Suite *s = suite_create("fft_loss");
    TCase *tc = tcase_create("fft_loss");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, test_forward_backward, 0, n_shapes);
    tcase_add_loop_test(tc, test_one_gradient, 0, 2);
    tcase_add_loop_test(tc, test_ref_grad, 0, n_shapes);
    tcase_add_test(tc, test_shape_errors);
    tcase_add_test(tc, test_two_contexts);
    tcase_add_test(tc, test_determinism);
    suite_add_tcase(s, tc);
    int rc = tu_run(s); /* frees the shared context first */
    clfftTeardown();    /* clFFT's process-wide state: once, after every plan and context */
    return rc;
}
