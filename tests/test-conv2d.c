/*
 * test-conv2d.c: the general convolution (src/ops/conv2d.c, cl/conv2d.cl)
 * against the double-precision reference in tests/ref/conv2d.c, and the
 * reference against central finite differences.
 *
 * Cases cover the model's configurations (1x1; 3x3 stride 1 and 2, zero and
 * reflection padding; 4x4 stride 2 and stride 1 with pad 2 as in the
 * discriminator; 7x7 reflection) plus shapes that stress indexing: a 1x1
 * image, a non-square kernel, one input channel, and a 3x4 input with
 * reflection pad 2 where one pixel is read through three padded positions.
 * Every device tensor is a batch view starting at image 1 of a larger tensor,
 * so non-zero offsets reach the kernels and CLBlast; image 0 holds a sentinel
 * that no op may touch. Backward gradients are pre-filled with random values
 * (backward accumulates).
 *
 * test_chunking sets DSDEBLUR_CONV_COL_LIMIT to force many row chunks;
 * test_indirect_gemm forces CLBlast's indirect GEMM kernels (the ones large
 * convolutions use) and runs last because the override stays in effect. The
 * test reaches CLBlast's own functions through dlsym, since it links only
 * libdsdeblur.
 */
#include "testutil.h"
#include "ref/conv2d.h"

#include <clblast_c.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Cases */

typedef struct conv_case {
    const char *name;
    int n, cin, h, w, cout, kh, kw, stride, pad, reflect;
    int small; /* also run under DSDEBLUR_TEST_SMALL=1 */
} conv_case;

static const conv_case cases[] = {
    {"k1 s1 p0", 2, 3, 7, 5, 5, 1, 1, 1, 0, 0, 1},
    {"k1 s1 p0 on 1x1", 2, 17, 1, 1, 7, 1, 1, 1, 0, 0, 1},
    {"k1 s1 p0 cin 1", 2, 1, 7, 5, 3, 1, 1, 1, 0, 0, 0},
    {"k1 s2 p0", 2, 5, 9, 11, 3, 1, 1, 2, 0, 0, 0},
    {"k3 s1 p1 zero", 2, 5, 9, 11, 7, 3, 3, 1, 1, 0, 1},
    {"k3 s1 p1 reflect", 2, 3, 7, 5, 5, 3, 3, 1, 1, 1, 1},
    {"k3 s2 p1 zero", 2, 7, 9, 11, 3, 3, 3, 2, 1, 0, 1},
    {"k3 s2 p1 reflect", 2, 3, 9, 11, 5, 3, 3, 2, 1, 1, 0},
    {"k3 s1 p1 reflect cin 17", 2, 17, 7, 5, 7, 3, 3, 1, 1, 1, 0},
    {"k4 s2 p2 zero", 2, 3, 9, 11, 5, 4, 4, 2, 2, 0, 1},
    {"k4 s1 p2 zero", 2, 5, 7, 5, 3, 4, 4, 1, 2, 0, 1},
    {"k7 s1 p3 reflect", 2, 3, 9, 11, 5, 7, 7, 1, 3, 1, 1},
    {"k5 s1 p2 reflect on 3x4", 2, 3, 3, 4, 5, 5, 5, 1, 2, 1, 1},
    {"k3x2 s2 p1 zero", 2, 5, 7, 9, 3, 3, 2, 2, 1, 0, 0},
    {"k3 s1 p1 cin 1", 2, 1, 7, 5, 3, 3, 3, 1, 1, 0, 0},
    /* padding wider than the kernel's reach: output rows near an edge read
     * only reflected rows (input rows the direct range does not cover) */
    {"k3 s1 p2 reflect", 2, 3, 5, 6, 5, 3, 3, 1, 2, 1, 1},
    {"k1 s1 p1 reflect", 2, 5, 7, 5, 3, 1, 1, 1, 1, 1, 0},
    {"k3 s2 p2 reflect", 2, 3, 7, 9, 5, 3, 3, 2, 2, 1, 0},
    /* the direct forward for few output channels: the tail and spatial attention */
    {"k7 s1 p3 reflect cout 3 (tail)", 2, 6, 9, 11, 3, 7, 7, 1, 3, 1, 1},
    {"k7 s1 p3 zero cout 1 (spatial attention)", 2, 2, 7, 5, 1, 7, 7, 1, 3, 0, 1},
    {"k3 s2 p1 reflect cout 4", 2, 5, 9, 7, 4, 3, 3, 2, 1, 1, 0},
    /* the register-tiled forward (4 output rows per work-item) with other
     * tap counts, output channels and a partial last block of rows */
    {"k5 s1 p2 zero cout 2", 2, 3, 10, 13, 2, 5, 5, 1, 2, 0, 1},
    {"k3 s1 p1 reflect cout 4", 3, 5, 5, 13, 4, 3, 3, 1, 1, 1, 0},
    /* its 8-column strips: last strips of 7 and 6 columns (every stored lane
     * of the partial path), interior strips between border ones */
    {"k7 s1 p3 reflect cout 3 on 23 columns", 1, 4, 6, 23, 3, 7, 7, 1, 3, 1, 1},
    {"k5 s1 p2 zero cout 1 on 14 columns", 2, 3, 5, 14, 1, 5, 5, 1, 2, 0, 0},
    /* the register-tiled kernels for few input channels (the head 7x7 3 -> B),
     * in blocks of 4 output channels with a partial last block */
    {"k7 s1 p3 reflect cin 3 cout 9 (head)", 3, 3, 10, 29, 9, 7, 7, 1, 3, 1, 1},
    {"k5 s1 p2 zero cin 2 cout 13", 2, 2, 9, 19, 13, 5, 5, 1, 2, 0, 0},
    /* rows wide enough for im2col's 8-column vector strips: interior strips
     * (stride 1 and 2), border strips and a partial last strip */
    {"k3 s1 p1 reflect wide", 2, 3, 5, 29, 5, 3, 3, 1, 1, 1, 1},
    {"k3 s2 p1 zero wide", 2, 3, 5, 45, 5, 3, 3, 2, 1, 0, 1},
    {"k4 s2 p2 reflect wide", 2, 2, 6, 51, 6, 4, 4, 2, 2, 1, 0},
    {"k3 s3 p1 zero wide", 2, 2, 7, 53, 5, 3, 3, 3, 1, 0, 0},
    /* col2im's stride-2 strips up to the last output column: at w 44 the
     * strip of columns 32..39 reaches ow 19 = OW, so it must go lane by lane */
    {"k7 s2 p0 zero wide", 1, 2, 9, 44, 5, 7, 7, 2, 0, 0, 0},
};
enum { N_CASES = (int)(sizeof cases / sizeof cases[0]) };

static const double TOL = 1e-4;
static const float SENTINEL = 1234.5f;

static ref_conv2d_geom geom_of(const conv_case *c)
{
    ref_conv2d_geom g = {c->n, c->cin, c->h, c->w, c->cout, c->kh, c->kw,
                         c->stride, c->pad, c->reflect, 1};
    return g;
}

