/*
 * ref/generator.c: the double-precision reference generator (see
 * ref/generator.h), built from the op references of this directory.
 */
#include "generator.h"

#include "../testutil.h"
#include "activation.h"
#include "conv2d.h"
#include "dropout.h"
#include "elementwise.h"
#include "pixel_shuffle.h"
#include "pool.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The LeakyReLU slope of the paper (the configs under test use it). */
#define SLOPE 0.2

/* ------------------------------------------------------------------------ */
/* One test case: config, shapes, host data */

ref_gen_dims ref_gen_dims_of(const ref_gen_case *k)
{
    ref_gen_dims d;
    d.n = k->n;
    d.h = k->h;
    d.w = k->w;
    d.h2 = k->h / 2;
    d.w2 = k->w / 2;
    d.h4 = k->h / 4;
    d.w4 = k->w / 4;
    d.b = k->cfg.base_width;
    d.c = 4 * d.b;
    d.hid = d.c / k->cfg.mlp_ratio;
    d.k = k->cfg.up_kernel;
    d.nb = k->cfg.n_blocks;
    return d;
}

size_t ref_gen_image_numel(const ref_gen_case *k)
{
    return (size_t)k->n * 3 * k->h * k->w;
}

/* ------------------------------------------------------------------------ */
/* Reference parameters, found by name */

/* base + offset of the conv "<prefix>.weight"/".bias", checking both sizes. */
static ref_conv_weights ref_gen_conv_param(const ref_gen_case *k, double *base, int cout, int cin_g, int kh, int kw,
                            const char *fmt, ...)
{
    char prefix[64], name[80];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    ref_conv_weights r;
    snprintf(name, sizeof name, "%s.weight", prefix);
    const dsd_param_info *e = dsd_params_find(k->table, name);
    ck_assert_msg(e != NULL, "no parameter '%s'", name);
    ck_assert_msg(e->numel == (size_t)cout * cin_g * kh * kw && e->ndim == 4 &&
                      e->shape[0] == cout && e->shape[1] == cin_g && e->shape[2] == kh &&
                      e->shape[3] == kw,
                  "'%s' is %dx%dx%dx%d, expected %dx%dx%dx%d", name, e->shape[0], e->shape[1],
                  e->shape[2], e->shape[3], cout, cin_g, kh, kw);
    r.w = base + e->offset;
    snprintf(name, sizeof name, "%s.bias", prefix);
    e = dsd_params_find(k->table, name);
    ck_assert_msg(e != NULL, "no parameter '%s'", name);
    ck_assert_msg(e->numel == (size_t)cout && e->ndim == 1 && e->shape[0] == cout,
                  "'%s' has %zu elements, expected %d", name, e->numel, cout);
    r.b = base + e->offset;
    return r;
}

static void ref_gen_bind(const ref_gen_case *k, double *base, ref_gen_weights *r)
{
    ref_gen_dims d = ref_gen_dims_of(k);
    ck_assert_int_le(d.nb, REF_GEN_MAX_BLOCKS);
    r->head = ref_gen_conv_param(k, base, d.b, 3, 7, 7, "head");
    r->down[0] = ref_gen_conv_param(k, base, 2 * d.b, d.b, 3, 3, "down.0");
    r->down[1] = ref_gen_conv_param(k, base, d.c, 2 * d.b, 3, 3, "down.1");
    for (int i = 0; i < d.nb; i++) {
        ref_block_weights *b = &r->blk[i];
        b->fc1 = ref_gen_conv_param(k, base, d.hid, d.c, 1, 1, "blocks.%d.ca.fc1", i);
        b->fc2 = ref_gen_conv_param(k, base, d.c, d.hid, 1, 1, "blocks.%d.ca.fc2", i);
        b->sa = ref_gen_conv_param(k, base, 1, 2, 7, 7, "blocks.%d.sa.conv", i);
        for (int j = 0; j < 3; j++) {
            b->dw[j] = ref_gen_conv_param(k, base, d.c, 1, 3, 3, "blocks.%d.dsc.%d.depthwise", i, j);
            b->pw[j] = ref_gen_conv_param(k, base, d.c, d.c, 1, 1, "blocks.%d.dsc.%d.pointwise", i, j);
        }
    }
    r->up[0] = ref_gen_conv_param(k, base, 8 * d.b, d.c, d.k, d.k, "up.0");
    r->up[1] = ref_gen_conv_param(k, base, 4 * d.b, 2 * d.b, d.k, d.k, "up.1");
    r->tail = ref_gen_conv_param(k, base, 3, d.b, 7, 7, "tail");
}

