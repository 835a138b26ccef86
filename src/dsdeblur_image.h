/*
 * dsdeblur_image.h: photographs in and out of the library, and the quality
 * metrics the paper reports (PSNR, SSIM). Host only: nothing here touches
 * OpenCL, so the tools can read, write and score images without a device.
 * PNG is decoded by libpng, JPEG by libjpeg-turbo, BMP and TGA by stb_image
 * (doc/images.md says why); encoding is stb_image_write's. This module adds
 * the checks, the error messages, atomic saving and the conversion to the
 * networks' float layout. The metrics' exact definitions,
 * and how they were checked against scikit-image and (without MATLAB) against
 * a scipy reading of MATLAB's ssim, are in doc/metrics.md.
 *
 * Images
 * ------
 *     dsd_image img = {0};                        // or dsd_image_init(&img)
 *     if (dsd_image_load("blurry.png", &img, &err) != DSD_OK) ...
 *     float *x = malloc(dsd_image_numel(&img) * sizeof *x);
 *     dsd_image_to_planar(&img, x);               // (3, H, W) in [-1, 1]
 *     ... run the generator, download y (3, H, W) ...
 *     dsd_image_from_planar(&img, y);             // rounds and clamps
 *     dsd_image_save("sharp.png", &img, &err);    // temp file + fsync + rename
 *     dsd_image_free(&img);
 *
 * A dsd_image is always 8-bit RGB, interleaved, row-major, no row padding:
 * byte (y * width + x) * 3 + c is channel c of pixel (x, y), top row first.
 * The struct owns its pixel buffer; dsd_image_free releases it and is safe on
 * a zeroed struct and twice in a row.
 *
 * Loading reads PNG, JPEG, BMP and TGA, told apart by their first bytes
 * (not the extension); GIF, PSD, PIC, PNM and Radiance HDR are refused.
 * Gray becomes R = G = B; palettes are expanded; alpha (and PNG tRNS) is
 * DROPPED, not composited (an RGBA pixel keeps its RGB values whatever its
 * alpha); 16-bit PNGs keep the high byte (v >> 8); CMYK JPEGs become
 * R = C * K / 255. No colour management (ICC, gamma) or EXIF rotation.
 * Headers claiming more than DSD_IMAGE_MAX_PIXELS pixels or a side over
 * DSD_IMAGE_MAX_SIDE, and BMP/TGA files too short for what their header
 * claims, are refused before the pixels are allocated. Errors name the file:
 *     DSD_ERR_IO      missing file, a directory, unreadable
 *     DSD_ERR_FORMAT  empty file, not an image, a refused format, truncated
 *                     or corrupt data (the decoder's reason, in words, and
 *                     the header's size once known), header too large
 *
 * Saving picks the encoder from the extension, case-insensitively: .png
 * (lossless) or .jpg / .jpeg (baseline JPEG, quality 95, 4:2:0 chroma as stb
 * writes it); anything else is DSD_ERR_INVALID_ARGUMENT. The file is written
 * to a temporary name in the same directory, fsynced and renamed over the
 * target, so an existing file is replaced only when the new one is complete,
 * and a failed save leaves no temporary behind. The new file gets mode
 * 0666 & ~umask (an existing file's mode is not carried over).
 *
 * Metrics
 * -------
 *     double psnr, ssim;
 *     dsd_psnr(&out, &ref, &psnr, &err);                       // dB
 *     dsd_ssim(&out, &ref, DSD_SSIM_SKIMAGE, &ssim, &err);
 *
 * Both take two images of the same size and are symmetric in them. PSNR is
 * 10 log10(255^2 / MSE) with the MSE over all H x W x 3 values; identical
 * images give +INFINITY (not an error: callers print it as "inf" and must
 * not average it blindly). SSIM has two protocols, because published numbers
 * use both and they differ in the third decimal:
 *   DSD_SSIM_SKIMAGE  skimage.metrics.structural_similarity(a, b,
 *                     channel_axis=2, data_range=255, gaussian_weights=True,
 *                     sigma=1.5, use_sample_covariance=False): per channel,
 *                     11-tap Gaussian, 'reflect' borders, map cropped by 5
 *                     pixels on each side, mean of the three channel means.
 *                     Needs width and height >= 11 (as skimage does).
 *   DSD_SSIM_MATLAB   MATLAB's ssim(A, ref) on uint8 RGB, which filters the
 *                     H x W x 3 array as a volume: 3-D Gaussian sigma 1.5,
 *                     11 taps per axis (ssim.m's 2*ceil(3*sigma)+1),
 *                     'replicate' borders, mean over every voxel.
 * Values are computed in double precision.
 */
#ifndef DSDEBLUR_IMAGE_H
#define DSDEBLUR_IMAGE_H

#include "dsdeblur.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Images */

