/*
 * test-depthwise.c: the depthwise convolution (src/ops/depthwise.c,
 * cl/depthwise.cl), called directly through dsd_depthwise_conv2d_forward and
 * _backward, against the double-precision reference in tests/ref/depthwise.c,
 * and the reference backward against central finite differences.
 *
 * The cases cover the model's layer (3x3, stride 1, reflection pad 1), zero
 * padding, stride 2 on odd sizes, 5x5 / 7x7 / 1x1, even and non-square
 * kernels, a 1x1 image, pads that reach both mirror images of a pixel (3x4
 * image, pad 2), shapes larger than one 32x8 output tile in both directions
 * so tile borders and halos are exercised, and widths around the strip
 * kernels' 8 pixels (7, 8, 9, 17, 23, 41) with pads 0 to 4, so strips at the
 * borders, past the row's end and in the interior are exercised.
 *
 * Every forward, backward and determinism check runs twice, under the strip
 * kernels and under the tiled ones (the device profile's depthwise route,
 * set on the test context; stride 2 tiles either way).
 *
 * Every device tensor is a batch view starting at image 1 of a larger tensor,
 * so non-zero offsets reach the kernels; image 0 holds a sentinel that no op
 * may touch. Backward runs on gradients pre-filled with random values (it
 * accumulates) and once per gradient alone, the others NULL (they must stay
 * bit-identical).
 */
#include "testutil.h"
#include "ref/depthwise.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double SENTINEL = 12345.0;

/* ------------------------------------------------------------------------ */
/* Cases */

typedef struct dw_case {
    int n, c, h, w;
    int kh, kw, stride, pad, reflect;
    int small; /* also run under DSDEBLUR_TEST_SMALL=1 */
} dw_case;

static const dw_case cases[] = {
    /* the model: 3x3, stride 1, reflection pad 1 */
    {2, 3, 7, 5, 3, 3, 1, 1, 1, 1},
    {2, 17, 13, 6, 3, 3, 1, 1, 1, 0},
    {2, 5, 9, 11, 3, 3, 1, 1, 0, 1},
    /* stride 2 on odd sizes */
    {2, 3, 9, 11, 3, 3, 2, 1, 0, 1},
    {2, 5, 7, 5, 3, 3, 2, 1, 1, 1},
    {2, 3, 11, 9, 5, 5, 2, 2, 1, 1},
    /* other kernel sizes */
    {2, 3, 13, 6, 5, 5, 1, 2, 1, 1},
    {2, 5, 9, 11, 7, 7, 1, 3, 0, 1},
    {2, 3, 7, 5, 1, 1, 1, 0, 0, 1},
    {2, 3, 7, 9, 3, 1, 1, 1, 1, 1},
    /* a 1x1 image */
    {2, 3, 1, 1, 1, 1, 1, 0, 0, 1},
    {2, 3, 1, 1, 3, 3, 1, 1, 0, 1},
    /* pad 2 on a 3x4 image: pixel 1 is read through both mirrors (-1 and 3) */
    {2, 3, 3, 4, 5, 5, 1, 2, 1, 1},
    {2, 5, 3, 4, 5, 5, 2, 2, 1, 1},
    /* larger than one 32x8 tile: tile borders and halos */
    {2, 5, 37, 21, 3, 3, 1, 1, 1, 0},
    {2, 3, 11, 35, 3, 3, 1, 1, 1, 1},
    {2, 3, 21, 45, 7, 7, 1, 3, 1, 0},
    {2, 3, 19, 67, 3, 3, 2, 1, 0, 1},
    {2, 3, 23, 69, 5, 5, 2, 2, 1, 0},
    /* 3 x 9 tiles per image: several weight-gradient groups in both
     * directions, each walking several tiles */
    {2, 3, 67, 70, 3, 3, 1, 1, 0, 0},
    /* widths around the strips' 8 pixels: narrower than one strip, exactly
     * one, one and a lane, and rows with interior strips between border ones */
    {2, 3, 5, 7, 3, 3, 1, 1, 1, 1},
    {2, 3, 9, 8, 3, 3, 1, 1, 0, 1},
    {2, 3, 7, 9, 3, 3, 1, 1, 1, 1},
    {2, 4, 11, 17, 3, 3, 1, 0, 0, 1},
    {2, 3, 13, 23, 5, 5, 1, 2, 1, 1},
    {2, 3, 9, 23, 5, 5, 1, 2, 0, 1},
    {2, 3, 15, 17, 5, 5, 1, 0, 0, 1},
    {2, 3, 9, 41, 5, 5, 1, 0, 1, 1},
    {2, 3, 9, 19, 1, 5, 1, 2, 1, 1},
    /* even kernels */
    {2, 3, 9, 17, 2, 2, 1, 0, 0, 1},
    {2, 3, 7, 19, 4, 4, 1, 2, 1, 1},
    {2, 3, 8, 21, 4, 2, 1, 1, 0, 1},
    /* 9 columns, the widest the strips take (a full two-vector window), and
     * 11, which takes the tiles under either route */
    {2, 3, 7, 21, 3, 9, 1, 4, 1, 1},
    {2, 3, 5, 23, 1, 11, 1, 5, 0, 1},
};
enum { N_CASES = (int)(sizeof cases / sizeof cases[0]) };