static ref_conv2d_geom ref_gen_geom(int n, int cin, int h, int w, int cout, int kk, int stride, int pad,
                            int reflect, int groups)
{
    ref_conv2d_geom g = {n, cin, h, w, cout, kk, kk, stride, pad, reflect, groups};
    return g;
}

/* ------------------------------------------------------------------------ */
/* Reference activations */

static void ref_block_acts_alloc(ref_block_acts *a, const ref_gen_dims *d)
{
    size_t nv = (size_t)d->n * d->c, nh = (size_t)d->n * d->hid,
           np = (size_t)d->n * d->h4 * d->w4, nx = np * d->c;
    double **vec[] = {&a->avg, &a->mx, &a->o1, &a->o2, &a->s, &a->mc};
    for (size_t i = 0; i < 6; i++)
        *vec[i] = tu_alloc(nv);
    double **hid[] = {&a->h1, &a->a1, &a->h2, &a->a2};
    for (size_t i = 0; i < 4; i++)
        *hid[i] = tu_alloc(nh);
    double **pix[] = {&a->cm, &a->cx, &a->sc, &a->ms};
    for (size_t i = 0; i < 4; i++)
        *pix[i] = tu_alloc(np);
    a->cat = tu_alloc(2 * np);
    double **full[] = {&a->f1, &a->f2, &a->d1, &a->p1, &a->l1, &a->r1, &a->d2,
                       &a->p2, &a->l2, &a->d3, &a->p3, &a->out};
    for (size_t i = 0; i < 12; i++)
        *full[i] = tu_alloc(nx);
}

static void ref_block_acts_free(ref_block_acts *a)
{
    double **all = (double **)a;
    for (size_t i = 0; i < sizeof *a / sizeof(double *); i++)
        free(all[i]);
}

void ref_gen_acts_alloc(ref_gen_acts *a, const ref_gen_dims *d)
{
    size_t f = (size_t)d->n * d->h * d->w, f2 = (size_t)d->n * d->h2 * d->w2,
           f4 = (size_t)d->n * d->h4 * d->w4;
    a->h0 = tu_alloc(f * d->b);
    a->a0 = tu_alloc(f * d->b);
    a->h1 = tu_alloc(f2 * 2 * d->b);
    a->a1 = tu_alloc(f2 * 2 * d->b);
    a->h2 = tu_alloc(f4 * d->c);
    a->a2 = tu_alloc(f4 * d->c);
    for (int i = 0; i < d->nb; i++)
        ref_block_acts_alloc(&a->blk[i], d);
    a->u1 = tu_alloc(f4 * 8 * d->b);
    a->sh1 = tu_alloc(f2 * 2 * d->b);
    a->v1 = tu_alloc(f2 * 2 * d->b);
    a->u2 = tu_alloc(f2 * 4 * d->b);
    a->sh2 = tu_alloc(f * d->b);
    a->v2 = tu_alloc(f * d->b);
    a->tl = tu_alloc(f * 3);
    a->t = tu_alloc(f * 3);
    a->s = tu_alloc(f * 3);
    a->y = tu_alloc(f * 3);
}

void ref_gen_acts_free(ref_gen_acts *a, const ref_gen_dims *d)
{
    double *singles[] = {a->h0, a->a0, a->h1, a->a1,  a->h2, a->a2, a->u1, a->sh1,
                         a->v1, a->u2, a->sh2, a->v2, a->tl, a->t,  a->s,  a->y};
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++)
        free(singles[i]);
    for (int i = 0; i < d->nb; i++)
        ref_block_acts_free(&a->blk[i]);
}

