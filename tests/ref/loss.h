/*
 * ref/loss.h: double-precision references for the mean-reduced losses (the
 * device versions are src/ops/loss.c, cl/loss.cl and the fused terms of
 * cl/reduce.cl). Flat arrays of `count` elements; backward functions
 * ACCUMULATE like the library's and skip a NULL gradient.
 */
#ifndef DSDEBLUR_REF_LOSS_H
#define DSDEBLUR_REF_LOSS_H

#include <stddef.h>

/* loss[0] = mean (a - b)^2; da += scale 2 (a - b) / count, db -= the same */
void ref_mse_loss_forward(const double *a, const double *b, size_t count, double *loss);
void ref_mse_loss_backward(double scale, const double *a, const double *b, size_t count,
                           double *da, double *db);

/* loss[0] = mean |a - b|; da += scale sign(a - b) / count (sign(0) = 0), db -= the same */
void ref_l1_loss_forward(const double *a, const double *b, size_t count, double *loss);
void ref_l1_loss_backward(double scale, const double *a, const double *b, size_t count,
                          double *da, double *db);

/* loss[0] = mean of max(z,0) - z t + log(1 + exp(-|z|)), the binary cross-entropy
 * of sigmoid(z) against the constant target t; dz += scale (sigmoid(z) - t) / count */
void ref_bce_logits_loss_forward(const double *z, size_t count, double target, double *loss);
void ref_bce_logits_loss_backward(double scale, const double *z, size_t count, double target,
                                  double *dz);

#endif
