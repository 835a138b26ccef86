/*
 * blur_psf.c: random camera-shake point-spread functions (PSFs, the blur
 * kernels of Boracchi & Foi 2012, in DeblurGAN's parametrization) and the
 * host random-number stream they draw from. The model and its parameters are
 * documented in dsdeblur_train.h and doc/synthetic-blur.md; the PSFs are
 * applied on the device by src/train/blur_apply.c.
 *
 * Host only, pure double arithmetic, no allocation, no global state: the
 * only functions from libm are sqrt, log, sin, cos, floor and ceil, so a
 * PSF is the same bit for bit wherever those round the same. There is no
 * separate reference: the generator is its own specification, and
 * tests/test-blur.c checks its invariants and pins checksums of a few
 * PSFs so that an accidental change shows.
 */
#include "internal.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* M_PI is not in strict C11; this is the double nearest pi. */
#define BLUR_PI 3.14159265358979323846

/* ------------------------------------------------------------------------ */
/* The random stream: Philox4x32-10 blocks (src/philox.c) */

void dsd_rng_init(dsd_rng *r, uint64_t seed, uint64_t stream)
{
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->ctr[0] = 0;
    r->ctr[1] = 0;
    r->ctr[2] = (uint32_t)stream;
    r->ctr[3] = (uint32_t)(stream >> 32);
    memset(r->out, 0, sizeof r->out);
    r->used = 4;
}

uint32_t dsd_rng_u32(dsd_rng *r)
{
    if (r->used >= 4) {
        dsd_philox4x32_10(r->ctr, r->key, r->out);
        if (++r->ctr[0] == 0) /* 64-bit block counter */
            r->ctr[1]++;
        r->used = 0;
    }
    return r->out[r->used++];
}

double dsd_rng_uniform(dsd_rng *r)
{
    uint32_t a = dsd_rng_u32(r) >> 5, b = dsd_rng_u32(r) >> 6; /* 27 + 26 bits */
    return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

double dsd_rng_normal(dsd_rng *r)
{
    double u1 = 1.0 - dsd_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = dsd_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * BLUR_PI * u2);
}

/* The noise of dsd_blur_apply (cl/blur.cl, blur_crop) in double. */
double dsd_blur_noise_host(uint64_t seed, uint64_t stream, uint32_t index)
{
    const uint32_t ctr[4] = {index, (uint32_t)stream, (uint32_t)(stream >> 32),
                             UINT32_C(0x626c7572)}; /* "blur" */
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t w[4];
    dsd_philox4x32_10(ctr, key, w);
    double u1 = (double)((w[0] >> 8) + 1u) * (1.0 / 16777216.0);
    double u2 = (double)(w[1] >> 8) * (1.0 / 16777216.0);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * BLUR_PI * u2);
}

double dsd_blur_noise_sigma_draw(double lo, double hi, uint64_t seed, uint64_t step)
{
    if (!(hi > lo))
        return lo;
    dsd_rng r;
    dsd_rng_init(&r, seed ^ UINT64_C(0x6e6f697365), step); /* "noise": not a PSF stream */
    return lo + (hi - lo) * dsd_rng_uniform(&r);
}

/* A uniform choice among n (< 2^32) values: floor(word * n / 2^32). */
static int rng_choice(dsd_rng *r, int n)
{
    return (int)(((uint64_t)dsd_rng_u32(r) * (uint64_t)n) >> 32);
}

/* ------------------------------------------------------------------------ */
/* Parameters */

/* DeblurGAN's choices (blur_image.py: expl from params, part from [1, 2, 3]
 * of the PSF fractions [1/100, 1/10, 1/2, 1]). */
static const double ANXIETIES[] = {0.01, 0.009, 0.008, 0.007, 0.005, 0.003};
static const double EXPOSURES[] = {0.1, 0.5, 1.0};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

enum { MAX_STEPS = 100000 };

void dsd_blur_psf_params_default(dsd_blur_psf_params *p)
{
    p->size = DSD_BLUR_PSF_MAX;
    p->steps = 2000;
    p->length = 60.0;
    p->anxiety = DSD_BLUR_RANDOM;
    p->exposure = DSD_BLUR_RANDOM;
    p->trim = 1;
}

/* lo, or a uniform draw from [lo, hi) when hi is above it. */
static double draw_in(double lo, double hi, dsd_rng *draw)
{
    return lo < hi ? lo + (hi - lo) * dsd_rng_uniform(draw) : lo;
}

void dsd_blur_psf_params_draw(const dsd_blur_psf_ranges *r, dsd_rng *draw,
                              dsd_blur_psf_params *p)
{
    if (r->length_lo >= 0)
        p->length = draw_in(r->length_lo, r->length_hi, draw);
    if (r->exposure_lo > 0)
        p->exposure = draw_in(r->exposure_lo, r->exposure_hi, draw);
    if (r->anxiety_lo >= 0)
        p->anxiety = draw_in(r->anxiety_lo, r->anxiety_hi, draw);
}

