/*
 * blur.cl: the element-wise kernels around clFFT's transforms for the
 * synthetic blur (host side: src/train/blur_apply.c; reference: the direct
 * convolution in tests/ref/blur.c). The transforms themselves are clFFT's.
 *
 * Spectra hold planes of FH x FW interleaved complex values (re, im), plane
 * after plane; an image plane is p = n*C + c, a PSF (point-spread function,
 * the blur) plane is n (or 0 for one PSF shared by the batch). dsd_reflect
 * comes from common.cl. Flat indices are split with q = e / n, r = e - q * n
 * rather than a / and % pair (Oclgrind 21.10 cannot run the `freeze` LLVM
 * emits for that pair).
 *
 *   blur_pack_image  reflect-pad each H x W plane by (top, left) into the
 *                    first HP x WP of its FH x FW plane, zeros elsewhere
 *   blur_pack_psf    zero-pad each KH x KW PSF into FH x FW
 *   (clFFT forward on both)
 *   blur_multiply    image spectrum *= its PSF's spectrum
 *   (clFFT backward, unnormalized)
 *   blur_crop        y = Re(...)[i + KH-1, j + KW-1] / (FH FW) (+ noise, clamp)
 */

/* The noise tag in the counter's last word ("blur"), so that no other
 * Philox user with the same seed and stream draws the same words. */
#define BLUR_NOISE_TAG 0x626c7572u

/* One work-item per complex element e of the N*C padded planes:
 * spec[p, r, c] = (x[p, reflect(r - top), reflect(c - left)], 0) for r < hp,
 * c < wp, else 0. */
kernel void blur_pack_image(global const float *x, uint x_off, global float *spec,
                            uint spec_off, uint h, uint w, uint fh, uint fw, uint hp, uint wp,
                            int top, int left, uint count)
{
    uint e = get_global_id(0);
    if (e >= count)
        return;
    uint rest = e / fw, c = e - rest * fw;
    uint p = rest / fh, r = rest - p * fh;
    float v = 0.0f;
    if (r < hp && c < wp) {
        int i = dsd_reflect((int)r - top, (int)h), j = dsd_reflect((int)c - left, (int)w);
        v = x[x_off + ((size_t)p * h + (uint)i) * w + (uint)j];
    }
    vstore2((float2)(v, 0.0f), e, spec + spec_off);
}

/* One work-item per complex element e of the PSF planes:
 * psf_spec[m, r, c] = (psf[m, r, c], 0) for r < kh, c < kw, else 0. */
kernel void blur_pack_psf(global const float *psf, uint psf_off, global float *psf_spec,
                          uint psf_spec_off, uint kh, uint kw, uint fh, uint fw, uint count)
{
    uint e = get_global_id(0);
    if (e >= count)
        return;
    uint rest = e / fw, c = e - rest * fw;
    uint m = rest / fh, r = rest - m * fh;
    float v = (r < kh && c < kw) ? psf[psf_off + ((size_t)m * kh + r) * kw + c] : 0.0f;
    vstore2((float2)(v, 0.0f), e, psf_spec + psf_spec_off);
}

/* One work-item per complex element e of the image spectra: spec[e] *=
 * psf_spec[m, same frequency], m = p / channels, or 0 when shared != 0. */
kernel void blur_multiply(global float *spec, uint spec_off, global const float *psf_spec,
                          uint psf_spec_off, uint plane, uint channels, uint shared, uint count)
{
    uint e = get_global_id(0);
    if (e >= count)
        return;
    uint p = e / plane, f = e - p * plane;
    uint m = shared ? 0u : p / channels;
    float2 a = vload2(e, spec + spec_off);
    float2 b = vload2((size_t)m * plane + f, psf_spec + psf_spec_off);
    vstore2((float2)(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x), e, spec + spec_off);
}

/* One work-item per output element i = (p*h + y)*w + x: the circular result
 * at (y + kh - 1, x + kw - 1) of plane p, times inv (1 / (FH FW)); with
 * sigma > 0 plus sigma * g(i) and clamped to [-1, 1] (g: Box-Muller of the
 * first two Philox words of counter (first + i, s0, s1, BLUR_NOISE_TAG), key
 * (k0, k1); first: the slice's offset in a data-parallel batch, else 0). */
kernel void blur_crop(global const float *spec, uint spec_off, global float *y, uint y_off,
                      uint h, uint w, uint fh, uint fw, uint kh, uint kw, float inv, float sigma,
                      uint k0, uint k1, uint s0, uint s1, uint count, uint first)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    uint rest = i / w, col = i - rest * w;
    uint p = rest / h, row = rest - p * h;
    size_t e = ((size_t)p * fh + row + kh - 1) * fw + col + kw - 1;
    float v = spec[spec_off + 2 * e] * inv;
    if (sigma > 0.0f) {
        uint4 words = dsd_philox4x32_10((uint4)(first + i, s0, s1, BLUR_NOISE_TAG), (uint2)(k0, k1));
        float u1 = (float)((words.x >> 8) + 1u) * (1.0f / 16777216.0f); /* (0, 1] */
        float u2 = (float)(words.y >> 8) * (1.0f / 16777216.0f);         /* [0, 1) */
        float g = sqrt(-2.0f * log(u1)) * cospi(2.0f * u2);
        v = clamp(v + sigma * g, -1.0f, 1.0f);
    }
    y[y_off + i] = v;
}