static dsd_conv2d_params params_of(const conv_case *c)
{
    dsd_conv2d_params p = {c->kh, c->kw, c->stride, c->pad,
                           c->reflect ? DSD_PAD_REFLECT : DSD_PAD_ZERO, 1};
    return p;
}

/* ------------------------------------------------------------------------ */
/* Host data for one case */

typedef struct conv_data {
    ref_conv2d_geom g;
    int oh, ow;
    size_t nx, nw, nb, ny;
    double *x, *w, *b, *dy;     /* inputs; dy is the upstream gradient */
    double *dx0, *dw0, *db0;    /* what the gradient tensors hold before backward */
} conv_data;

static void data_init(conv_data *d, const ref_conv2d_geom *g, uint64_t seed)
{
    tu_rng r = tu_rng_init(seed);
    d->g = *g;
    d->oh = ref_conv2d_out_h(g);
    d->ow = ref_conv2d_out_w(g);
    d->nx = (size_t)g->n * g->cin * g->h * g->w;
    d->nw = (size_t)g->cout * (g->cin / g->groups) * g->kh * g->kw;
    d->nb = (size_t)g->cout;
    d->ny = (size_t)g->n * g->cout * d->oh * d->ow;
    d->x = tu_alloc(d->nx);
    d->w = tu_alloc(d->nw);
    d->b = tu_alloc(d->nb);
    d->dy = tu_alloc(d->ny);
    d->dx0 = tu_alloc(d->nx);
    d->dw0 = tu_alloc(d->nw);
    d->db0 = tu_alloc(d->nb);
    tu_fill_nonzero(&r, d->x, d->nx, 0.1, 1.0);
    tu_fill_nonzero(&r, d->w, d->nw, 0.1, 1.0);
    tu_fill_nonzero(&r, d->b, d->nb, 0.1, 1.0);
    tu_fill_nonzero(&r, d->dy, d->ny, 0.1, 1.0);
    tu_fill_nonzero(&r, d->dx0, d->nx, 0.1, 1.0);
    tu_fill_nonzero(&r, d->dw0, d->nw, 0.1, 1.0);
    tu_fill_nonzero(&r, d->db0, d->nb, 0.1, 1.0);
}

static void data_free(conv_data *d)
{
    free(d->x);
    free(d->w);
    free(d->b);
    free(d->dy);
    free(d->dx0);
    free(d->dw0);
    free(d->db0);
}

/* ------------------------------------------------------------------------ */
/* Device tensors as views at image 1 of a tensor whose image 0 is SENTINEL */

typedef struct vtensor {
    dsd_tensor base, v;
    size_t per; /* floats per image */
} vtensor;

/* A new tensor (offset 0) holding host, written with one host write of the
 * buffer's whole pooled capacity (zeros past the tensor). Oclgrind 21.10
 * sizes its initialized-memory tracking of a buffer by the last host write
 * or copy into it, ignoring the offset; writing everything from offset 0
 * keeps that tracking exact when the pool later leases the buffer to an op's
 * scratch tensor. (tu_upload's staged copy at a non-zero offset makes
 * CLBlast's later reads of views look uninitialized.) */
static void upload_full(dsd_tensor *t, int n, int c, int h, int w, const double *host)
{
    tu_tensor(t, n, c, h, w);
    ck_assert_uint_eq(t->offset, 0);
    tu_write_whole_ctx(tu_ctx(), t, host, 0, dsd_tensor_numel(t), 0.0f);
}

/* data (n images) may be NULL: the view then holds NaN, which an op that
 * overwrites its output must not read. */
static void vt_init(vtensor *t, int n, int c, int h, int w, const double *data)
{
    t->per = (size_t)c * h * w;
    size_t total = (size_t)(n + 1) * t->per;
    double *host = tu_alloc(total);
    for (size_t i = 0; i < total; i++)
        host[i] = i < t->per ? SENTINEL : data ? data[i - t->per] : NAN;
    upload_full(&t->base, n + 1, c, h, w, host);
    free(host);
    t->v = dsd_tensor_view_batch(&t->base, 1, n);
    ck_assert_int_eq(t->v.n, n);
}

static void vt_free(vtensor *t)
{
    tu_tensor_free(&t->base);
}

/* Downloads the view's images (and checks the sentinel image is intact). */
static double *vt_get(const char *what, const vtensor *t)
{
    size_t total = dsd_tensor_numel(&t->base);
    double *host = tu_alloc(total);
    tu_download(&t->base, host);
    for (size_t i = 0; i < t->per; i++)
        ck_assert_msg(host[i] == SENTINEL, "%s: sentinel element %zu was overwritten (%g)", what,
                      i, host[i]);
    memmove(host, host + t->per, (total - t->per) * sizeof *host);
    return host;
}

static void vt_check(const char *what, const vtensor *t, const double *ref)
{
    double *got = vt_get(what, t);
    tu_check_close(what, got, ref, dsd_tensor_numel(&t->v), TOL);
    free(got);
}

/* ------------------------------------------------------------------------ */
/* Forward and backward of one case against the reference */

static void check_forward(const char *name, const ref_conv2d_geom *g, const dsd_conv2d_params *p,
                          int with_bias, uint64_t seed)
{
    dsd_context *ctx = tu_ctx();
    conv_data d;
    data_init(&d, g, seed);
    vtensor x, w, b, y;
    vt_init(&x, g->n, g->cin, g->h, g->w, d.x);
    vt_init(&w, g->cout, g->cin / g->groups, g->kh, g->kw, d.w);
    vt_init(&b, 1, g->cout, 1, 1, d.b);
    vt_init(&y, g->n, g->cout, d.oh, d.ow, NULL);

    TU_OK(dsd_conv2d_forward(ctx, p, &x.v, &w.v, with_bias ? &b.v : NULL, &y.v));
    double *ref = tu_alloc(d.ny);
    ref_conv2d_forward(g, d.x, d.w, with_bias ? d.b : NULL, ref);
    char what[160];
    snprintf(what, sizeof what, "%s: forward y%s", name, with_bias ? "" : " (no bias)");
    vt_check(what, &y, ref);

    free(ref);
    vt_free(&x);
    vt_free(&w);
    vt_free(&b);
    vt_free(&y);
    data_free(&d);
}

enum { GRAD_X = 1, GRAD_W = 2, GRAD_B = 4, GRAD_ALL = 7 };

