/*
 * ref/depthwise.h: double-precision reference for the depthwise convolution
 * (the device version is src/ops/depthwise.c and cl/depthwise.cl). Written
 * the obvious slow way: forward loops over every output and tap; backward
 * scatters each output's gradient back through the same taps, so reflected
 * positions land on their source pixel exactly as the forward read them.
 * Arrays are NCHW; backward ACCUMULATES (dx += ...) like the library's.
 */
#ifndef DSDEBLUR_REF_DEPTHWISE_H
#define DSDEBLUR_REF_DEPTHWISE_H

/* One depthwise layer: x (n, c, h, w), weight (c, 1, kh, kw), bias (1, c, 1, 1),
 * y (n, c, out_h, out_w) with out_h = (h + 2*pad - kh)/stride + 1. reflect
 * selects PyTorch ReflectionPad2d padding (needs pad < h, pad < w), else zeros. */
typedef struct ref_depthwise_shape {
    int n, c, h, w;
    int kh, kw, stride, pad, reflect;
} ref_depthwise_shape;

int ref_depthwise_out_h(const ref_depthwise_shape *s);
int ref_depthwise_out_w(const ref_depthwise_shape *s);

/* The x index that padded index i (x's coordinates, -pad <= i < n + pad)
 * reads, or -1 for a zero-padding position. */
int ref_depthwise_source(int i, int n, int reflect);

/* y = bias + sum of weight * padded x; bias may be NULL. */
void ref_depthwise_forward(const ref_depthwise_shape *s, const double *x, const double *weight,
                           const double *bias, double *y);
/* dx += dL/dx, dweight += dL/dweight, dbias += dL/dbias for upstream dy;
 * any gradient may be NULL (skipped). */
void ref_depthwise_backward(const ref_depthwise_shape *s, const double *x, const double *weight,
                            const double *dy, double *dx, double *dweight, double *dbias);

#endif
