/*
 * ref/dropout.h: references for dropout (the device version is
 * src/ops/dropout.c and cl/dropout.cl). ref_philox4x32_10 is an independent
 * implementation of the generator, written from Salmon et al. (SC 2011) and
 * Random123's philox.h, and checked by the tests against Random123's
 * published known-answer vectors. Backward ACCUMULATES like the library's.
 */
#ifndef DSDEBLUR_REF_DROPOUT_H
#define DSDEBLUR_REF_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

/* All four output words of Philox4x32-10(ctr, key). */
void ref_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* 1 when element `index` is kept: u = (first word >> 8) / 2^24 >= p, with
 * counter (index, stream lo, stream hi, 0) and key (seed lo, seed hi). */
int ref_dropout_keep(double p, uint64_t seed, uint64_t stream, uint32_t index);

/* y[i] = keep(i) ? x[i] / (1 - p) : 0 for the flat index i < count */
void ref_dropout_forward(double p, uint64_t seed, uint64_t stream, const double *x,
                         size_t count, double *y);
/* dx[i] += keep(i) ? dy[i] / (1 - p) : 0 */
void ref_dropout_backward(double p, uint64_t seed, uint64_t stream, const double *dy,
                          size_t count, double *dx);

#endif
