/*
 * deblur.c: one photograph through a loaded generator, any size, whole or in
 * tiles (dsdeblur_infer.h is the manual: padding rule, the three tiled
 * stages, memory). Tests: tests/test-infer.c.
 *
 * What it does not do: decode or encode files, load weights, batch several
 * images. The untiled path is dsd_generator_forward itself; the tiled path
 * re-composes the same layers from the ops, stage by stage (inference only:
 * no dropout, nothing kept), because the generator's internals are private
 * to src/model/generator.c. tests/test-infer.c holds the two paths equal, so
 * a change to the network that is not mirrored here fails there.
 *
 * Why the halo is exact, and what was measured
 * --------------------------------------------
 * The encoder (head 7x7 reflect, two 3x3 stride-2 zero-padded convs) maps
 * input rows 4q - 6 .. 4q + 6 to feature row q; the decoder (two KxK convs
 * each followed by PixelShuffle(2), then the 7x7 reflect tail) maps feature
 * rows within k + ceil((k + 2) / 2) of a pixel's own row (k = K / 2) to it.
 * A tile whose core is surrounded by that many pixels of real image (or by
 * the image border, padded the same way as the untiled network pads it)
 * therefore computes its core from exactly the same numbers as the whole
 * image. Measured max |tiled - untiled| over a whole 61x45 image (padded
 * 64x48), B 8, 2 blocks, K 3, random weights scaled by 2 so the network part
 * mean |y - x| is 0.39 (tests/test-infer.c prints the table), PoCL:
 *     halo (px)      0        4        8        12   16
 *     tile 16     1.04     0.59     0.21      0    0
 *     tile 24     1.00     0.58     0.18      0    0
 * i.e. visible seams up to 8 (the decoder then misses its third quarter
 * row), and bit-identical results from 12, the computed minimum, on: the same
 * numbers are summed in the same order. Running the whole generator on each
 * tile instead (naive tiling, tile 24, halo 16) is off by 0.088 whatever the
 * halo, because each tile then pools its own channel attention.
 */
#include "internal.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}


/* ------------------------------------------------------------------------ */
/* Geometry */

int dsd_deblur_default_overlap(const dsd_generator_config *cfg)
{
    int k = (cfg ? cfg->up_kernel : 3) / 2;
    int decode = 4 * (k + (k + 3) / 2); /* k + ceil((k + 2) / 2) quarter rows */
    return decode > 8 ? decode : 8;     /* the encoder needs 6, rounded to 8 */
}

void dsd_deblur_padded_size(int h, int w, int *ph, int *pw)
{
    *ph = h < 8 ? 8 : (h + 3) / 4 * 4;
    *pw = w < 8 ? 8 : (w + 3) / 4 * 4;
}

static int round4(int v)
{
    return (v + 3) / 4 * 4;
}

/* Device bytes of one inference pass (the plan's arena and workspace);
 * *largest grows to its largest buffer. UINT64_MAX when it cannot be planned. */
static uint64_t pass_bytes(const dsd_generator_config *cfg, int stage, int h, int w,
                           uint64_t *largest)
{
    dsd_network_plan plan = {0};
    dsd_status st = stage < 0 ? dsd_generator_plan(cfg, 1, h, w, 0, &plan, NULL)
                              : dsd_generator_plan_stage(cfg, (dsd_generator_stage)stage, 1, h,
                                                         w, &plan, NULL);
    uint64_t bytes = st == DSD_OK ? dsd_network_plan_bytes(&plan) : UINT64_MAX;
    uint64_t arena = (uint64_t)plan.arena_floats * sizeof(float);
    if (st != DSD_OK)
        arena = UINT64_MAX;
    *largest = arena > *largest ? arena : *largest;
    *largest = plan.workspace_bytes > *largest ? plan.workspace_bytes : *largest;
    dsd_network_plan_free(&plan);
    return bytes;
}

