/*
 * test-norm.c: instance normalization (src/ops/norm.c, cl/norm.cl) against
 * the double-precision reference in tests/ref/norm.c, and the reference
 * backward against central finite differences of the reference forward.
 *
 * Every device tensor is a batch view starting at image 1 of a larger tensor,
 * so non-zero offsets reach the kernels; image 0 holds a sentinel that no op
 * may touch. Shapes include 1 x 1 planes (variance 0: y = beta, no NaN) and
 * 37 x 29 planes (more elements than one 256-wide work-group pass). One input
 * set sits at mean 100 with spread 1, where sum(x^2) - sum(x)^2 in float
 * would lose the variance; the Welford / Chan reduction must not.
 */
#include "testutil.h"
#include "ref/norm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double EPS = 1e-5; /* the model's eps */

static const int shapes_full[][4] = {
    {2, 3, 7, 5}, {2, 5, 9, 11}, {2, 17, 1, 1}, {2, 3, 37, 29}, {2, 17, 9, 11},
};
static const int shapes_small[][4] = {{2, 3, 7, 5}, {2, 5, 1, 1}, {2, 3, 37, 29}};
static const int (*shapes)[4] = shapes_full;
static int n_shapes = TU_COUNT(shapes_full);

/* ------------------------------------------------------------------------ */
/* Helpers */

static void download_floats(const dsd_tensor *t, float *out)
{
    TU_OK(dsd_tensor_download(tu_ctx(), t, out, dsd_tensor_numel(t)));
}

/* Inputs for one case: x around `center`, gamma, beta, upstream dy, and the
 * pre-fills of dx, dgamma, dbeta, all rounded to float. */
typedef struct norm_case {
    int s[4];
    int affine;
    double *x, *gamma, *beta, *dy, *dx0, *dg0, *db0;
} norm_case;

static void case_init(norm_case *k, const int s[4], int affine, double center, uint64_t seed)
{
    memcpy(k->s, s, sizeof k->s);
    k->affine = affine;
    size_t n = tu_numel4(s), c = (size_t)s[1];
    tu_rng r = tu_rng_init(seed);
    k->x = tu_alloc(n);
    k->dy = tu_alloc(n);
    k->dx0 = tu_alloc(n);
    k->gamma = tu_alloc(c);
    k->beta = tu_alloc(c);
    k->dg0 = tu_alloc(c);
    k->db0 = tu_alloc(c);
    tu_fill_nonzero(&r, k->x, n, 0.05, 2.0);
    for (size_t i = 0; i < n; i++)
        k->x[i] += center;
    tu_fill_nonzero(&r, k->dy, n, 0.1, 2.0);
    tu_fill(&r, k->dx0, n, -1.0, 1.0);
    tu_fill_nonzero(&r, k->gamma, c, 0.5, 1.5);
    tu_fill_nonzero(&r, k->beta, c, 0.1, 1.0);
    tu_fill(&r, k->dg0, c, -1.0, 1.0);
    tu_fill(&r, k->db0, c, -1.0, 1.0);
    tu_round_to_float(k->x, n);
    tu_round_to_float(k->dy, n);
    tu_round_to_float(k->dx0, n);
    tu_round_to_float(k->gamma, c);
    tu_round_to_float(k->beta, c);
    tu_round_to_float(k->dg0, c);
    tu_round_to_float(k->db0, c);
}

static void case_free(norm_case *k)
{
    free(k->x);
    free(k->dy);
    free(k->dx0);
    free(k->gamma);
    free(k->beta);
    free(k->dg0);
    free(k->db0);
}

static void case_name(const norm_case *k, const char *what, char *buf, size_t size)
{
    snprintf(buf, size, "%s %dx%dx%dx%d affine %s", what, k->s[0], k->s[1], k->s[2], k->s[3],
             k->affine ? "on" : "off");
}

/* ------------------------------------------------------------------------ */
/* Forward */