/* ------------------------------------------------------------------------ */
/* Reference DSCRb (as in test-dscrb.c, with the dims of the case) */

static void ref_gen_block_forward(const ref_gen_case *k, const ref_gen_dims *d, const ref_block_weights *p, int bi,
                              const double *x, ref_block_acts *a)
{
    const int N = d->n, C = d->c, CR = d->hid, H = d->h4, W = d->w4;
    const size_t NX = (size_t)N * C * H * W, NP = (size_t)N * H * W, NV = (size_t)N * C;
    const int shape_x[4] = {N, C, H, W}, shape_vec[4] = {N, C, 1, 1}, shape_pix[4] = {N, 1, H, W};
    ref_conv2d_geom mlp1 = ref_gen_geom(N, C, 1, 1, CR, 1, 1, 0, 0, 1),
                    mlp2 = ref_gen_geom(N, CR, 1, 1, C, 1, 1, 0, 0, 1),
                    spatial = ref_gen_geom(N, 2, H, W, 1, 7, 1, 3, 0, 1),
                    dw = ref_gen_geom(N, C, H, W, C, 3, 1, 1, 1, C), pw = ref_gen_geom(N, C, H, W, C, 1, 1, 0, 0, 1);
    ref_global_avg_pool_forward(x, N, C, H, W, a->avg);
    ref_global_max_pool_forward(x, N, C, H, W, a->mx);
    ref_conv2d_forward(&mlp1, a->avg, p->fc1.w, p->fc1.b, a->h1);
    ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, a->h1, a->a1, (size_t)N * CR);
    ref_conv2d_forward(&mlp2, a->a1, p->fc2.w, p->fc2.b, a->o1);
    ref_conv2d_forward(&mlp1, a->mx, p->fc1.w, p->fc1.b, a->h2);
    ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, a->h2, a->a2, (size_t)N * CR);
    ref_conv2d_forward(&mlp2, a->a2, p->fc2.w, p->fc2.b, a->o2);
    ref_add_forward(shape_vec, a->o1, shape_vec, a->o2, 1.0, a->s);
    ref_activation_forward(DSD_ACT_SIGMOID, 0, a->s, a->mc, NV);
    ref_mul_forward(shape_x, x, shape_vec, a->mc, a->f1);

    ref_channel_mean_forward(a->f1, N, C, H, W, a->cm);
    ref_channel_max_forward(a->f1, N, C, H, W, a->cx);
    ref_concat_forward(N, 1, 1, H * W, a->cm, a->cx, a->cat);
    ref_conv2d_forward(&spatial, a->cat, p->sa.w, p->sa.b, a->sc);
    ref_activation_forward(DSD_ACT_SIGMOID, 0, a->sc, a->ms, NP);
    ref_mul_forward(shape_x, a->f1, shape_pix, a->ms, a->f2);

    ref_conv2d_forward(&dw, a->f2, p->dw[0].w, p->dw[0].b, a->d1);
    ref_conv2d_forward(&pw, a->d1, p->pw[0].w, p->pw[0].b, a->p1);
    ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, a->p1, a->l1, NX);
    if (k->training && k->cfg.dropout > 0)
        ref_dropout_forward(k->cfg.dropout, k->seed, k->step * 65536 + (uint64_t)bi, a->l1, NX,
                            a->r1);
    else
        memcpy(a->r1, a->l1, NX * sizeof(double));
    ref_conv2d_forward(&dw, a->r1, p->dw[1].w, p->dw[1].b, a->d2);
    ref_conv2d_forward(&pw, a->d2, p->pw[1].w, p->pw[1].b, a->p2);
    ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, a->p2, a->l2, NX);
    ref_conv2d_forward(&dw, a->l2, p->dw[2].w, p->dw[2].b, a->d3);
    ref_conv2d_forward(&pw, a->d3, p->pw[2].w, p->pw[2].b, a->p3);
    ref_add_forward(shape_x, x, shape_x, a->p3, 1.0, a->out);
}