static uint64_t sum_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void dsd_deblur_estimate_bytes(const dsd_generator_config *cfg, int h, int w, int tile,
                               uint64_t *peak, uint64_t *largest)
{
    const dsd_generator_config c = cfg ? *cfg : dsd_generator_default_config();
    int ph, pw;
    dsd_deblur_padded_size(h, w, &ph, &pw);
    const uint64_t image = (uint64_t)3 * ph * pw * sizeof(float);
    *largest = image;
    if (tile <= 0) { /* x, y and the whole network's pass */
        *peak = sum_sat(2 * image, pass_bytes(&c, -1, ph, pw, largest));
        return;
    }
    /* the whole quarter-resolution map (and the next block's output) stay on
     * the device; one tile of x, of its features and of y at a time */
    int e = dsd_deblur_default_overlap(&c), t = round4(tile);
    int th = t + 2 * e < ph ? t + 2 * e : ph, tw = t + 2 * e < pw ? t + 2 * e : pw;
    const uint64_t map = (uint64_t)4 * c.base_width * (ph / 4) * (pw / 4) * sizeof(float);
    const uint64_t x_tile = (uint64_t)3 * th * tw * sizeof(float);
    const uint64_t f_tile = (uint64_t)4 * c.base_width * (th / 4) * (tw / 4) * sizeof(float);
    *largest = map > x_tile ? map : x_tile;
    uint64_t enc = sum_sat(map + x_tile + f_tile,
                           pass_bytes(&c, DSD_GENERATOR_ENCODE, th, tw, largest));
    uint64_t blocks = sum_sat(2 * map, pass_bytes(&c, DSD_GENERATOR_BLOCKS, ph, pw, largest));
    uint64_t dec = sum_sat(map + 2 * x_tile + f_tile,
                           pass_bytes(&c, DSD_GENERATOR_DECODE, th, tw, largest));
    *peak = enc > blocks ? enc : blocks;
    *peak = dec > *peak ? dec : *peak;
}

/* Planar (3, h, w) -> (3, ph, pw), padded on the right and bottom. Mirrors
 * without repeating the edge (ReflectionPad2d: src index 2 (n - 1) - i for
 * i >= n). Where the padding is as long as the side or longer (sides 1 .. 4
 * grown to 8), there is nothing to mirror, and PyTorch would refuse; that
 * axis repeats its last pixel instead (edge replication). */
static void pad_planar(const float *x, int h, int w, float *out, int ph, int pw)
{
    const int rep_h = ph - h > h - 1, rep_w = pw - w > w - 1;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < ph; i++) {
            int si = i < h ? i : rep_h ? h - 1 : 2 * (h - 1) - i;
            const float *row = x + ((size_t)c * h + si) * w;
            float *o = out + ((size_t)c * ph + i) * pw;
            for (int j = 0; j < pw; j++)
                o[j] = row[j < w ? j : rep_w ? w - 1 : 2 * (w - 1) - j];
        }
}

/* ------------------------------------------------------------------------ */
/* Tiles */

/* dst[:, dy .. dy + h, dx .. dx + w] = src[:, sy .. sy + h, sx .. sx + w] for
 * batch-1 tensors of one channel count: one rectangular copy, channels as
 * slices. The tensors' offsets are folded into the x origin, which OpenCL
 * simply adds (offset = z * slice_pitch + y * row_pitch + x). */
static dsd_status copy_rect(dsd_context *ctx, const dsd_tensor *src, int sx, int sy,
                            dsd_tensor *dst, int dx, int dy, int w, int h)
{
    assert(src->c == dst->c && src->n == 1 && dst->n == 1);
    assert(sx >= 0 && sy >= 0 && sx + w <= src->w && sy + h <= src->h);
    assert(dx >= 0 && dy >= 0 && dx + w <= dst->w && dy + h <= dst->h);
    const size_t f = sizeof(float);
    size_t so[3] = {((size_t)src->offset + (size_t)sx) * f, (size_t)sy, 0};
    size_t doff[3] = {((size_t)dst->offset + (size_t)dx) * f, (size_t)dy, 0};
    size_t region[3] = {(size_t)w * f, (size_t)h, (size_t)src->c};
    DSD_CL_TRY(dsd_ctx_err(ctx),
               clEnqueueCopyBufferRect(dsd_context_queue(ctx), src->buf, dst->buf, so, doff,
                                       region, (size_t)src->w * f, dsd_tensor_plane(src) * f,
                                       (size_t)dst->w * f, dsd_tensor_plane(dst) * f, 0, NULL,
                                       NULL),
               "deblur: copying a %dx%d tile of %d channels", w, h, src->c);
    return DSD_OK;
}

/* The (3, wh, ww) window of planar (3, ph, pw) x at (x0, y0), uploaded. */
static dsd_status upload_window(dsd_context *ctx, const float *x, int ph, int pw, int x0,
                                int y0, int ww, int wh, float *scratch, dsd_tensor *t)
{
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < wh; i++)
            memcpy(scratch + ((size_t)c * wh + i) * ww, x + ((size_t)c * ph + y0 + i) * pw + x0,
                   (size_t)ww * sizeof *x);
    return dsd_tensor_upload(ctx, t, scratch, (size_t)3 * wh * ww);
}