static void check_backward(const char *name, const ref_conv2d_geom *g,
                           const dsd_conv2d_params *p, int grads, uint64_t seed)
{
    dsd_context *ctx = tu_ctx();
    conv_data d;
    data_init(&d, g, seed);
    int cin_g = g->cin / g->groups;
    vtensor x, w, dy, dx, dw, db;
    vt_init(&x, g->n, g->cin, g->h, g->w, d.x);
    vt_init(&w, g->cout, cin_g, g->kh, g->kw, d.w);
    vt_init(&dy, g->n, g->cout, d.oh, d.ow, d.dy);
    vt_init(&dx, g->n, g->cin, g->h, g->w, d.dx0);
    vt_init(&dw, g->cout, cin_g, g->kh, g->kw, d.dw0);
    vt_init(&db, 1, g->cout, 1, 1, d.db0);

    TU_OK(dsd_conv2d_backward(ctx, p, &x.v, &w.v, &dy.v, (grads & GRAD_X) ? &dx.v : NULL,
                              (grads & GRAD_W) ? &dw.v : NULL, (grads & GRAD_B) ? &db.v : NULL));

    /* expected = prefill + reference gradient (or the prefill alone when skipped) */
    double *ex = tu_alloc(d.nx), *ew = tu_alloc(d.nw), *eb = tu_alloc(d.nb);
    memcpy(ex, d.dx0, d.nx * sizeof *ex);
    memcpy(ew, d.dw0, d.nw * sizeof *ew);
    memcpy(eb, d.db0, d.nb * sizeof *eb);
    ref_conv2d_backward(g, d.x, d.w, d.dy, (grads & GRAD_X) ? ex : NULL,
                        (grads & GRAD_W) ? ew : NULL, (grads & GRAD_B) ? eb : NULL);
    /* the prefill went through float on the device */
    for (size_t i = 0; i < d.nx; i++)
        ex[i] += (double)(float)d.dx0[i] - d.dx0[i];
    for (size_t i = 0; i < d.nw; i++)
        ew[i] += (double)(float)d.dw0[i] - d.dw0[i];
    for (size_t i = 0; i < d.nb; i++)
        eb[i] += (double)(float)d.db0[i] - d.db0[i];

    char what[160];
    snprintf(what, sizeof what, "%s: backward dx%s", name, (grads & GRAD_X) ? "" : " (skipped)");
    vt_check(what, &dx, ex);
    snprintf(what, sizeof what, "%s: backward dweight%s", name,
             (grads & GRAD_W) ? "" : " (skipped)");
    vt_check(what, &dw, ew);
    snprintf(what, sizeof what, "%s: backward dbias%s", name, (grads & GRAD_B) ? "" : " (skipped)");
    vt_check(what, &db, eb);

    free(ex);
    free(ew);
    free(eb);
    vt_free(&x);
    vt_free(&w);
    vt_free(&dy);
    vt_free(&dx);
    vt_free(&dw);
    vt_free(&db);
    data_free(&d);
}

static int skip_case(int i)
{
    return tu_small() && !cases[i].small;
}

/* ------------------------------------------------------------------------ */
/* Tests */

START_TEST(test_forward)
{
    if (skip_case(_i))
        return;
    const conv_case *c = &cases[_i];
    ref_conv2d_geom g = geom_of(c);
    dsd_conv2d_params p = params_of(c);
    check_forward(c->name, &g, &p, 1, 100 + (uint64_t)_i);
}
END_TEST

START_TEST(test_backward)
{
    if (skip_case(_i))
        return;
    const conv_case *c = &cases[_i];
    ref_conv2d_geom g = geom_of(c);
    dsd_conv2d_params p = params_of(c);
    check_backward(c->name, &g, &p, GRAD_ALL, 200 + (uint64_t)_i);
}
END_TEST

/* Bias NULL in forward; each gradient alone in backward (the others NULL,
 * their tensors must stay as they were). */
START_TEST(test_optional_tensors)
{
    static const int picks[] = {0, 5, 9}; /* 1x1, 3x3 reflect, 4x4 stride 2 */
    for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++) {
        const conv_case *c = &cases[picks[i]];
        ref_conv2d_geom g = geom_of(c);
        dsd_conv2d_params p = params_of(c);
        check_forward(c->name, &g, &p, 0, 300 + i);
        check_backward(c->name, &g, &p, GRAD_X, 310 + i);
        check_backward(c->name, &g, &p, GRAD_W, 320 + i);
        check_backward(c->name, &g, &p, GRAD_B, 330 + i);
        check_backward(c->name, &g, &p, 0, 340 + i);
    }
}
END_TEST

/* The reference backward against central differences of the reference
 * forward, for loss = sum(y * g) with a random g. */
typedef struct grad_user {
    const ref_conv2d_geom *g;
    const double *x, *w, *b, *up;
    double *y;
    size_t ny;
} grad_user;

static double conv_loss(void *user)
{
    grad_user *u = user;
    ref_conv2d_forward(u->g, u->x, u->w, u->b, u->y);
    return tu_dot(u->y, u->up, u->ny);
}

START_TEST(test_reference_gradients)
{
    const conv_case *c = &cases[_i];
    ref_conv2d_geom g = geom_of(c);
    conv_data d;
    data_init(&d, &g, 400 + (uint64_t)_i);
    double *y = tu_alloc(d.ny);
    grad_user u = {&g, d.x, d.w, d.b, d.dy, y, d.ny};

    double *ax = tu_alloc(d.nx), *aw = tu_alloc(d.nw), *ab = tu_alloc(d.nb);
    ref_conv2d_backward(&g, d.x, d.w, d.dy, ax, aw, ab);
    double *nx = tu_alloc(d.nx), *nw = tu_alloc(d.nw), *nb = tu_alloc(d.nb);
    tu_numeric_grad(conv_loss, &u, d.x, d.nx, 1e-6, nx);
    tu_numeric_grad(conv_loss, &u, d.w, d.nw, 1e-6, nw);
    tu_numeric_grad(conv_loss, &u, d.b, d.nb, 1e-6, nb);
    char what[160];
    snprintf(what, sizeof what, "%s: reference dx vs finite differences", c->name);
    tu_check_close(what, ax, nx, d.nx, 1e-6);
    snprintf(what, sizeof what, "%s: reference dweight vs finite differences", c->name);
    tu_check_close(what, aw, nw, d.nw, 1e-6);
    snprintf(what, sizeof what, "%s: reference dbias vs finite differences", c->name);
    tu_check_close(what, ab, nb, d.nb, 1e-6);

    free(y);
    free(ax);
    free(aw);
    free(ab);
    free(nx);
    free(nw);
    free(nb);
    data_free(&d);
}
END_TEST

/* The reference itself on a hand-computed case: reflection pad 1 of the
 * 1-channel 2x3 image [1 2 3; 4 5 6] with an all-ones 3x3 kernel. The padded
 * image is [5 4 5 6 5; 2 1 2 3 2; 5 4 5 6 5; 2 1 2 3 2]. */