/* Limits on what dsd_image_load accepts (checked on the header first). */
#define DSD_IMAGE_MAX_SIDE 65535
#define DSD_IMAGE_MAX_PIXELS (1L << 28)

typedef struct dsd_image {
    int width, height;  /* pixels */
    int channels;       /* always 3 once allocated (RGB) */
    uint8_t *data;      /* (height, width, 3) interleaved RGB; owned */
} dsd_image;

/* Zeroes img (no allocation). */
void dsd_image_init(dsd_image *img);
/* Releases the pixels and zeroes img; safe on zeroed structs. */
void dsd_image_free(dsd_image *img);
/* Frees whatever img held, then allocates width x height RGB pixels, zeroed.
 * DSD_ERR_INVALID_ARGUMENT outside 1..DSD_IMAGE_MAX_SIDE or over
 * DSD_IMAGE_MAX_PIXELS; DSD_ERR_OUT_OF_MEMORY. */
dsd_status dsd_image_alloc(dsd_image *img, int width, int height, dsd_error *err);

/* width * height * 3: the number of bytes of data, and of floats in the
 * planar form. */
static inline size_t dsd_image_numel(const dsd_image *img)
{
    return (size_t)img->width * (size_t)img->height * 3;
}

/* Decodes path into img (whatever img held is freed first; on failure img is
 * left zeroed). See the overview for formats, limits and statuses. */
dsd_status dsd_image_load(const char *path, dsd_image *img, dsd_error *err);

/* Encodes img to path (.png, or .jpg/.jpeg at quality 95), atomically. */
dsd_status dsd_image_save(const char *path, const dsd_image *img, dsd_error *err);

/* Interleaved uint8 RGB -> planar float (3, H, W), x = u / 127.5 - 1, so 0 ->
 * -1 and 255 -> +1 exactly. out holds dsd_image_numel(img) floats; for batch
 * element n of an NCHW buffer pass buf + n * dsd_image_numel(img). */
void dsd_image_to_planar(const dsd_image *img, float *out);

/* Planar float (3, H, W) -> img (already allocated at that size):
 * u = round((x + 1) * 127.5), clamped to [0, 255]; exact inverse of
 * dsd_image_to_planar. NaN becomes 0. Returns how many NaNs were seen, so a
 * caller can warn about a diverged network instead of saving black pixels
 * silently. */
size_t dsd_image_from_planar(dsd_image *img, const float *in);

/* dst = the w x h window of src whose top-left pixel is (x, y); the window
 * must lie inside src (DSD_ERR_INVALID_ARGUMENT otherwise). dst must not be
 * src. */
dsd_status dsd_image_crop(const dsd_image *src, int x, int y, int w, int h, dsd_image *dst,
                          dsd_error *err);

/* dst = src grown to the next multiple of `multiple` in width and height by
 * repeating the last column/row (edge replication), so a network that needs
 * sides divisible by 2^k can run on any photograph; crop the result back with
 * dsd_image_crop(out, 0, 0, src->width, src->height, ...). dst must not be
 * src. */
dsd_status dsd_image_pad_to_multiple(const dsd_image *src, int multiple, dsd_image *dst,
                                     dsd_error *err);

/* ------------------------------------------------------------------------ */
/* Metrics (src/metrics/psnr.c, src/metrics/ssim.c) */

typedef enum dsd_ssim_protocol {
    DSD_SSIM_SKIMAGE = 0,  /* scikit-image, Wang et al. 2004 Gaussian variant */
    DSD_SSIM_MATLAB,       /* MATLAB ssim() on an RGB array (3-D volume) */
} dsd_ssim_protocol;

/* "skimage" / "matlab". */
const char *dsd_ssim_protocol_name(dsd_ssim_protocol protocol);
/* Parses "skimage" or "matlab" (case-insensitive); DSD_ERR_INVALID_ARGUMENT
 * naming the text otherwise. */
dsd_status dsd_ssim_protocol_parse(const char *text, dsd_ssim_protocol *out, dsd_error *err);

/* Mean squared error over all H x W x 3 values, in (0..255)^2 units. */
dsd_status dsd_mse(const dsd_image *a, const dsd_image *b, double *out, dsd_error *err);
/* PSNR in dB, data range 255; +INFINITY when a == b. DSD_ERR_SHAPE when the
 * sizes differ. */
dsd_status dsd_psnr(const dsd_image *a, const dsd_image *b, double *out, dsd_error *err);
/* Mean SSIM under protocol (1 when a == b). DSD_ERR_SHAPE when the sizes
 * differ or (skimage) a side is under 11; DSD_ERR_OUT_OF_MEMORY. */
dsd_status dsd_ssim(const dsd_image *a, const dsd_image *b, dsd_ssim_protocol protocol,
                    double *out, dsd_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DSDEBLUR_IMAGE_H */