static dsd_conv2d_params params_of(const dw_case *k)
{
    dsd_conv2d_params p = {k->kh, k->kw, k->stride, k->pad,
                           k->reflect ? DSD_PAD_REFLECT : DSD_PAD_ZERO, k->c};
    return p;
}

static ref_depthwise_shape shape_of(const dw_case *k)
{
    ref_depthwise_shape s = {k->n, k->c, k->h, k->w, k->kh, k->kw, k->stride, k->pad,
                             k->reflect};
    return s;
}

/* Skips cases that are too big for Oclgrind in small mode. */
static int skip_case(const dw_case *k)
{
    return tu_small() && !k->small;
}

static void describe(const dw_case *k, const char *what, char *buf, size_t size)
{
    snprintf(buf, size, "%s (%dx%dx%dx%d, k %dx%d, s %d, pad %d %s)", what, k->n, k->c, k->h,
             k->w, k->kh, k->kw, k->stride, k->pad, k->reflect ? "reflect" : "zero");
}

/* ------------------------------------------------------------------------ */
/* The two kernel routes */

static const int routes[] = {DSD_DEPTHWISE_STRIP, DSD_DEPTHWISE_TILE};
enum { N_ROUTES = (int)(sizeof routes / sizeof routes[0]) };

static const char *route_name(int route)
{
    return route == DSD_DEPTHWISE_STRIP ? "strip" : "tile";
}

/* Makes the test context's profile choose `route` for depthwise convolutions
 * (the rest of the profile unchanged). */
static void use_route(int route)
{
    dsd_context *ctx = tu_ctx();
    dsd_device_profile p = *dsd_context_profile(ctx);
    p.depthwise = route;
    TU_OK(dsd_context_apply_profile(ctx, &p));
}

/* describe() with the route in front. */
static void describe_route(const dw_case *k, int route, const char *what, char *buf,
                           size_t size)
{
    char with[96];
    snprintf(with, sizeof with, "%s: %s", route_name(route), what);
    describe(k, with, buf, size);
}

/* ------------------------------------------------------------------------ */
/* Device tensors at a non-zero offset */

/* A (n, c, h, w) view at image 1 of a (n+1, c, h, w) tensor whose image 0 is
 * SENTINEL; host fills the view (SENTINEL too when host is NULL). */
typedef struct view {
    dsd_tensor storage, t;
} view;

/* All of the storage's pooled buffer is written in one host write
 * (tu_write_whole_ctx). Oclgrind 21.10's --uninitialized sizes a buffer's shadow to its last host
 * write (and keeps it when a released buffer's slot is reused), so a partial write, or
 * testutil's staged upload that creates and releases a buffer, can make writes a kernel does
 * later to a pooled buffer (the op's temporary partial sums) invisible to it; writing whole
 * buffers and releasing none keeps every shadow full-size. */