START_TEST(test_reference_reflect_by_hand)
{
    ref_conv2d_geom g = {1, 1, 2, 3, 1, 3, 3, 1, 1, 1, 1};
    const double x[6] = {1, 2, 3, 4, 5, 6}, w[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    const double want[6] = {33, 36, 39, 24, 27, 30};
    double y[6];
    ref_conv2d_forward(&g, x, w, NULL, y);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(y[i] == want[i], "y[%d] = %g, want %g", i, y[i], want[i]);
}
END_TEST

START_TEST(test_output_size)
{
    dsd_context *ctx = tu_ctx();
    int oh = -1, ow = -1;
    dsd_conv2d_params p = {4, 4, 2, 2, DSD_PAD_ZERO, 1};
    TU_OK(dsd_conv2d_output_size(ctx, &p, 9, 11, &oh, &ow));
    ck_assert_int_eq(oh, 5);
    ck_assert_int_eq(ow, 6);
    p.stride = 1;
    TU_OK(dsd_conv2d_output_size(ctx, &p, 7, 5, &oh, &ow));
    ck_assert_int_eq(oh, 8);
    ck_assert_int_eq(ow, 6);
    dsd_conv2d_params q = {7, 7, 1, 3, DSD_PAD_REFLECT, 1};
    TU_OK(dsd_conv2d_output_size(ctx, &q, 9, 11, &oh, &ow));
    ck_assert_int_eq(oh, 9);
    ck_assert_int_eq(ow, 11);
    dsd_conv2d_params r = {3, 1, 2, 0, DSD_PAD_ZERO, 1};
    TU_OK(dsd_conv2d_output_size(ctx, &r, 7, 4, &oh, &ow));
    ck_assert_int_eq(oh, 3);
    ck_assert_int_eq(ow, 2);

    /* reflection needs pad < H and pad < W */
    ck_assert_int_eq(dsd_conv2d_output_size(ctx, &q, 3, 11, &oh, &ow), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_conv2d_output_size(ctx, &q, 11, 3, &oh, &ow), DSD_ERR_SHAPE);
    /* kernel larger than the padded input */
    dsd_conv2d_params big = {7, 7, 1, 0, DSD_PAD_ZERO, 1};
    ck_assert_int_eq(dsd_conv2d_output_size(ctx, &big, 6, 11, &oh, &ow), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_conv2d_output_size(ctx, &big, 0, 11, &oh, &ow), DSD_ERR_SHAPE);
    /* meaningless parameters */
    dsd_conv2d_params bad = {3, 3, 0, 1, DSD_PAD_ZERO, 1};
    ck_assert_int_eq(dsd_conv2d_output_size(ctx, &bad, 9, 9, &oh, &ow),
                     DSD_ERR_INVALID_ARGUMENT);
    bad.stride = 1;
    bad.pad = -1;
    ck_assert_int_eq(dsd_conv2d_output_size(ctx, &bad, 9, 9, &oh, &ow),
                     DSD_ERR_INVALID_ARGUMENT);
    bad.pad = 1;
    bad.kernel_w = 0;
    ck_assert_int_eq(dsd_conv2d_output_size(ctx, &bad, 9, 9, &oh, &ow),
                     DSD_ERR_INVALID_ARGUMENT);
    bad.kernel_w = 3;
    bad.pad_mode = (dsd_padding)7;
    ck_assert_int_eq(dsd_conv2d_output_size(ctx, &bad, 9, 9, &oh, &ow),
                     DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_conv2d_output_size(ctx, NULL, 9, 9, &oh, &ow),
                     DSD_ERR_INVALID_ARGUMENT);
}
END_TEST

/* Wrong shapes fail with DSD_ERR_SHAPE naming the shapes, before anything is
 * enqueued: y, dx, dweight and dbias keep their contents. */
START_TEST(test_shape_errors)
{
    dsd_context *ctx = tu_ctx();
    /* x (2,3,7,5), 3x3 pad 1 -> y (2,5,7,5) */
    dsd_conv2d_params p = {3, 3, 1, 1, DSD_PAD_ZERO, 1};
    dsd_tensor x, w, b, y, dy, dx, dw, db, w_bad, y_bad, b_bad, x_small;
    tu_tensor(&x, 2, 3, 7, 5);
    tu_tensor(&w, 5, 3, 3, 3);
    tu_tensor(&b, 1, 5, 1, 1);
    tu_tensor(&y, 2, 5, 7, 5);
    tu_tensor(&dy, 2, 5, 7, 5);
    tu_tensor(&dx, 2, 3, 7, 5);
    tu_tensor(&dw, 5, 3, 3, 3);
    tu_tensor(&db, 1, 5, 1, 1);
    tu_tensor(&w_bad, 5, 4, 3, 3);
    tu_tensor(&y_bad, 2, 5, 5, 7);
    tu_tensor(&b_bad, 1, 4, 1, 1);
    tu_tensor(&x_small, 2, 3, 1, 5);
    dsd_tensor *outs[] = {&y, &dx, &dw, &db};
    for (int i = 0; i < 4; i++)
        TU_OK(dsd_tensor_fill(ctx, outs[i], 7.0f));
    dsd_tensor *ins[] = {&x, &w, &b, &dy, &x_small};
    for (int i = 0; i < 5; i++)
        TU_OK(dsd_tensor_fill(ctx, ins[i], 1.0f));

    ck_assert_int_eq(dsd_conv2d_forward(ctx, &p, &x, &w_bad, &b, &y), DSD_ERR_SHAPE);
    const char *msg = dsd_context_error(ctx)->message;
    ck_assert_msg(strstr(msg, "5x4x3x3") && strstr(msg, "2x3x7x5"), "%s", msg);
    ck_assert_int_eq(dsd_conv2d_forward(ctx, &p, &x, &w, &b, &y_bad), DSD_ERR_SHAPE);
    msg = dsd_context_error(ctx)->message;
    ck_assert_msg(strstr(msg, "2x5x5x7") && strstr(msg, "2x5x7x5"), "%s", msg);
    ck_assert_int_eq(dsd_conv2d_forward(ctx, &p, &x, &w, &b_bad, &y), DSD_ERR_SHAPE);

    /* reflection pad >= H */
    dsd_conv2d_params refl = {3, 3, 1, 1, DSD_PAD_REFLECT, 1};
    dsd_tensor y_small;
    tu_tensor(&y_small, 2, 5, 1, 5);
    ck_assert_int_eq(dsd_conv2d_forward(ctx, &refl, &x_small, &w, &b, &y_small), DSD_ERR_SHAPE);
    msg = dsd_context_error(ctx)->message;
    ck_assert_msg(strstr(msg, "pad"), "%s", msg);
    /* the same with zero padding is fine */
    dsd_conv2d_params zero = refl;
    zero.pad_mode = DSD_PAD_ZERO;
    TU_OK(dsd_conv2d_forward(ctx, &zero, &x_small, &w, &b, &y_small));
    tu_tensor_free(&y_small);

    /* NULL and bad parameters */
    ck_assert_int_eq(dsd_conv2d_forward(ctx, NULL, &x, &w, &b, &y), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_conv2d_forward(ctx, &p, &x, NULL, &b, &y), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_conv2d_forward(ctx, &p, &x, &w, &b, NULL), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_conv2d_backward(ctx, &p, NULL, &w, &dy, &dx, &dw, &db),
                     DSD_ERR_INVALID_ARGUMENT);
    dsd_conv2d_params g2 = p;
    g2.groups = 2; /* neither 1 nor Cin = 3 */
    ck_assert_int_eq(dsd_conv2d_forward(ctx, &g2, &x, &w, &b, &y), DSD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(dsd_conv2d_backward(ctx, &g2, &x, &w, &dy, &dx, &dw, &db),
                     DSD_ERR_INVALID_ARGUMENT);
    g2.groups = 0;
    ck_assert_int_eq(dsd_conv2d_forward(ctx, &g2, &x, &w, &b, &y), DSD_ERR_INVALID_ARGUMENT);
    dsd_tensor empty = dsd_tensor_view_batch(&x, 1, 2); /* out of range: n = 0 */
    ck_assert_int_eq(dsd_conv2d_forward(ctx, &p, &empty, &w, &b, &y), DSD_ERR_SHAPE);

    /* backward: every gradient's shape is checked before anything runs */
    ck_assert_int_eq(dsd_conv2d_backward(ctx, &p, &x, &w, &y_bad, &dx, &dw, &db), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_conv2d_backward(ctx, &p, &x, &w, &dy, &y, &dw, &db), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_conv2d_backward(ctx, &p, &x, &w, &dy, &dx, &w_bad, &db), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_conv2d_backward(ctx, &p, &x, &w, &dy, &dx, &dw, &b_bad), DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_conv2d_backward(ctx, &p, &x, &w_bad, &dy, &dx, &dw, &db),
                     DSD_ERR_SHAPE);
    ck_assert_int_eq(dsd_conv2d_backward(ctx, &refl, &x_small, &w, &dy, NULL, NULL, &db),
                     DSD_ERR_SHAPE);

    /* nothing ran */
    const char *names[] = {"y", "dx", "dweight", "dbias"};
    for (int i = 0; i < 4; i++) {
        size_t n = dsd_tensor_numel(outs[i]);
        double *host = tu_alloc(n);
        tu_download(outs[i], host);
        for (size_t j = 0; j < n; j++)
            ck_assert_msg(host[j] == 7.0, "%s[%zu] changed to %g by a failed call", names[i], j,
                          host[j]);
        free(host);
    }

    dsd_tensor *all[] = {&x, &w, &b, &y, &dy, &dx, &dw, &db, &w_bad, &y_bad, &b_bad, &x_small};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_tensor_free(all[i]);
}
END_TEST

/* A CLBlast failure surfaces as DSD_ERR_CLBLAST naming the routine: tensors
 * whose shapes claim more than their buffers hold (which only a caller that
 * forges the struct can produce) make CLBlast's buffer-size check fail. */
START_TEST(test_clblast_error)
{
    dsd_context *ctx = tu_ctx();
    dsd_conv2d_params p = {1, 1, 1, 0, DSD_PAD_ZERO, 1};
    dsd_tensor x, w, y;
    tu_tensor(&x, 1, 3, 1, 4);
    tu_tensor(&w, 5, 3, 1, 1);
    tu_tensor(&y, 1, 5, 1, 4);
    dsd_tensor x_big = x, y_big = y;
    x_big.h = y_big.h = 4096;
    x_big.w = y_big.w = 4096;
    /* a bound above the forged input keeps the 1x1 convolution one GEMM
     * (past it, im2col would be the first to read the missing memory) */
    ck_assert_int_eq(setenv("DSDEBLUR_CONV_COL_LIMIT", "1073741824", 1), 0);
    ck_assert_int_eq(dsd_conv2d_forward(ctx, &p, &x_big, &w, NULL, &y_big), DSD_ERR_CLBLAST);
    unsetenv("DSDEBLUR_CONV_COL_LIMIT");
    const dsd_error *e = dsd_context_error(ctx);
    ck_assert_str_eq(e->call, "CLBlastSgemm");
    ck_assert_int_ne(e->cl_code, 0);
    ck_assert_msg(strstr(e->message, "CLBlast"), "%s", e->message);
    tu_tensor_free(&x);
    tu_tensor_free(&w);
    tu_tensor_free(&y);
}
END_TEST

/* Forward and backward twice on the same inputs give bit-identical results. */
static void run_once(const conv_case *c, const conv_data *d, float *y, float *dx, float *dw,
                     float *db)
{
    dsd_context *ctx = tu_ctx();
    dsd_conv2d_params p = params_of(c);
    dsd_tensor x, w, b, ty, dy, tdx, tdw, tdb;
    upload_full(&x, c->n, c->cin, c->h, c->w, d->x);
    upload_full(&w, c->cout, c->cin, c->kh, c->kw, d->w);
    upload_full(&b, 1, c->cout, 1, 1, d->b);
    upload_full(&dy, c->n, c->cout, d->oh, d->ow, d->dy);
    upload_full(&tdx, c->n, c->cin, c->h, c->w, d->dx0);
    upload_full(&tdw, c->cout, c->cin, c->kh, c->kw, d->dw0);
    upload_full(&tdb, 1, c->cout, 1, 1, d->db0);
    tu_tensor(&ty, c->n, c->cout, d->oh, d->ow);
    TU_OK(dsd_conv2d_forward(ctx, &p, &x, &w, &b, &ty));
    TU_OK(dsd_conv2d_backward(ctx, &p, &x, &w, &dy, &tdx, &tdw, &tdb));
    TU_OK(dsd_tensor_download(ctx, &ty, y, d->ny));
    TU_OK(dsd_tensor_download(ctx, &tdx, dx, d->nx));
    TU_OK(dsd_tensor_download(ctx, &tdw, dw, d->nw));
    TU_OK(dsd_tensor_download(ctx, &tdb, db, d->nb));
    dsd_tensor *all[] = {&x, &w, &b, &ty, &dy, &tdx, &tdw, &tdb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_tensor_free(all[i]);
}

START_TEST(test_determinism)
{
    static const int picks[] = {0, 11, 19}; /* 1x1, 7x7 reflect, the direct tail */
    for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++) {
        const conv_case *c = &cases[picks[i]];
        ref_conv2d_geom g = geom_of(c);
        conv_data d;
        data_init(&d, &g, 500 + i);
        float *r[2][4];
        for (int k = 0; k < 2; k++) {
            r[k][0] = malloc(d.ny * sizeof(float));
            r[k][1] = malloc(d.nx * sizeof(float));
            r[k][2] = malloc(d.nw * sizeof(float));
            r[k][3] = malloc(d.nb * sizeof(float));
            ck_assert(r[k][0] && r[k][1] && r[k][2] && r[k][3]);
            run_once(c, &d, r[k][0], r[k][1], r[k][2], r[k][3]);
        }
        const size_t sizes[4] = {d.ny, d.nx, d.nw, d.nb};
        const char *names[4] = {"y", "dx", "dweight", "dbias"};
        for (int t = 0; t < 4; t++) {
            ck_assert_msg(!memcmp(r[0][t], r[1][t], sizes[t] * sizeof(float)),
                          "%s: %s differs between two identical runs", c->name, names[t]);
            free(r[0][t]);
            free(r[1][t]);
        }
        data_free(&d);
    }
}
END_TEST

/* Tiny column-buffer bounds force many row chunks: one row per chunk, and a
 * few rows per chunk with a shorter last chunk (a 1x1 case too: an input
 * over the bound takes the chunks instead of one GEMM per image). */
START_TEST(test_chunking)
{
    static const int picks[] = {0, 5, 7, 9, 10, 11, 12, 13, 15, 16, 17};
    for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++) {
        if (skip_case(picks[i]))
            continue;
        const conv_case *c = &cases[picks[i]];
        ref_conv2d_geom g = geom_of(c);
        dsd_conv2d_params p = params_of(c);
        size_t kc = (size_t)c->cin * c->kh * c->kw, col_rows = (kc + 63) / 64 * 64;
        size_t row_bytes = col_rows * ref_conv2d_out_w(&g) * sizeof(float);
        int oh = ref_conv2d_out_h(&g);
        for (int rows = 1; rows <= 2; rows++) {
            if (rows >= oh)
                continue;
            char limit[32], name[160];
            snprintf(limit, sizeof limit, "%zu", rows * row_bytes + row_bytes / 2);
            ck_assert_int_eq(setenv("DSDEBLUR_CONV_COL_LIMIT", limit, 1), 0);
            snprintf(name, sizeof name, "%s, %d-row chunks of %d", c->name, rows, oh);
            check_forward(name, &g, &p, 1, 600 + i);
            check_backward(name, &g, &p, GRAD_ALL, 610 + i);
            check_backward(name, &g, &p, GRAD_X, 620 + i);
        }
        unsetenv("DSDEBLUR_CONV_COL_LIMIT");
    }
    unsetenv("DSDEBLUR_CONV_COL_LIMIT");
}
END_TEST

/* A 1x1 convolution is one GEMM per image while an image's input fits the
 * column bound, and takes row chunks past it (test_chunking checks the
 * values on that route). */
START_TEST(test_pointwise_route)
{
    dsd_conv2d_params p = {1, 1, 1, 0, DSD_PAD_ZERO, 1};
    dsd_conv2d_plan plan;
    dsd_error err;
    const size_t input_bytes = 8 * 6 * 7 * sizeof(float); /* 1 x 8 x 6 x 7 */
    static const struct { size_t limit; dsd_conv2d_route route; int chunks; } want[] = {
        {0, DSD_CONV2D_ROUTE_POINTWISE, 0},           /* the default bound */
        {input_bytes, DSD_CONV2D_ROUTE_POINTWISE, 0}, /* exactly at the bound */
        {input_bytes - 1, DSD_CONV2D_ROUTE_IM2COL, 6}, /* past it: one row per chunk */
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char limit[32];
        snprintf(limit, sizeof limit, "%zu", want[i].limit);
        if (want[i].limit)
            ck_assert_int_eq(setenv("DSDEBLUR_CONV_COL_LIMIT", limit, 1), 0);
        ck_assert_int_eq(dsd_conv2d_plan_make(&p, 1, 8, 6, 7, 16, &plan, &err), DSD_OK);
        unsetenv("DSDEBLUR_CONV_COL_LIMIT");
        ck_assert_msg(plan.forward == want[i].route && plan.backward == want[i].route,
                      "bound %s: routes %d/%d, want %d", want[i].limit ? limit : "default",
                      (int)plan.forward, (int)plan.backward, (int)want[i].route);
        ck_assert_int_eq(plan.chunks, want[i].chunks);
    }
}
END_TEST

/* groups == Cin goes to the depthwise path and matches the grouped
 * reference; Cin == 1 with groups == 1 stays on the GEMM path (cases[2]). */
START_TEST(test_depthwise_dispatch)
{
    static const ref_conv2d_geom dws[] = {
        {2, 5, 9, 11, 5, 3, 3, 1, 1, 1, 5},
        {2, 3, 7, 5, 3, 3, 3, 2, 1, 0, 3},
    };
    for (size_t i = 0; i < sizeof dws / sizeof dws[0]; i++) {
        const ref_conv2d_geom *g = &dws[i];
        dsd_conv2d_params p = {g->kh, g->kw, g->stride, g->pad,
                               g->reflect ? DSD_PAD_REFLECT : DSD_PAD_ZERO, g->groups};
        check_forward("depthwise dispatch", g, &p, 1, 700 + i);
        check_backward("depthwise dispatch", g, &p, GRAD_ALL, 710 + i);
    }
}
END_TEST

/* A context with profiling records one "clblast_sgemm" entry per GEMM. */
START_TEST(test_profiling)
{
    dsd_context_options opts = {0};
    opts.profiling = 1;
    dsd_context *pctx;
    dsd_error err;
    ck_assert_int_eq(dsd_context_init(&pctx, &opts, &err), DSD_OK);
    const conv_case *c = &cases[4]; /* 3x3: im2col, 1 chunk per image */
    ref_conv2d_geom g = geom_of(c);
    dsd_conv2d_params p = params_of(c);
    conv_data d;
    data_init(&d, &g, 800);
    dsd_tensor x, w, y, dy, dx, dw;
    dsd_tensor *all[] = {&x, &w, &y, &dy, &dx, &dw};
    const int shapes[6][4] = {{c->n, c->cin, c->h, c->w}, {c->cout, c->cin, c->kh, c->kw},
                              {c->n, c->cout, d.oh, d.ow}, {c->n, c->cout, d.oh, d.ow},
                              {c->n, c->cin, c->h, c->w}, {c->cout, c->cin, c->kh, c->kw}};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(dsd_tensor_init_zero(pctx, all[i], shapes[i][0], shapes[i][1],
                                              shapes[i][2], shapes[i][3]), DSD_OK);
    }
    ck_assert_int_eq(dsd_conv2d_forward(pctx, &p, &x, &w, NULL, &y), DSD_OK);
    ck_assert_int_eq(dsd_conv2d_backward(pctx, &p, &x, &w, &dy, &dx, &dw, NULL), DSD_OK);
    dsd_profile_entry *entries;
    size_t count;
    ck_assert_int_eq(dsd_profile_collect(pctx, &entries, &count), DSD_OK);
    unsigned gemms = 0, im2col = 0, col2im = 0;
    for (size_t i = 0; i < count; i++) {
        if (!strcmp(entries[i].name, "clblast_sgemm"))
            gemms = entries[i].count;
        if (!strcmp(entries[i].name, "conv2d_im2col"))
            im2col = entries[i].count;
        if (!strcmp(entries[i].name, "conv2d_col2im"))
            col2im = entries[i].count;
    }
    /* per image: forward 1 GEMM; backward 2 GEMMs (dW, dcol) */
    ck_assert_uint_eq(gemms, 3 * (unsigned)c->n);
    ck_assert_uint_eq(im2col, 2 * (unsigned)c->n);
    ck_assert_uint_eq(col2im, (unsigned)c->n);
    free(entries);
    for (int i = 0; i < 6; i++)
        dsd_tensor_free(pctx, all[i]);
    data_free(&d);
    dsd_context_free(pctx);
}
END_TEST

