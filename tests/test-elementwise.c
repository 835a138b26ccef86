/*
 * test-elementwise.c: broadcast add and mul, scale, clamp and channel concat
 * (src/ops/elementwise.c, cl/elementwise.cl) against the double-precision
 * references in tests/ref/elementwise.c, and the references against central
 * finite differences.
 *
 * Add and mul run every broadcast pattern b can have against a (each of N, C
 * and (H,W) kept or 1: a's shape, (N,C,1,1), (N,1,H,W), (1,C,1,1), (1,1,1,1),
 * ...) on odd shapes, including ones large enough that the db reduction is
 * split into partial sums. Device tensors are batch views starting at image 1
 * of a larger tensor, so non-zero offsets reach the kernels and every
 * gradient lives in its own buffer; image 0 holds a sentinel no op may touch.
 */
#include "testutil.h"
#include "ref/elementwise.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int shapes_full[][4] = {{2, 3, 7, 5},  {2, 5, 9, 11}, {2, 17, 1, 1},
                                     {3, 29, 1, 1}, {2, 3, 67, 71}};
static const int shapes_small[][4] = {{2, 3, 7, 5}, {3, 29, 1, 1}, {2, 3, 40, 37}};
enum { N_FULL = 5, N_PATTERNS = 8 };

static int n_shapes(void)
{
    return tu_small() ? (int)(sizeof shapes_small / sizeof shapes_small[0]) : N_FULL;
}

static const int *shape_at(int i)
{
    return tu_small() ? shapes_small[i] : shapes_full[i];
}

/* Pattern bits: 1 = b's N is 1, 2 = b's C is 1, 4 = b's (H,W) is (1,1). */
static void pattern_shape(const int a[4], int pattern, int b[4])
{
    b[0] = pattern & 1 ? 1 : a[0];
    b[1] = pattern & 2 ? 1 : a[1];
    b[2] = pattern & 4 ? 1 : a[2];
    b[3] = pattern & 4 ? 1 : a[3];
}

/* ------------------------------------------------------------------------ */
/* Helpers */

/* Random host data, rounded to float (what the device sees). */
static double *random_nonzero(tu_rng *r, size_t n, double lo, double hi)
{
    double *x = tu_alloc(n);
    tu_fill_nonzero(r, x, n, lo, hi);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)x[i];
    return x;
}

static void shape_name(char *buf, size_t size, const char *op, const int a[4], const int b[4])
{
    snprintf(buf, size, "%s a %dx%dx%dx%d b %dx%dx%dx%d", op, a[0], a[1], a[2], a[3], b[0], b[1],
             b[2], b[3]);
}

/* ------------------------------------------------------------------------ */
/* Add and mul, forward and backward, every pattern */