typedef struct span {
    int core0, core1; /* the core [core0, core1) */
    int ext0, ext1;   /* with the halo, clipped to the image */
} span;

static span span_of(int start, int tile, int halo, int size)
{
    span s;
    s.core0 = start;
    s.core1 = start + tile < size ? start + tile : size;
    s.ext0 = start - halo > 0 ? start - halo : 0;
    s.ext1 = s.core1 + halo < size ? s.core1 + halo : size;
    return s;
}

/* yp = G(xp) for planar (3, ph, pw) host arrays, ph, pw multiples of 4 >= 8,
 * in tiles of core `tile` and halo `halo` (both multiples of 4). */
static dsd_status run_tiled(dsd_context *ctx, dsd_generator *g, const float *xp, int ph, int pw,
                            int tile, int halo, float *yp, double *device_s, int *n_tiles)
{
    const int c = 4 * g->cfg.base_width;
    const int ext_max = tile + 2 * halo;
    dsd_tensor f = {0}, f2 = {0}, xt = {0}, ft = {0}, yt = {0};
    float *scratch = malloc((size_t)3 * ext_max * ext_max * sizeof *scratch);
    dsd_status st = DSD_OK;
    double t0;
    *n_tiles = 0;
    if (!scratch) {
        st = DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "deblur: no host memory for a "
                      "%dx%d tile", ext_max, ext_max);
        goto done;
    }
    DSD_TRY_GOTO(st, dsd_tensor_init(ctx, &f, 1, c, ph / 4, pw / 4), done);

    /* 1. encoder on tiles, cores into f */
    for (int ty = 0; ty < ph; ty += tile)
        for (int tx = 0; tx < pw; tx += tile) {
            span sy = span_of(ty, tile, halo, ph), sx = span_of(tx, tile, halo, pw);
            int eh = sy.ext1 - sy.ext0, ew = sx.ext1 - sx.ext0;
            DSD_TRY_GOTO(st, dsd_tensor_init(ctx, &xt, 1, 3, eh, ew), done);
            DSD_TRY_GOTO(st, upload_window(ctx, xp, ph, pw, sx.ext0, sy.ext0, ew, eh, scratch, &xt), done);
            DSD_TRY_GOTO(st, dsd_context_finish(ctx), done);
            t0 = now_s();
            DSD_TRY_GOTO(st, dsd_tensor_init(ctx, &ft, 1, c, eh / 4, ew / 4), done);
            DSD_TRY_GOTO(st, dsd_generator_encode(ctx, g, &xt, &ft), done);
            DSD_TRY_GOTO(st, copy_rect(ctx, &ft, (sx.core0 - sx.ext0) / 4, (sy.core0 - sy.ext0) / 4, &f,
                            sx.core0 / 4, sy.core0 / 4, (sx.core1 - sx.core0) / 4,
                            (sy.core1 - sy.core0) / 4), done);
            DSD_TRY_GOTO(st, dsd_context_finish(ctx), done);
            *device_s += now_s() - t0;
            dsd_tensor_free(ctx, &ft);
            dsd_tensor_free(ctx, &xt);
            (*n_tiles)++;
        }

    /* 2. the blocks on the whole map */
    t0 = now_s();
    for (int b = 0; b < g->cfg.n_blocks; b++) {
        DSD_TRY_GOTO(st, dsd_tensor_init(ctx, &f2, 1, c, ph / 4, pw / 4), done);
        DSD_TRY_GOTO(st, dsd_generator_block(ctx, g, b, &f, &f2), done);
        dsd_tensor_free(ctx, &f);
        f = f2;
        memset(&f2, 0, sizeof f2);
    }
    DSD_TRY_GOTO(st, dsd_context_finish(ctx), done);
    *device_s += now_s() - t0;

    /* 3. decoder on tiles of the map, cores into yp */
    for (int ty = 0; ty < ph; ty += tile)
        for (int tx = 0; tx < pw; tx += tile) {
            span sy = span_of(ty, tile, halo, ph), sx = span_of(tx, tile, halo, pw);
            int eh = sy.ext1 - sy.ext0, ew = sx.ext1 - sx.ext0;
            DSD_TRY_GOTO(st, dsd_tensor_init(ctx, &xt, 1, 3, eh, ew), done);
            DSD_TRY_GOTO(st, upload_window(ctx, xp, ph, pw, sx.ext0, sy.ext0, ew, eh, scratch, &xt), done);
            DSD_TRY_GOTO(st, dsd_context_finish(ctx), done);
            t0 = now_s();
            DSD_TRY_GOTO(st, dsd_tensor_init(ctx, &ft, 1, c, eh / 4, ew / 4), done);
            DSD_TRY_GOTO(st, copy_rect(ctx, &f, sx.ext0 / 4, sy.ext0 / 4, &ft, 0, 0, ew / 4, eh / 4), done);
            DSD_TRY_GOTO(st, dsd_tensor_init(ctx, &yt, 1, 3, eh, ew), done);
            DSD_TRY_GOTO(st, dsd_generator_decode(ctx, g, &ft, &xt, &yt), done);
            dsd_tensor_free(ctx, &ft);
            DSD_TRY_GOTO(st, dsd_context_finish(ctx), done);
            *device_s += now_s() - t0;
            DSD_TRY_GOTO(st, dsd_tensor_download(ctx, &yt, scratch, (size_t)3 * eh * ew), done);
            for (int ch = 0; ch < 3; ch++)
                for (int i = sy.core0; i < sy.core1; i++)
                    memcpy(yp + ((size_t)ch * ph + i) * pw + sx.core0,
                           scratch + ((size_t)ch * eh + i - sy.ext0) * ew + sx.core0 - sx.ext0,
                           (size_t)(sx.core1 - sx.core0) * sizeof *yp);
            dsd_tensor_free(ctx, &yt);
            dsd_tensor_free(ctx, &xt);
        }