/* dx += dL/dx, dp += dL/dparams for the upstream dout. */
static void ref_gen_block_backward(const ref_gen_case *k, const ref_gen_dims *d, const ref_block_weights *p,
                               ref_block_weights *dp, int bi, const double *x, const ref_block_acts *a,
                               const double *dout, double *dx)
{
    const int N = d->n, C = d->c, CR = d->hid, H = d->h4, W = d->w4;
    const size_t NX = (size_t)N * C * H * W, NP = (size_t)N * H * W, NV = (size_t)N * C,
                 NH = (size_t)N * CR;
    const int shape_x[4] = {N, C, H, W}, shape_vec[4] = {N, C, 1, 1}, shape_pix[4] = {N, 1, H, W};
    ref_conv2d_geom mlp1 = ref_gen_geom(N, C, 1, 1, CR, 1, 1, 0, 0, 1),
                    mlp2 = ref_gen_geom(N, CR, 1, 1, C, 1, 1, 0, 0, 1),
                    spatial = ref_gen_geom(N, 2, H, W, 1, 7, 1, 3, 0, 1),
                    dw = ref_gen_geom(N, C, H, W, C, 3, 1, 1, 1, C), pw = ref_gen_geom(N, C, H, W, C, 1, 1, 0, 0, 1);
    double *dp3 = tu_alloc(NX), *dd3 = tu_alloc(NX), *dl2 = tu_alloc(NX), *dp2 = tu_alloc(NX),
           *dd2 = tu_alloc(NX), *dr1 = tu_alloc(NX), *dl1 = tu_alloc(NX), *dp1 = tu_alloc(NX),
           *dd1 = tu_alloc(NX), *df2 = tu_alloc(NX), *df1 = tu_alloc(NX);
    double *dms = tu_alloc(NP), *dsc = tu_alloc(NP), *dcat = tu_alloc(2 * NP), *dcm = tu_alloc(NP),
           *dcx = tu_alloc(NP);
    double *dmc = tu_alloc(NV), *ds = tu_alloc(NV), *do1 = tu_alloc(NV), *do2 = tu_alloc(NV),
           *davg = tu_alloc(NV), *dmx = tu_alloc(NV);
    double *da1 = tu_alloc(NH), *da2 = tu_alloc(NH), *dh1 = tu_alloc(NH), *dh2 = tu_alloc(NH);

    ref_add_backward(shape_x, shape_x, 1.0, dout, dx, dp3);
    ref_conv2d_backward(&pw, a->d3, p->pw[2].w, dp3, dd3, dp->pw[2].w, dp->pw[2].b);
    ref_conv2d_backward(&dw, a->l2, p->dw[2].w, dd3, dl2, dp->dw[2].w, dp->dw[2].b);
    ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, a->p2, a->l2, dl2, dp2, NX);
    ref_conv2d_backward(&pw, a->d2, p->pw[1].w, dp2, dd2, dp->pw[1].w, dp->pw[1].b);
    ref_conv2d_backward(&dw, a->r1, p->dw[1].w, dd2, dr1, dp->dw[1].w, dp->dw[1].b);
    if (k->training && k->cfg.dropout > 0)
        ref_dropout_backward(k->cfg.dropout, k->seed, k->step * 65536 + (uint64_t)bi, dr1, NX,
                             dl1);
    else
        for (size_t i = 0; i < NX; i++)
            dl1[i] += dr1[i];
    ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, a->p1, a->l1, dl1, dp1, NX);
    ref_conv2d_backward(&pw, a->d1, p->pw[0].w, dp1, dd1, dp->pw[0].w, dp->pw[0].b);
    ref_conv2d_backward(&dw, a->f2, p->dw[0].w, dd1, df2, dp->dw[0].w, dp->dw[0].b);

    ref_mul_backward(shape_x, a->f1, shape_pix, a->ms, df2, df1, dms);
    ref_activation_backward(DSD_ACT_SIGMOID, 0, a->sc, a->ms, dms, dsc, NP);
    ref_conv2d_backward(&spatial, a->cat, p->sa.w, dsc, dcat, dp->sa.w, dp->sa.b);
    ref_concat_backward(N, 1, 1, H * W, dcat, dcm, dcx);
    ref_channel_mean_backward(dcm, N, C, H, W, df1);
    ref_channel_max_backward(a->f1, dcx, N, C, H, W, df1);

    ref_mul_backward(shape_x, x, shape_vec, a->mc, df1, dx, dmc);
    ref_activation_backward(DSD_ACT_SIGMOID, 0, a->s, a->mc, dmc, ds, NV);
    ref_add_backward(shape_vec, shape_vec, 1.0, ds, do1, do2);
    ref_conv2d_backward(&mlp2, a->a2, p->fc2.w, do2, da2, dp->fc2.w, dp->fc2.b);
    ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, a->h2, a->a2, da2, dh2, NH);
    ref_conv2d_backward(&mlp1, a->mx, p->fc1.w, dh2, dmx, dp->fc1.w, dp->fc1.b);
    ref_conv2d_backward(&mlp2, a->a1, p->fc2.w, do1, da1, dp->fc2.w, dp->fc2.b);
    ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, a->h1, a->a1, da1, dh1, NH);
    ref_conv2d_backward(&mlp1, a->avg, p->fc1.w, dh1, davg, dp->fc1.w, dp->fc1.b);
    ref_global_max_pool_backward(x, dmx, N, C, H, W, dx);
    ref_global_avg_pool_backward(davg, N, C, H, W, dx);

    double *all[] = {dp3, dd3, dl2, dp2, dd2, dr1, dl1, dp1, dd1, df2, df1, dms, dsc, dcat, dcm,
                     dcx, dmc, ds,  do1, do2, davg, dmx, da1, da2, dh1, dh2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
}

