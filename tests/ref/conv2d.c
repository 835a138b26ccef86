/*
 * ref/conv2d.c: double-precision 2-D convolution, forward and backward (see
 * ref/conv2d.h). The backward is the forward's loop with every multiply-add
 * y += w * x turned into its two partial derivatives, so padding (zero or
 * reflection, where several padded positions read the same input pixel)
 * routes gradients exactly as the forward reads values.
 */
#include "conv2d.h"

#include <stddef.h>

int ref_conv2d_out_h(const ref_conv2d_geom *g)
{
    return (g->h + 2 * g->pad - g->kh) / g->stride + 1;
}

int ref_conv2d_out_w(const ref_conv2d_geom *g)
{
    return (g->w + 2 * g->pad - g->kw) / g->stride + 1;
}

int ref_conv2d_pad_index(int i, int size, int reflect)
{
    if (i >= 0 && i < size)
        return i;
    if (!reflect)
        return -1;
    if (size == 1)
        return 0;
    if (i < 0)
        i = -i;
    if (i >= size)
        i = 2 * size - 2 - i;
    return i;
}

/* Index of element (a, b, c, d) of an array of shape (., B, C, D). */
static size_t at(int a, int b, int c, int d, int nb, int nc, int nd)
{
    return (((size_t)a * nb + b) * nc + c) * nd + d;
}

void ref_conv2d_forward(const ref_conv2d_geom *g, const double *x, const double *w,
                        const double *b, double *y)
{
    int oh_n = ref_conv2d_out_h(g), ow_n = ref_conv2d_out_w(g);
    int cin_g = g->cin / g->groups, cout_g = g->cout / g->groups;
    for (int n = 0; n < g->n; n++)
        for (int co = 0; co < g->cout; co++) {
            int c0 = co / cout_g * cin_g;
            for (int oh = 0; oh < oh_n; oh++)
                for (int ow = 0; ow < ow_n; ow++) {
                    double s = b ? b[co] : 0.0;
                    for (int ci = 0; ci < cin_g; ci++)
                        for (int kh = 0; kh < g->kh; kh++) {
                            int ih = ref_conv2d_pad_index(oh * g->stride - g->pad + kh, g->h,
                                                          g->reflect);
                            if (ih < 0)
                                continue;
                            for (int kw = 0; kw < g->kw; kw++) {
                                int iw = ref_conv2d_pad_index(ow * g->stride - g->pad + kw,
                                                              g->w, g->reflect);
                                if (iw < 0)
                                    continue;
                                s += w[at(co, ci, kh, kw, cin_g, g->kh, g->kw)] *
                                     x[at(n, c0 + ci, ih, iw, g->cin, g->h, g->w)];
                            }
                        }
                    y[at(n, co, oh, ow, g->cout, oh_n, ow_n)] = s;
                }
        }
}

void ref_conv2d_backward(const ref_conv2d_geom *g, const double *x, const double *w,
                         const double *dy, double *dx, double *dw, double *db)
{
    int oh_n = ref_conv2d_out_h(g), ow_n = ref_conv2d_out_w(g);
    int cin_g = g->cin / g->groups, cout_g = g->cout / g->groups;
    for (int n = 0; n < g->n; n++)
        for (int co = 0; co < g->cout; co++) {
            int c0 = co / cout_g * cin_g;
            for (int oh = 0; oh < oh_n; oh++)
                for (int ow = 0; ow < ow_n; ow++) {
                    double d = dy[at(n, co, oh, ow, g->cout, oh_n, ow_n)];
                    if (db)
                        db[co] += d;
                    for (int ci = 0; ci < cin_g; ci++)
                        for (int kh = 0; kh < g->kh; kh++) {
                            int ih = ref_conv2d_pad_index(oh * g->stride - g->pad + kh, g->h,
                                                          g->reflect);
                            if (ih < 0)
                                continue;
                            for (int kw = 0; kw < g->kw; kw++) {
                                int iw = ref_conv2d_pad_index(ow * g->stride - g->pad + kw,
                                                              g->w, g->reflect);
                                if (iw < 0)
                                    continue;
                                size_t wi = at(co, ci, kh, kw, cin_g, g->kh, g->kw);
                                size_t xi = at(n, c0 + ci, ih, iw, g->cin, g->h, g->w);
                                if (dw)
                                    dw[wi] += d * x[xi];
                                if (dx)
                                    dx[xi] += d * w[wi];
                            }
                        }
                }
        }
}
