/*
 * ref/loss.c: double-precision references for the losses (see loss.h).
 * The BCE is written as the textbook -[t log s + (1-t) log(1-s)] rearranged
 * into a form that cannot overflow: log(1 + exp(z)) - z t with
 * log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)).
 */
#include "loss.h"

#include <math.h>

void ref_mse_loss_forward(const double *a, const double *b, size_t count, double *loss)
{
    double s = 0.0;
    for (size_t i = 0; i < count; i++)
        s += (a[i] - b[i]) * (a[i] - b[i]);
    loss[0] = s / (double)count;
}

void ref_mse_loss_backward(double scale, const double *a, const double *b, size_t count,
                           double *da, double *db)
{
    for (size_t i = 0; i < count; i++) {
        double d = scale * 2.0 * (a[i] - b[i]) / (double)count;
        if (da)
            da[i] += d;
        if (db)
            db[i] -= d;
    }
}

void ref_l1_loss_forward(const double *a, const double *b, size_t count, double *loss)
{
    double s = 0.0;
    for (size_t i = 0; i < count; i++)
        s += fabs(a[i] - b[i]);
    loss[0] = s / (double)count;
}

void ref_l1_loss_backward(double scale, const double *a, const double *b, size_t count,
                          double *da, double *db)
{
    for (size_t i = 0; i < count; i++) {
        double diff = a[i] - b[i];
        double sign = diff > 0.0 ? 1.0 : diff < 0.0 ? -1.0 : 0.0;
        double d = scale * sign / (double)count;
        if (da)
            da[i] += d;
        if (db)
            db[i] -= d;
    }
}

void ref_bce_logits_loss_forward(const double *z, size_t count, double target, double *loss)
{
    double s = 0.0;
    for (size_t i = 0; i < count; i++)
        s += fmax(z[i], 0.0) - z[i] * target + log1p(exp(-fabs(z[i])));
    loss[0] = s / (double)count;
}

void ref_bce_logits_loss_backward(double scale, const double *z, size_t count, double target,
                                  double *dz)
{
    for (size_t i = 0; i < count; i++) {
        /* sigmoid(z) - t, with sigmoid(z) = 1 - s for z >= 0, s = sigmoid(-|z|):
         * no cancellation when t is 0 or 1 and the sigmoid saturates */
        double e = exp(-fabs(z[i])), s = e / (1.0 + e);
        double diff = z[i] >= 0.0 ? (1.0 - target) - s : s - target;
        dz[i] += scale * diff / (double)count;
    }
}
