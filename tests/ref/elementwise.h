/*
 * ref/elementwise.h: double-precision references for the broadcast
 * elementwise ops, scale, clamp and channel concat (the device versions are
 * src/ops/elementwise.c and cl/elementwise.cl). Written the obvious slow way.
 *
 * Shapes are int[4] (N, C, H, W), arrays NCHW. b broadcasts against a: each
 * of b's N, C and (H,W) is a's or 1. Backward functions ACCUMULATE (da += ...,
 * db += ...) like the library's; a NULL gradient is skipped.
 */
#ifndef DSDEBLUR_REF_ELEMENTWISE_H
#define DSDEBLUR_REF_ELEMENTWISE_H

#include <stddef.h>

/* y (a's shape) = a + alpha * b */
void ref_add_forward(const int a_shape[4], const double *a, const int b_shape[4],
                     const double *b, double alpha, double *y);
/* da += dy; db += alpha * sum of dy over the broadcast dimensions */
void ref_add_backward(const int a_shape[4], const int b_shape[4], double alpha,
                      const double *dy, double *da, double *db);
/* y = a * b */
void ref_mul_forward(const int a_shape[4], const double *a, const int b_shape[4],
                     const double *b, double *y);
/* da += dy * b; db += sum of dy * a over the broadcast dimensions */
void ref_mul_backward(const int a_shape[4], const double *a, const int b_shape[4],
                      const double *b, const double *dy, double *da, double *db);

/* y = alpha * x; dx += alpha * dy */
void ref_scale_forward(double alpha, const double *x, double *y, size_t n);
void ref_scale_backward(double alpha, const double *dy, double *dx, size_t n);

/* y = min(max(x, lo), hi); dx += dy where lo <= x <= hi */
void ref_clamp_forward(double lo, double hi, const double *x, double *y, size_t n);
void ref_clamp_backward(double lo, double hi, const double *x, const double *dy, double *dx,
                        size_t n);

/* a (n, ca, hw), b (n, cb, hw) -> y (n, ca + cb, hw) */
void ref_concat_forward(int n, int ca, int cb, int hw, const double *a, const double *b,
                        double *y);
void ref_concat_backward(int n, int ca, int cb, int hw, const double *dy, double *da,
                         double *db);

#endif