/* How many times matrix_transpose ran in one forward (backward 0) or one
 * backward with dx and dW (backward 1) of case c on zero tensors, on a
 * context with profiling (gemm.c's and the depth padding's operand turns). */
static unsigned transposes_in(dsd_context *pctx, const conv_case *c, int backward)
{
    ref_conv2d_geom g = geom_of(c);
    dsd_conv2d_params p = params_of(c);
    int oh = ref_conv2d_out_h(&g), ow = ref_conv2d_out_w(&g);
    dsd_tensor x, w, y, dx, dw;
    dsd_tensor *all[] = {&x, &w, &y, &dx, &dw};
    const int shapes[5][4] = {{c->n, c->cin, c->h, c->w}, {c->cout, c->cin, c->kh, c->kw},
                              {c->n, c->cout, oh, ow}, {c->n, c->cin, c->h, c->w},
                              {c->cout, c->cin, c->kh, c->kw}};
    for (int t = 0; t < 5; t++)
        ck_assert_int_eq(dsd_tensor_init_zero(pctx, all[t], shapes[t][0], shapes[t][1],
                                              shapes[t][2], shapes[t][3]), DSD_OK);
    dsd_profile_reset(pctx);
    if (backward) /* y serves as dy */
        ck_assert_int_eq(dsd_conv2d_backward(pctx, &p, &x, &w, &y, &dx, &dw, NULL), DSD_OK);
    else
        ck_assert_int_eq(dsd_conv2d_forward(pctx, &p, &x, &w, NULL, &y), DSD_OK);
    dsd_profile_entry *entries;
    size_t count;
    ck_assert_int_eq(dsd_profile_collect(pctx, &entries, &count), DSD_OK);
    unsigned turns = 0;
    for (size_t e = 0; e < count; e++)
        if (!strcmp(entries[e].name, "matrix_transpose"))
            turns = entries[e].count;
    free(entries);
    for (int t = 0; t < 5; t++)
        dsd_tensor_free(pctx, all[t]);
    return turns;
}