static void view_init(view *v, int n, int c, int h, int w, const double *host)
{
    size_t per = (size_t)c * h * w;
    tu_tensor(&v->storage, n + 1, c, h, w);
    tu_write_whole_ctx(tu_ctx(), &v->storage, host, per, host ? per * n : 0, (float)SENTINEL);
    v->t = dsd_tensor_view_batch(&v->storage, 1, n);
}

static void view_free(view *v)
{
    tu_tensor_free(&v->storage);
}

/* Image 0 of the storage still holds the sentinel. */
static void check_sentinel(const view *v, const char *what)
{
    size_t per = dsd_tensor_numel(&v->storage) / (size_t)v->storage.n;
    double *all = tu_alloc(dsd_tensor_numel(&v->storage));
    tu_download(&v->storage, all);
    for (size_t i = 0; i < per; i++)
        ck_assert_msg(all[i] == SENTINEL, "%s: element %zu before the view was overwritten (%g)",
                      what, i, all[i]);
    free(all);
}

/* A layer's host data. */
typedef struct layer {
    dw_case k;
    ref_depthwise_shape s;
    int oh, ow;
    size_t nx, nw, nb, ny;
    double *x, *w, *b, *y, *g; /* g: upstream gradient dy */
} layer;

static void layer_init(layer *l, const dw_case *k, uint64_t seed)
{
    tu_rng r = tu_rng_init(seed);
    l->k = *k;
    l->s = shape_of(k);
    l->oh = ref_depthwise_out_h(&l->s);
    l->ow = ref_depthwise_out_w(&l->s);
    l->nx = (size_t)k->n * k->c * k->h * k->w;
    l->nw = (size_t)k->c * k->kh * k->kw;
    l->nb = (size_t)k->c;
    l->ny = (size_t)k->n * k->c * l->oh * l->ow;
    l->x = tu_alloc(l->nx);
    l->w = tu_alloc(l->nw);
    l->b = tu_alloc(l->nb);
    l->y = tu_alloc(l->ny);
    l->g = tu_alloc(l->ny);
    tu_fill_nonzero(&r, l->x, l->nx, 0.1, 2.0);
    tu_fill_nonzero(&r, l->w, l->nw, 0.1, 1.0);
    tu_fill_nonzero(&r, l->b, l->nb, 0.1, 1.0);
    tu_fill_nonzero(&r, l->g, l->ny, 0.1, 1.0);
}

static void layer_free(layer *l)
{
    free(l->x);
    free(l->w);
    free(l->b);
    free(l->y);
    free(l->g);
}

/* ------------------------------------------------------------------------ */
/* Reference index mapping */