static dsd_status check_params(const dsd_blur_psf_params *p, dsd_error *err)
{
    const char *fn = "dsd_blur_psf_generate";
    if (p->size < 1 || p->size > DSD_BLUR_PSF_MAX)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: size = %d is not in 1..%d", fn,
                        p->size, DSD_BLUR_PSF_MAX);
    if (p->steps < 2 || p->steps > MAX_STEPS)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: steps = %d is not in 2..%d", fn,
                        p->steps, MAX_STEPS);
    int reach = 2 * ((p->size - 1) / 2); /* twice the anchor's distance to the near edge */
    if (!(p->length >= 0.0 && p->length <= (double)reach))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: length = %g is not in [0, %d]: a "
                        "longer path may not fit in the %dx%d canvas centred on pixel (%d, %d)",
                        fn, p->length, reach, p->size, p->size, (p->size - 1) / 2,
                        (p->size - 1) / 2);
    if (p->anxiety != DSD_BLUR_RANDOM && !(p->anxiety >= 0.0 && p->anxiety <= 1.0))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: anxiety = %g is neither in [0, 1] "
                        "nor DSD_BLUR_RANDOM", fn, p->anxiety);
    if (p->exposure != DSD_BLUR_RANDOM && !(p->exposure > 0.0 && p->exposure <= 1.0))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: exposure = %g is neither in (0, 1] "
                        "nor DSD_BLUR_RANDOM", fn, p->exposure);
    if (p->trim != 0 && p->trim != 1)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: trim = %d is neither 0 nor 1", fn,
                        p->trim);
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Trajectory */

typedef struct shake {
    double anxiety, centripetal, prob_big, gauss, step; /* step = L / (steps - 1) */
    double v0x, v0y;                                   /* initial velocity */
    int steps;
} shake;

typedef struct bbox {
    double x0, x1, y0, y1;
} bbox;

/* Walks the particle from 0 through steps samples, drawing from r. Samples
 * 0..used-1 are added to bb (when not NULL) and, when canvas is not NULL,
 * splatted bilinearly into it (size x size, row y, column x) after the shift
 * (dx, dy). Positions are complex numbers x + i y as in DeblurGAN. */
static void walk(const shake *s, dsd_rng *r, int used, bbox *bb, double *canvas, int size,
                 double dx, double dy)
{
    double x = 0.0, y = 0.0, vx = s->v0x, vy = s->v0y;
    for (int t = 0;; t++) {
        if (t < used) {
            if (bb) {
                bb->x0 = fmin(bb->x0, x);
                bb->x1 = fmax(bb->x1, x);
                bb->y0 = fmin(bb->y0, y);
                bb->y1 = fmax(bb->y1, y);
            }
            if (canvas) {
                /* Taps outside the canvas can only be rounding-sized. */
                double px = x + dx, py = y + dy;
                double fx = floor(px), fy = floor(py);
                double ax = px - fx, ay = py - fy;
                int j0 = (int)fx, i0 = (int)fy;
                const double wy[2] = {1.0 - ay, ay}, wx[2] = {1.0 - ax, ax};
                for (int di = 0; di < 2; di++)
                    for (int dj = 0; dj < 2; dj++) {
                        int i = i0 + di, j = j0 + dj;
                        if (i >= 0 && i < size && j >= 0 && j < size)
                            canvas[i * size + j] += wy[di] * wx[dj];
                    }
            }
        } else if (!canvas) {
            return; /* the bounding box needs no more samples */
        }
        if (t == s->steps - 1)
            return;
        /* One step: an abrupt turn with probability prob_big * anxiety ... */
        double nx = 0.0, ny = 0.0;
        if (dsd_rng_uniform(r) < s->prob_big * s->anxiety) {
            double a = BLUR_PI + (dsd_rng_uniform(r) - 0.5);
            double ca = cos(a), sa = sin(a);
            nx = 2.0 * (vx * ca - vy * sa);
            ny = 2.0 * (vx * sa + vy * ca);
        }
        /* ... plus the random shake and the pull towards the origin. */
        double g1 = dsd_rng_normal(r), g2 = dsd_rng_normal(r);
        double k = s->anxiety * s->step;
        double wxn = vx + nx + k * (s->gauss * g1 - s->centripetal * x);
        double wyn = vy + ny + k * (s->gauss * g2 - s->centripetal * y);
        double len = sqrt(wxn * wxn + wyn * wyn);
        if (len > 0.0) { /* else keep the direction (only with length 0 or a zero-sum update) */
            vx = wxn / len * s->step;
            vy = wyn / len * s->step;
        } else {
            double l0 = sqrt(vx * vx + vy * vy);
            if (l0 > 0.0) {
                vx = vx / l0 * s->step;
                vy = vy / l0 * s->step;
            }
        }
        x += vx;
        y += vy;
    }
}

