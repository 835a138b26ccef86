/*
 * ref/blur.c: the direct reflect-bordered convolution (see ref/blur.h).
 */
#include "blur.h"

#include <assert.h>
#include <stddef.h>

int ref_reflect(int i, int n)
{
    if (n == 1)
        return 0;
    if (i < 0)
        i = -i;
    if (i >= n)
        i = 2 * (n - 1) - i;
    assert(i >= 0 && i < n); /* one reflection only, as ReflectionPad2d */
    return i;
}

void ref_blur_forward(const double *x, int n, int c, int h, int w, const double *k, int kn,
                      int kh, int kw, double *y)
{
    int ah = (kh - 1) / 2, aw = (kw - 1) / 2;
    for (int b = 0; b < n; b++) {
        const double *kb = k + (size_t)(kn == 1 ? 0 : b) * (size_t)kh * (size_t)kw;
        for (int ch = 0; ch < c; ch++) {
            const double *xp = x + ((size_t)b * c + ch) * (size_t)h * (size_t)w;
            double *yp = y + ((size_t)b * c + ch) * (size_t)h * (size_t)w;
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++) {
                    double s = 0.0;
                    for (int p = 0; p < kh; p++) {
                        int si = ref_reflect(i + ah - p, h);
                        for (int q = 0; q < kw; q++)
                            s += kb[p * kw + q] * xp[(size_t)si * w + ref_reflect(j + aw - q, w)];
                    }
                    yp[(size_t)i * w + j] = s;
                }
        }
    }
}
