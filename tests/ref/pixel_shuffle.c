/*
 * ref/pixel_shuffle.c: double-precision PixelShuffle / PixelUnshuffle, the
 * obvious way (see pixel_shuffle.h).
 */
#include "pixel_shuffle.h"

#include <stddef.h>

/* Visits every pair small[n, C*r*r, h, w] <-> big[n, C, h*r, w*r] and copies
 * (or adds) small into big (to_big) or big into small. */
static void permute(int r, int n, int C, int h, int w, const double *src, double *dst,
                    int to_big, int accumulate)
{
    for (int in = 0; in < n; in++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < r; i++)
                for (int j = 0; j < r; j++)
                    for (int y = 0; y < h; y++)
                        for (int x = 0; x < w; x++) {
                            int sc = c * r * r + i * r + j;
                            size_t s = (((size_t)in * C * r * r + sc) * h + y) * w + x;
                            size_t b = (((size_t)in * C + c) * h * r + (size_t)y * r + i) *
                                           w * r + (size_t)x * r + j;
                            size_t from = to_big ? s : b, to = to_big ? b : s;
                            dst[to] = accumulate ? dst[to] + src[from] : src[from];
                        }
}

void ref_pixel_shuffle_forward(int r, int n, int c, int h, int w, const double *x, double *y)
{
    permute(r, n, c / (r * r), h, w, x, y, 1, 0);
}

void ref_pixel_shuffle_backward(int r, int n, int c, int h, int w, const double *dy, double *dx)
{
    permute(r, n, c / (r * r), h, w, dy, dx, 0, 1);
}

void ref_pixel_unshuffle_forward(int r, int n, int c, int h, int w, const double *x, double *y)
{
    permute(r, n, c, h / r, w / r, x, y, 0, 0);
}

void ref_pixel_unshuffle_backward(int r, int n, int c, int h, int w, const double *dy,
                                  double *dx)
{
    permute(r, n, c, h / r, w / r, dy, dx, 1, 1);
}
