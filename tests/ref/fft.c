/*
 * ref/fft.c: the frequency loss in double precision with a direct 2-D DFT
 * (see fft.h). The gradient is written from its definition,
 *   dL/dd[y,x] = 1/(2nchw) sum_k sign(Re D_k) cos t - sign(Im D_k) sin t,
 *   t = 2 pi (kh y / h + kw x / w),
 * and checked against finite differences of ref_fft_loss_forward in
 * tests/test-fft-loss.c.
 */
#include "fft.h"

#include <math.h>
#include <stdlib.h>

/* M_PI is not in strict C11 */
static const double two_pi = 6.283185307179586476925286766559;

/* cos and sin of 2 pi m / n, exact at multiples of a quarter turn. */
static void twiddle(long m, int n, double *c, double *s)
{
    m %= n;
    if (m == 0) {
        *c = 1.0, *s = 0.0;
    } else if (2 * m == n) {
        *c = -1.0, *s = 0.0;
    } else if (4 * m == n) {
        *c = 0.0, *s = 1.0;
    } else if (4 * m == 3L * n) {
        *c = 0.0, *s = -1.0;
    } else {
        double t = two_pi * (double)m / (double)n;
        *c = cos(t), *s = sin(t);
    }
}

/* Tables of cos/sin(2 pi m / n), m = 0..n-1 (malloc'd, 2n doubles). */
static double *twiddles(int n)
{
    double *t = malloc(2 * (size_t)n * sizeof *t);
    if (!t)
        abort(); /* test code: out of memory is fatal */
    for (int m = 0; m < n; m++)
        twiddle(m, n, &t[2 * m], &t[2 * m + 1]);
    return t;
}

/* re/im of sum x exp(sign * i t) over the plane, t = 2 pi (kh y / h + kw x / w);
 * with exp(i(p + q)) = (cp cq - sp sq) + i (sp cq + cp sq). */
static void dft2_at(const double *xr, const double *xi, int h, int w, const double *th,
                    const double *tw, int kh, int kw, double sign, double *re, double *im)
{
    double sr = 0.0, si = 0.0;
    for (int y = 0; y < h; y++) {
        const double *p = &th[2 * (((long)kh * y) % h)];
        for (int x = 0; x < w; x++) {
            const double *q = &tw[2 * (((long)kw * x) % w)];
            double c = p[0] * q[0] - p[1] * q[1];
            double s = sign * (p[1] * q[0] + p[0] * q[1]);
            double vr = xr[(size_t)y * w + x], vi = xi ? xi[(size_t)y * w + x] : 0.0;
            sr += vr * c - vi * s;
            si += vr * s + vi * c;
        }
    }
    *re = sr;
    *im = si;
}

void ref_dft2(const double *x, int h, int w, double *re, double *im)
{
    double *th = twiddles(h), *tw = twiddles(w);
    for (int kh = 0; kh < h; kh++)
        for (int kw = 0; kw < w; kw++)
            dft2_at(x, NULL, h, w, th, tw, kh, kw, -1.0, &re[(size_t)kh * w + kw],
                    &im[(size_t)kh * w + kw]);
    free(th);
    free(tw);
}

/* D of plane p (= n*c + ch) of a - b into re/im (h*w each); d is scratch. */
static void plane_spectrum(const double *a, const double *b, size_t p, int h, int w, double *d,
                           double *re, double *im)
{
    size_t hw = (size_t)h * w;
    for (size_t i = 0; i < hw; i++)
        d[i] = a[p * hw + i] - b[p * hw + i];
    ref_dft2(d, h, w, re, im);
}

static double sgn(double v)
{
    return v > 0.0 ? 1.0 : v < 0.0 ? -1.0 : 0.0;
}

double ref_fft_loss_forward(const double *a, const double *b, int n, int c, int h, int w)
{
    size_t hw = (size_t)h * w, planes = (size_t)n * c;
    double *d = malloc(3 * hw * sizeof *d);
    if (!d)
        abort();
    double *re = d + hw, *im = re + hw, sum = 0.0;
    for (size_t p = 0; p < planes; p++) {
        plane_spectrum(a, b, p, h, w, d, re, im);
        for (size_t k = 0; k < hw; k++)
            sum += fabs(re[k]) + fabs(im[k]);
    }
    free(d);
    return sum / (2.0 * (double)(planes * hw));
}

void ref_fft_loss_backward(double scale, const double *a, const double *b, int n, int c, int h,
                           int w, double *da, double *db)
{
    size_t hw = (size_t)h * w, planes = (size_t)n * c;
    double *d = malloc(3 * hw * sizeof *d);
    double *th = twiddles(h), *tw = twiddles(w);
    if (!d)
        abort();
    double *re = d + hw, *im = re + hw, coef = scale / (2.0 * (double)(planes * hw));
    for (size_t p = 0; p < planes; p++) {
        plane_spectrum(a, b, p, h, w, d, re, im);
        for (size_t k = 0; k < hw; k++) {
            re[k] = sgn(re[k]);
            im[k] = sgn(im[k]);
        }
        /* Re of the unnormalized inverse DFT of S, one output element at a time */
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double gr, gi;
                dft2_at(re, im, h, w, th, tw, y, x, 1.0, &gr, &gi);
                size_t i = p * hw + (size_t)y * w + x;
                if (da)
                    da[i] += coef * gr;
                if (db)
                    db[i] -= coef * gr;
            }
    }
    free(th);
    free(tw);
    free(d);
}

double ref_fft_loss_min_abs(const double *a, const double *b, int n, int c, int h, int w)
{
    size_t hw = (size_t)h * w, planes = (size_t)n * c;
    double *d = malloc(3 * hw * sizeof *d);
    if (!d)
        abort();
    double *re = d + hw, *im = re + hw, m = INFINITY;
    for (size_t p = 0; p < planes; p++) {
        plane_spectrum(a, b, p, h, w, d, re, im);
        for (int kh = 0; kh < h; kh++)
            for (int kw = 0; kw < w; kw++) {
                size_t k = (size_t)kh * w + kw;
                m = fmin(m, fabs(re[k]));
                if ((2 * kh) % h != 0 || (2 * kw) % w != 0)
                    m = fmin(m, fabs(im[k]));
            }
    }
    free(d);
    return m;
}
