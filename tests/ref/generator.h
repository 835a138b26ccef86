/*
 * ref/generator.h: the double-precision reference generator (the paper's
 * network, sections 2.1 - 2.4, as dsdeblur_model.h describes it), composed
 * from the op references in tests/ref. Used by tests/test-generator.c and by
 * the composed GAN-loss test, tests/test-gan-step.c.
 *
 * Written the plain way: every pre- and post-activation kept, no in-place
 * tricks, so it also checks the library's in-place LeakyReLU, dropout and
 * residual shortcuts. Its parameters are found by name in the library's
 * table, with their sizes checked against the reference's own arithmetic, so
 * a wrong name, shape or offset fails the calling test (ck_assert).
 */
#ifndef DSDEBLUR_REF_GENERATOR_H
#define DSDEBLUR_REF_GENERATOR_H

#include "dsdeblur.h"

#include <stddef.h>
#include <stdint.h>

#define REF_GEN_DROPOUT_SEED 0x1234abcdULL
#define REF_GEN_STEP 7u

typedef struct ref_gen_case {
    dsd_generator_config cfg;
    int n, h, w;
    int training;            /* reference: apply dropout */
    uint64_t step, seed;     /* dropout stream and key */
    const dsd_params *table; /* the library's table: names -> offsets */
    size_t count;
    double *p;               /* parameters (count) */
    double *x, *g;           /* input and upstream gradient (N, 3, H, W) */
} ref_gen_case;

typedef struct ref_gen_dims {
    int n, h, w, h2, w2, h4, w4, b, c, hid, k, nb;
} ref_gen_dims;

typedef struct ref_conv_weights {
    double *w, *b;
} ref_conv_weights;

typedef struct ref_block_weights {
    ref_conv_weights fc1, fc2, sa, dw[3], pw[3];
} ref_block_weights;

enum { REF_GEN_MAX_BLOCKS = 4 };

typedef struct ref_gen_weights {
    ref_conv_weights head, down[2], up[2], tail;
    ref_block_weights blk[REF_GEN_MAX_BLOCKS];
} ref_gen_weights;

typedef struct ref_block_acts {
    double *avg, *mx, *h1, *a1, *h2, *a2, *o1, *o2, *s, *mc;      /* vectors */
    double *f1, *cm, *cx, *cat, *sc, *ms, *f2;                   /* attention */
    double *d1, *p1, *l1, *r1, *d2, *p2, *l2, *d3, *p3, *out;    /* DSCs */
} ref_block_acts;

typedef struct ref_gen_acts {
    double *h0, *a0, *h1, *a1, *h2, *a2;
    ref_block_acts blk[REF_GEN_MAX_BLOCKS];
    double *u1, *sh1, *v1, *u2, *sh2, *v2, *tl, *t, *s, *y;
} ref_gen_acts;


/* The sizes every layer of case k sees. */
ref_gen_dims ref_gen_dims_of(const ref_gen_case *k);
/* Elements of the input (and output) image batch, N x 3 x H x W. */
size_t ref_gen_image_numel(const ref_gen_case *k);
/* Every activation of the reference forward (tu_alloc'd; free with _free). */
void ref_gen_acts_alloc(ref_gen_acts *a, const ref_gen_dims *d);
void ref_gen_acts_free(ref_gen_acts *a, const ref_gen_dims *d);
/* Forward of case k: every pre- and post-activation into a, output a->y. */
void ref_gen_forward(const ref_gen_case *k, ref_gen_acts *a);
/* dx += dL/dx, dparams (laid out like k->p) += dL/dparams for the upstream k->g. */
void ref_gen_backward(const ref_gen_case *k, const ref_gen_acts *a, double *dx, double *dparams);
/* sum(G(x) * k->g) for a ref_gen_case *: the scalar finite differences use. */
double ref_gen_loss(void *user);
/* Random parameters (weights U(+-1.5/sqrt(fan_in)), biases U(+-0.3)) laid out
 * by g's table, input in [-0.9, 0.9], upstream in [-1, 1]; all rounded to float. */
void ref_gen_case_make(ref_gen_case *k, const dsd_generator *g, int n, int h, int w, uint64_t seed);
void ref_gen_case_free(ref_gen_case *k);

#endif
