/*
 * blur_apply.c: blurs an image batch with camera-shake point-spread functions
 * (PSFs) on the device by FFT convolution (clFFT), with optional Gaussian
 * noise. OpenCL kernels in cl/blur.cl; the convention (true convolution,
 * 'same' output, reflect borders) is stated in dsdeblur_train.h; the
 * double-precision reference is the direct convolution of tests/ref/blur.c.
 * PSFs are made on the host by src/train/blur_psf.c.
 *
 * Why the FFT: a 64x64 PSF costs 4096 multiply-adds per pixel directly,
 * against a few hundred flops per pixel for two transforms of the padded
 * plane. The padded plane (H + KH - 1) x (W + KW - 1) is zero-padded to
 * FH x FW (lengths clFFT supports); its circular convolution with the
 * zero-padded PSF equals the linear one at rows KH-1 .. KH-1+H-1 (and
 * columns likewise), because those outputs only read padded-plane rows
 * 0 .. H+KH-2 and never wrap. So: pack (reflect) -> forward -> multiply by
 * the PSF spectrum -> backward (unnormalized) -> crop with 1/(FH FW).
 *
 * Plans come from the caller's dsd_fft_plans (src/ops/fft_plan.h, made by
 * fft_loss.c): baked on the first call for a shape, destroyed by
 * dsd_fft_plans_free, never clfftTeardown. Spectra and clFFT's scratch are
 * leased from the buffer pool per call. Nothing here waits for the device.
 */
#include "internal.h"
#include "ops/fft_plan.h"

#include <math.h>
#include <stdio.h>

enum { BLUR_WG_DEFAULT = 256 };

/* 1 when every prime factor of n is a clFFT radix. */
static int smooth(int n)
{
    static const int radices[] = {2, 3, 5, 7, 11, 13};
    for (int i = 0; i < DSD_NARGS(radices); i++)
        while (n % radices[i] == 0)
            n /= radices[i];
    return n == 1;
}

int dsd_blur_fft_size(int n)
{
    if (n < 1)
        return 1;
    while (!smooth(n))
        n++;
    return n;
}

/* A side of n pixels padded for a PSF side k reflects k-1-(k-1)/2 pixels
 * before and (k-1)/2 after; ReflectionPad2d's rule is that both are < n,
 * i.e. n >= k - (k-1)/2 (k <= 2n - 1). */
static int min_side(int k)
{
    return k - (k - 1) / 2;
}

dsd_status dsd_blur_apply(dsd_context *ctx, dsd_fft_plans *plans, const dsd_tensor *x,
                          const dsd_tensor *psf, float noise_sigma, uint64_t seed,
                          uint64_t stream, dsd_tensor *y)
{
    return dsd_blur_apply_at(ctx, plans, x, psf, noise_sigma, seed, stream, 0, y);
}

