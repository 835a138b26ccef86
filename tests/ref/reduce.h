/*
 * ref/reduce.h: double-precision references for the whole-tensor reductions
 * (the device versions are src/ops/reduce.c and cl/reduce.cl). Written the
 * obvious slow way over `count` elements of a flat array. Backward functions
 * ACCUMULATE (dx += ...) like the library's.
 */
#ifndef DSDEBLUR_REF_REDUCE_H
#define DSDEBLUR_REF_REDUCE_H

#include <stddef.h>

/* y[0] = sum x, mean x, sum x^2 */
void ref_reduce_sum_forward(const double *x, size_t count, double *y);
void ref_reduce_mean_forward(const double *x, size_t count, double *y);
void ref_reduce_sum_squares_forward(const double *x, size_t count, double *y);

/* dx[i] += dy[0] (sum), dy[0] / count (mean), 2 x[i] dy[0] (sum of squares) */
void ref_reduce_sum_backward(const double *dy, size_t count, double *dx);
void ref_reduce_mean_backward(const double *dy, size_t count, double *dx);
void ref_reduce_sum_squares_backward(const double *x, const double *dy, size_t count,
                                     double *dx);

#endif
