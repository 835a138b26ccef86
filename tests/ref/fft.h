/*
 * ref/fft.h: double-precision reference for the frequency loss (the device
 * version is src/ops/fft_loss.c on clFFT, with cl/fft_loss.cl). A plain 2-D
 * DFT per plane, written the obvious slow way (O((HW)^2) per plane, no FFT
 * library), so it shares no code or algorithm with the device path. Arrays
 * are NCHW; the backward ACCUMULATES like the library's and skips a NULL
 * gradient.
 */
#ifndef DSDEBLUR_REF_FFT_H
#define DSDEBLUR_REF_FFT_H

/* The unnormalized 2-D DFT of one real h x w plane x (row-major):
 *   re/im[kh*w + kw] = sum_{y,x} x[y*w + x] exp(-2 pi i (kh y / h + kw x / w)).
 * Twiddles at multiples of a quarter turn are exact, so Im is exactly 0 where
 * the spectrum of a real plane is real. */
void ref_dft2(const double *x, int h, int w, double *re, double *im);

/* loss = mean over the 2 n c h w values |Re D|, |Im D| of D = DFT2(a - b) per plane */
double ref_fft_loss_forward(const double *a, const double *b, int n, int c, int h, int w);

/* da += scale Re(IDFT_unnormalized(sign(Re D) + i sign(Im D))) / (2 n c h w),
 * db -= the same (sign(0) = 0) */
void ref_fft_loss_backward(double scale, const double *a, const double *b, int n, int c, int h,
                           int w, double *da, double *db);

/* The smallest |Re D| or |Im D| over all planes and frequencies, leaving out
 * Im at the frequencies where it is 0 for every real input (2 kh = 0 mod h and
 * 2 kw = 0 mod w). Tests keep this away from 0 so that no sign is ambiguous
 * and finite differences do not straddle a kink. */
double ref_fft_loss_min_abs(const double *a, const double *b, int n, int c, int h, int w);

#endif