dsd_status dsd_blur_apply_at(dsd_context *ctx, dsd_fft_plans *plans, const dsd_tensor *x,
                             const dsd_tensor *psf, float noise_sigma, uint64_t seed,
                             uint64_t stream, uint32_t first, dsd_tensor *y)
{
    const char *op = "blur_apply";
    /* ---- validate */
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, x, "x"));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, psf, "psf"));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, y, "y"));
    if (!dsd_tensor_same_shape(x, y))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: y is %dx%dx%dx%d but x is "
                        "%dx%dx%dx%d; they must have the same shape", op, y->n, y->c, y->h, y->w,
                        x->n, x->c, x->h, x->w);
    if (psf->c != 1 || (psf->n != 1 && psf->n != x->n))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: psf is %dx%dx%dx%d but must be "
                        "(1 or N = %d) x 1 x KH x KW", op, psf->n, psf->c, psf->h, psf->w, x->n);
    if (!(noise_sigma >= 0.0f) || isinf(noise_sigma))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: noise_sigma = %g must "
                        "be finite and >= 0", op, (double)noise_sigma);
    /* said as a user of dsdeblur-blur or data.mode synthetic sees it: an
     * image and a kernel, width x height */
    if (x->h < min_side(psf->h) || x->w < min_side(psf->w))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "the image is %dx%d pixels, too small "
                        "for its %dx%d blur kernel (width x height): the blur mirrors the image "
                        "by half the kernel at each border and needs at least %dx%d pixels",
                        x->w, x->h, psf->w, psf->h, min_side(psf->w), min_side(psf->h));

    /* ---- sizes */
    int kh = psf->h, kw = psf->w;
    int top = kh - 1 - (kh - 1) / 2, left = kw - 1 - (kw - 1) / 2;
    int hp = x->h + kh - 1, wp = x->w + kw - 1;
    int fh = dsd_blur_fft_size(hp), fw = dsd_blur_fft_size(wp);
    size_t planes = (size_t)x->n * (size_t)x->c, plane = (size_t)fh * (size_t)fw;
    if (2.0 * (double)planes * (double)plane > 4294967295.0 || 2 * fw > 2147483647)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: x (%dx%dx%dx%d) with a %dx%d "
                        "PSF is too large: its %zu padded %dx%d spectra need more than 2^32 "
                        "floats", op, x->n, x->c, x->h, x->w, kh, kw, planes, fh, fw);

    /* ---- plans (copied: the array may move when it grows) and buffers */
    const dsd_fft_plan *got = NULL;
    DSD_TRY(dsd_fft_plan_get(ctx, plans, fh, fw, planes, &got));
    dsd_fft_plan img_plan = *got;
    DSD_TRY(dsd_fft_plan_get(ctx, plans, fh, fw, (size_t)psf->n, &got));
    dsd_fft_plan psf_plan = *got;

    dsd_tensor spec = {0}, psf_spec = {0}, tmp = {0};
    dsd_status st = dsd_tensor_init(ctx, &spec, x->n, x->c, fh, 2 * fw);
    if (st == DSD_OK)
        st = dsd_tensor_init(ctx, &psf_spec, psf->n, 1, fh, 2 * fw);
    size_t tmp_bytes = img_plan.tmp_bytes > psf_plan.tmp_bytes ? img_plan.tmp_bytes
                                                                : psf_plan.tmp_bytes;
    if (st == DSD_OK && tmp_bytes > 0) {
        size_t floats = (tmp_bytes + sizeof(float) - 1) / sizeof(float);
        if (floats > 2147483647u)
            st = DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "%s: clFFT asks for %zu "
                          "bytes of scratch", op, tmp_bytes);
        else
            st = dsd_tensor_init(ctx, &tmp, 1, 1, 1, (int)floats);
    }
    if (st != DSD_OK)
        goto done;

    /* ---- arguments and enqueues */
    size_t wg = dsd_work_group_size(ctx, BLUR_WG_DEFAULT);
    cl_uint uh = (cl_uint)x->h, uw = (cl_uint)x->w, ufh = (cl_uint)fh, ufw = (cl_uint)fw;
    cl_uint uhp = (cl_uint)hp, uwp = (cl_uint)wp, ukh = (cl_uint)kh, ukw = (cl_uint)kw;
    cl_int itop = top, ileft = left;

    cl_uint icount = (cl_uint)(planes * plane);
    dsd_karg pargs[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(&spec), DSD_KARG(uh), DSD_KARG(uw),
                        DSD_KARG(ufh), DSD_KARG(ufw), DSD_KARG(uhp), DSD_KARG(uwp),
                        DSD_KARG(itop), DSD_KARG(ileft), DSD_KARG(icount)};
    size_t global = icount;
    st = dsd_kernel_run(ctx, "blur", NULL, "blur_pack_image", pargs, DSD_NARGS(pargs), 1,
                        &global, &wg);
    if (st != DSD_OK)
        goto done;

    cl_uint psf_count = (cl_uint)((size_t)psf->n * plane);
    dsd_karg psf_args[] = {DSD_KARG_TENSOR(psf), DSD_KARG_TENSOR(&psf_spec), DSD_KARG(ukh),
                           DSD_KARG(ukw), DSD_KARG(ufh), DSD_KARG(ufw), DSD_KARG(psf_count)};
    global = psf_count;
    st = dsd_kernel_run(ctx, "blur", NULL, "blur_pack_psf", psf_args, DSD_NARGS(psf_args), 1,
                        &global, &wg);
    if (st != DSD_OK)
        goto done;

    st = dsd_fft_transform(ctx, &img_plan, CLFFT_FORWARD, spec.buf, tmp.buf);
    if (st == DSD_OK)
        st = dsd_fft_transform(ctx, &psf_plan, CLFFT_FORWARD, psf_spec.buf, tmp.buf);
    if (st != DSD_OK)
        goto done;

    cl_uint uplane = (cl_uint)plane, uc = (cl_uint)x->c, shared = psf->n == 1;
    dsd_karg margs[] = {DSD_KARG_TENSOR(&spec), DSD_KARG_TENSOR(&psf_spec), DSD_KARG(uplane),
                        DSD_KARG(uc), DSD_KARG(shared), DSD_KARG(icount)};
    global = icount;
    st = dsd_kernel_run(ctx, "blur", NULL, "blur_multiply", margs, DSD_NARGS(margs), 1,
                        &global, &wg);
    if (st != DSD_OK)
        goto done;
    st = dsd_fft_transform(ctx, &img_plan, CLFFT_BACKWARD, spec.buf, tmp.buf);
    if (st != DSD_OK)
        goto done;

    float inv = (float)(1.0 / (double)plane);
    cl_uint k0 = (cl_uint)seed, k1 = (cl_uint)(seed >> 32);
    cl_uint s0 = (cl_uint)stream, s1 = (cl_uint)(stream >> 32);
    cl_uint ocount = (cl_uint)dsd_tensor_numel(x), ufirst = first;
    if ((uint64_t)first + ocount > (uint64_t)UINT32_MAX + 1) {
        st = DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: elements %u .. %u of the batch pass "
                      "the 32-bit noise counter", op, (unsigned)first,
                      (unsigned)(first + ocount - 1));
        goto done;
    }
    dsd_karg cargs[] = {DSD_KARG_TENSOR(&spec), DSD_KARG_TENSOR(y), DSD_KARG(uh), DSD_KARG(uw),
                        DSD_KARG(ufh), DSD_KARG(ufw), DSD_KARG(ukh), DSD_KARG(ukw),
                        DSD_KARG(inv), DSD_KARG(noise_sigma), DSD_KARG(k0), DSD_KARG(k1),
                        DSD_KARG(s0), DSD_KARG(s1), DSD_KARG(ocount), DSD_KARG(ufirst)};
    global = ocount;
    st = dsd_kernel_run(ctx, "blur", NULL, "blur_crop", cargs, DSD_NARGS(cargs), 1, &global,
                        &wg);
done:
    /* Released after enqueueing: safe on the in-order queue (the pool hands a
     * buffer to later work only). */
    dsd_tensor_free(ctx, &tmp);
    dsd_tensor_free(ctx, &psf_spec);
    dsd_tensor_free(ctx, &spec);
    return st;
}