/* Products whose sizes fit the CPU profile's tiles (multiples of 64 fit its
 * 32 x 16 x 64 ones, and the 64 x 64 x 64 ones of earlier rounds) and are
 * large enough for CLBlast's indirect kernel (at least 128^3 multiply-adds)
 * have their transposed operands turned by gemm.c's own kernel instead of
 * CLBlast's copy: the weight gradients of a pointwise 256 -> 256 layer on a
 * 16 x 16 plane and of a 3x3 64 -> 128 layer on 16 x 32. Checked against the
 * reference, and, on the built-in CPU profile, that the turn really ran. */
static const conv_case turned_cases[] = {
    {"k1 s1 p0 256->256 on 16x16 (operands turned)", 1, 256, 16, 16, 256, 1, 1, 1, 0, 0, 0},
    {"k3 s1 p1 reflect 64->128 on 16x32 (operands turned)", 1, 64, 16, 32, 128, 3, 3, 1, 1, 1,
     0},
};

START_TEST(test_turned_operands)
{
    if (tu_small())
        return; /* large for Oclgrind */
    dsd_context_options opts = {0};
    opts.profiling = 1;
    dsd_context *pctx;
    dsd_error err;
    ck_assert_int_eq(dsd_context_init(&pctx, &opts, &err), DSD_OK);
    const int builtin_cpu =
        !strcmp(dsd_context_profile_name(pctx), "built-in: CPU (PoCL)");
    for (size_t i = 0; i < sizeof turned_cases / sizeof turned_cases[0]; i++) {
        const conv_case *c = &turned_cases[i];
        ref_conv2d_geom g = geom_of(c);
        dsd_conv2d_params p = params_of(c);
        check_forward(c->name, &g, &p, 1, 950 + i);
        check_backward(c->name, &g, &p, GRAD_ALL, 960 + i);

        unsigned turns = transposes_in(pctx, c, 1);
        if (builtin_cpu)
            ck_assert_msg(turns > 0, "%s: no operand was turned by matrix_transpose", c->name);
    }
    /* a forward in several row chunks turns its weights once, not once per
     * chunk: the 3x3 case in 4-row chunks (128 columns each, which fit the
     * tiles; K = 576 needs no padding) */
    const conv_case *c = &turned_cases[1];
    ref_conv2d_geom g = geom_of(c);
    dsd_conv2d_params p = params_of(c);
    size_t row_bytes = (size_t)c->cin * c->kh * c->kw * ref_conv2d_out_w(&g) * sizeof(float);
    char limit[32];
    snprintf(limit, sizeof limit, "%zu", 4 * row_bytes);
    ck_assert_int_eq(setenv("DSDEBLUR_CONV_COL_LIMIT", limit, 1), 0);
    check_forward("k3 64->128 in 4-row chunks", &g, &p, 1, 970);
    unsigned turns = transposes_in(pctx, c, 0);
    unsetenv("DSDEBLUR_CONV_COL_LIMIT");
    if (builtin_cpu)
        ck_assert_msg(turns == 1, "%s in 4-row chunks: %u weight turns in the forward, not 1",
                      c->name, turns);
    dsd_context_free(pctx);
}
END_TEST