/* ------------------------------------------------------------------------ */
/* Reference generator */

void ref_gen_forward(const ref_gen_case *k, ref_gen_acts *a)
{
    ref_gen_dims d = ref_gen_dims_of(k);
    ref_gen_weights p;
    ref_gen_bind(k, k->p, &p);
    const int N = d.n, B = d.b;
    const size_t f = (size_t)N * d.h * d.w, f2 = (size_t)N * d.h2 * d.w2;
    ref_conv2d_geom head = ref_gen_geom(N, 3, d.h, d.w, B, 7, 1, 3, 1, 1),
                    down0 = ref_gen_geom(N, B, d.h, d.w, 2 * B, 3, 2, 1, 0, 1),
                    down1 = ref_gen_geom(N, 2 * B, d.h2, d.w2, d.c, 3, 2, 1, 0, 1),
                    up0 = ref_gen_geom(N, d.c, d.h4, d.w4, 8 * B, d.k, 1, d.k / 2, 0, 1),
                    up1 = ref_gen_geom(N, 2 * B, d.h2, d.w2, 4 * B, d.k, 1, d.k / 2, 0, 1),
                    tail = ref_gen_geom(N, B, d.h, d.w, 3, 7, 1, 3, 1, 1);
    ref_conv2d_forward(&head, k->x, p.head.w, p.head.b, a->h0);
    ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, a->h0, a->a0, f * B);
    ref_conv2d_forward(&down0, a->a0, p.down[0].w, p.down[0].b, a->h1);
    ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, a->h1, a->a1, f2 * 2 * B);
    ref_conv2d_forward(&down1, a->a1, p.down[1].w, p.down[1].b, a->h2);
    ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, a->h2, a->a2,
                           (size_t)N * d.c * d.h4 * d.w4);
    const double *feat = a->a2;
    for (int i = 0; i < d.nb; i++) {
        ref_gen_block_forward(k, &d, &p.blk[i], i, feat, &a->blk[i]);
        feat = a->blk[i].out;
    }
    ref_conv2d_forward(&up0, feat, p.up[0].w, p.up[0].b, a->u1);
    ref_pixel_shuffle_forward(2, N, 8 * B, d.h4, d.w4, a->u1, a->sh1);
    ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, a->sh1, a->v1, f2 * 2 * B);
    ref_conv2d_forward(&up1, a->v1, p.up[1].w, p.up[1].b, a->u2);
    ref_pixel_shuffle_forward(2, N, 4 * B, d.h2, d.w2, a->u2, a->sh2);
    ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, a->sh2, a->v2, f * B);
    ref_conv2d_forward(&tail, a->v2, p.tail.w, p.tail.b, a->tl);
    ref_activation_forward(DSD_ACT_TANH, 0, a->tl, a->t, f * 3);
    for (size_t i = 0; i < f * 3; i++)
        a->s[i] = k->x[i] + a->t[i];
    ref_clamp_forward(-1.0, 1.0, a->s, a->y, f * 3);
}