static void check_binary(int is_mul, const int as[4], int pattern, uint64_t seed)
{
    dsd_context *ctx = tu_ctx();
    int bs[4];
    pattern_shape(as, pattern, bs);
    size_t na = tu_numel4(as), nb = tu_numel4(bs);
    tu_rng r = tu_rng_init(seed);
    double *a = random_nonzero(&r, na, 0.1, 2.0), *b = random_nonzero(&r, nb, 0.1, 2.0);
    double *dy = random_nonzero(&r, na, 0.1, 1.0);
    double *da = random_nonzero(&r, na, 0.1, 1.0), *db = random_nonzero(&r, nb, 0.1, 1.0);
    double *y = tu_alloc(na);
    const double alpha = -0.7;
    char what[160];
    const char *op = is_mul ? "mul" : "add";

    tu_guarded ta, tb, ty, tdy, tda, tdb;
    tu_guarded_from(&ta, as, a);
    tu_guarded_from(&tb, bs, b);
    tu_guarded_init(&ty, as);
    tu_guarded_from(&tdy, as, dy);
    tu_guarded_from(&tda, as, da);
    tu_guarded_from(&tdb, bs, db);

    if (is_mul) {
        TU_OK(dsd_mul_forward(ctx, &ta.v, &tb.v, &ty.v));
        ref_mul_forward(as, a, bs, b, y);
    } else {
        TU_OK(dsd_add_forward(ctx, &ta.v, &tb.v, (float)alpha, &ty.v));
        ref_add_forward(as, a, bs, b, (double)(float)alpha, y);
    }
    shape_name(what, sizeof what, is_mul ? "mul forward" : "add forward", as, bs);
    tu_check_tensor(what, &ty.v, y, 1e-4);

    /* both gradients, then db alone, then da alone: each accumulates */
    for (int round = 0; round < 3; round++) {
        double *pa = round == 1 ? NULL : da, *pb = round == 2 ? NULL : db;
        dsd_tensor *ga = pa ? &tda.v : NULL, *gb = pb ? &tdb.v : NULL;
        if (is_mul) {
            TU_OK(dsd_mul_backward(ctx, &ta.v, &tb.v, &tdy.v, ga, gb));
            ref_mul_backward(as, a, bs, b, dy, pa, pb);
        } else {
            TU_OK(dsd_add_backward(ctx, (float)alpha, &tdy.v, ga, gb));
            ref_add_backward(as, bs, (double)(float)alpha, dy, pa, pb);
        }
        snprintf(what, sizeof what, "%s backward round %d da", op, round);
        shape_name(what + strlen(what), sizeof what - strlen(what), "", as, bs);
        tu_check_tensor(what, &tda.v, da, 1e-4);
        snprintf(what, sizeof what, "%s backward round %d db", op, round);
        shape_name(what + strlen(what), sizeof what - strlen(what), "", as, bs);
        tu_check_tensor(what, &tdb.v, db, 1e-4);
    }

    tu_guarded *all[] = {&ta, &tb, &ty, &tdy, &tda, &tdb};
    const char *names[] = {"a", "b", "y", "dy", "da", "db"};
    for (int k = 0; k < 6; k++) {
        tu_guarded_check(all[k], names[k]);
        tu_guarded_free(all[k]);
    }
    free(a);
    free(b);
    free(dy);
    free(da);
    free(db);
    free(y);
}

START_TEST(test_add)
{
    int si = _i / N_PATTERNS, pattern = _i % N_PATTERNS;
    if (si < n_shapes())
        check_binary(0, shape_at(si), pattern, 1000 + (uint64_t)_i);
}
END_TEST

START_TEST(test_mul)
{
    int si = _i / N_PATTERNS, pattern = _i % N_PATTERNS;
    if (si < n_shapes())
        check_binary(1, shape_at(si), pattern, 2000 + (uint64_t)_i);
}
END_TEST

