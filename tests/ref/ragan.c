/*
 * ref/ragan.c: the relativistic average GAN loss in double precision, term
 * by term from eqs. (5) - (7) (see ref/ragan.h). The gradient is the chain
 * rule written out: for the term mean_i BCE(x_i - mean(o), t),
 *   d/dx_i = (sigmoid(x_i - mean(o)) - t) / n
 *   d/do_j = -sum_i (sigmoid(x_i - mean(o)) - t) / n / n
 */
#include "ragan.h"

#include <math.h>

static double mean(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s / (double)n;
}

/* log(1 + exp(z)) - z t, i.e. BCE(sigmoid(z), t), without overflow */
static double bce(double z, double t)
{
    return fmax(z, 0.0) - z * t + log1p(exp(-fabs(z)));
}

static double sigmoid(double z)
{
    return 1.0 / (1.0 + exp(-z));
}

static double term(const double *x, const double *o, size_t n, double t)
{
    double m = mean(o, n), s = 0;
    for (size_t i = 0; i < n; i++)
        s += bce(x[i] - m, t);
    return s / (double)n;
}

static void term_backward(double scale, const double *x, const double *o, size_t n, double t,
                          double *dx, double *dother)
{
    double m = mean(o, n), sum_g = 0;
    for (size_t i = 0; i < n; i++) {
        double g = scale * (sigmoid(x[i] - m) - t) / (double)n;
        sum_g += g;
        if (dx)
            dx[i] += g;
    }
    for (size_t j = 0; dother && j < n; j++)
        dother[j] -= sum_g / (double)n;
}

double ref_ragan_loss_forward(int side, const double *real, const double *fake, size_t count)
{
    double t_real = side == 0 ? 1.0 : 0.0;
    return term(real, fake, count, t_real) + term(fake, real, count, 1.0 - t_real);
}

void ref_ragan_loss_backward(int side, double scale, const double *real, const double *fake,
                             size_t count, double *dreal, double *dfake)
{
    double t_real = side == 0 ? 1.0 : 0.0;
    term_backward(scale, real, fake, count, t_real, dreal, dfake);
    term_backward(scale, fake, real, count, 1.0 - t_real, dfake, dreal);
}
