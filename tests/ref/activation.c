/*
 * ref/activation.c: double-precision activations, the obvious way (see
 * activation.h).
 */
#include "activation.h"

#include <math.h>

void ref_activation_forward(int act, double slope, const double *x, double *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        switch (act) {
        case 0:
            y[i] = v > 0.0 ? v : slope * v;
            break;
        case 1:
            y[i] = v > 0.0 ? v : 0.0;
            break;
        case 2: /* stable for large |v|: exp only of -|v| */
            y[i] = v >= 0.0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
            break;
        default:
            y[i] = tanh(v);
            break;
        }
    }
}

void ref_activation_backward(int act, double slope, const double *x, const double *y,
                             const double *dy, double *dx, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double d;
        switch (act) {
        case 0:
            d = x[i] > 0.0 ? 1.0 : slope;
            break;
        case 1:
            d = x[i] > 0.0 ? 1.0 : 0.0;
            break;
        case 2:
            d = y[i] * (1.0 - y[i]);
            break;
        default:
            d = 1.0 - y[i] * y[i];
            break;
        }
        dx[i] += d * dy[i];
    }
}
