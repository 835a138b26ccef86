/*
 * ref/discriminator.c: the double-precision reference discriminator (see
 * ref/discriminator.h).
 */
#include "discriminator.h"

#include "../testutil.h"
#include "activation.h"
#include "conv2d.h"
#include "norm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOPE 0.2
#define EPS 1e-5


/* ------------------------------------------------------------------------ */
static double *ref_disc_param(const ref_disc_case *k, double *base, size_t numel, const char *name,
                         int required)
{
    const dsd_param_info *e = dsd_params_find(k->table, name);
    if (!e) {
        ck_assert_msg(!required, "no parameter '%s'", name);
        return NULL;
    }
    ck_assert_msg(e->numel == numel, "'%s' has %zu elements, expected %zu", name, e->numel,
                  numel);
    return base + e->offset;
}

/* Layers as the header describes them, computed independently here. */
static int ref_disc_layers(const ref_disc_case *k, double *base, ref_disc_layer *l)
{
    const int L = k->cfg.n_layers, B = k->cfg.base_width;
    int nconv = L + 2, h = k->h, w = k->w, cin = k->cfg.in_channels;
    for (int i = 0; i < nconv; i++) {
        int mult = i == 0 ? 1 : (1 << i) < 8 ? (1 << i) : 8;
        ref_disc_layer *r = &l[i];
        r->cin = cin;
        r->cout = i == nconv - 1 ? 1 : B * mult;
        r->stride = i < L ? 2 : 1;
        r->norm = i >= 1 && i <= L;
        r->act = i < nconv - 1;
        r->h = h;
        r->w = w;
        r->oh = (h + 4 - 4) / r->stride + 1;
        r->ow = (w + 4 - 4) / r->stride + 1;
        char name[64];
        snprintf(name, sizeof name, "layers.%d.conv.weight", i);
        r->wt = ref_disc_param(k, base, (size_t)r->cout * r->cin * 16, name, 1);
        snprintf(name, sizeof name, "layers.%d.conv.bias", i);
        r->b = ref_disc_param(k, base, (size_t)r->cout, name, 1);
        snprintf(name, sizeof name, "layers.%d.norm.weight", i);
        r->gamma = ref_disc_param(k, base, (size_t)r->cout, name, r->norm && k->cfg.norm_affine);
        snprintf(name, sizeof name, "layers.%d.norm.bias", i);
        r->beta = ref_disc_param(k, base, (size_t)r->cout, name, r->norm && k->cfg.norm_affine);
        ck_assert(!r->gamma || (r->norm && k->cfg.norm_affine));
        h = r->oh;
        w = r->ow;
        cin = r->cout;
    }
    return nconv;
}

static ref_conv2d_geom ref_disc_layer_geom(const ref_disc_case *k, const ref_disc_layer *r)
{
    ref_conv2d_geom g = {k->n, r->cin, r->h, r->w, r->cout, 4, 4, r->stride, 2, 0, 1};
    return g;
}

void ref_disc_forward(const ref_disc_case *k, const double *x, ref_disc_acts *t)
{
    ref_disc_layer l[REF_DISC_MAXL];
    int nconv = ref_disc_layers(k, k->p, l);
    t->nconv = nconv;
    const double *in = x;
    for (int i = 0; i < nconv; i++) {
        const ref_disc_layer *r = &l[i];
        size_t m = (size_t)k->n * r->cout * r->oh * r->ow;
        ref_conv2d_geom g = ref_disc_layer_geom(k, r);
        t->z[i] = tu_alloc(m);
        t->nrm[i] = tu_alloc(m);
        t->a[i] = tu_alloc(m);
        t->mean[i] = tu_alloc((size_t)k->n * r->cout);
        t->rstd[i] = tu_alloc((size_t)k->n * r->cout);
        ref_conv2d_forward(&g, in, r->wt, r->b, t->z[i]);
        if (r->norm)
            ref_instance_norm_forward(t->z[i], k->n, r->cout, r->oh, r->ow, EPS, r->gamma,
                                      r->beta, t->nrm[i], t->mean[i], t->rstd[i]);
        else
            memcpy(t->nrm[i], t->z[i], m * sizeof(double));
        if (r->act)
            ref_activation_forward(DSD_ACT_LEAKY_RELU, SLOPE, t->nrm[i], t->a[i], m);
        else
            memcpy(t->a[i], t->nrm[i], m * sizeof(double));
        in = t->a[i];
    }
}

void ref_disc_acts_free(ref_disc_acts *t)
{
    for (int i = 0; i < t->nconv; i++) {
        free(t->z[i]);
        free(t->nrm[i]);
        free(t->a[i]);
        free(t->mean[i]);
        free(t->rstd[i]);
    }
}