/* y == a (same buffer and offset), b broadcast. */
START_TEST(test_in_place)
{
    dsd_context *ctx = tu_ctx();
    static const int patterns[] = {0, 6, 2, 7, 5};
    const int as[4] = {2, 5, 9, 11};
    for (int k = 0; k < (int)(sizeof patterns / sizeof patterns[0]); k++) {
        int bs[4];
        pattern_shape(as, patterns[k], bs);
        size_t na = tu_numel4(as), nb = tu_numel4(bs);
        tu_rng r = tu_rng_init(300 + (uint64_t)k);
        double *a = random_nonzero(&r, na, 0.1, 2.0), *b = random_nonzero(&r, nb, 0.1, 2.0);
        double *y = tu_alloc(na);
        char what[160];
        for (int is_mul = 0; is_mul < 2; is_mul++) {
            tu_guarded ta, tb;
            tu_guarded_from(&ta, as, a);
            tu_guarded_from(&tb, bs, b);
            if (is_mul) {
                TU_OK(dsd_mul_forward(ctx, &ta.v, &tb.v, &ta.v));
                ref_mul_forward(as, a, bs, b, y);
            } else {
                TU_OK(dsd_add_forward(ctx, &ta.v, &tb.v, 0.5f, &ta.v));
                ref_add_forward(as, a, bs, b, 0.5, y);
            }
            shape_name(what, sizeof what, is_mul ? "mul in place" : "add in place", as, bs);
            tu_check_tensor(what, &ta.v, y, 1e-4);
            tu_guarded_check(&ta, what);
            tu_guarded_free(&ta);
            tu_guarded_free(&tb);
        }
        free(a);
        free(b);
        free(y);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* References against finite differences */

typedef struct fd_ctx {
    int is_mul;
    const int *as, *bs;
    double *a, *b, *y, *g;
    double alpha;
} fd_ctx;

static double fd_loss(void *user)
{
    fd_ctx *f = user;
    if (f->is_mul)
        ref_mul_forward(f->as, f->a, f->bs, f->b, f->y);
    else
        ref_add_forward(f->as, f->a, f->bs, f->b, f->alpha, f->y);
    return tu_dot(f->y, f->g, tu_numel4(f->as));
}

START_TEST(test_ref_grad)
{
    int is_mul = _i / N_PATTERNS, pattern = _i % N_PATTERNS;
    const int as[4] = {2, 3, 7, 5};
    int bs[4];
    pattern_shape(as, pattern, bs);
    size_t na = tu_numel4(as), nb = tu_numel4(bs);
    tu_rng r = tu_rng_init(400 + (uint64_t)_i);
    fd_ctx f = {is_mul, as, bs, random_nonzero(&r, na, 0.1, 2.0),
                random_nonzero(&r, nb, 0.1, 2.0), tu_alloc(na), tu_alloc(na), -0.7};
    tu_fill(&r, f.g, na, -1.0, 1.0);
    double *ga = tu_alloc(na), *gb = tu_alloc(nb), *na_ = tu_alloc(na), *nb_ = tu_alloc(nb);
    if (is_mul)
        ref_mul_backward(as, f.a, bs, f.b, f.g, ga, gb);
    else
        ref_add_backward(as, bs, f.alpha, f.g, ga, gb);
    tu_numeric_grad(fd_loss, &f, f.a, na, 1e-6, na_);
    tu_numeric_grad(fd_loss, &f, f.b, nb, 1e-6, nb_);
    char what[160];
    shape_name(what, sizeof what, is_mul ? "ref mul da" : "ref add da", as, bs);
    tu_check_close(what, ga, na_, na, 1e-6);
    shape_name(what, sizeof what, is_mul ? "ref mul db" : "ref add db", as, bs);
    tu_check_close(what, gb, nb_, nb, 1e-6);
    free(f.a);
    free(f.b);
    free(f.y);
    free(f.g);
    free(ga);
    free(gb);
    free(na_);
    free(nb_);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Scale and clamp */

typedef struct fd_unary {
    int is_clamp;
    double alpha, lo, hi;
    double *x, *y, *g;
    size_t n;
} fd_unary;

static double fd_unary_loss(void *user)
{
    fd_unary *f = user;
    if (f->is_clamp)
        ref_clamp_forward(f->lo, f->hi, f->x, f->y, f->n);
    else
        ref_scale_forward(f->alpha, f->x, f->y, f->n);
    return tu_dot(f->y, f->g, f->n);
}

/* _i: 0 scale, 1 clamp; shapes in turn. */
START_TEST(test_scale_clamp)
{
    dsd_context *ctx = tu_ctx();
    int is_clamp = _i % 2, si = _i / 2;
    if (si >= n_shapes())
        return;
    const int *s = shape_at(si);
    size_t n = tu_numel4(s);
    tu_rng r = tu_rng_init(500 + (uint64_t)_i);
    const double alpha = -1.75, lo = -0.5, hi = 0.75;
    double *x = random_nonzero(&r, n, 0.01, 1.5);
    if (is_clamp) /* exact bounds: the gradient passes there (PyTorch) */
        for (size_t i = 0; i < n; i += 7)
            x[i] = (i / 7) % 2 ? lo : hi;
    double *dy = random_nonzero(&r, n, 0.1, 1.0), *dx = random_nonzero(&r, n, 0.1, 1.0);
    double *y = tu_alloc(n);
    tu_guarded tx, ty, tdy, tdx;
    tu_guarded_from(&tx, s, x);
    tu_guarded_init(&ty, s);
    tu_guarded_from(&tdy, s, dy);
    tu_guarded_from(&tdx, s, dx);
    char what[96];
    snprintf(what, sizeof what, "%s %dx%dx%dx%d", is_clamp ? "clamp" : "scale", s[0], s[1], s[2],
             s[3]);
    if (is_clamp) {
        TU_OK(dsd_clamp_forward(ctx, (float)lo, (float)hi, &tx.v, &ty.v));
        ref_clamp_forward(lo, hi, x, y, n);
        tu_check_tensor(what, &ty.v, y, 1e-4);
        TU_OK(dsd_clamp_backward(ctx, (float)lo, (float)hi, &tx.v, &tdy.v, &tdx.v));
        ref_clamp_backward(lo, hi, x, dy, dx, n);
        tu_check_tensor(what, &tdx.v, dx, 1e-4);
        TU_OK(dsd_clamp_backward(ctx, (float)lo, (float)hi, &tx.v, &tdy.v, NULL));
        /* in place */
        TU_OK(dsd_clamp_forward(ctx, (float)lo, (float)hi, &tx.v, &tx.v));
        tu_check_tensor(what, &tx.v, y, 1e-4);
    } else {
        TU_OK(dsd_scale_forward(ctx, (float)alpha, &tx.v, &ty.v));
        ref_scale_forward(alpha, x, y, n);
        tu_check_tensor(what, &ty.v, y, 1e-4);
        TU_OK(dsd_scale_backward(ctx, (float)alpha, &tdy.v, &tdx.v));
        ref_scale_backward(alpha, dy, dx, n);
        tu_check_tensor(what, &tdx.v, dx, 1e-4);
        TU_OK(dsd_scale_backward(ctx, (float)alpha, &tdy.v, NULL));
        TU_OK(dsd_scale_forward(ctx, (float)alpha, &tx.v, &tx.v));
        tu_check_tensor(what, &tx.v, y, 1e-4);
    }
    tu_check_tensor(what, &tdx.v, dx, 1e-4); /* unchanged by the NULL-dx call */
    tu_guarded_check(&tx, "x");
    tu_guarded_check(&ty, "y");
    tu_guarded_check(&tdx, "dx");

    /* the reference backward against finite differences (away from the bounds) */
    if (si == 0) {
        fd_unary f = {is_clamp, alpha, lo, hi, x, y, dy, n};
        for (size_t i = 0; i < n; i++)
            if (fabs(x[i] - lo) < 0.01 || fabs(x[i] - hi) < 0.01)
                x[i] += 0.05;
        double *num = tu_alloc(n), *ana = tu_alloc(n);
        if (is_clamp)
            ref_clamp_backward(lo, hi, x, dy, ana, n);
        else
            ref_scale_backward(alpha, dy, ana, n);
        tu_numeric_grad(fd_unary_loss, &f, x, n, 1e-6, num);
        tu_check_close(is_clamp ? "ref clamp" : "ref scale", ana, num, n, 1e-6);
        free(num);
        free(ana);
    }
    tu_guarded_free(&tx);
    tu_guarded_free(&ty);
    tu_guarded_free(&tdy);
    tu_guarded_free(&tdx);
    free(x);
    free(y);
    free(dy);
    free(dx);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Concat */

typedef struct fd_concat {
    int n, ca, cb, hw;
    double *a, *b, *y, *g;
} fd_concat;

static double fd_concat_loss(void *user)
{
    fd_concat *f = user;
    ref_concat_forward(f->n, f->ca, f->cb, f->hw, f->a, f->b, f->y);
    return tu_dot(f->y, f->g, (size_t)f->n * (f->ca + f->cb) * f->hw);
}

START_TEST(test_concat)
{
    dsd_context *ctx = tu_ctx();
    static const int cases[][4] = {{2, 3, 5, 0}, {2, 17, 1, 1}, {3, 1, 4, 2}};
    static const int planes[][2] = {{7, 5}, {9, 11}, {1, 1}};
    int k = _i / 3, pl = _i % 3;
    if (tu_small() && pl == 1)
        return;
    const int n = cases[k][0], ca = cases[k][1], cb = cases[k][2];
    const int h = planes[pl][0], w = planes[pl][1], hw = h * w;
    const int as[4] = {n, ca, h, w}, bs[4] = {n, cb, h, w}, ys[4] = {n, ca + cb, h, w};
    size_t na = tu_numel4(as), nb = tu_numel4(bs), ny = tu_numel4(ys);
    tu_rng r = tu_rng_init(600 + (uint64_t)_i);
    double *a = random_nonzero(&r, na, 0.1, 2.0), *b = random_nonzero(&r, nb, 0.1, 2.0);
    double *dy = random_nonzero(&r, ny, 0.1, 1.0), *y = tu_alloc(ny);
    double *da = random_nonzero(&r, na, 0.1, 1.0), *db = random_nonzero(&r, nb, 0.1, 1.0);
    tu_guarded ta, tb, ty, tdy, tda, tdb;
    tu_guarded_from(&ta, as, a);
    tu_guarded_from(&tb, bs, b);
    tu_guarded_init(&ty, ys);
    tu_guarded_from(&tdy, ys, dy);
    tu_guarded_from(&tda, as, da);
    tu_guarded_from(&tdb, bs, db);
    char what[96];
    snprintf(what, sizeof what, "concat %d+%d channels %dx%d", ca, cb, h, w);
    TU_OK(dsd_concat_forward(ctx, &ta.v, &tb.v, &ty.v));
    ref_concat_forward(n, ca, cb, hw, a, b, y);
    tu_check_tensor(what, &ty.v, y, 1e-4);
    for (int round = 0; round < 3; round++) {
        double *pa = round == 1 ? NULL : da, *pb = round == 2 ? NULL : db;
        TU_OK(dsd_concat_backward(ctx, &tdy.v, pa ? &tda.v : NULL, pb ? &tdb.v : NULL));
        ref_concat_backward(n, ca, cb, hw, dy, pa, pb);
        tu_check_tensor(what, &tda.v, da, 1e-4);
        tu_check_tensor(what, &tdb.v, db, 1e-4);
    }
    tu_guarded *all[] = {&ta, &tb, &ty, &tdy, &tda, &tdb};
    for (int i = 0; i < 6; i++) {
        tu_guarded_check(all[i], what);
        tu_guarded_free(all[i]);
    }

    fd_concat f = {n, ca, cb, hw, a, b, y, dy};
    double *ga = tu_alloc(na), *gb = tu_alloc(nb), *num_a = tu_alloc(na), *num_b = tu_alloc(nb);
    ref_concat_backward(n, ca, cb, hw, dy, ga, gb);
    tu_numeric_grad(fd_concat_loss, &f, a, na, 1e-6, num_a);
    tu_numeric_grad(fd_concat_loss, &f, b, nb, 1e-6, num_b);
    tu_check_close("ref concat da", ga, num_a, na, 1e-6);
    tu_check_close("ref concat db", gb, num_b, nb, 1e-6);
    free(ga);
    free(gb);
    free(num_a);
    free(num_b);
    free(a);
    free(b);
    free(dy);
    free(y);
    free(da);
    free(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors: refused before anything is enqueued (outputs untouched) */

static int message_has(const char *s)
{
    return strstr(dsd_context_error(tu_ctx())->message, s) != NULL;
}

START_TEST(test_errors)
{
    dsd_context *ctx = tu_ctx();
    const int as[4] = {2, 5, 7, 5};
    static const int bad_b[][4] = {{2, 2, 7, 5}, {3, 5, 1, 1}, {2, 5, 7, 1}, {2, 5, 1, 5},
                                   {2, 5, 5, 7}, {1, 1, 7, 1}};
    tu_guarded a, y, dy, da, bad, good_b, db;
    tu_guarded_const(&a, as, 1.0f);
    tu_guarded_const(&y, as, 2.0f);
    tu_guarded_const(&dy, as, 3.0f);
    tu_guarded_const(&da, as, 4.0f);
    const int gs[4] = {2, 5, 1, 1};
    tu_guarded_const(&good_b, gs, 5.0f);
    tu_guarded_const(&db, gs, 6.0f);
    for (int k = 0; k < (int)(sizeof bad_b / sizeof bad_b[0]); k++) {
        tu_guarded_const(&bad, bad_b[k], 7.0f);
        char what[96];
        snprintf(what, sizeof what, "b %dx%dx%dx%d against a 2x5x7x5", bad_b[k][0], bad_b[k][1],
                 bad_b[k][2], bad_b[k][3]);
        tu_expect_status(dsd_add_forward(ctx, &a.v, &bad.v, 1.0f, &y.v), DSD_ERR_SHAPE, what);
        ck_assert_msg(message_has("2x5x7x5"), "%s", dsd_context_error(ctx)->message);
        tu_expect_status(dsd_mul_forward(ctx, &a.v, &bad.v, &y.v), DSD_ERR_SHAPE, what);
        tu_expect_status(dsd_add_backward(ctx, 1.0f, &dy.v, &da.v, &bad.v), DSD_ERR_SHAPE, what);
        tu_expect_status(dsd_mul_backward(ctx, &a.v, &bad.v, &dy.v, &da.v, NULL), DSD_ERR_SHAPE,
                         what);
        /* db of another shape than b */
        tu_expect_status(dsd_mul_backward(ctx, &a.v, &good_b.v, &dy.v, &da.v, &bad.v),
                         DSD_ERR_SHAPE, what);
        tu_guarded_check_untouched(&bad, 7.0, what);
        tu_guarded_free(&bad);
    }
    tu_guarded_check_untouched(&y, 2.0, "y");
    tu_guarded_check_untouched(&da, 4.0, "da");

    /* y, da, dy of the wrong shape; NULL inputs */
    const int ts[4] = {2, 5, 5, 7};
    tu_guarded yt;
    tu_guarded_const(&yt, ts, 8.0f);
    tu_expect_status(dsd_add_forward(ctx, &a.v, &good_b.v, 1.0f, &yt.v), DSD_ERR_SHAPE,
                     "add y 2x5x5x7");
    tu_expect_status(dsd_mul_forward(ctx, &a.v, &good_b.v, &yt.v), DSD_ERR_SHAPE, "mul y 2x5x5x7");
    tu_expect_status(dsd_add_backward(ctx, 1.0f, &dy.v, &yt.v, &db.v), DSD_ERR_SHAPE,
                     "add da 2x5x5x7");
    tu_expect_status(dsd_mul_backward(ctx, &a.v, &good_b.v, &yt.v, &da.v, &db.v), DSD_ERR_SHAPE,
                     "mul dy 2x5x5x7");
    tu_expect_status(dsd_mul_backward(ctx, &a.v, &good_b.v, &dy.v, &yt.v, &db.v), DSD_ERR_SHAPE,
                     "mul da 2x5x5x7");
    tu_expect_status(dsd_add_forward(ctx, &a.v, NULL, 1.0f, &y.v), DSD_ERR_INVALID_ARGUMENT,
                     "add b NULL");
    tu_expect_status(dsd_mul_forward(ctx, NULL, &good_b.v, &y.v), DSD_ERR_INVALID_ARGUMENT,
                     "mul a NULL");
    tu_expect_status(dsd_mul_backward(ctx, &a.v, NULL, &dy.v, &da.v, &db.v),
                     DSD_ERR_INVALID_ARGUMENT, "mul backward b NULL");
    tu_expect_status(dsd_add_backward(ctx, 1.0f, NULL, &da.v, &db.v), DSD_ERR_INVALID_ARGUMENT,
                     "add backward dy NULL");
    /* y partly overlapping a: neither in place nor disjoint */
    dsd_tensor shifted = dsd_tensor_view_batch(&a.base, 0, 2);
    tu_expect_status(dsd_add_forward(ctx, &a.v, &good_b.v, 1.0f, &shifted),
                     DSD_ERR_INVALID_ARGUMENT, "add into a partly overlapping y");
    /* y == b while b broadcasts would overwrite b while it is read */
    tu_guarded small_a;
    tu_guarded_const(&small_a, gs, 9.0f);
    const int ss[4] = {1, 1, 1, 1};
    tu_guarded scalar;
    tu_guarded_const(&scalar, ss, 2.0f);
    TU_OK(dsd_mul_forward(ctx, &small_a.v, &scalar.v, &small_a.v)); /* in place: fine */
    tu_guarded_check_untouched(&small_a, 18.0, "small a");

    /* scale / clamp */
    tu_expect_status(dsd_scale_forward(ctx, 2.0f, &a.v, &yt.v), DSD_ERR_SHAPE, "scale y 2x5x5x7");
    tu_expect_status(dsd_scale_backward(ctx, 2.0f, &dy.v, &yt.v), DSD_ERR_SHAPE,
                     "scale dx 2x5x5x7");
    tu_expect_status(dsd_clamp_forward(ctx, 0.0f, 1.0f, &a.v, &yt.v), DSD_ERR_SHAPE,
                     "clamp y 2x5x5x7");
    tu_expect_status(dsd_clamp_backward(ctx, 0.0f, 1.0f, &a.v, &yt.v, &da.v), DSD_ERR_SHAPE,
                     "clamp dy 2x5x5x7");
    tu_expect_status(dsd_clamp_backward(ctx, 0.0f, 1.0f, &a.v, &dy.v, &yt.v), DSD_ERR_SHAPE,
                     "clamp dx 2x5x5x7");
    tu_expect_status(dsd_clamp_forward(ctx, 1.0f, 0.0f, &a.v, &y.v), DSD_ERR_INVALID_ARGUMENT,
                     "clamp lo > hi");
    tu_expect_status(dsd_clamp_forward(ctx, NAN, 0.0f, &a.v, &y.v), DSD_ERR_INVALID_ARGUMENT,
                     "clamp lo NaN");
    tu_expect_status(dsd_clamp_backward(ctx, 0.0f, NAN, &a.v, &dy.v, &da.v),
                     DSD_ERR_INVALID_ARGUMENT, "clamp backward hi NaN");
    tu_guarded_check_untouched(&yt, 8.0, "y of the wrong shape");
    tu_guarded_check_untouched(&y, 2.0, "y");
    tu_guarded_check_untouched(&da, 4.0, "da");
    tu_guarded_check_untouched(&db, 6.0, "db");

    /* concat: a 2x5x7x5 and c 2x3x5x7 (different H); y channel count wrong */
    const int cs[4] = {2, 3, 5, 7}, cy[4] = {2, 8, 7, 5}, cy_bad[4] = {2, 9, 7, 5};
    const int c3[4] = {2, 3, 7, 5};
    tu_guarded tc, tcy, tcyb, tc3;
    tu_guarded_const(&tc, cs, 1.0f);
    tu_guarded_const(&tcy, cy, 2.0f);
    tu_guarded_const(&tcyb, cy_bad, 3.0f);
    tu_guarded_const(&tc3, c3, 4.0f);
    tu_expect_status(dsd_concat_forward(ctx, &a.v, &tc.v, &tcy.v), DSD_ERR_SHAPE,
                     "concat different H");
    ck_assert_msg(message_has("2x3x5x7"), "%s", dsd_context_error(ctx)->message);
    tu_expect_status(dsd_concat_forward(ctx, &a.v, &tc3.v, &tcyb.v), DSD_ERR_SHAPE,
                     "concat into 9 channels");
    tu_expect_status(dsd_concat_backward(ctx, &tcy.v, &a.v, &tc.v), DSD_ERR_SHAPE,
                     "concat backward different H");
    tu_expect_status(dsd_concat_backward(ctx, &tcyb.v, &a.v, &tc3.v), DSD_ERR_SHAPE,
                     "concat backward 9 channels into 5 + 3");
    tu_expect_status(dsd_concat_backward(ctx, &tc3.v, &a.v, NULL), DSD_ERR_SHAPE,
                     "concat backward da with more channels than dy");
    tu_expect_status(dsd_concat_forward(ctx, &a.v, NULL, &tcy.v), DSD_ERR_INVALID_ARGUMENT,
                     "concat b NULL");
    tu_guarded_check_untouched(&tcy, 2.0, "concat y");
    tu_guarded_check_untouched(&a, 1.0, "concat da");
    tu_guarded_check_untouched(&tc3, 4.0, "concat db");

    tu_guarded *all[] = {&a,       &y,      &dy, &da,  &good_b, &db, &yt,
                         &small_a, &scalar, &tc, &tcy, &tcyb,   &tc3};
    for (int k = 0; k < (int)(sizeof all / sizeof all[0]); k++)
        tu_guarded_free(all[k]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Determinism: forward + backward twice, bit-identical (the split reductions
 * included: a 2x3x67x71 against (1,1,1,1), (1,C,1,1) and (N,C,1,1)). */

START_TEST(test_determinism)
{
    dsd_context *ctx = tu_ctx();
    static const int patterns[] = {7, 5, 4, 2};
    int is_mul = _i % 2, pattern = patterns[_i / 2];
    const int as_full[4] = {2, 3, 67, 71}, as_small[4] = {2, 3, 40, 37};
    const int *as = tu_small() ? as_small : as_full;
    int bs[4];
    pattern_shape(as, pattern, bs);
    size_t na = tu_numel4(as), nb = tu_numel4(bs);
    tu_rng r = tu_rng_init(700 + (uint64_t)_i);
    double *a = random_nonzero(&r, na, 0.1, 2.0), *b = random_nonzero(&r, nb, 0.1, 2.0);
    double *dy = random_nonzero(&r, na, 0.1, 1.0);
    float *out[2][3];
    size_t sizes[3] = {na, na, nb};
    for (int run = 0; run < 2; run++) {
        dsd_tensor ta, tb, ty, tdy, tda, tdb;
        tu_plain_from(&ta, as[0], as[1], as[2], as[3], a);
        tu_plain_from(&tb, bs[0], bs[1], bs[2], bs[3], b);
        tu_plain_from(&ty, as[0], as[1], as[2], as[3], NULL);
        tu_plain_from(&tdy, as[0], as[1], as[2], as[3], dy);
        tu_plain_from(&tda, as[0], as[1], as[2], as[3], a);
        tu_plain_from(&tdb, bs[0], bs[1], bs[2], bs[3], b);
        if (is_mul) {
            TU_OK(dsd_mul_forward(ctx, &ta, &tb, &ty));
            TU_OK(dsd_mul_backward(ctx, &ta, &tb, &tdy, &tda, &tdb));
        } else {
            TU_OK(dsd_add_forward(ctx, &ta, &tb, 0.3f, &ty));
            TU_OK(dsd_add_backward(ctx, 0.3f, &tdy, &tda, &tdb));
        }
        dsd_tensor *t[3] = {&ty, &tda, &tdb};
        for (int k = 0; k < 3; k++) {
            out[run][k] = malloc(sizes[k] * sizeof(float));
            ck_assert(out[run][k] != NULL);
            TU_OK(dsd_tensor_download(ctx, t[k], out[run][k], sizes[k]));
        }
        tu_tensor_free(&ta);
        tu_tensor_free(&tb);
        tu_tensor_free(&ty);
        tu_tensor_free(&tdy);
        tu_tensor_free(&tda);
        tu_tensor_free(&tdb);
    }
    for (int k = 0; k < 3; k++) {
        ck_assert_msg(!memcmp(out[0][k], out[1][k], sizes[k] * sizeof(float)),
                      "%s pattern %d: output %d differs between runs", is_mul ? "mul" : "add",
                      pattern, k);
        free(out[0][k]);
        free(out[1][k]);
    }
    free(a);
    free(b);
    free(dy);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("elementwise");
    TCase *tc = tcase_create("elementwise");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, test_add, 0, N_FULL * N_PATTERNS);
    tcase_add_loop_test(tc, test_mul, 0, N_FULL * N_PATTERNS);
    tcase_add_test(tc, test_in_place);
    tcase_add_loop_test(tc, test_ref_grad, 0, 2 * N_PATTERNS);
    tcase_add_loop_test(tc, test_scale_clamp, 0, 2 * N_FULL);
    tcase_add_loop_test(tc, test_concat, 0, 9);
    tcase_add_test(tc, test_errors);
    tcase_add_loop_test(tc, test_determinism, 0, 8);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
