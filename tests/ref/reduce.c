/*
 * ref/reduce.c: double-precision references for the whole-tensor reductions
 * (see reduce.h). Plain left-to-right sums in double.
 */
#include "reduce.h"

void ref_reduce_sum_forward(const double *x, size_t count, double *y)
{
    double s = 0.0;
    for (size_t i = 0; i < count; i++)
        s += x[i];
    y[0] = s;
}

void ref_reduce_mean_forward(const double *x, size_t count, double *y)
{
    ref_reduce_sum_forward(x, count, y);
    y[0] /= (double)count;
}

void ref_reduce_sum_squares_forward(const double *x, size_t count, double *y)
{
    double s = 0.0;
    for (size_t i = 0; i < count; i++)
        s += x[i] * x[i];
    y[0] = s;
}

void ref_reduce_sum_backward(const double *dy, size_t count, double *dx)
{
    for (size_t i = 0; i < count; i++)
        dx[i] += dy[0];
}

void ref_reduce_mean_backward(const double *dy, size_t count, double *dx)
{
    for (size_t i = 0; i < count; i++)
        dx[i] += dy[0] / (double)count;
}

void ref_reduce_sum_squares_backward(const double *x, const double *dy, size_t count,
                                     double *dx)
{
    for (size_t i = 0; i < count; i++)
        dx[i] += 2.0 * x[i] * dy[0];
}