/* dx += dL/dx, dparams += dL/dparams for upstream dlogits. */
void ref_disc_backward(const ref_disc_case *k, const double *x, const ref_disc_acts *t,
                         const double *dlogits, double *dx, double *dparams)
{
    ref_disc_layer l[REF_DISC_MAXL], dl[REF_DISC_MAXL];
    int nconv = ref_disc_layers(k, k->p, l);
    ref_disc_layers(k, dparams, dl);
    size_t m_last = (size_t)k->n * l[nconv - 1].cout * l[nconv - 1].oh * l[nconv - 1].ow;
    double *da = tu_alloc(m_last);
    memcpy(da, dlogits, m_last * sizeof(double));
    for (int i = nconv - 1; i >= 0; i--) {
        const ref_disc_layer *r = &l[i];
        size_t m = (size_t)k->n * r->cout * r->oh * r->ow;
        double *dn = tu_alloc(m), *dz = tu_alloc(m);
        if (r->act)
            ref_activation_backward(DSD_ACT_LEAKY_RELU, SLOPE, t->nrm[i], t->a[i], da, dn, m);
        else
            memcpy(dn, da, m * sizeof(double));
        if (r->norm)
            ref_instance_norm_backward(t->z[i], k->n, r->cout, r->oh, r->ow, r->gamma,
                                       t->mean[i], t->rstd[i], dn, dz, dl[i].gamma, dl[i].beta);
        else
            memcpy(dz, dn, m * sizeof(double));
        ref_conv2d_geom g = ref_disc_layer_geom(k, r);
        size_t min = (size_t)k->n * r->cin * r->h * r->w;
        double *din = i > 0 ? tu_alloc(min) : dx;
        ref_conv2d_backward(&g, i > 0 ? t->a[i - 1] : x, r->wt, dz, din, dl[i].wt, dl[i].b);
        free(dn);
        free(dz);
        free(da);
        da = i > 0 ? din : NULL;
    }
}

size_t ref_disc_logits_numel(const ref_disc_case *k)
{
    return (size_t)k->n * k->oh * k->ow;
}

size_t ref_disc_image_numel(const ref_disc_case *k)
{
    return (size_t)k->n * k->cfg.in_channels * k->h * k->w;
}

double ref_disc_loss(void *user)
{
    const ref_disc_case *k = user;
    ref_disc_acts t;
    ref_disc_forward(k, k->x, &t);
    double l = tu_dot(t.a[t.nconv - 1], k->g, ref_disc_logits_numel(k));
    ref_disc_acts_free(&t);
    return l;
}

/* ------------------------------------------------------------------------ */
/* Weights U(+-1.5/sqrt(fan_in)), conv biases U(+-0.3), norm weights in
 * [0.5, 1.5], norm biases U(+-0.3); x in [-1, 1]; all rounded to float. */
void ref_disc_case_make(ref_disc_case *k, const dsd_discriminator *d, int n, int h, int w,
                      uint64_t seed)
{
    memset(k, 0, sizeof *k);
    k->cfg = d->cfg;
    k->n = n;
    k->h = h;
    k->w = w;
    k->table = &d->params;
    k->count = d->params.count;
    TU_OK(dsd_discriminator_output_size(&k->cfg, h, w, &k->oh, &k->ow, NULL));
    tu_rng r = tu_rng_init(seed);
    k->p = tu_alloc(k->count);
    for (size_t i = 0; i < d->params.n; i++) {
        const dsd_param_info *e = &d->params.info[i];
        double *dst = k->p + e->offset;
        if (e->init == DSD_PARAM_INIT_ONES)
            tu_fill(&r, dst, e->numel, 0.5, 1.5);
        else if (e->ndim == 4)
            tu_fill_nonzero(&r, dst, e->numel, 0.03 / sqrt((double)e->fan_in),
                            1.5 / sqrt((double)e->fan_in));
        else
            tu_fill_nonzero(&r, dst, e->numel, 0.01, 0.3);
    }
    size_t ni = ref_disc_image_numel(k), nl = ref_disc_logits_numel(k);
    k->x = tu_alloc(ni);
    k->g = tu_alloc(nl);
    tu_fill(&r, k->x, ni, -1.0, 1.0);
    tu_fill(&r, k->g, nl, -1.0, 1.0);
    for (size_t i = 0; i < k->count; i++)
        k->p[i] = (float)k->p[i];
    for (size_t i = 0; i < ni; i++)
        k->x[i] = (float)k->x[i];
    for (size_t i = 0; i < nl; i++)
        k->g[i] = (float)k->g[i];
}

void ref_disc_case_free(ref_disc_case *k)
{
    free(k->p);
    free(k->x);
    free(k->g);
}