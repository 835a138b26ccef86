/*
 * ref/adam.h: double-precision reference of the Adam step (the device
 * version is src/optim/adam.c and cl/adam.cl), written the obvious way from
 * PyTorch's torch.optim.Adam (amsgrad off, weight_decay 0):
 *
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *
 * Arrays are flat (n elements) and updated in place. t >= 1.
 */
#ifndef DSDEBLUR_REF_ADAM_H
#define DSDEBLUR_REF_ADAM_H

#include <stddef.h>

typedef struct ref_adam_params {
    double lr, beta1, beta2, eps;
} ref_adam_params;

void ref_adam_step(const ref_adam_params *hp, int t, double *p, const double *g, double *m,
                   double *v, size_t n);

#endif