/* The forward of a case with its column buffer given as a workspace full of
 * NaN: rows the forward adds to the column matrix and to the weights must be
 * written (zeros), never read as they were. */
static void check_forward_nan_workspace(const char *name, const ref_conv2d_geom *g,
                                        const dsd_conv2d_params *p, uint64_t seed)
{
    dsd_context *ctx = tu_ctx();
    dsd_conv2d_plan plan;
    dsd_error err;
    ck_assert_int_eq(dsd_conv2d_plan_make(p, g->n, g->cin, g->h, g->w, g->cout, &plan, &err),
                     DSD_OK);
    ck_assert_uint_gt(plan.forward_workspace, 0);
    conv_data d;
    data_init(&d, g, seed);
    vtensor x, w, b, y, ws;
    vt_init(&x, g->n, g->cin, g->h, g->w, d.x);
    vt_init(&w, g->cout, g->cin, g->kh, g->kw, d.w);
    vt_init(&b, 1, g->cout, 1, 1, d.b);
    vt_init(&y, g->n, g->cout, d.oh, d.ow, NULL);
    vt_init(&ws, 1, 1, 1, (int)(plan.forward_workspace / sizeof(float)), NULL);
    /* and the pool's buffer of the padded weights' size (Cout x Kc rounded
     * up to 64) full of NaN, which the forward leases for them next */
    dsd_tensor poison;
    int kp = (g->cin * g->kh * g->kw + 63) / 64 * 64;
    TU_OK(dsd_tensor_init(ctx, &poison, 1, 1, g->cout, kp));
    TU_OK(dsd_tensor_fill(ctx, &poison, NAN));
    dsd_tensor_free(ctx, &poison);
    TU_OK(dsd_conv2d_forward_ws(ctx, p, &x.v, &w.v, &b.v, &y.v, &ws.v));
    double *ref = tu_alloc(d.ny);
    ref_conv2d_forward(g, d.x, d.w, d.b, ref);
    char what[200];
    snprintf(what, sizeof what, "%s: forward y over a NaN workspace", name);
    vt_check(what, &y, ref);
    free(ref);
    vtensor *all[] = {&x, &w, &b, &y, &ws};
    for (int i = 0; i < 5; i++)
        vt_free(all[i]);
    data_free(&d);
}

