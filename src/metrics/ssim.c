/*
 * ssim.c: the structural similarity index (Wang et al. 2004) between two
 * 8-bit RGB images, in two protocols that published deblurring results use
 * (see dsdeblur_image.h and doc/metrics.md for what each computes and how it
 * was checked). Host only, double precision throughout.
 *
 * Both protocols share one computation: Gaussian-weighted local means
 *     ux = G*x, uy = G*y, vx = G*(x x) - ux^2, vy = G*(y y) - uy^2,
 *     vxy = G*(x y) - ux uy
 * (population covariances) and the map
 *     S = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2)),
 * C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2. They differ in the filter and in
 * what is averaged:
 *   skimage: G is a 2-D Gaussian (sigma 1.5, radius int(3.5 * 1.5 + 0.5) = 5)
 *            applied to each channel separately with scipy.ndimage's
 *            'reflect' border (d c b a | a b c d | d c b a); S is cropped by
 *            5 pixels on every side, averaged per channel, and the three
 *            channel means averaged. The crop equals the radius, so no kept
 *            window reaches past the edge and the border rule never changes
 *            the result; it is implemented anyway so the maps are skimage's.
 *            Reference: skimage/metrics/_structural_similarity.py (0.19.3),
 *            scipy.ndimage.gaussian_filter (_gaussian_kernel1d).
 *   matlab:  G is a 3-D Gaussian (sigma 1.5, radius ceil(3 * 1.5) = 5 on each
 *            of H, W and the 3-long channel axis) with 'replicate' borders
 *            (a a a | a b c d | d d d), and S is averaged over all H x W x 3
 *            voxels with no crop. Reference: MATLAB's ssim.m (R2017-era,
 *            which calls imgaussfilt3(X, 1.5, 'FilterSize', 11, 'Padding',
 *            'replicate') on 3-D inputs and documents that RGB images are
 *            processed as volumes).
 *
 * The Gaussian is separable, so every filter is a sequence of 1-D passes
 * (rows, columns, and for matlab the channel axis, which with 'replicate'
 * reduces to a fixed 3 x 3 channel-mixing matrix). Memory: six H x W double
 * planes, whatever the protocol.
 */
#include "internal.h"
#include "dsdeblur_image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { SSIM_RADIUS = 5, SSIM_TAPS = 2 * SSIM_RADIUS + 1 };
#define SSIM_SIGMA 1.5
#define SSIM_C1 ((0.01 * 255.0) * (0.01 * 255.0))
#define SSIM_C2 ((0.03 * 255.0) * (0.03 * 255.0))

const char *dsd_ssim_protocol_name(dsd_ssim_protocol protocol)
{
    switch (protocol) {
    case DSD_SSIM_SKIMAGE: return "skimage";
    case DSD_SSIM_MATLAB: return "matlab";
    }
    return "unknown";
}

dsd_status dsd_ssim_protocol_parse(const char *text, dsd_ssim_protocol *out, dsd_error *err)
{
    if (text && strcasecmp(text, "skimage") == 0) {
        *out = DSD_SSIM_SKIMAGE;
        return DSD_OK;
    }
    if (text && strcasecmp(text, "matlab") == 0) {
        *out = DSD_SSIM_MATLAB;
        return DSD_OK;
    }
    return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT,
                    "unknown SSIM protocol '%s' (expected 'skimage' or 'matlab')",
                    text ? text : "(null)");
}

// ----------------------------------------------------------------------------
// Filtering

typedef enum { BORDER_REFLECT, BORDER_NEAREST } border_mode;

/* Where position i (any integer) reads from in a line of n samples. */
static int border_index(long i, long n, border_mode mode)
{
    if (mode == BORDER_NEAREST)
        return (int)(i < 0 ? 0 : i >= n ? n - 1 : i);
    /* reflect: symmetric about the outer edges, period 2n */
    long m = i % (2 * n);
    if (m < 0)
        m += 2 * n;
    return (int)(m < n ? m : 2 * n - 1 - m);
}

