/*
 * ref/adam.c: double-precision Adam step; see ref/adam.h.
 */
#include "adam.h"

#include <math.h>

void ref_adam_step(const ref_adam_params *hp, int t, double *p, const double *g, double *m,
                   double *v, size_t n)
{
    double bias_correction1 = 1.0 - pow(hp->beta1, t);
    double bias_correction2 = 1.0 - pow(hp->beta2, t);
    double step_size = hp->lr / bias_correction1;
    double bias_correction2_sqrt = sqrt(bias_correction2);
    for (size_t i = 0; i < n; i++) {
        m[i] = hp->beta1 * m[i] + (1.0 - hp->beta1) * g[i];
        v[i] = hp->beta2 * v[i] + (1.0 - hp->beta2) * g[i] * g[i];
        double denom = sqrt(v[i]) / bias_correction2_sqrt + hp->eps;
        p[i] -= step_size * m[i] / denom;
    }
}
