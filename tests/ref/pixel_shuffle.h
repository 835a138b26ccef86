/*
 * ref/pixel_shuffle.h: double-precision PixelShuffle / PixelUnshuffle (the
 * device versions are src/ops/pixel_shuffle.c and cl/pixel_shuffle.cl), in
 * PyTorch's order:
 *     big[n, c, h*r + i, w*r + j] = small[n, c*r*r + i*r + j, h, w]
 * small (n, c*r*r, h, w), big (n, c, h*r, w*r). Shapes are given as small's
 * (n, c, h, w) with c = C*r*r for shuffle and as big's for unshuffle, i.e.
 * always the input's shape. Backward ACCUMULATES (dx += ...).
 */
#ifndef DSDEBLUR_REF_PIXEL_SHUFFLE_H
#define DSDEBLUR_REF_PIXEL_SHUFFLE_H

/* x (n, c, h, w), c divisible by r*r -> y (n, c/(r*r), h*r, w*r) */
void ref_pixel_shuffle_forward(int r, int n, int c, int h, int w, const double *x, double *y);
void ref_pixel_shuffle_backward(int r, int n, int c, int h, int w, const double *dy,
                                double *dx);
/* x (n, c, h, w), h and w divisible by r -> y (n, c*r*r, h/r, w/r) */
void ref_pixel_unshuffle_forward(int r, int n, int c, int h, int w, const double *x, double *y);
void ref_pixel_unshuffle_backward(int r, int n, int c, int h, int w, const double *dy,
                                  double *dx);

#endif