/* dx += dL/dx, dparams (laid out like k->p) += dL/dparams for upstream k->g. */
void ref_gen_backward(const ref_gen_case *k, const ref_gen_acts *a, double *dx, double *dparams)
{
    ref_gen_dims d = ref_gen_dims_of(k);
    ref_gen_weights p, dp;
    ref_gen_bind(k, k->p, &p);
    ref_gen_bind(k, dparams, &dp);
    const int N = d.n, B = d.b;
    const size_t f = (size_t)N * d.h * d.w, f2 = (size_t)N * d.h2 * d.w2,
                 f4 = (size_t)N * d.h4 * d.w4;
    ref_conv2d_geom head = ref_gen_geom(N, 3, d.h, d.w, B, 7, 1, 3, 1, 1),
                    down0 = ref_gen_geom(N, B, d.h, d.w, 2 * B, 3, 2, 1, 0, 1),
                    down1 = ref_gen_geom(N, 2 * B, d.h2, d.w2, d.c, 3, 2, 1, 0, 1),
                    up0 = ref_gen_geom(N, d.c, d.h4, d.w4, 8 * B, d.k, 1, d.k / 2, 0, 1),
                    up1 = ref_gen_geom(N, 2 * B, d.h2, d.w2, 4 * B, d.k, 1, d.k / 2, 0, 1),
                    tail = ref_gen_geom(N, B, d.h, d.w, 3, 7, 1, 3, 1, 1);
    double *ds = tu_alloc(f * 3), *dtl = tu_alloc(f * 3), *dv2 = tu_alloc(f * B),
           *dsh2 = tu_alloc(f * B), *du2 = tu_alloc(f2 * 4 * B), *dv1 = tu_alloc(f2 * 2 * B),
           *dsh1 = tu_alloc(f2 * 2 * B), *du1 = tu_alloc(f4 * 8 * B), *dh2 = tu_alloc(f4 * d.c),
           *da1 = tu_alloc(f2 * 2 * B), *dh1 = tu_alloc(f2 * 2 * B), *da0 = tu_alloc(f * B),
           *dh0 = tu_alloc(f * B);
    double *dfeat[REF_GEN_MAX_BLOCKS + 1];
    for (int i = 0; i <= d.nb; i++)
        dfeat[i] = tu_alloc(f4 * d.c); /* dfeat[i]: gradient of block i's input */

    ref_clamp_backward(-1.0, 1.0, a->s, k->g, ds, f * 3);
    for (size_t i = 0; i < f * 3; i++)
        dx[i] += ds[i];
    ref_activation_backward(DSD_ACT_TANH, 0, a->tl, a->t, ds, dtl, f * 3);
    ref_conv2d_backward(&tail, a->v2, p.tail.w, dtl, dv2, dp.tail.w, dp.tail.b);
    ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, a->sh2, a->v2, dv2, dsh2, f * B);
    ref_pixel_shuffle_backward(2, N, 4 * B, d.h2, d.w2, dsh2, du2);
    ref_conv2d_backward(&up1, a->v1, p.up[1].w, du2, dv1, dp.up[1].w, dp.up[1].b);
    ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, a->sh1, a->v1, dv1, dsh1, f2 * 2 * B);
    ref_pixel_shuffle_backward(2, N, 8 * B, d.h4, d.w4, dsh1, du1);
    const double *feat = d.nb > 0 ? a->blk[d.nb - 1].out : a->a2;
    ref_conv2d_backward(&up0, feat, p.up[0].w, du1, dfeat[d.nb], dp.up[0].w, dp.up[0].b);
    for (int i = d.nb - 1; i >= 0; i--) {
        const double *in = i > 0 ? a->blk[i - 1].out : a->a2;
        ref_gen_block_backward(k, &d, &p.blk[i], &dp.blk[i], i, in, &a->blk[i], dfeat[i + 1],
                           dfeat[i]);
    }
    ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, a->h2, a->a2, dfeat[0], dh2, f4 * d.c);
    ref_conv2d_backward(&down1, a->a1, p.down[1].w, dh2, da1, dp.down[1].w, dp.down[1].b);
    ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, a->h1, a->a1, da1, dh1, f2 * 2 * B);
    ref_conv2d_backward(&down0, a->a0, p.down[0].w, dh1, da0, dp.down[0].w, dp.down[0].b);
    ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, a->h0, a->a0, da0, dh0, f * B);
    ref_conv2d_backward(&head, k->x, p.head.w, dh0, dx, dp.head.w, dp.head.b);

    double *all[] = {ds, dtl, dv2, dsh2, du2, dv1, dsh1, du1, dh2, da1, dh1, da0, dh0};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    for (int i = 0; i <= d.nb; i++)
        free(dfeat[i]);
}