/* taps[k + R] = exp(-k^2 / (2 sigma^2)) / sum, k = -R..R: scipy's
 * _gaussian_kernel1d and MATLAB's imgaussfilt kernel are both this. */
static void gaussian_taps(double taps[SSIM_TAPS])
{
    double sum = 0;
    for (int k = -SSIM_RADIUS; k <= SSIM_RADIUS; k++) {
        taps[k + SSIM_RADIUS] = exp(-0.5 * k * k / (SSIM_SIGMA * SSIM_SIGMA));
        sum += taps[k + SSIM_RADIUS];
    }
    for (int k = 0; k < SSIM_TAPS; k++)
        taps[k] /= sum;
}

/* Index tables: rows[y + R] for y = -R .. h-1+R, cols likewise. */
typedef struct filter2d {
    double taps[SSIM_TAPS];
    int *rows, *cols;  /* (h + 2R), (w + 2R) */
    double *tmp;       /* (h, w) scratch */
    int h, w;
} filter2d;

static void filter2d_free(filter2d *f)
{
    free(f->rows);
    free(f->cols);
    free(f->tmp);
    memset(f, 0, sizeof *f);
}

static dsd_status filter2d_init(filter2d *f, int h, int w, border_mode mode, dsd_error *err)
{
    memset(f, 0, sizeof *f);
    gaussian_taps(f->taps);
    f->h = h;
    f->w = w;
    f->rows = malloc(((size_t)h + 2 * SSIM_RADIUS) * sizeof *f->rows);
    f->cols = malloc(((size_t)w + 2 * SSIM_RADIUS) * sizeof *f->cols);
    f->tmp = malloc((size_t)h * (size_t)w * sizeof *f->tmp);
    if (!f->rows || !f->cols || !f->tmp) {
        filter2d_free(f);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "dsd_ssim: out of memory for a %d x %d "
                        "image", w, h);
    }
    for (long i = -SSIM_RADIUS; i < h + SSIM_RADIUS; i++)
        f->rows[i + SSIM_RADIUS] = border_index(i, h, mode);
    for (long i = -SSIM_RADIUS; i < w + SSIM_RADIUS; i++)
        f->cols[i + SSIM_RADIUS] = border_index(i, w, mode);
    return DSD_OK;
}

/* plane (h, w) <- G * plane, in place: along axis 0 (down the columns) into
 * tmp, then along axis 1 (along the rows) back, as scipy orders its passes. */
static void filter2d_apply(filter2d *f, double *plane)
{
    const int h = f->h, w = f->w;
    for (int y = 0; y < h; y++) {
        double *out = f->tmp + (size_t)y * w;
        for (int x = 0; x < w; x++)
            out[x] = 0;
        for (int k = 0; k < SSIM_TAPS; k++) {
            const double t = f->taps[k];
            const double *in = plane + (size_t)f->rows[y + k] * w;
            for (int x = 0; x < w; x++)
                out[x] += t * in[x];
        }
    }
    for (int y = 0; y < h; y++) {
        const double *in = f->tmp + (size_t)y * w;
        double *out = plane + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            double s = 0;
            const int *c = f->cols + x;
            for (int k = 0; k < SSIM_TAPS; k++)
                s += f->taps[k] * in[c[k]];
            out[x] = s;
        }
    }
}

// ----------------------------------------------------------------------------
// SSIM

/* mix[c][c']: the weight of input channel c' in output channel c when the
 * Gaussian runs along the 3-long channel axis with 'replicate' borders (all
 * taps that fall outside land on the edge channel). For skimage, identity. */
static void channel_mix(dsd_ssim_protocol protocol, double mix[3][3])
{
    memset(mix, 0, 9 * sizeof mix[0][0]);
    if (protocol == DSD_SSIM_SKIMAGE) {
        for (int c = 0; c < 3; c++)
            mix[c][c] = 1;
        return;
    }
    double taps[SSIM_TAPS];
    gaussian_taps(taps);
    for (int c = 0; c < 3; c++)
        for (int k = -SSIM_RADIUS; k <= SSIM_RADIUS; k++)
            mix[c][border_index(c + k, 3, BORDER_NEAREST)] += taps[k + SSIM_RADIUS];
}