done:
    free(scratch);
    dsd_tensor_free(ctx, &f);
    dsd_tensor_free(ctx, &f2);
    dsd_tensor_free(ctx, &xt);
    dsd_tensor_free(ctx, &ft);
    dsd_tensor_free(ctx, &yt);
    return st;
}

/* yp = G(xp) on the whole padded image (dsd_generator_forward). */
static dsd_status run_whole(dsd_context *ctx, dsd_generator *g, const float *xp, int ph, int pw,
                            float *yp, double *device_s)
{
    dsd_tensor x = {0}, y = {0};
    const size_t count = (size_t)3 * ph * pw;
    dsd_status st;
    DSD_TRY_GOTO(st, dsd_tensor_init(ctx, &x, 1, 3, ph, pw), done);
    DSD_TRY_GOTO(st, dsd_tensor_init(ctx, &y, 1, 3, ph, pw), done);
    DSD_TRY_GOTO(st, dsd_tensor_upload(ctx, &x, xp, count), done);
    DSD_TRY_GOTO(st, dsd_context_finish(ctx), done);
    double t0 = now_s();
    DSD_TRY_GOTO(st, dsd_generator_forward(ctx, g, &x, &y, NULL), done);
    DSD_TRY_GOTO(st, dsd_context_finish(ctx), done);
    *device_s += now_s() - t0;
    DSD_TRY_GOTO(st, dsd_tensor_download(ctx, &y, yp, count), done);
done:
    dsd_tensor_free(ctx, &x);
    dsd_tensor_free(ctx, &y);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Entry points */

static int fits(dsd_context *ctx, const dsd_generator *g, const dsd_deblur_options *o, int h,
                int w, int tile)
{
    const dsd_device_info *d = dsd_context_device(ctx);
    uint64_t total = o->memory_limit ? o->memory_limit : d->global_mem_bytes;
    uint64_t one = o->memory_limit ? o->memory_limit : d->max_alloc_bytes;
    uint64_t peak, largest;
    dsd_deblur_estimate_bytes(&g->cfg, h, w, tile, &peak, &largest);
    return (!total || peak + g->arena_bytes <= total) && (!one || largest <= one);
}

dsd_status dsd_deblur_planar(dsd_context *ctx, dsd_generator *g, const float *x, int h, int w,
                             float *y, const dsd_deblur_options *opts, dsd_deblur_stats *stats)
{
    const double t_start = now_s();
    dsd_deblur_options o = {0, -1, 0, 0};
    if (opts)
        o = *opts;
    dsd_deblur_stats s;
    memset(&s, 0, sizeof s);
    if (!g || !g->params.values.buf || !x || !y || h < 1 || w < 1 || x == y)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "deblur: %s",
                        !g || !g->params.values.buf ? "generator not initialized"
                        : !x || !y                 ? "NULL image"
                        : x == y                   ? "y aliases x"
                                                   : "image side < 1");
    if (o.tile < 0)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "deblur: tile %d < 0",
                        o.tile);
    int ph, pw;
    dsd_deblur_padded_size(h, w, &ph, &pw);
    s.padded_h = ph;
    s.padded_w = pw;
    int halo = o.overlap < 0 ? dsd_deblur_default_overlap(&g->cfg) : round4(o.overlap);
    int tile = o.tile ? round4(o.tile < 8 ? 8 : o.tile) : 0;

    float *xp = malloc((size_t)6 * ph * pw * sizeof *xp), *yp = xp ? xp + (size_t)3 * ph * pw : NULL;
    if (!xp)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "deblur: no host memory for a "
                        "%dx%d image", pw, ph);
    pad_planar(x, h, w, xp, ph, pw);

    dsd_status st;
    if (tile == 0 && (o.no_fallback || fits(ctx, g, &o, ph, pw, 0))) {
        st = run_whole(ctx, g, xp, ph, pw, yp, &s.device_s);
        if (st != DSD_ERR_OUT_OF_MEMORY || o.no_fallback)
            goto done;
        dsd_pool_trim(ctx);
        s.fallbacks++;
        s.device_s = 0;
    } else if (tile == 0) {
        s.fallbacks++;
    }
    if (tile == 0) {
        /* halve from half the longer side until the estimate fits */
        tile = round4((ph > pw ? ph : pw) / 2);
        while (tile / 2 >= DSD_DEBLUR_MIN_TILE && !fits(ctx, g, &o, ph, pw, tile))
            tile = round4(tile / 2);
        for (;;) {
            st = run_tiled(ctx, g, xp, ph, pw, tile, halo, yp, &s.device_s, &s.n_tiles);
            if (st != DSD_ERR_OUT_OF_MEMORY || tile / 2 < DSD_DEBLUR_MIN_TILE)
                break;
            dsd_pool_trim(ctx);
            s.fallbacks++;
            s.device_s = 0;
            tile = round4(tile / 2);
        }
        if (st == DSD_ERR_OUT_OF_MEMORY) {
            uint64_t peak, largest;
            dsd_deblur_estimate_bytes(&g->cfg, ph, pw, tile, &peak, &largest);
            char was[DSD_ERROR_MESSAGE_MAX / 2];
            snprintf(was, sizeof was, "%.4000s", dsd_context_error(ctx)->message);
            st = DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "deblur: a %dx%d image does "
                          "not fit even in %d-pixel tiles (estimated %.1f MiB, the residual "
                          "blocks run on the whole quarter-resolution map): %s", pw, ph, tile,
                          peak / 1048576.0, was);
        }
    } else {
        st = run_tiled(ctx, g, xp, ph, pw, tile, halo, yp, &s.device_s, &s.n_tiles);
    }
    s.tile = tile;
    s.overlap = halo;
