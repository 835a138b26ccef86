/*
 * psnr.c: mean squared error and peak signal-to-noise ratio between two 8-bit
 * RGB images, data range 255, the MSE taken over all H x W x 3 values at
 * once (not per channel then averaged). Host only. This matches
 * skimage.metrics.peak_signal_noise_ratio(a, b, data_range=255) and MATLAB's
 * psnr(A, ref) on uint8 RGB arrays; see doc/metrics.md. Identical images give
 * +INFINITY, which callers print as "inf".
 */
#include "internal.h"
#include "dsdeblur_image.h"

#include <math.h>
#include <stdint.h>

/* Both images loaded and of one size? */
static dsd_status check_pair(const char *fn, const dsd_image *a, const dsd_image *b,
                             dsd_error *err)
{
    if (!a || !b || !a->data || !b->data || a->channels != 3 || b->channels != 3)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: both images must be loaded RGB",
                        fn);
    if (a->width != b->width || a->height != b->height)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "%s: image sizes differ: %d x %d vs %d x %d", fn,
                        a->width, a->height, b->width, b->height);
    return DSD_OK;
}

static dsd_status mse(const char *fn, const dsd_image *a, const dsd_image *b, double *out,
                      dsd_error *err)
{
    DSD_TRY(check_pair(fn, a, b, err));
    /* Integer sum of squares: exact (at most 255^2 * 3 * 2^28 < 2^63). */
    const size_t n = dsd_image_numel(a);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = (int)a->data[i] - (int)b->data[i];
        sum += (uint64_t)(d * d);
    }
    *out = (double)sum / (double)n;
    return DSD_OK;
}

dsd_status dsd_mse(const dsd_image *a, const dsd_image *b, double *out, dsd_error *err)
{
    return mse("dsd_mse", a, b, out, err);
}

dsd_status dsd_psnr(const dsd_image *a, const dsd_image *b, double *out, dsd_error *err)
{
    double m;
    DSD_TRY(mse("dsd_psnr", a, b, &m, err));
    *out = m == 0 ? INFINITY : 10.0 * log10(255.0 * 255.0 / m);
    return DSD_OK;
}
