/*
 * ref/pool.h: double-precision references for the pooling ops (the device
 * versions are src/ops/pool.c and cl/pool.cl). Written the obvious slow way.
 * Arrays are NCHW; backward functions ACCUMULATE (dx += ...) like the
 * library's, so a test can pre-fill them with the same values as the device
 * gradient. Max backward routes dy to the first maximum in the iteration
 * order (H then W for the global pool, channel order for channel max,
 * row-major in the 2x2 window).
 */
#ifndef DSDEBLUR_REF_POOL_H
#define DSDEBLUR_REF_POOL_H

/* x (n,c,h,w) -> y (n,c,1,1) */
void ref_global_avg_pool_forward(const double *x, int n, int c, int h, int w, double *y);
void ref_global_avg_pool_backward(const double *dy, int n, int c, int h, int w, double *dx);
void ref_global_max_pool_forward(const double *x, int n, int c, int h, int w, double *y);
void ref_global_max_pool_backward(const double *x, const double *dy, int n, int c, int h, int w,
                                  double *dx);

/* x (n,c,h,w) -> y (n,1,h,w) */
void ref_channel_mean_forward(const double *x, int n, int c, int h, int w, double *y);
void ref_channel_mean_backward(const double *dy, int n, int c, int h, int w, double *dx);
void ref_channel_max_forward(const double *x, int n, int c, int h, int w, double *y);
void ref_channel_max_backward(const double *x, const double *dy, int n, int c, int h, int w,
                              double *dx);

/* x (n,c,h,w) -> y (n,c,h/2,w/2), 2x2 windows, stride 2, floor */
void ref_maxpool2x2_forward(const double *x, int n, int c, int h, int w, double *y);
void ref_maxpool2x2_backward(const double *x, const double *dy, int n, int c, int h, int w,
                             double *dx);

#endif