done:
    if (st == DSD_OK) {
        if (!s.tile)
            s.n_tiles = 1;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < h; i++)
                memcpy(y + ((size_t)c * h + i) * w, yp + ((size_t)c * ph + i) * pw,
                       (size_t)w * sizeof *y);
    }
    free(xp);
    s.total_s = now_s() - t_start;
    if (stats)
        *stats = s;
    return st;
}

dsd_status dsd_deblur_image(dsd_context *ctx, dsd_generator *g, const dsd_image *in,
                            dsd_image *out, const dsd_deblur_options *opts,
                            dsd_deblur_stats *stats)
{
    const double t_start = now_s();
    if (!in || !out || !in->data || in == out)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "deblur: %s",
                        in == out && in ? "out is in" : "NULL or empty image");
    size_t n = dsd_image_numel(in);
    float *x = malloc(2 * n * sizeof *x);
    if (!x)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "deblur: no host memory for a "
                        "%dx%d image", in->width, in->height);
    float *y = x + n;
    dsd_image_to_planar(in, x);
    dsd_status st = dsd_deblur_planar(ctx, g, x, in->height, in->width, y, opts, stats);
    if (st == DSD_OK && dsd_image_alloc(out, in->width, in->height, dsd_ctx_err(ctx)) != DSD_OK)
        st = dsd_context_error(ctx)->status;
    if (st == DSD_OK) {
        size_t nan = dsd_image_from_planar(out, y);
        if (nan)
            st = DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_NAN, "deblur: the network produced %zu "
                          "non-finite values on a %dx%d image (diverged weights?)", nan,
                          in->width, in->height);
    }
    free(x);
    if (stats)
        stats->total_s = now_s() - t_start;
    return st;
}