START_TEST(test_reflect_source)
{
    /* ReflectionPad2d on a row of 5: -2 -1 | 0 1 2 3 4 | 5 6  ->  2 1 | ... | 3 2 */
    static const int want[][2] = {{-2, 2}, {-1, 1}, {0, 0}, {4, 4}, {5, 3}, {6, 2}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_int_eq(ref_depthwise_source(want[i][0], 5, 1), want[i][1]);
    ck_assert_int_eq(ref_depthwise_source(-1, 5, 0), -1);
    ck_assert_int_eq(ref_depthwise_source(5, 5, 0), -1);
    ck_assert_int_eq(ref_depthwise_source(3, 5, 0), 3);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Forward */

START_TEST(test_forward)
{
    const dw_case *k = &cases[_i];
    if (skip_case(k))
        return;
    dsd_context *ctx = tu_ctx();
    char what[160];
    layer l;
    layer_init(&l, k, 100 + (uint64_t)_i);
    dsd_conv2d_params p = params_of(k);
    view x, w, b, y;
    view_init(&x, k->n, k->c, k->h, k->w, l.x);
    view_init(&w, k->c, 1, k->kh, k->kw, l.w);
    view_init(&b, 1, k->c, 1, 1, l.b);
    view_init(&y, k->n, k->c, l.oh, l.ow, NULL);

    for (int r = 0; r < N_ROUTES; r++) {
        use_route(routes[r]);
        for (int with_bias = 1; with_bias >= 0; with_bias--) {
            TU_OK(dsd_tensor_fill(ctx, &y.t, 7.0f)); /* no result left from the other route */
            TU_OK(dsd_depthwise_conv2d_forward(ctx, &p, &x.t, &w.t, with_bias ? &b.t : NULL,
                                               &y.t));
            ref_depthwise_forward(&l.s, l.x, l.w, with_bias ? l.b : NULL, l.y);
            describe_route(k, routes[r], with_bias ? "forward" : "forward without bias", what,
                           sizeof what);
            tu_check_tensor(what, &y.t, l.y, 1e-4);
            check_sentinel(&y, what);
        }
    }
    view_free(&x);
    view_free(&w);
    view_free(&b);
    view_free(&y);
    layer_free(&l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Backward */

/* Which gradients a backward call asks for. */
static const int grad_sets[][3] = {{1, 1, 1}, {1, 0, 0}, {0, 1, 0}, {0, 0, 1}};

START_TEST(test_backward)
{
    const dw_case *k = &cases[_i];
    if (skip_case(k))
        return;
    dsd_context *ctx = tu_ctx();
    char what[160];
    layer l;
    layer_init(&l, k, 200 + (uint64_t)_i);
    tu_rng r = tu_rng_init(300 + (uint64_t)_i);
    dsd_conv2d_params p = params_of(k);
    double *dx = tu_alloc(l.nx), *dw = tu_alloc(l.nw), *db = tu_alloc(l.nb);
    double *dx0 = tu_alloc(l.nx), *dw0 = tu_alloc(l.nw), *db0 = tu_alloc(l.nb);
    view x, w, g, vdx, vdw, vdb;
    view_init(&x, k->n, k->c, k->h, k->w, l.x);
    view_init(&w, k->c, 1, k->kh, k->kw, l.w);
    view_init(&g, k->n, k->c, l.oh, l.ow, l.g);

    for (int rt = 0; rt < N_ROUTES; rt++) {
        use_route(routes[rt]);
        for (size_t set = 0; set < sizeof grad_sets / sizeof grad_sets[0]; set++) {
            const int *want = grad_sets[set];
            /* random accumulators: backward adds to them */
            tu_fill_nonzero(&r, dx0, l.nx, 0.5, 1.5);
            tu_fill_nonzero(&r, dw0, l.nw, 0.5, 1.5);
            tu_fill_nonzero(&r, db0, l.nb, 0.5, 1.5);
            for (size_t i = 0; i < l.nx; i++)
                dx0[i] = (double)(float)dx0[i];
            for (size_t i = 0; i < l.nw; i++)
                dw0[i] = (double)(float)dw0[i];
            for (size_t i = 0; i < l.nb; i++)
                db0[i] = (double)(float)db0[i];
            view_init(&vdx, k->n, k->c, k->h, k->w, dx0);
            view_init(&vdw, k->c, 1, k->kh, k->kw, dw0);
            view_init(&vdb, 1, k->c, 1, 1, db0);
            TU_OK(dsd_depthwise_conv2d_backward(ctx, &p, &x.t, &w.t, &g.t, want[0] ? &vdx.t : NULL,
                                                want[1] ? &vdw.t : NULL, want[2] ? &vdb.t : NULL));
            memcpy(dx, dx0, l.nx * sizeof *dx);
            memcpy(dw, dw0, l.nw * sizeof *dw);
            memcpy(db, db0, l.nb * sizeof *db);
            ref_depthwise_backward(&l.s, l.x, l.w, l.g, want[0] ? dx : NULL, want[1] ? dw : NULL,
                                   want[2] ? db : NULL);
            /* a skipped gradient must stay exactly as it was (dx0 == dx etc. then) */
            describe_route(k, routes[rt], want[0] ? "dx" : "dx (not asked for)", what,
                           sizeof what);
            tu_check_tensor(what, &vdx.t, dx, want[0] ? 1e-4 : 0.0);
            describe_route(k, routes[rt], want[1] ? "dweight" : "dweight (not asked for)", what,
                           sizeof what);
            tu_check_tensor(what, &vdw.t, dw, want[1] ? 1e-4 : 0.0);
            describe_route(k, routes[rt], want[2] ? "dbias" : "dbias (not asked for)", what,
                           sizeof what);
            tu_check_tensor(what, &vdb.t, db, want[2] ? 1e-4 : 0.0);
            check_sentinel(&vdx, "dx");
            check_sentinel(&vdw, "dweight");
            check_sentinel(&vdb, "dbias");
            view_free(&vdx);
            view_free(&vdw);
            view_free(&vdb);
        }
    }
    view_free(&x);
    view_free(&w);
    view_free(&g);
    free(dx);
    free(dw);
    free(db);
    free(dx0);
    free(dw0);
    free(db0);
    layer_free(&l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Reference backward vs central finite differences */

typedef struct loss_ctx {
    layer *l;
    double *y;
} loss_ctx;

/* L = sum(forward(x, w, b) * g) */
static double layer_loss(void *user)
{
    loss_ctx *lc = user;
    ref_depthwise_forward(&lc->l->s, lc->l->x, lc->l->w, lc->l->b, lc->y);
    return tu_dot(lc->y, lc->l->g, lc->l->ny);
}

START_TEST(test_ref_grad)
{
    const dw_case *k = &cases[_i];
    if (skip_case(k) || (size_t)k->n * k->c * k->h * k->w > 4000)
        return;
    char what[160];
    layer l;
    layer_init(&l, k, 400 + (uint64_t)_i);
    double *dx = tu_alloc(l.nx), *dw = tu_alloc(l.nw), *db = tu_alloc(l.nb);
    double *nx = tu_alloc(l.nx), *nw = tu_alloc(l.nw), *nb = tu_alloc(l.nb);
    ref_depthwise_backward(&l.s, l.x, l.w, l.g, dx, dw, db);
    loss_ctx lc = {&l, tu_alloc(l.ny)};
    tu_numeric_grad(layer_loss, &lc, l.x, l.nx, 1e-6, nx);
    tu_numeric_grad(layer_loss, &lc, l.w, l.nw, 1e-6, nw);
    tu_numeric_grad(layer_loss, &lc, l.b, l.nb, 1e-6, nb);
    describe(k, "reference dx vs finite differences", what, sizeof what);
    tu_check_close(what, dx, nx, l.nx, 1e-6);
    describe(k, "reference dweight vs finite differences", what, sizeof what);
    tu_check_close(what, dw, nw, l.nw, 1e-6);
    describe(k, "reference dbias vs finite differences", what, sizeof what);
    tu_check_close(what, db, nb, l.nb, 1e-6);
    free(lc.y);
    free(dx);
    free(dw);
    free(db);
    free(nx);
    free(nw);
    free(nb);
    layer_free(&l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Shape and parameter errors: the right status, and nothing enqueued */

START_TEST(test_shape_errors)
{
    dsd_context *ctx = tu_ctx();
    const int N = 2, C = 3, H = 7, W = 5;
    dsd_conv2d_params p = {3, 3, 1, 1, DSD_PAD_REFLECT, C};
    dsd_tensor x, w, b, y, dy, dx, dw, db;
    dsd_tensor w_bad, b_bad, y_bad, x_small, y_small;
    tu_tensor(&x, N, C, H, W);
    tu_tensor(&w, C, 1, 3, 3);
    tu_tensor(&b, 1, C, 1, 1);
    tu_tensor(&y, N, C, H, W);
    tu_tensor(&dy, N, C, H, W);
    tu_tensor(&dx, N, C, H, W);
    tu_tensor(&dw, C, 1, 3, 3);
    tu_tensor(&db, 1, C, 1, 1);
    tu_tensor(&w_bad, C, 1, 3, 5);
    tu_tensor(&b_bad, 1, C + 1, 1, 1);
    tu_tensor(&y_bad, N, C, H, W + 1);
    tu_tensor(&x_small, N, C, 1, 5);
    tu_tensor(&y_small, N, C, 1, 5);
    dsd_tensor *outs[] = {&y, &dx, &dw, &db};
    for (size_t i = 0; i < 4; i++)
        TU_OK(dsd_tensor_fill(ctx, outs[i], 7.0f));

    /* forward */
    ck_assert_int_eq(dsd_depthwise_conv2d_forward(ctx, &p, &x, &w_bad, &b, &y), DSD_ERR_SHAPE);
    ck_assert_msg(strstr(dsd_context_error(ctx)->message, "3x1x3x5") &&
                      strstr(dsd_context_error(ctx)->message, "3x1x3x3"),
                  "%s", dsd_context_error(ctx)->message);
    ck_assert_int_eq(dsd_depthwise_conv2d_forward(ctx, &p, &x, &w, &b_bad, &y), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_depthwise_conv2d_forward(ctx, &p, &x, &w, &b, &y_bad), DSD_ERR_SHAPE);
    ck_assert_msg(strstr(dsd_context_error(ctx)->message, "2x3x7x6") &&
                      strstr(dsd_context_error(ctx)->message, "2x3x7x5"),
                  "%s", dsd_context_error(ctx)->message);
    ck_assert_int_eq(dsd_depthwise_conv2d_forward(ctx, &p, &x, &w, &b, NULL),
                     DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_depthwise_conv2d_forward(ctx, NULL, &x, &w, &b, &y),
                     DSD_ERR_INVALID_ARGUMENT);
    /* reflection pad 1 needs H > 1 */
    ck_assert_int_eq(dsd_depthwise_conv2d_forward(ctx, &p, &x_small, &w, &b, &y_small),
                     DSD_ERR_SHAPE);
    dsd_conv2d_params q = p;
    q.groups = 1;
    ck_assert_int_eq(dsd_depthwise_conv2d_forward(ctx, &q, &x, &w, &b, &y),
                     DSD_ERR_INVALID_ARGUMENT);
    q = p;
    q.stride = 0;
    ck_assert_int_eq(dsd_depthwise_conv2d_forward(ctx, &q, &x, &w, &b, &y),
                     DSD_ERR_INVALID_ARGUMENT);
    q = p;
    q.pad = -1;
    ck_assert_int_eq(dsd_depthwise_conv2d_forward(ctx, &q, &x, &w, &b, &y),
                     DSD_ERR_INVALID_ARGUMENT);
    q = p;
    q.pad_mode = (dsd_padding)7;
    ck_assert_int_eq(dsd_depthwise_conv2d_forward(ctx, &q, &x, &w, &b, &y),
                     DSD_ERR_INVALID_ARGUMENT);
    /* a kernel larger than the padded image: zero pad 0, 7x7 kernel on 7x5 */
    q = p;
    q.kernel_h = q.kernel_w = 7;
    q.pad = 0;
    q.pad_mode = DSD_PAD_ZERO;
    dsd_tensor w7;
    tu_tensor(&w7, C, 1, 7, 7);
    ck_assert_int_eq(dsd_depthwise_conv2d_forward(ctx, &q, &x, &w7, &b, &y), DSD_ERR_SHAPE);
    tu_tensor_free(&w7);
    /* an empty view */
    dsd_tensor empty = dsd_tensor_view_batch(&x, 1, 5);
    ck_assert_int_eq(dsd_depthwise_conv2d_forward(ctx, &p, &empty, &w, &b, &y), DSD_ERR_SHAPE);

    /* backward */
    ck_assert_int_eq(dsd_depthwise_conv2d_backward(ctx, &p, &x, &w, &y_bad, &dx, &dw, &db),
                     DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_depthwise_conv2d_backward(ctx, &p, &x, &w, &dy, &y_bad, &dw, &db),
                     DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_depthwise_conv2d_backward(ctx, &p, &x, &w, &dy, &dx, &w_bad, &db),
                     DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_depthwise_conv2d_backward(ctx, &p, &x, &w, &dy, &dx, &dw, &b_bad),
                     DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_depthwise_conv2d_backward(ctx, &p, &x, &w_bad, &dy, &dx, &dw, &db),
                     DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_depthwise_conv2d_backward(ctx, &p, &x, &w, NULL, &dx, &dw, &db),
                     DSD_ERR_INVALID_ARGUMENT);
    q = p;
    q.groups = C + 1;
    ck_assert_int_eq(dsd_depthwise_conv2d_backward(ctx, &q, &x, &w, &dy, &dx, &dw, &db),
                     DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_depthwise_conv2d_backward(ctx, &p, &x_small, &w, &y_small, &dx, &dw,
                                                   &db),
                     DSD_ERR_SHAPE);

    /* nothing reached the device */
    for (size_t i = 0; i < 4; i++) {
        size_t n = dsd_tensor_numel(outs[i]);
        double *got = tu_alloc(n);
        tu_download(outs[i], got);
        for (size_t j = 0; j < n; j++)
            ck_assert_msg(got[j] == 7.0, "output %zu element %zu changed to %g", i, j, got[j]);
        free(got);
    }
    dsd_tensor *all[] = {&x, &w, &b, &y, &dy, &dx, &dw, &db, &w_bad, &b_bad, &y_bad, &x_small,
                         &y_small};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_tensor_free(all[i]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Determinism: forward + backward twice, bit for bit */

static void run_once(const layer *l, float *out, size_t n_out)
{
    dsd_context *ctx = tu_ctx();
    const dw_case *k = &l->k;
    dsd_conv2d_params p = params_of(k);
    view x, w, b, y, g, dx, dw, db;
    view_init(&x, k->n, k->c, k->h, k->w, l->x);
    view_init(&w, k->c, 1, k->kh, k->kw, l->w);
    view_init(&b, 1, k->c, 1, 1, l->b);
    view_init(&g, k->n, k->c, l->oh, l->ow, l->g);
    view_init(&y, k->n, k->c, l->oh, l->ow, NULL);
    view_init(&dx, k->n, k->c, k->h, k->w, NULL);
    view_init(&dw, k->c, 1, k->kh, k->kw, NULL);
    view_init(&db, 1, k->c, 1, 1, NULL);
    TU_OK(dsd_depthwise_conv2d_forward(ctx, &p, &x.t, &w.t, &b.t, &y.t));
    TU_OK(dsd_depthwise_conv2d_backward(ctx, &p, &x.t, &w.t, &g.t, &dx.t, &dw.t, &db.t));
    const dsd_tensor *outs[] = {&y.t, &dx.t, &dw.t, &db.t};
    size_t at = 0;
    for (size_t i = 0; i < 4; i++) {
        size_t n = dsd_tensor_numel(outs[i]);
        ck_assert(at + n <= n_out);
        TU_OK(dsd_tensor_download(ctx, outs[i], out + at, n));
        at += n;
    }
    ck_assert_uint_eq(at, n_out);
    view *all[] = {&x, &w, &b, &y, &g, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        view_free(all[i]);
}

START_TEST(test_determinism)
{
    const dw_case big = {2, 17, 37, 45, 3, 3, 1, 1, 1, 0};
    const dw_case small = {2, 3, 11, 35, 3, 3, 1, 1, 1, 1};
    layer l;
    layer_init(&l, tu_small() ? &small : &big, 77);
    size_t n = l.ny + l.nx + l.nw + l.nb;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    ck_assert(a && b);
    for (int r = 0; r < N_ROUTES; r++) {
        use_route(routes[r]);
        run_once(&l, a, n);
        run_once(&l, b, n);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(memcmp(&a[i], &b[i], sizeof a[i]) == 0, "%s: float %zu of %zu "
                          "differs: %.9g then %.9g", route_name(routes[r]), i, n, a[i], b[i]);
    }
    free(a);
    free(b);
    layer_free(&l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("depthwise");
    TCase *tc = tcase_create("depthwise");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_reflect_source);
    tcase_add_loop_test(tc, test_forward, 0, N_CASES);
    tcase_add_loop_test(tc, test_backward, 0, N_CASES);
    tcase_add_loop_test(tc, test_ref_grad, 0, N_CASES);
    tcase_add_test(tc, test_shape_errors);
    tcase_add_test(tc, test_determinism);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
