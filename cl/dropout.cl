/*
 * dropout.cl: inverted dropout with a counter-based mask. Host side:
 * src/ops/dropout.c. The generator, dsd_philox4x32_10, comes from common.cl.
 *
 * Element i (flat NCHW index within the tensor, whatever the view offset,
 * plus `first`, the index of the tensor's first element in the global batch
 * of data-parallel training, 0 otherwise) is kept when the first output word
 * of Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC 2011) with key (k0, k1) = seed and counter (first + i, s0, s1, 0) =
 * (index, stream) gives u = (word >> 8) * 2^-24 >= p.
 * Nothing is stored: backward regenerates the mask from (seed, stream), and
 * every device produces the same mask as dsd_dropout_keep_host.
 */

/* Keep element i? p == 0 keeps everything without running the generator. */
inline int dropout_keep(uint i, float p, uint k0, uint k1, uint s0, uint s1)
{
    if (p <= 0.0f)
        return 1;
    uint word = dsd_philox4x32_10((uint4)(i, s0, s1, 0u), (uint2)(k0, k1)).x;
    float u = (float)(word >> 8) * (1.0f / 16777216.0f); /* exact: 24 bits */
    return u >= p;
}

/* Forward: one work-item per element; y = keep ? x * scale : 0 (y may be x). */
kernel void dropout_forward(global const float *x, uint x_off, global float *y, uint y_off,
                            uint count, float p, float scale, uint k0, uint k1, uint s0, uint s1,
                            uint first)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    float v = x[x_off + i];
    y[y_off + i] = dropout_keep(first + i, p, k0, k1, s0, s1) ? v * scale : 0.0f;
}

/* Backward: one work-item per element; dx += keep ? dy * scale : 0. */
kernel void dropout_backward(global const float *dy, uint dy_off, global float *dx, uint dx_off,
                             uint count, float p, float scale, uint k0, uint k1, uint s0,
                             uint s1, uint first)
{
    uint i = get_global_id(0);
    if (i < count && dropout_keep(first + i, p, k0, k1, s0, s1))
        dx[dx_off + i] += dy[dy_off + i] * scale;
}
