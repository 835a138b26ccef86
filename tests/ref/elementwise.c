/*
 * ref/elementwise.c: double-precision broadcast add / mul, scale, clamp and
 * concat, the obvious way (see elementwise.h).
 */
#include "elementwise.h"

/* Flat index into b of a's element (n, c, h, w). */
static size_t b_index(const int bs[4], int n, int c, int h, int w)
{
    int bn = bs[0] == 1 ? 0 : n, bc = bs[1] == 1 ? 0 : c;
    int bh = bs[2] == 1 && bs[3] == 1 ? 0 : h, bw = bs[2] == 1 && bs[3] == 1 ? 0 : w;
    return (((size_t)bn * bs[1] + bc) * bs[2] + bh) * bs[3] + bw;
}

static size_t numel(const int s[4])
{
    return (size_t)s[0] * s[1] * s[2] * s[3];
}

void ref_add_forward(const int as[4], const double *a, const int bs[4], const double *b,
                     double alpha, double *y)
{
    size_t i = 0;
    for (int n = 0; n < as[0]; n++)
        for (int c = 0; c < as[1]; c++)
            for (int h = 0; h < as[2]; h++)
                for (int w = 0; w < as[3]; w++, i++)
                    y[i] = a[i] + alpha * b[b_index(bs, n, c, h, w)];
}

void ref_add_backward(const int as[4], const int bs[4], double alpha, const double *dy,
                      double *da, double *db)
{
    if (da)
        for (size_t i = 0; i < numel(as); i++)
            da[i] += dy[i];
    if (!db)
        return;
    size_t i = 0;
    for (int n = 0; n < as[0]; n++)
        for (int c = 0; c < as[1]; c++)
            for (int h = 0; h < as[2]; h++)
                for (int w = 0; w < as[3]; w++, i++)
                    db[b_index(bs, n, c, h, w)] += alpha * dy[i];
}

void ref_mul_forward(const int as[4], const double *a, const int bs[4], const double *b,
                     double *y)
{
    size_t i = 0;
    for (int n = 0; n < as[0]; n++)
        for (int c = 0; c < as[1]; c++)
            for (int h = 0; h < as[2]; h++)
                for (int w = 0; w < as[3]; w++, i++)
                    y[i] = a[i] * b[b_index(bs, n, c, h, w)];
}

void ref_mul_backward(const int as[4], const double *a, const int bs[4], const double *b,
                      const double *dy, double *da, double *db)
{
    size_t i = 0;
    for (int n = 0; n < as[0]; n++)
        for (int c = 0; c < as[1]; c++)
            for (int h = 0; h < as[2]; h++)
                for (int w = 0; w < as[3]; w++, i++) {
                    size_t j = b_index(bs, n, c, h, w);
                    if (da)
                        da[i] += dy[i] * b[j];
                    if (db)
                        db[j] += dy[i] * a[i];
                }
}

void ref_scale_forward(double alpha, const double *x, double *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = alpha * x[i];
}

void ref_scale_backward(double alpha, const double *dy, double *dx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] += alpha * dy[i];
}

void ref_clamp_forward(double lo, double hi, const double *x, double *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
}

void ref_clamp_backward(double lo, double hi, const double *x, const double *dy, double *dx,
                        size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] >= lo && x[i] <= hi)
            dx[i] += dy[i];
}

void ref_concat_forward(int n, int ca, int cb, int hw, const double *a, const double *b,
                        double *y)
{
    for (int i = 0; i < n; i++)
        for (int c = 0; c < ca + cb; c++)
            for (int p = 0; p < hw; p++)
                y[((size_t)i * (ca + cb) + c) * hw + p] =
                    c < ca ? a[((size_t)i * ca + c) * hw + p]
                           : b[((size_t)i * cb + c - ca) * hw + p];
}

void ref_concat_backward(int n, int ca, int cb, int hw, const double *dy, double *da,
                         double *db)
{
    for (int i = 0; i < n; i++)
        for (int c = 0; c < ca + cb; c++)
            for (int p = 0; p < hw; p++) {
                double g = dy[((size_t)i * (ca + cb) + c) * hw + p];
                if (c < ca && da)
                    da[((size_t)i * ca + c) * hw + p] += g;
                if (c >= ca && db)
                    db[((size_t)i * cb + c - ca) * hw + p] += g;
            }
}
