/*
 * ref/norm.h: double-precision reference for instance normalization (the
 * device version is src/ops/norm.c and cl/norm.cl). Written the obvious slow
 * way: two passes for mean and biased variance per (n, c) plane.
 * Arrays are NCHW; gamma / beta are (c) or NULL (1 / 0); mean / rstd are
 * (n*c). Backward ACCUMULATES into dx, dgamma, dbeta (any may be NULL), like
 * the library's.
 */
#ifndef DSDEBLUR_REF_NORM_H
#define DSDEBLUR_REF_NORM_H

/* y = (x - mean) * rstd * gamma + beta, rstd = 1 / sqrt(var + eps); mean and
 * rstd are written when not NULL. */
void ref_instance_norm_forward(const double *x, int n, int c, int h, int w, double eps,
                               const double *gamma, const double *beta, double *y,
                               double *mean, double *rstd);

/* With xhat = (x - mean) * rstd and g = dy * gamma:
 * dx += rstd * (g - mean(g) - xhat * mean(g * xhat)) per plane,
 * dgamma[c] += sum over n, h, w of dy * xhat, dbeta[c] += sum of dy. */
void ref_instance_norm_backward(const double *x, int n, int c, int h, int w,
                                const double *gamma, const double *mean, const double *rstd,
                                const double *dy, double *dx, double *dgamma, double *dbeta);

#endif