/* Products whose depth K is no multiple of the CPU profile's 64-deep tiles
 * (the head's 7x7 3 -> 64, K = 147; K = 63) on chunks of a multiple of 32
 * columns are stated with zero rows added to the column matrix and to the
 * turned weights, which spares CLBlast's K-padded copy of the whole column
 * matrix. The second case's column bound makes 10-row chunks of 48 columns
 * and a last one of 5 rows (240 columns, no multiple of 32), which takes
 * the unpadded product. Checked against the reference (with and without a
 * bias, over a NaN workspace, backward too) and, on the built-in CPU
 * profile, that the padded forward ran (it turns the weights; the unpadded
 * one leaves them to CLBlast). */
static const conv_case padded_cases[] = {
    {"k7 s1 p3 reflect 3->64 on 16x32 (depth 147 padded)", 1, 3, 16, 32, 64, 7, 7, 1, 3, 1, 0},
    {"k3 s1 p1 7->80 on 45x48 in 10-row chunks (depth 63 padded)", 2, 7, 45, 48, 80, 3, 3, 1, 1,
     0, 0},
};

START_TEST(test_padded_depth)
{
    if (tu_small())
        return; /* large for Oclgrind */
    dsd_context_options opts = {0};
    opts.profiling = 1;
    dsd_context *pctx;
    dsd_error err;
    ck_assert_int_eq(dsd_context_init(&pctx, &opts, &err), DSD_OK);
    const int builtin_cpu =
        !strcmp(dsd_context_profile_name(pctx), "built-in: CPU (PoCL)");
    for (size_t i = 0; i < sizeof padded_cases / sizeof padded_cases[0]; i++) {
        const conv_case *c = &padded_cases[i];
        if (i == 1) /* 10 rows of 64 (63 padded) x 48 floats */
            ck_assert_int_eq(setenv("DSDEBLUR_CONV_COL_LIMIT", "126000", 1), 0);
        ref_conv2d_geom g = geom_of(c);
        dsd_conv2d_params p = params_of(c);
        if (i == 1) {
            dsd_conv2d_plan plan;
            ck_assert_int_eq(dsd_conv2d_plan_make(&p, c->n, c->cin, c->h, c->w, c->cout, &plan,
                                                  &err), DSD_OK);
            ck_assert_int_eq(plan.chunk_rows, 10);
        }
        check_forward(c->name, &g, &p, 1, 1000 + i);
        check_forward(c->name, &g, &p, 0, 1010 + i);
        check_forward_nan_workspace(c->name, &g, &p, 1020 + i);
        check_backward(c->name, &g, &p, GRAD_ALL, 1030 + i);

        unsigned turns = transposes_in(pctx, c, 0);
        if (builtin_cpu)
            ck_assert_msg(turns == 1, "%s: %u weight turns in the forward, not 1", c->name,
                          turns);
        unsetenv("DSDEBLUR_CONV_COL_LIMIT");
    }
    dsd_context_free(pctx);
}
END_TEST

/* CLBlast functions, found among the symbols already loaded: the test links
 * only libdsdeblur, which depends on CLBlast. */
static void *clblast_symbol(const char *name)
{
    void *self = dlopen(NULL, RTLD_NOW);
    ck_assert_msg(self != NULL, "dlopen(NULL): %s", dlerror());
    void *sym = dlsym(self, name);
    ck_assert_msg(sym != NULL, "%s not found: %s", name, dlerror());
    dlclose(self);
    return sym;
}

/* CLBlast picks its direct GEMM kernel for small products and the indirect
 * one (padded copies, tiled kernel) for large ones; the model's large
 * convolutions take the indirect path, which these small tests would not
 * reach. Forcing the threshold to 0 runs the cases through it. Not under
 * DSDEBLUR_TEST_SMALL (Oclgrind): the indirect kernel loads the unused
 * padding of CLBlast's own scratch buffers, which Oclgrind reports as
 * uninitialized reads although they never reach the result. */
START_TEST(test_indirect_gemm)
{
    if (tu_small())
        return;
    typedef CLBlastStatusCode (*override_fn)(const cl_device_id, const char *,
                                             const CLBlastPrecision, const size_t,
                                             const char **, const size_t *);
    override_fn override;
    *(void **)&override = clblast_symbol("CLBlastOverrideParameters");
    const char *names[] = {"XGEMM_MIN_INDIRECT_SIZE"};
    size_t values[] = {0};
    CLBlastStatusCode st = override(dsd_context_cl_device(tu_ctx()), "GemmRoutine",
                                    CLBlastPrecisionSingle, 1, names, values);
    ck_assert_msg(st == CLBlastSuccess, "CLBlastOverrideParameters: status %d", (int)st);
    static const int picks[] = {0, 9, 11};
    for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++) {
        const conv_case *c = &cases[picks[i]];
        ref_conv2d_geom g = geom_of(c);
        dsd_conv2d_params p = params_of(c);
        char name[160];
        snprintf(name, sizeof name, "%s (indirect GEMM)", c->name);
        check_forward(name, &g, &p, 1, 900 + i);
        check_forward(name, &g, &p, 0, 920 + i); /* beta = 0 over a NaN-filled y */
        check_backward(name, &g, &p, GRAD_ALL, 910 + i);
    }
}
END_TEST

/* Every test starts with the default column-buffer bound, even when a failed
 * test_chunking left its override set (CK_NOFORK: a failure leaves the test
 * by longjmp). */
static void default_col_limit(void)
{
    unsetenv("DSDEBLUR_CONV_COL_LIMIT");
}

int main(void)
{
    Suite *s = suite_create("conv2d");
    TCase *tc = tcase_create("conv2d");
    tcase_set_timeout(tc, 900);
    tcase_add_checked_fixture(tc, default_col_limit, NULL);
    tcase_add_test(tc, test_reference_reflect_by_hand);
    tcase_add_loop_test(tc, test_reference_gradients, 0, N_CASES);
    tcase_add_test(tc, test_output_size);
    tcase_add_loop_test(tc, test_forward, 0, N_CASES);
    tcase_add_loop_test(tc, test_backward, 0, N_CASES);
    tcase_add_test(tc, test_optional_tensors);
    tcase_add_test(tc, test_shape_errors);
    tcase_add_test(tc, test_clblast_error);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_chunking);
    tcase_add_test(tc, test_pointwise_route);
    tcase_add_test(tc, test_depthwise_dispatch);
    tcase_add_test(tc, test_profiling);
    tcase_add_test(tc, test_turned_operands);
    tcase_add_test(tc, test_padded_depth);
    tcase_add_test(tc, test_indirect_gemm); /* last: the override stays in effect */
    suite_add_tcase(s, tc);
    int status = tu_run(s);
    /* Drop CLBlast's cached programs now that the context is gone: left to
     * CLBlast's static destructors they are released after the OpenCL
     * implementation has shut down, which corrupts Oclgrind's heap at exit. */
    void *self = dlopen(NULL, RTLD_NOW);
    if (self) {
        CLBlastStatusCode (*clear)(void);
        *(void **)&clear = dlsym(self, "CLBlastClearCache");
        if (clear)
            clear();
        dlclose(self);
    }
    return status;
}
