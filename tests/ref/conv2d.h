/*
 * ref/conv2d.h: double-precision reference for 2-D convolution (the device
 * versions are src/ops/conv2d.c with cl/conv2d.cl, and src/ops/depthwise.c
 * for groups == Cin). Written the obvious slow way: a direct loop over every
 * output element and every kernel tap, reading the padded input through
 * ref_conv2d_pad_index. Grouped convolution is supported (weight
 * (Cout, Cin/groups, KH, KW), output channel co reads input channels of group
 * co / (Cout/groups)).
 *
 * Arrays are NCHW. Backward functions ACCUMULATE (dx += ..., dw += ...,
 * db += ...) like the library's, so a test can pre-fill them with the values
 * it put in the device gradients. Any gradient pointer may be NULL.
 */
#ifndef DSDEBLUR_REF_CONV2D_H
#define DSDEBLUR_REF_CONV2D_H

typedef struct ref_conv2d_geom {
    int n, cin, h, w;      /* x (n, cin, h, w) */
    int cout, kh, kw;      /* weight (cout, cin/groups, kh, kw) */
    int stride, pad;
    int reflect;           /* 0: zero padding; 1: ReflectionPad2d (edge not repeated) */
    int groups;            /* divides cin and cout */
} ref_conv2d_geom;

/* OH = (h + 2 pad - kh) / stride + 1, OW likewise. */
int ref_conv2d_out_h(const ref_conv2d_geom *g);
int ref_conv2d_out_w(const ref_conv2d_geom *g);

/* The input index (0 .. size-1) a padded coordinate i (-pad .. size+pad-1)
 * reads, or -1 for a zero-padding position. */
int ref_conv2d_pad_index(int i, int size, int reflect);

/* y (n, cout, OH, OW) = conv(x, w) + b; b (cout) may be NULL. */
void ref_conv2d_forward(const ref_conv2d_geom *g, const double *x, const double *w,
                        const double *b, double *y);

/* dx (n, cin, h, w) += dL/dx, dw += dL/dw, db (cout) += dL/db for the upstream
 * gradient dy (n, cout, OH, OW). */
void ref_conv2d_backward(const ref_conv2d_geom *g, const double *x, const double *w,
                         const double *dy, double *dx, double *dw, double *db);

#endif
