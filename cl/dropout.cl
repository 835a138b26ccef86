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

/* The first word of dsd_philox4x32_10 for the 8 counters (c0 + j, s0, s1, 0),
 * j = 0..7, computed as vectors: the same arithmetic lane by lane, so the
 * same bits. PoCL does not inline the scalar generator into the kernels (a
 * call per element, run as scalar code); explicit vectors make it SIMD. */
inline uint8 dropout_words8(uint c0, uint s0, uint s1, uint k0, uint k1)
{
    uint8 x0 = (uint8)(c0) + (uint8)(0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u);
    uint8 x1 = (uint8)(s0), x2 = (uint8)(s1), x3 = (uint8)(0u);
    for (int r = 0; r < 10; r++) {
        ulong8 p0 = convert_ulong8(x0) * (ulong)DSD_PHILOX_M0;
        ulong8 p1 = convert_ulong8(x2) * (ulong)DSD_PHILOX_M1;
        uint8 lo0 = convert_uint8(p0 & 0xFFFFFFFFul), hi0 = convert_uint8(p0 >> 32);
        uint8 lo1 = convert_uint8(p1 & 0xFFFFFFFFul), hi1 = convert_uint8(p1 >> 32);
        x0 = hi1 ^ x1 ^ (uint8)(k0);
        x1 = lo1;
        x2 = hi0 ^ x3 ^ (uint8)(k1);
        x3 = lo0;
        k0 += DSD_PHILOX_W0;
        k1 += DSD_PHILOX_W1;
    }
    return x0;
}

/* Keep mask of elements i .. i + 7 (lanes all ones where kept), as dropout_keep. */
inline int8 dropout_keep8(uint i, float p, uint k0, uint k1, uint s0, uint s1)
{
    if (p <= 0.0f)
        return (int8)(-1);
    uint8 word = dropout_words8(i, s0, s1, k0, k1);
    float8 u = convert_float8(word >> 8) * (1.0f / 16777216.0f); /* exact: 24 bits */
    return u >= (float8)(p);
}

/* Forward: a work-item owns elements 8 * id .. 8 * id + 7 (a partial last
 * group element by element); y = keep ? x * scale : 0 (y may be x). */
kernel void dropout_forward(global const float *x, uint x_off, global float *y, uint y_off,
                            uint count, float p, float scale, uint k0, uint k1, uint s0, uint s1,
                            uint first)
{
    uint i = get_global_id(0) * 8;
    if (i >= count)
        return;
    if (i + 8 <= count) {
        int8 keep = dropout_keep8(first + i, p, k0, k1, s0, s1);
        float8 v = vload8(0, x + x_off + i);
        vstore8(select((float8)(0.0f), v * scale, keep), 0, y + y_off + i);
        return;
    }
    for (; i < count; i++) {
        float v = x[x_off + i];
        y[y_off + i] = dropout_keep(first + i, p, k0, k1, s0, s1) ? v * scale : 0.0f;
    }
}

/* Backward, the same split: dx += keep ? dy * scale : 0. */
kernel void dropout_backward(global const float *dy, uint dy_off, global float *dx, uint dx_off,
                             uint count, float p, float scale, uint k0, uint k1, uint s0,
                             uint s1, uint first)
{
    uint i = get_global_id(0) * 8;
    if (i >= count)
        return;
    if (i + 8 <= count) {
        int8 keep = dropout_keep8(first + i, p, k0, k1, s0, s1);
        float8 d = vload8(0, dx + dx_off + i);
        vstore8(select(d, d + vload8(0, dy + dy_off + i) * scale, keep), 0, dx + dx_off + i);
        return;
    }
    for (; i < count; i++)
        if (dropout_keep(first + i, p, k0, k1, s0, s1))
            dx[dx_off + i] += dy[dy_off + i] * scale;
}
