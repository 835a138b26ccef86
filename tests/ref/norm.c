/*
 * ref/norm.c: double-precision instance normalization reference (see norm.h).
 */
#include "norm.h"

#include <math.h>
#include <stddef.h>

void ref_instance_norm_forward(const double *x, int n, int c, int h, int w, double eps,
                               const double *gamma, const double *beta, double *y,
                               double *mean, double *rstd)
{
    size_t hw = (size_t)h * w;
    for (size_t g = 0; g < (size_t)n * c; g++) {
        const double *p = x + g * hw;
        int ch = (int)(g % (size_t)c);
        double mu = 0.0, var = 0.0;
        for (size_t i = 0; i < hw; i++)
            mu += p[i];
        mu /= (double)hw;
        for (size_t i = 0; i < hw; i++)
            var += (p[i] - mu) * (p[i] - mu);
        var /= (double)hw;
        double r = 1.0 / sqrt(var + eps);
        double ga = gamma ? gamma[ch] : 1.0, be = beta ? beta[ch] : 0.0;
        for (size_t i = 0; i < hw; i++)
            y[g * hw + i] = (p[i] - mu) * r * ga + be;
        if (mean)
            mean[g] = mu;
        if (rstd)
            rstd[g] = r;
    }
}

void ref_instance_norm_backward(const double *x, int n, int c, int h, int w,
                                const double *gamma, const double *mean, const double *rstd,
                                const double *dy, double *dx, double *dgamma, double *dbeta)
{
    size_t hw = (size_t)h * w;
    for (size_t g = 0; g < (size_t)n * c; g++) {
        const double *p = x + g * hw, *d = dy + g * hw;
        int ch = (int)(g % (size_t)c);
        double ga = gamma ? gamma[ch] : 1.0, mu = mean[g], r = rstd[g];
        double mean_g = 0.0, mean_gx = 0.0, sum_dy = 0.0, sum_dyx = 0.0;
        for (size_t i = 0; i < hw; i++) {
            double xhat = (p[i] - mu) * r;
            mean_g += d[i] * ga;
            mean_gx += d[i] * ga * xhat;
            sum_dy += d[i];
            sum_dyx += d[i] * xhat;
        }
        mean_g /= (double)hw;
        mean_gx /= (double)hw;
        if (dx)
            for (size_t i = 0; i < hw; i++) {
                double xhat = (p[i] - mu) * r;
                dx[g * hw + i] += r * (d[i] * ga - mean_g - xhat * mean_gx);
            }
        if (dgamma)
            dgamma[ch] += sum_dyx;
        if (dbeta)
            dbeta[ch] += sum_dy;
    }
}
