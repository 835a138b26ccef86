/*
 * ref/depthwise.c: double-precision depthwise convolution, forward and
 * backward (see depthwise.h).
 */
#include "depthwise.h"

#include <stddef.h>

int ref_depthwise_out_h(const ref_depthwise_shape *s)
{
    return (s->h + 2 * s->pad - s->kh) / s->stride + 1;
}

int ref_depthwise_out_w(const ref_depthwise_shape *s)
{
    return (s->w + 2 * s->pad - s->kw) / s->stride + 1;
}

int ref_depthwise_source(int i, int n, int reflect)
{
    if (i >= 0 && i < n)
        return i;
    if (!reflect)
        return -1;
    /* ReflectionPad2d: -1 -> 1, -2 -> 2, n -> n-2, n+1 -> n-3 (edge not repeated) */
    return i < 0 ? -i : 2 * (n - 1) - i;
}

/* Index of x[n][c][ih][iw] in a (s->n, s->c, s->h, s->w) array. */
static size_t at(const ref_depthwise_shape *s, int n, int c, int h, int w, int ih, int iw)
{
    return (((size_t)n * s->c + c) * h + ih) * w + iw;
}

void ref_depthwise_forward(const ref_depthwise_shape *s, const double *x, const double *weight,
                           const double *bias, double *y)
{
    int oh_n = ref_depthwise_out_h(s), ow_n = ref_depthwise_out_w(s);
    for (int n = 0; n < s->n; n++)
        for (int c = 0; c < s->c; c++)
            for (int oh = 0; oh < oh_n; oh++)
                for (int ow = 0; ow < ow_n; ow++) {
                    double acc = bias ? bias[c] : 0.0;
                    for (int kh = 0; kh < s->kh; kh++)
                        for (int kw = 0; kw < s->kw; kw++) {
                            int ih = ref_depthwise_source(oh * s->stride - s->pad + kh, s->h,
                                                          s->reflect);
                            int iw = ref_depthwise_source(ow * s->stride - s->pad + kw, s->w,
                                                          s->reflect);
                            if (ih < 0 || iw < 0)
                                continue;
                            acc += weight[((size_t)c * s->kh + kh) * s->kw + kw] *
                                   x[at(s, n, c, s->h, s->w, ih, iw)];
                        }
                    y[at(s, n, c, oh_n, ow_n, oh, ow)] = acc;
                }
}

void ref_depthwise_backward(const ref_depthwise_shape *s, const double *x, const double *weight,
                            const double *dy, double *dx, double *dweight, double *dbias)
{
    int oh_n = ref_depthwise_out_h(s), ow_n = ref_depthwise_out_w(s);
    for (int n = 0; n < s->n; n++)
        for (int c = 0; c < s->c; c++)
            for (int oh = 0; oh < oh_n; oh++)
                for (int ow = 0; ow < ow_n; ow++) {
                    double g = dy[at(s, n, c, oh_n, ow_n, oh, ow)];
                    if (dbias)
                        dbias[c] += g;
                    for (int kh = 0; kh < s->kh; kh++)
                        for (int kw = 0; kw < s->kw; kw++) {
                            int ih = ref_depthwise_source(oh * s->stride - s->pad + kh, s->h,
                                                          s->reflect);
                            int iw = ref_depthwise_source(ow * s->stride - s->pad + kw, s->w,
                                                          s->reflect);
                            if (ih < 0 || iw < 0)
                                continue;
                            size_t wi = ((size_t)c * s->kh + kh) * s->kw + kw;
                            size_t xi = at(s, n, c, s->h, s->w, ih, iw);
                            if (dx)
                                dx[xi] += g * weight[wi];
                            if (dweight)
                                dweight[wi] += g * x[xi];
                        }
                }
}