double ref_gen_loss(void *user)
{
    const ref_gen_case *k = user;
    ref_gen_dims d = ref_gen_dims_of(k);
    ref_gen_acts a;
    ref_gen_acts_alloc(&a, &d);
    ref_gen_forward(k, &a);
    double l = tu_dot(a.y, k->g, ref_gen_image_numel(k));
    ref_gen_acts_free(&a, &d);
    return l;
}

/* ------------------------------------------------------------------------ */
/* Case setup */

/* Random parameters (weights U(+-1.5/sqrt(fan_in)), biases U(+-0.3)), input
 * in [-0.9, 0.9], upstream in [-1, 1]; all rounded to float. */
void ref_gen_case_make(ref_gen_case *k, const dsd_generator *g, int n, int h, int w, uint64_t seed)
{
    memset(k, 0, sizeof *k);
    k->cfg = g->cfg;
    k->n = n;
    k->h = h;
    k->w = w;
    k->training = 1;
    k->step = REF_GEN_STEP;
    k->seed = REF_GEN_DROPOUT_SEED;
    k->table = &g->params;
    k->count = g->params.count;
    tu_rng r = tu_rng_init(seed);
    k->p = tu_alloc(k->count);
    for (size_t i = 0; i < g->params.n; i++) {
        const dsd_param_info *e = &g->params.info[i];
        double s = e->ndim == 4 ? 1.5 / sqrt((double)e->fan_in) : 0.3;
        tu_fill_nonzero(&r, k->p + e->offset, e->numel, 0.02 * s, s);
    }
    size_t ni = ref_gen_image_numel(k);
    k->x = tu_alloc(ni);
    k->g = tu_alloc(ni);
    tu_fill(&r, k->x, ni, -0.9, 0.9);
    tu_fill(&r, k->g, ni, -1.0, 1.0);
    for (size_t i = 0; i < k->count; i++)
        k->p[i] = (float)k->p[i];
    for (size_t i = 0; i < ni; i++) {
        k->x[i] = (float)k->x[i];
        k->g[i] = (float)k->g[i];
    }
}

void ref_gen_case_free(ref_gen_case *k)
{
    free(k->p);
    free(k->x);
    free(k->g);
}