static void check_forward(const norm_case *k)
{
    dsd_context *ctx = tu_ctx();
    const int *s = k->s;
    const int sc[4] = {1, s[1], 1, 1}, ss[4] = {s[0], s[1], 1, 1};
    size_t n = tu_numel4(s), planes = (size_t)s[0] * s[1];
    double *y_ref = tu_alloc(n), *m_ref = tu_alloc(planes), *r_ref = tu_alloc(planes);
    ref_instance_norm_forward(k->x, s[0], s[1], s[2], s[3], EPS, k->affine ? k->gamma : NULL,
                              k->affine ? k->beta : NULL, y_ref, m_ref, r_ref);

    tu_guarded tx, tg, tb, ty, ty2, tm, tr;
    tu_guarded_from(&tx, s, k->x);
    tu_guarded_from(&tg, sc, k->gamma);
    tu_guarded_from(&tb, sc, k->beta);
    tu_guarded_init(&ty, s);
    tu_guarded_init(&ty2, s);
    tu_guarded_init(&tm, ss);
    tu_guarded_init(&tr, ss);
    const dsd_tensor *g = k->affine ? &tg.v : NULL, *b = k->affine ? &tb.v : NULL;
    TU_OK(dsd_instance_norm_forward(ctx, (float)EPS, &tx.v, g, b, &ty.v, &tm.v, &tr.v));

    char what[160];
    case_name(k, "forward y", what, sizeof what);
    tu_check_tensor(what, &ty.v, y_ref, 1e-4);
    tu_guarded_check(&ty, what);
    case_name(k, "forward mean", what, sizeof what);
    tu_check_tensor(what, &tm.v, m_ref, 1e-4);
    tu_guarded_check(&tm, what);
    case_name(k, "forward rstd", what, sizeof what);
    tu_check_tensor(what, &tr.v, r_ref, 1e-4);
    tu_guarded_check(&tr, what);

    /* inference: no statistics, the same y bit for bit */
    TU_OK(dsd_instance_norm_forward(ctx, (float)EPS, &tx.v, g, b, &ty2.v, NULL, NULL));
    float *y1 = malloc(n * sizeof *y1), *y2 = malloc(n * sizeof *y2);
    ck_assert(y1 && y2);
    download_floats(&ty.v, y1);
    download_floats(&ty2.v, y2);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(isfinite(y1[i]), "y[%zu] = %g is not finite", i, (double)y1[i]);
    ck_assert_msg(memcmp(y1, y2, n * sizeof *y1) == 0, "y differs without mean / rstd");
    tu_guarded_check(&ty2, "forward without statistics");

    /* in place (y = x, as inference may run it): the same y bit for bit */
    tu_guarded tin;
    tu_guarded_from(&tin, s, k->x);
    TU_OK(dsd_instance_norm_forward(ctx, (float)EPS, &tin.v, g, b, &tin.v, NULL, NULL));
    download_floats(&tin.v, y2);
    ck_assert_msg(memcmp(y1, y2, n * sizeof *y1) == 0, "y differs when computed in place");
    tu_guarded_check(&tin, "forward in place");
    tu_guarded_free(&tin);

    free(y1);
    free(y2);
    tu_guarded_free(&tx);
    tu_guarded_free(&tg);
    tu_guarded_free(&tb);
    tu_guarded_free(&ty);
    tu_guarded_free(&ty2);
    tu_guarded_free(&tm);
    tu_guarded_free(&tr);
    free(y_ref);
    free(m_ref);
    free(r_ref);
}

/* _i = (shape * 2 + affine) */
START_TEST(test_forward)
{
    norm_case k;
    case_init(&k, shapes[_i / 2], _i % 2, 0.0, 10 + (uint64_t)_i);
    check_forward(&k);
    case_free(&k);
}
END_TEST

/* Mean 100, spread ~1: needs a cancellation-free variance (float has ~7
 * digits; sum(x^2)/n - mean^2 would keep about 3 of var). */
