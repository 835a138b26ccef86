/*
 * dsdeblur_infer.h: deblurring a photograph with a loaded generator
 * (included by dsdeblur.h after the other headers; do not include it alone).
 * Implementation: src/infer/deblur.c; tests: tests/test-infer.c (sizes,
 * tiling against the untiled network, tiny images, determinism) and
 * tests/test-run.c (the tools on top of it).
 *
 * What this is not: image decoding (dsdeblur_image.h), model loading
 * (dsdeblur_io.h) or a batch scheduler: one image per call, batch 1.
 *
 * Overview
 * --------
 *     dsd_generator_config cfg;
 *     dsd_generator_file_config("g.safetensors", &cfg, &err);
 *     dsd_generator_init(ctx, &g, &cfg);
 *     dsd_generator_load(ctx, &g, "g.safetensors");
 *     dsd_image in = {0}, out = {0};
 *     dsd_image_load("blurry.jpg", &in, &err);
 *     dsd_deblur_stats st;
 *     if (dsd_deblur_image(ctx, &g, &in, &out, NULL, &st) != DSD_OK) ...   // any size
 *     printf("%.3f s on the device, %.3f s in all\n", st.device_s, st.total_s);
 *
 * Any size
 * --------
 * The generator takes sides that are multiples of 4 and at least 8. The
 * image is padded on the right and bottom to the next such size by
 * reflection without repeating the edge pixel (PyTorch's ReflectionPad2d:
 * ... a b c | b a), the network runs, and the result is cropped back. A side
 * too short to mirror (padding >= its length: sides 1 .. 4 padded to 8)
 * repeats its last pixel instead, as reflection is undefined there.
 * Inference mode: dropout off, no activation kept for a backward.
 *
 * Tiles
 * -----
 * tile > 0 (or an out-of-memory fallback, below) runs the network in three
 * stages so that the full-resolution layers never see the whole image:
 *   1. encode  head, down.0, down.1 on overlapping tiles of the padded image,
 *              each tile's core written into one (C, H/4, W/4) feature map
 *   2. blocks  the residual blocks on that whole quarter-resolution map
 *   3. decode  up.0, up.1, tail and the global residual on overlapping tiles
 *              of the map, each tile's core copied into the output.
 * The blocks cannot be tiled naively: their channel attention pools (mean
 * and max) over the WHOLE feature map, so a tile's attention would differ
 * from the image's and every tile would get its own colour cast; running
 * them on the whole map keeps the result equal to the untiled network. The
 * rest of the network is local with a finite reach: the encoder's output at
 * quarter-resolution row q reads input rows 4q - 6 .. 4q + 6, and an output
 * pixel reads feature rows at most k + ceil((k + 2) / 2) quarter-resolution
 * rows away (k = up_kernel / 2), i.e. 12 pixels for the paper's K = 3. Tiles
 * that overlap by that halo on every side, with only their cores kept, are
 * exact up to float rounding (measurements in src/infer/deblur.c and
 * tests/test-infer.c). No blending is needed because
 * nothing of a tile's edge survives into its core; tiles touching the image
 * border see the same border padding as the whole image, so there is no
 * margin where the result differs. Tile sides are multiples of 4 so the
 * quarter-resolution grids line up.
 *
 * Memory: untiled inference needs about 128 floats per pixel of the padded
 * image at its peak (up.1's output and its pixel-shuffled copy) plus the
 * convolution's column buffer (<= 8 MiB); tiled inference about 48 floats
 * per pixel (three quarter-resolution maps of 4B = 256 channels in the
 * blocks) plus the tiles'. With tile == 0 the estimate is checked against the
 * device first (dsd_deblur_estimate_bytes); when it does not fit, or the
 * untiled run fails with DSD_ERR_OUT_OF_MEMORY, the call retries with tiles
 * of half the image's longer side, halving down to DSD_DEBLUR_MIN_TILE
 * before giving up with the estimate in the message.
 */
#ifndef DSDEBLUR_INFER_H
#define DSDEBLUR_INFER_H

#ifdef __cplusplus
extern "C" {
#endif

/* Smallest tile the automatic fallback tries (pixels). */
enum { DSD_DEBLUR_MIN_TILE = 64 };

typedef struct dsd_deblur_options {
    /* Core tile side in pixels, rounded up to a multiple of 4 (at least 8);
     * 0: the whole image, with the automatic tiled fallback. */
    int tile;
    /* Halo in pixels on each side of a tile's core, rounded up to a multiple
     * of 4; < 0: dsd_deblur_default_overlap() (smaller halos are allowed, for
     * measurements, and are inexact). */
    int overlap;
    /* Pretend the device has this many bytes (0: the device's global memory
     * and largest allocation). For tests of the fallback and for sharing a
     * device. */
    uint64_t memory_limit;
    /* Non-zero: never fall back to tiles; report the out-of-memory error. */
    int no_fallback;
} dsd_deblur_options;

typedef struct dsd_deblur_stats {
    double device_s;    /* device compute: from the input on the device to the
                           output computed (dsd_context_finish on both sides),
                           summed over tiles; excludes host transfers */
    double total_s;     /* end to end: conversion, padding, transfers,
                           compute, crop */
    int tile;           /* core tile side used; 0 when untiled */
    int overlap;        /* halo used (0 when untiled) */
    int n_tiles;        /* tiles per stage; 1 when untiled */
    int fallbacks;      /* out-of-memory retries (estimate or failed run) */
    int padded_h, padded_w; /* the size the network ran at */
} dsd_deblur_stats;

/* The smallest halo that makes tiles exact for this generator:
 * max(8, 4 (k + ceil((k + 2) / 2))) pixels, k = up_kernel / 2 (12 for K = 3,
 * 8 for K = 1, 16 for K = 5). */
int dsd_deblur_default_overlap(const dsd_generator_config *cfg);
/* The padded size the network runs at: multiples of 4, at least 8. */
void dsd_deblur_padded_size(int h, int w, int *ph, int *pw);
/* Device bytes a deblur of an h x w image needs at its peak, untiled (tile
 * 0) or tiled, and its largest single buffer; weights not included. */
void dsd_deblur_estimate_bytes(const dsd_generator_config *cfg, int h, int w, int tile,
                               uint64_t *peak, uint64_t *largest);

/* y = G(x) for x, y planar (3, h, w) floats in [-1, 1] (dsd_image_to_planar's
 * layout), any h, w >= 1; y must not alias x. opts NULL: defaults; stats may
 * be NULL. Errors are recorded in ctx (DSD_ERR_OUT_OF_MEMORY naming the
 * estimate when even the smallest tile does not fit). */
dsd_status dsd_deblur_planar(dsd_context *ctx, dsd_generator *g, const float *x, int h, int w,
                             float *y, const dsd_deblur_options *opts, dsd_deblur_stats *stats);
/* The same on an 8-bit RGB image; out is (re)allocated at in's size and may
 * not be in. Non-finite network outputs are DSD_ERR_NAN (never saved as
 * black pixels). */
dsd_status dsd_deblur_image(dsd_context *ctx, dsd_generator *g, const dsd_image *in,
                            dsd_image *out, const dsd_deblur_options *opts,
                            dsd_deblur_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* DSDEBLUR_INFER_H */
