/*
 * ref/pool.c: double-precision pooling references (see pool.h). Loops in the
 * plainest order; arg-max keeps the first maximum (strict >).
 */
#include "pool.h"

#include <stddef.h>

/* Index of the maximum of plane p (h*w values), first one on ties. */
static size_t plane_argmax(const double *p, size_t hw)
{
    size_t best = 0;
    for (size_t i = 1; i < hw; i++)
        if (p[i] > p[best])
            best = i;
    return best;
}

void ref_global_avg_pool_forward(const double *x, int n, int c, int h, int w, double *y)
{
    size_t hw = (size_t)h * w;
    for (size_t g = 0; g < (size_t)n * c; g++) {
        double s = 0.0;
        for (size_t i = 0; i < hw; i++)
            s += x[g * hw + i];
        y[g] = s / (double)hw;
    }
}

void ref_global_avg_pool_backward(const double *dy, int n, int c, int h, int w, double *dx)
{
    size_t hw = (size_t)h * w;
    for (size_t g = 0; g < (size_t)n * c; g++)
        for (size_t i = 0; i < hw; i++)
            dx[g * hw + i] += dy[g] / (double)hw;
}

void ref_global_max_pool_forward(const double *x, int n, int c, int h, int w, double *y)
{
    size_t hw = (size_t)h * w;
    for (size_t g = 0; g < (size_t)n * c; g++)
        y[g] = x[g * hw + plane_argmax(x + g * hw, hw)];
}

void ref_global_max_pool_backward(const double *x, const double *dy, int n, int c, int h, int w,
                                  double *dx)
{
    size_t hw = (size_t)h * w;
    for (size_t g = 0; g < (size_t)n * c; g++)
        dx[g * hw + plane_argmax(x + g * hw, hw)] += dy[g];
}

void ref_channel_mean_forward(const double *x, int n, int c, int h, int w, double *y)
{
    size_t hw = (size_t)h * w;
    for (int b = 0; b < n; b++)
        for (size_t p = 0; p < hw; p++) {
            double s = 0.0;
            for (int k = 0; k < c; k++)
                s += x[((size_t)b * c + k) * hw + p];
            y[(size_t)b * hw + p] = s / c;
        }
}

void ref_channel_mean_backward(const double *dy, int n, int c, int h, int w, double *dx)
{
    size_t hw = (size_t)h * w;
    for (int b = 0; b < n; b++)
        for (int k = 0; k < c; k++)
            for (size_t p = 0; p < hw; p++)
                dx[((size_t)b * c + k) * hw + p] += dy[(size_t)b * hw + p] / c;
}

/* Channel of the maximum at pixel p of image b, first one on ties. */
static int channel_argmax(const double *x, int b, int c, size_t hw, size_t p)
{
    int best = 0;
    for (int k = 1; k < c; k++)
        if (x[((size_t)b * c + k) * hw + p] > x[((size_t)b * c + best) * hw + p])
            best = k;
    return best;
}

void ref_channel_max_forward(const double *x, int n, int c, int h, int w, double *y)
{
    size_t hw = (size_t)h * w;
    for (int b = 0; b < n; b++)
        for (size_t p = 0; p < hw; p++)
            y[(size_t)b * hw + p] = x[((size_t)b * c + channel_argmax(x, b, c, hw, p)) * hw + p];
}

void ref_channel_max_backward(const double *x, const double *dy, int n, int c, int h, int w,
                              double *dx)
{
    size_t hw = (size_t)h * w;
    for (int b = 0; b < n; b++)
        for (size_t p = 0; p < hw; p++)
            dx[((size_t)b * c + channel_argmax(x, b, c, hw, p)) * hw + p] += dy[(size_t)b * hw + p];
}

/* Flat index into x of the maximum of window (oh, ow) of plane g, row-major
 * order within the window, first one on ties. */
static size_t window_argmax(const double *x, size_t g, int h, int w, int oh, int ow)
{
    size_t best = 0;
    int first = 1;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            size_t at = (g * h + (size_t)(2 * oh + i)) * w + (size_t)(2 * ow + j);
            if (first || x[at] > x[best]) {
                best = at;
                first = 0;
            }
        }
    return best;
}

void ref_maxpool2x2_forward(const double *x, int n, int c, int h, int w, double *y)
{
    int oh_n = h / 2, ow_n = w / 2;
    for (size_t g = 0; g < (size_t)n * c; g++)
        for (int oh = 0; oh < oh_n; oh++)
            for (int ow = 0; ow < ow_n; ow++)
                y[(g * oh_n + oh) * ow_n + ow] = x[window_argmax(x, g, h, w, oh, ow)];
}

void ref_maxpool2x2_backward(const double *x, const double *dy, int n, int c, int h, int w,
                             double *dx)
{
    int oh_n = h / 2, ow_n = w / 2;
    for (size_t g = 0; g < (size_t)n * c; g++)
        for (int oh = 0; oh < oh_n; oh++)
            for (int ow = 0; ow < ow_n; ow++)
                dx[window_argmax(x, g, h, w, oh, ow)] += dy[(g * oh_n + oh) * ow_n + ow];
}
