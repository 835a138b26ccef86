/*
 * ref/blur.h: double-precision reference for the synthetic blur (the device
 * version is src/train/blur_apply.c on clFFT, with cl/blur.cl): the direct
 * 'same' convolution with reflect borders, written the obvious slow way
 * (no FFT), so it shares no algorithm with the device path.
 */
#ifndef DSDEBLUR_REF_BLUR_H
#define DSDEBLUR_REF_BLUR_H

/* numpy.pad mode 'reflect' / ReflectionPad2d index: i in [-(n-1), 2n-2] ->
 * [0, n-1], the edge pixel not repeated (n == 1 gives 0). */
int ref_reflect(int i, int n);

/* y (n, c, h, w) = x (*) k, the PSF k (kn, 1, kh, kw) with kn = 1 (shared) or n:
 *   y[b,ch,i,j] = sum_{p,q} k[b,p,q] * x[b,ch, reflect(i + (kh-1)/2 - p), reflect(j + (kw-1)/2 - q)]
 * (a true convolution: the PSF flipped; anchor ((kh-1)/2, (kw-1)/2)). */
void ref_blur_forward(const double *x, int n, int c, int h, int w, const double *k, int kn,
                      int kh, int kw, double *y);

#endif
