/*
 * ref/activation.h: double-precision references for the activations (the
 * device versions are src/ops/activation.c and cl/activation.cl). act takes
 * dsd_activation's values (0 LeakyReLU, 1 ReLU, 2 sigmoid, 3 tanh). Backward
 * ACCUMULATES (dx += ...) like the library's; it reads x for the ReLU family
 * (gradient at exactly 0: 0 for ReLU, slope for LeakyReLU, as PyTorch) and
 * y = f(x) for sigmoid and tanh.
 */
#ifndef DSDEBLUR_REF_ACTIVATION_H
#define DSDEBLUR_REF_ACTIVATION_H

#include <stddef.h>

void ref_activation_forward(int act, double slope, const double *x, double *y, size_t n);
void ref_activation_backward(int act, double slope, const double *x, const double *y,
                             const double *dy, double *dx, size_t n);

#endif
