/*
 * pixel_shuffle.cl: PixelShuffle and PixelUnshuffle with factor R, forward
 * and backward (host side: src/ops/pixel_shuffle.c, reference:
 * tests/ref/pixel_shuffle.c). PyTorch's order:
 *     big[n, c, h*R + i, w*R + j] = small[n, c*R*R + i*R + j, h, w]
 * with small (N, C*R*R, H, W) and big (N, C, H*R, W*R). Shuffle copies small
 * into big, unshuffle big into small; the backward of each is the other one
 * accumulating (dst += ...), which is what `accumulate` selects.
 *
 * R is a build option (-DR=2 in the model), so the divisions by R below are
 * shifts or multiplications. Both kernels use one work-item per element of
 * big over a 3-D range: dimension 0 the big column (consecutive work-items on
 * consecutive floats of big; on small they alternate between R planes, each
 * accessed contiguously), dimension 1 the big row, dimension 2 the plane
 * n*C + c. Every element is moved by exactly one work-item: no races.
 */

#ifndef R
#define R 2
#endif

/* Index into small of big's element (col, bh) of plane nc. */
inline uint dsd_small_index(uint col, uint bh, uint nc, uint big_h, uint big_w)
{
    uint small_h = big_h / R, small_w = big_w / R;
    uint h = bh / R, i = bh % R;
    uint w = col / R, j = col % R;
    /* channel c*R*R + i*R + j of the same image: the planes of an image are
     * contiguous, so the small plane is nc*R*R + i*R + j */
    return ((nc * R + i) * R + j) * small_h * small_w + h * small_w + w;
}

/* Work-item (col, bh, nc) of big: big = small (or big += small). */
kernel void pixel_shuffle(global const float *small, uint small_off, global float *big,
                          uint big_off, uint planes, uint big_h, uint big_w, int accumulate)
{
    uint col = get_global_id(0), bh = get_global_id(1), nc = get_global_id(2);
    if (col >= big_w || bh >= big_h || nc >= planes)
        return;
    float v = small[small_off + dsd_small_index(col, bh, nc, big_h, big_w)];
    uint o = big_off + (nc * big_h + bh) * big_w + col;
    if (accumulate)
        big[o] += v;
    else
        big[o] = v;
}

/* Work-item (col, bh, nc) of big: small = big (or small += big). */
kernel void pixel_unshuffle(global const float *big, uint big_off, global float *small,
                            uint small_off, uint planes, uint big_h, uint big_w, int accumulate)
{
    uint col = get_global_id(0), bh = get_global_id(1), nc = get_global_id(2);
    if (col >= big_w || bh >= big_h || nc >= planes)
        return;
    float v = big[big_off + (nc * big_h + bh) * big_w + col];
    uint o = small_off + dsd_small_index(col, bh, nc, big_h, big_w);
    if (accumulate)
        small[o] += v;
    else
        small[o] = v;
}