dsd_status dsd_ssim(const dsd_image *a, const dsd_image *b, dsd_ssim_protocol protocol,
                    double *out, dsd_error *err)
{
    if (!a || !b || !a->data || !b->data || a->channels != 3 || b->channels != 3 || !out)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT,
                        "dsd_ssim: both images must be loaded RGB and out non-NULL");
    if (protocol != DSD_SSIM_SKIMAGE && protocol != DSD_SSIM_MATLAB)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_ssim: unknown protocol %d",
                        (int)protocol);
    if (a->width != b->width || a->height != b->height)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "dsd_ssim: image sizes differ: %d x %d vs %d x %d",
                        a->width, a->height, b->width, b->height);
    const int h = a->height, w = a->width;
    if (protocol == DSD_SSIM_SKIMAGE && (h < SSIM_TAPS || w < SSIM_TAPS))
        return DSD_FAIL(err, DSD_ERR_SHAPE,
                        "dsd_ssim: %d x %d is smaller than the 11 x 11 window the skimage "
                        "protocol needs",
                        w, h);

    const size_t plane = (size_t)h * (size_t)w;
    filter2d f;
    DSD_TRY(filter2d_init(&f, h, w,
                          protocol == DSD_SSIM_SKIMAGE ? BORDER_REFLECT : BORDER_NEAREST, err));
    /* ux, uy, uxx, uyy, uxy: five (h, w) planes */
    double *maps = malloc(5 * plane * sizeof *maps);
    if (!maps) {
        filter2d_free(&f);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY,
                        "dsd_ssim: out of memory for a %d x %d image", w, h);
    }
    double *ux = maps, *uy = maps + plane, *uxx = maps + 2 * plane, *uyy = maps + 3 * plane,
           *uxy = maps + 4 * plane;
    double mix[3][3];
    channel_mix(protocol, mix);

    /* skimage averages the crop [5, h-5) x [5, w-5) of each channel; matlab
     * every voxel. */
    const int r0 = protocol == DSD_SSIM_SKIMAGE ? SSIM_RADIUS : 0;
    double total = 0;
    for (int c = 0; c < 3; c++) {
        /* The channel-axis pass first (linear, so the order does not matter
         * beyond rounding): planes = sum_c' mix[c][c'] * q(channel c'). */
        for (size_t i = 0; i < plane; i++) {
            double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
            for (int k = 0; k < 3; k++) {
                const double m = mix[c][k];
                if (m == 0)
                    continue;
                const double x = a->data[i * 3 + (size_t)k], y = b->data[i * 3 + (size_t)k];
                sx += m * x;
                sy += m * y;
                sxx += m * x * x;
                syy += m * y * y;
                sxy += m * x * y;
            }
            ux[i] = sx;
            uy[i] = sy;
            uxx[i] = sxx;
            uyy[i] = syy;
            uxy[i] = sxy;
        }
        for (int q = 0; q < 5; q++)
            filter2d_apply(&f, maps + (size_t)q * plane);

        double sum = 0;
        for (int y = r0; y < h - r0; y++) {
            double row = 0;
            for (int x = r0; x < w - r0; x++) {
                const size_t i = (size_t)y * w + (size_t)x;
                const double vx = uxx[i] - ux[i] * ux[i];
                const double vy = uyy[i] - uy[i] * uy[i];
                const double vxy = uxy[i] - ux[i] * uy[i];
                const double num = (2 * ux[i] * uy[i] + SSIM_C1) * (2 * vxy + SSIM_C2);
                const double den =
                    (ux[i] * ux[i] + uy[i] * uy[i] + SSIM_C1) * (vx + vy + SSIM_C2);
                row += num / den;
            }
            sum += row;
        }
        total += sum / ((double)(h - 2 * r0) * (double)(w - 2 * r0));
    }
    *out = total / 3;
    free(maps);
    filter2d_free(&f);
    return DSD_OK;
}