dsd_status dsd_blur_psf_generate(const dsd_blur_psf_params *p, dsd_rng *rng, dsd_blur_psf *out,
                                 dsd_error *err)
{
    if (!p || !rng || !out)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_blur_psf_generate: %s is NULL",
                        !p ? "params" : !rng ? "rng" : "out");
    DSD_TRY(check_params(p, err));

    /* Per-PSF draws, in this order. */
    shake s = {0};
    s.steps = p->steps;
    s.anxiety = p->anxiety == DSD_BLUR_RANDOM ? ANXIETIES[rng_choice(rng, COUNT(ANXIETIES))]
                                              : p->anxiety;
    double exposure = p->exposure == DSD_BLUR_RANDOM
                          ? EXPOSURES[rng_choice(rng, COUNT(EXPOSURES))]
                          : p->exposure;
    s.centripetal = 0.7 * dsd_rng_uniform(rng);
    s.prob_big = 0.2 * dsd_rng_uniform(rng);
    s.gauss = 10.0 * dsd_rng_uniform(rng);
    double angle = 2.0 * BLUR_PI * dsd_rng_uniform(rng);
    s.step = p->length / (double)(p->steps - 1);
    /* DeblurGAN: v = v0 * expl if expl > 0 else v0 * L / (steps - 1); only the
     * first abrupt turn sees this length, every update renormalizes. */
    double v0 = s.anxiety > 0.0 ? s.anxiety : s.step;
    s.v0x = cos(angle) * v0;
    s.v0y = sin(angle) * v0;

    double used_d = ceil(exposure * (double)p->steps);
    int used = used_d < 1.0 ? 1 : used_d > (double)p->steps ? p->steps : (int)used_d;

    /* Pass 1 on a copy of the stream: the exposed part's bounding box. */
    dsd_rng replay = *rng;
    bbox bb = {.x0 = INFINITY, .x1 = -INFINITY, .y0 = INFINITY, .y1 = -INFINITY};
    walk(&s, &replay, used, &bb, NULL, p->size, 0.0, 0.0);

    /* Pass 2: the same walk (all steps, so the stream advances by an amount
     * independent of the exposure), splatted with its box centred on the
     * anchor pixel ((size-1)/2, (size-1)/2) of the convolution: then the
     * untrimmed PSF does not shift the image, and the trimmed support is
     * symmetric about the box centre (a straight path's PSF is exactly
     * centred on its own anchor). */
    int size = p->size;
    double centre = (double)((size - 1) / 2);
    double canvas[DSD_BLUR_PSF_MAX * DSD_BLUR_PSF_MAX];
    memset(canvas, 0, sizeof canvas);
    walk(&s, rng, used, NULL, canvas, size, centre - 0.5 * (bb.x0 + bb.x1),
         centre - 0.5 * (bb.y0 + bb.y1));

    double sum = 0.0;
    for (int i = 0; i < size * size; i++)
        sum += canvas[i];
    assert(sum > 0.0); /* every sample puts weight ~1 inside the canvas */

    int r0 = 0, r1 = size - 1, c0 = 0, c1 = size - 1;
    if (p->trim) {
        r0 = size, r1 = -1, c0 = size, c1 = -1;
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++)
                if ((float)(canvas[i * size + j] / sum) != 0.0f) {
                    r0 = i < r0 ? i : r0;
                    r1 = i > r1 ? i : r1;
                    c0 = j < c0 ? j : c0;
                    c1 = j > c1 ? j : c1;
                }
        assert(r1 >= r0 && c1 >= c0);
    }
    out->h = r1 - r0 + 1;
    out->w = c1 - c0 + 1;
    for (int i = 0; i < out->h; i++)
        for (int j = 0; j < out->w; j++)
            out->data[i * out->w + j] = (float)(canvas[(r0 + i) * size + c0 + j] / sum);
    return DSD_OK;
}

dsd_status dsd_blur_psf_embed(const dsd_blur_psf *psf, int out_h, int out_w, float *out,
                              dsd_error *err)
{
    if (!psf || !out)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "dsd_blur_psf_embed: %s is NULL",
                        !psf ? "psf" : "out");
    if (psf->h < 1 || psf->w < 1 || psf->h > DSD_BLUR_PSF_MAX || psf->w > DSD_BLUR_PSF_MAX)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "dsd_blur_psf_embed: the PSF is %dx%d; PSFs are "
                        "1x1 to %dx%d", psf->h, psf->w, DSD_BLUR_PSF_MAX, DSD_BLUR_PSF_MAX);
    if (out_h < psf->h || out_w < psf->w)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "dsd_blur_psf_embed: a %dx%d PSF does not fit a "
                        "%dx%d frame", psf->h, psf->w, out_h, out_w);
    /* Anchors ((h-1)/2, (w-1)/2) coincide; the offsets keep psf inside the frame. */
    int oi = (out_h - 1) / 2 - (psf->h - 1) / 2, oj = (out_w - 1) / 2 - (psf->w - 1) / 2;
    memset(out, 0, (size_t)out_h * (size_t)out_w * sizeof *out);
    for (int i = 0; i < psf->h; i++)
        memcpy(out + (size_t)(oi + i) * (size_t)out_w + (size_t)oj,
               psf->data + (size_t)i * psf->w, (size_t)psf->w * sizeof *out);
    return DSD_OK;
}