START_TEST(test_forward_offset)
{
    norm_case k;
    const int s[4] = {2, 3, 37, 29};
    case_init(&k, s, _i, 100.0, 20 + (uint64_t)_i);
    check_forward(&k);
    case_free(&k);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Backward */

typedef enum grads {
    GRADS_ALL,   /* dx, dgamma, dbeta */
    GRADS_DX,    /* dx only */
    GRADS_PARAM, /* dgamma and dbeta only */
    GRADS_COUNT
} grads;

static void check_backward(const norm_case *k, grads which)
{
    dsd_context *ctx = tu_ctx();
    const int *s = k->s;
    const int sc[4] = {1, s[1], 1, 1}, ss[4] = {s[0], s[1], 1, 1};
    size_t n = tu_numel4(s), c = (size_t)s[1], planes = (size_t)s[0] * s[1];
    double *y_ref = tu_alloc(n), *m_ref = tu_alloc(planes), *r_ref = tu_alloc(planes);
    double *dx_ref = tu_alloc(n), *dg_ref = tu_alloc(c), *db_ref = tu_alloc(c);
    const double *gamma = k->affine ? k->gamma : NULL;
    ref_instance_norm_forward(k->x, s[0], s[1], s[2], s[3], EPS, gamma,
                              k->affine ? k->beta : NULL, y_ref, m_ref, r_ref);
    ref_instance_norm_backward(k->x, s[0], s[1], s[2], s[3], gamma, m_ref, r_ref, k->dy, dx_ref,
                               dg_ref, db_ref);

    tu_guarded tx, tg, tb, ty, tm, tr, tdy, tdx, tdg, tdb;
    tu_guarded_from(&tx, s, k->x);
    tu_guarded_from(&tg, sc, k->gamma);
    tu_guarded_from(&tb, sc, k->beta);
    tu_guarded_init(&ty, s);
    tu_guarded_init(&tm, ss);
    tu_guarded_init(&tr, ss);
    tu_guarded_from(&tdy, s, k->dy);
    tu_guarded_from(&tdx, s, k->dx0);
    tu_guarded_from(&tdg, sc, k->dg0);
    tu_guarded_from(&tdb, sc, k->db0);
    const dsd_tensor *g = k->affine ? &tg.v : NULL;
    TU_OK(dsd_instance_norm_forward(ctx, (float)EPS, &tx.v, g, k->affine ? &tb.v : NULL, &ty.v,
                                    &tm.v, &tr.v));
    int want_dx = which != GRADS_PARAM, want_param = which != GRADS_DX;
    TU_OK(dsd_instance_norm_backward(ctx, &tx.v, g, &tm.v, &tr.v, &tdy.v,
                                     want_dx ? &tdx.v : NULL, want_param ? &tdg.v : NULL,
                                     want_param ? &tdb.v : NULL));

    static const char *names[GRADS_COUNT] = {"all", "dx only", "dgamma+dbeta only"};
    char what[160], label[64];
    snprintf(label, sizeof label, "backward (%s) dx", names[which]);
    case_name(k, label, what, sizeof what);
    if (want_dx)
        tu_check_accum(what, &tdx.v, k->dx0, dx_ref, 1e-4);
    else
        tu_check_tensor(what, &tdx.v, k->dx0, 0.0); /* untouched */
    tu_guarded_check(&tdx, what);
    snprintf(label, sizeof label, "backward (%s) dgamma", names[which]);
    case_name(k, label, what, sizeof what);
    if (want_param)
        tu_check_accum(what, &tdg.v, k->dg0, dg_ref, 1e-4);
    else
        tu_check_tensor(what, &tdg.v, k->dg0, 0.0);
    tu_guarded_check(&tdg, what);
    snprintf(label, sizeof label, "backward (%s) dbeta", names[which]);
    case_name(k, label, what, sizeof what);
    if (want_param)
        tu_check_accum(what, &tdb.v, k->db0, db_ref, 1e-4);
    else
        tu_check_tensor(what, &tdb.v, k->db0, 0.0);
    tu_guarded_check(&tdb, what);

    tu_guarded *all[] = {&tx, &tg, &tb, &ty, &tm, &tr, &tdy, &tdx, &tdg, &tdb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_guarded_free(all[i]);
    free(y_ref);
    free(m_ref);
    free(r_ref);
    free(dx_ref);
    free(dg_ref);
    free(db_ref);
}

/* _i = (shape * 2 + affine) * GRADS_COUNT + which */
START_TEST(test_backward)
{
    int which = _i % GRADS_COUNT, rest = _i / GRADS_COUNT;
    norm_case k;
    case_init(&k, shapes[rest / 2], rest % 2, 0.0, 30 + (uint64_t)_i);
    check_backward(&k, (grads)which);
    case_free(&k);
}
END_TEST

/* Statistics near 100 in backward too (xhat must come out right). */
START_TEST(test_backward_offset)
{
    norm_case k;
    const int s[4] = {2, 3, 37, 29};
    case_init(&k, s, 1, 100.0, 40);
    check_backward(&k, GRADS_ALL);
    case_free(&k);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The reference backward vs central finite differences (step 1e-5, eps 1e-5) */

typedef struct fd_state {
    const norm_case *k;
    double *x, *gamma, *beta; /* the parameters being perturbed */
    double *y;
} fd_state;

static double fd_loss(void *user)
{
    fd_state *f = user;
    const int *s = f->k->s;
    ref_instance_norm_forward(f->x, s[0], s[1], s[2], s[3], EPS, f->k->affine ? f->gamma : NULL,
                              f->k->affine ? f->beta : NULL, f->y, NULL, NULL);
    return tu_dot(f->y, f->k->dy, tu_numel4(s));
}

START_TEST(test_ref_grad)
{
    norm_case k;
    case_init(&k, shapes[_i / 2], _i % 2, 0.0, 50 + (uint64_t)_i);
    const int *s = k.s;
    size_t n = tu_numel4(s), c = (size_t)s[1], planes = (size_t)s[0] * s[1];
    fd_state f = {&k, k.x, k.gamma, k.beta, tu_alloc(n)};
    double *m = tu_alloc(planes), *r = tu_alloc(planes);
    double *dx = tu_alloc(n), *dg = tu_alloc(c), *db = tu_alloc(c);
    double *num_x = tu_alloc(n), *num_g = tu_alloc(c), *num_b = tu_alloc(c);
    const double *gamma = k.affine ? k.gamma : NULL;
    ref_instance_norm_forward(k.x, s[0], s[1], s[2], s[3], EPS, gamma, k.affine ? k.beta : NULL,
                              f.y, m, r);
    ref_instance_norm_backward(k.x, s[0], s[1], s[2], s[3], gamma, m, r, k.dy, dx, dg, db);
    tu_numeric_grad(fd_loss, &f, k.x, n, 1e-5, num_x);
    char what[160];
    case_name(&k, "reference dx vs finite differences", what, sizeof what);
    tu_check_close(what, dx, num_x, n, 1e-6);
    if (k.affine) {
        tu_numeric_grad(fd_loss, &f, k.gamma, c, 1e-5, num_g);
        tu_numeric_grad(fd_loss, &f, k.beta, c, 1e-5, num_b);
        case_name(&k, "reference dgamma vs finite differences", what, sizeof what);
        tu_check_close(what, dg, num_g, c, 1e-6);
        case_name(&k, "reference dbeta vs finite differences", what, sizeof what);
        tu_check_close(what, db, num_b, c, 1e-6);
    }
    free(f.y);
    free(m);
    free(r);
    free(dx);
    free(dg);
    free(db);
    free(num_x);
    free(num_g);
    free(num_b);
    case_free(&k);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* H x W = 1: variance 0, y = beta exactly, gradients of x are 0, no NaN */

START_TEST(test_single_pixel)
{
    dsd_context *ctx = tu_ctx();
    const int s[4] = {2, 5, 1, 1};
    norm_case k;
    case_init(&k, s, 1, 0.0, 60);
    size_t n = tu_numel4(s);
    dsd_tensor tx, tg, tb, ty, tm, tr, tdy, tdx;
    tu_plain_from(&tx, 2, 5, 1, 1, k.x);
    tu_plain_from(&tg, 1, 5, 1, 1, k.gamma);
    tu_plain_from(&tb, 1, 5, 1, 1, k.beta);
    tu_plain_from(&ty, 2, 5, 1, 1, NULL);
    tu_plain_from(&tm, 2, 5, 1, 1, NULL);
    tu_plain_from(&tr, 2, 5, 1, 1, NULL);
    tu_plain_from(&tdy, 2, 5, 1, 1, k.dy);
    tu_plain_from(&tdx, 2, 5, 1, 1, k.dx0);
    TU_OK(dsd_instance_norm_forward(ctx, (float)EPS, &tx, &tg, &tb, &ty, &tm, &tr));
    TU_OK(dsd_instance_norm_backward(ctx, &tx, &tg, &tm, &tr, &tdy, &tdx, NULL, NULL));
    double *y = tu_alloc(n), *dx = tu_alloc(n);
    tu_download(&ty, y);
    tu_download(&tdx, dx);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(y[i] == k.beta[i % 5], "y[%zu] = %g, want beta %g", i, y[i], k.beta[i % 5]);
        ck_assert_msg(dx[i] == k.dx0[i], "dx[%zu] = %g, want the pre-fill %g", i, dx[i],
                      k.dx0[i]);
    }
    dsd_tensor *all[] = {&tx, &tg, &tb, &ty, &tm, &tr, &tdy, &tdx};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_tensor_free(all[i]);
    free(y);
    free(dx);
    case_free(&k);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Shape and argument errors: refused before anything is enqueued */

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
    dsd_tensor x, y, y_bad, g, g_bad, m, m_bad, r, dy_bad, dx, dg, dg_bad;
    tu_plain_from(&x, 2, 3, 7, 5, NULL);
    tu_plain_from(&y, 2, 3, 7, 5, NULL);
    tu_plain_from(&y_bad, 2, 3, 5, 7, NULL);
    tu_plain_from(&g, 1, 3, 1, 1, NULL);
    tu_plain_from(&g_bad, 2, 3, 1, 1, NULL);
    tu_plain_from(&m, 2, 3, 1, 1, NULL);
    tu_plain_from(&m_bad, 2, 3, 1, 2, NULL);
    tu_plain_from(&r, 2, 3, 1, 1, NULL);
    tu_plain_from(&dy_bad, 2, 4, 7, 5, NULL);
    tu_plain_from(&dx, 2, 3, 7, 5, NULL);
    tu_plain_from(&dg, 1, 3, 1, 1, NULL);
    tu_plain_from(&dg_bad, 1, 4, 1, 1, NULL);
    dsd_tensor *all[] = {&x, &y, &y_bad, &g, &g_bad, &m, &m_bad, &r, &dy_bad, &dx, &dg, &dg_bad};
    const float e = (float)EPS;

#define EXPECT(call, want, t) expect_error((call), (want), #call, (t))
    EXPECT(dsd_instance_norm_forward(ctx, e, &x, NULL, NULL, &y_bad, NULL, NULL), DSD_ERR_SHAPE,
           &y_bad);
    ck_assert_msg(strstr(dsd_context_error(ctx)->message, "2x3x5x7") &&
                      strstr(dsd_context_error(ctx)->message, "2x3x7x5"),
                  "message does not name both shapes: %s", dsd_context_error(ctx)->message);
    EXPECT(dsd_instance_norm_forward(ctx, e, &x, &g_bad, NULL, &y, NULL, NULL), DSD_ERR_SHAPE, &y);
    EXPECT(dsd_instance_norm_forward(ctx, e, &x, &g, &g_bad, &y, NULL, NULL), DSD_ERR_SHAPE, &y);
    EXPECT(dsd_instance_norm_forward(ctx, e, &x, &g, &g, &y, &m_bad, &r), DSD_ERR_SHAPE, &y);
    EXPECT(dsd_instance_norm_forward(ctx, e, &x, &g, &g, &y, &m, NULL), DSD_ERR_INVALID_ARGUMENT,
           &y);
    EXPECT(dsd_instance_norm_forward(ctx, 0.0f, &x, &g, &g, &y, &m, &r), DSD_ERR_INVALID_ARGUMENT,
           &y);
    EXPECT(dsd_instance_norm_forward(ctx, -1.0f, &x, NULL, NULL, &y, NULL, NULL),
           DSD_ERR_INVALID_ARGUMENT, &y);
    EXPECT(dsd_instance_norm_forward(ctx, NAN, &x, NULL, NULL, &y, NULL, NULL),
           DSD_ERR_INVALID_ARGUMENT, &y);
    EXPECT(dsd_instance_norm_forward(ctx, e, &x, NULL, NULL, NULL, NULL, NULL),
           DSD_ERR_INVALID_ARGUMENT, NULL);
    EXPECT(dsd_instance_norm_backward(ctx, &x, &g, &m, &r, &dy_bad, &dx, &dg, NULL),
           DSD_ERR_SHAPE, &dx);
    EXPECT(dsd_instance_norm_backward(ctx, &x, &g, &m_bad, &r, &y, &dx, &dg, NULL),
           DSD_ERR_SHAPE, &dx);
    EXPECT(dsd_instance_norm_backward(ctx, &x, &g, &m, &r, &y, &y_bad, NULL, NULL),
           DSD_ERR_SHAPE, &y_bad);
    EXPECT(dsd_instance_norm_backward(ctx, &x, &g, &m, &r, &y, &dx, &dg_bad, NULL),
           DSD_ERR_SHAPE, &dx);
    EXPECT(dsd_instance_norm_backward(ctx, &x, &g, &m, &r, &y, &dx, &dg, &dg_bad),
           DSD_ERR_SHAPE, &dg);
    EXPECT(dsd_instance_norm_backward(ctx, &x, &g_bad, &m, &r, &y, &dx, NULL, NULL),
           DSD_ERR_SHAPE, &dx);
    EXPECT(dsd_instance_norm_backward(ctx, &x, &g, NULL, &r, &y, &dx, NULL, NULL),
           DSD_ERR_INVALID_ARGUMENT, &dx);
    EXPECT(dsd_instance_norm_backward(ctx, &x, &g, &m, &r, NULL, &dx, NULL, NULL),
           DSD_ERR_INVALID_ARGUMENT, &dx);
    /* no gradient wanted: nothing to do */
    EXPECT(dsd_instance_norm_backward(ctx, &x, &g, &m, &r, &y, NULL, NULL, NULL), DSD_OK, NULL);
#undef EXPECT
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_tensor_free(all[i]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Determinism: forward + backward twice, bit for bit */

typedef struct norm_out {
    float *y, *mean, *rstd, *dx, *dg, *db;
} norm_out;

static void run_once(const norm_case *k, norm_out *o)
{
    dsd_context *ctx = tu_ctx();
    const int *s = k->s;
    size_t n = tu_numel4(s), c = (size_t)s[1], planes = (size_t)s[0] * s[1];
    dsd_tensor tx, tg, tb, ty, tm, tr, tdy, tdx, tdg, tdb;
    tu_plain_from(&tx, s[0], s[1], s[2], s[3], k->x);
    tu_plain_from(&tg, 1, s[1], 1, 1, k->gamma);
    tu_plain_from(&tb, 1, s[1], 1, 1, k->beta);
    tu_plain_from(&ty, s[0], s[1], s[2], s[3], NULL);
    tu_plain_from(&tm, s[0], s[1], 1, 1, NULL);
    tu_plain_from(&tr, s[0], s[1], 1, 1, NULL);
    tu_plain_from(&tdy, s[0], s[1], s[2], s[3], k->dy);
    tu_plain_from(&tdx, s[0], s[1], s[2], s[3], k->dx0);
    tu_plain_from(&tdg, 1, s[1], 1, 1, k->dg0);
    tu_plain_from(&tdb, 1, s[1], 1, 1, k->db0);
    TU_OK(dsd_instance_norm_forward(ctx, (float)EPS, &tx, &tg, &tb, &ty, &tm, &tr));
    TU_OK(dsd_instance_norm_backward(ctx, &tx, &tg, &tm, &tr, &tdy, &tdx, &tdg, &tdb));
    o->y = malloc(n * sizeof(float));
    o->dx = malloc(n * sizeof(float));
    o->mean = malloc(planes * sizeof(float));
    o->rstd = malloc(planes * sizeof(float));
    o->dg = malloc(c * sizeof(float));
    o->db = malloc(c * sizeof(float));
    ck_assert(o->y && o->dx && o->mean && o->rstd && o->dg && o->db);
    download_floats(&ty, o->y);
    download_floats(&tm, o->mean);
    download_floats(&tr, o->rstd);
    download_floats(&tdx, o->dx);
    download_floats(&tdg, o->dg);
    download_floats(&tdb, o->db);
    dsd_tensor *all[] = {&tx, &tg, &tb, &ty, &tm, &tr, &tdy, &tdx, &tdg, &tdb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_tensor_free(all[i]);
}

static void out_free(norm_out *o)
{
    free(o->y);
    free(o->mean);
    free(o->rstd);
    free(o->dx);
    free(o->dg);
    free(o->db);
}

START_TEST(test_determinism)
{
    const int s[4] = {2, tu_small() ? 3 : 17, 37, 29};
    norm_case k;
    case_init(&k, s, 1, 0.5, 70);
    norm_out a, b;
    run_once(&k, &a);
    run_once(&k, &b);
    size_t n = tu_numel4(s), c = (size_t)s[1], planes = (size_t)s[0] * s[1];
    ck_assert_msg(memcmp(a.y, b.y, n * sizeof(float)) == 0, "y differs run to run");
    ck_assert_msg(memcmp(a.mean, b.mean, planes * sizeof(float)) == 0, "mean differs");
    ck_assert_msg(memcmp(a.rstd, b.rstd, planes * sizeof(float)) == 0, "rstd differs");
    ck_assert_msg(memcmp(a.dx, b.dx, n * sizeof(float)) == 0, "dx differs run to run");
    ck_assert_msg(memcmp(a.dg, b.dg, c * sizeof(float)) == 0, "dgamma differs run to run");
    ck_assert_msg(memcmp(a.db, b.db, c * sizeof(float)) == 0, "dbeta differs run to run");
    out_free(&a);
    out_free(&b);
    case_free(&k);
}
END_TEST

int main(void)
{
    shapes = TU_PICK_SHAPES(shapes_full, shapes_small, &n_shapes);
    Suite *s = suite_create("norm");
    TCase *tc = tcase_create("norm");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, test_forward, 0, n_shapes * 2);
    tcase_add_loop_test(tc, test_forward_offset, 0, 2);
    tcase_add_loop_test(tc, test_backward, 0, n_shapes * 2 * GRADS_COUNT);
    tcase_add_test(tc, test_backward_offset);
    tcase_add_loop_test(tc, test_ref_grad, 0, n_shapes * 2);
    tcase_add_test(tc, test_single_pixel);
    tcase_add_test(tc, test_shape_errors);
    tcase_add_test(tc, test_determinism);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
