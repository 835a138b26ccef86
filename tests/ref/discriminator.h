/*
 * ref/discriminator.h: the double-precision reference PatchGAN discriminator
 * (paper section 2.5, as dsdeblur_model.h describes it), composed from the
 * op references in tests/ref (conv2d, instance norm, LeakyReLU). Used by
 * tests/test-discriminator.c and by the composed GAN-loss test,
 * tests/test-gan-step.c. Parameters are found by name in the library's table
 * and their sizes checked (ck_assert).
 */
#ifndef DSDEBLUR_REF_DISCRIMINATOR_H
#define DSDEBLUR_REF_DISCRIMINATOR_H

#include "dsdeblur.h"

#include <stddef.h>
#include <stdint.h>

enum { REF_DISC_MAXL = DSD_DISCRIMINATOR_MAX_LAYERS + 2 };

typedef struct ref_disc_case {
    dsd_discriminator_config cfg;
    int n, h, w;
    const dsd_params *table;
    size_t count;
    double *p;        /* parameters */
    double *x, *g;    /* input, upstream gradient of the logits */
    int oh, ow;
} ref_disc_case;

/* The reference's own view of the layers. */
typedef struct ref_disc_layer {
    int cin, cout, stride, norm, act;
    int h, w, oh, ow;               /* input and output sizes */
    double *wt, *b, *gamma, *beta;  /* into the parameter (or gradient) array */
} ref_disc_layer;

/* Reference activations per layer. */
typedef struct ref_disc_acts {
    int nconv;
    double *z[REF_DISC_MAXL], *nrm[REF_DISC_MAXL], *a[REF_DISC_MAXL], *mean[REF_DISC_MAXL], *rstd[REF_DISC_MAXL];
} ref_disc_acts;

/* Forward of x (laid out like case k's input) into t; the logits are
 * t->a[t->nconv - 1]. Free t with ref_disc_acts_free. */
void ref_disc_forward(const ref_disc_case *k, const double *x, ref_disc_acts *t);

void ref_disc_acts_free(ref_disc_acts *t);
/* dx += dL/dx, dparams (laid out like k->p) += dL/dparams for upstream dlogits. */
void ref_disc_backward(const ref_disc_case *k, const double *x, const ref_disc_acts *t,
                         const double *dlogits, double *dx, double *dparams);

size_t ref_disc_logits_numel(const ref_disc_case *k);

size_t ref_disc_image_numel(const ref_disc_case *k);
/* sum(D(k->x) * k->g) for a ref_disc_case *: the scalar finite differences use. */
double ref_disc_loss(void *user);

/* Weights U(+-1.5/sqrt(fan_in)), conv biases U(+-0.3), norm weights in
 * [0.5, 1.5], norm biases U(+-0.3); x in [-1, 1]; all rounded to float. */
void ref_disc_case_make(ref_disc_case *k, const dsd_discriminator *d, int n, int h, int w,
                      uint64_t seed);

void ref_disc_case_free(ref_disc_case *k);

#endif
