/*
 * pool.cl: pooling kernels (host side: src/ops/pool.c, reference:
 * tests/ref/pool.c).
 *
 * - Global average / max pool, x (N,C,H,W) -> y (N,C,1,1): one work-group of
 *   WG work-items per (n, c) plane. Work-item l visits the plane's elements
 *   l, l + WG, l + 2 WG, ... (consecutive work-items read consecutive floats),
 *   then a fixed local tree combines the WG partial results, so the result is
 *   the same run to run.
 * - Channel mean / max, x (N,C,H,W) -> y (N,1,H,W): one work-item per pixel
 *   looping over C in order (coalesced over W).
 * - 2x2 max pool, stride 2, floor: one work-item per output element.
 *
 * Max backward recomputes the arg-max from x and routes dy there. Every max
 * kernel orders candidates with dsd_max_wins below: larger value first, NaN
 * above every number (NaN propagates as in PyTorch), the lower index on ties,
 * so the winner does not depend on the reduction order. Each max backward
 * work-item (or work-group) owns the dx elements it may write, so the
 * gradient scatter needs no atomics and is race-free. Backward kernels
 * accumulate (dx += ...).
 */

#ifndef WG
#define WG 256
#endif
#if (WG & (WG - 1)) != 0
#error "WG must be a power of two"
#endif

/* Does candidate (v, i) beat the current best (b, bi)? */
inline int dsd_max_wins(float v, uint i, float b, uint bi)
{
    if (isnan(v))
        return !isnan(b) || i < bi;
    if (isnan(b))
        return 0;
    return v > b || (v == b && i < bi);
}

/* The same for a scan in increasing index order (the candidate's index is
 * always the larger, so ties keep the current best). */
inline int dsd_max_later_wins(float v, float b)
{
    return v > b || (isnan(v) && !isnan(b));
}

/* ------------------------------------------------------------------------ */
/* Global pooling */

/* Group g = n*C + c reduces plane g: WG strided partial sums, then a local tree. */
kernel void global_avg_pool_forward(global const float *x, uint x_off, global float *y,
                                    uint y_off, uint planes, uint hw)
{
    local float part[WG];
    uint g = get_group_id(0), lid = get_local_id(0);
    if (g >= planes)
        return; /* whole group: no barrier is skipped by part of it */
    global const float *p = x + x_off + (size_t)g * hw;
    float s = 0.0f;
    for (uint i = lid; i < hw; i += WG)
        s += p[i];
    part[lid] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint k = WG / 2; k > 0; k >>= 1) {
        if (lid < k)
            part[lid] += part[lid + k];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0)
        y[y_off + g] = part[0] / (float)hw;
}

/* One work-item per dx element i: dx[i] += dy[i / hw] / hw. */
kernel void global_avg_pool_backward(global const float *dy, uint dy_off, global float *dx,
                                     uint dx_off, uint count, uint hw)
{
    uint i = get_global_id(0);
    if (i < count)
        dx[dx_off + i] += dy[dy_off + i / hw] / (float)hw;
}

/* Arg-max of plane g (row-major index within the plane) for the calling group;
 * every work-item of the group gets the result. */
inline void plane_argmax(global const float *p, uint hw, uint lid, local float *val,
                         local uint *idx, float *best_out, uint *bi_out)
{
    float best = -INFINITY; /* placeholder for work-items with no element: */
    uint bi = UINT_MAX;     /* any real element beats it in dsd_max_wins */
    if (lid < hw) {
        best = p[lid];
        bi = lid;
    }
    for (uint i = lid + WG; i < hw; i += WG) {
        float v = p[i];
        if (dsd_max_later_wins(v, best)) {
            best = v;
            bi = i;
        }
    }
    val[lid] = best;
    idx[lid] = bi;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint k = WG / 2; k > 0; k >>= 1) {
        if (lid < k && dsd_max_wins(val[lid + k], idx[lid + k], val[lid], idx[lid])) {
            val[lid] = val[lid + k];
            idx[lid] = idx[lid + k];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    *best_out = val[0];
    *bi_out = idx[0];
}

/* Group g = n*C + c: arg-max tree over plane g, y[g] = its value. */
kernel void global_max_pool_forward(global const float *x, uint x_off, global float *y,
                                    uint y_off, uint planes, uint hw)
{
    local float val[WG];
    local uint idx[WG];
    uint g = get_group_id(0), lid = get_local_id(0);
    if (g >= planes)
        return;
    float best;
    uint bi;
    plane_argmax(x + x_off + (size_t)g * hw, hw, lid, val, idx, &best, &bi);
    if (lid == 0)
        y[y_off + g] = best;
}

/* Group g = n*C + c: the same arg-max tree, then work-item 0 adds dy[g] to
 * dx at the arg-max. The group owns plane g of dx: one launch, no temporary,
 * no race. */
kernel void global_max_pool_backward(global const float *x, uint x_off, global const float *dy,
                                     uint dy_off, global float *dx, uint dx_off, uint planes,
                                     uint hw)
{
    local float val[WG];
    local uint idx[WG];
    uint g = get_group_id(0), lid = get_local_id(0);
    if (g >= planes)
        return;
    float best;
    uint bi;
    plane_argmax(x + x_off + (size_t)g * hw, hw, lid, val, idx, &best, &bi);
    if (lid == 0)
        dx[dx_off + (size_t)g * hw + bi] += dy[dy_off + g];
}

/* ------------------------------------------------------------------------ */
/* Channel pooling (spatial attention) */

/* One work-item per (n, pixel) i = n*hw + p: sum over c in order, / C. */
kernel void channel_mean_forward(global const float *x, uint x_off, global float *y, uint y_off,
                                 uint count, uint channels, uint hw)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    uint n = i / hw, p = i - n * hw;
    global const float *src = x + x_off + (size_t)n * channels * hw + p;
    float s = 0.0f;
    for (uint c = 0; c < channels; c++)
        s += src[(size_t)c * hw];
    y[y_off + i] = s / (float)channels;
}

/* One work-item per dx element i = (n*C + c)*hw + p: dx[i] += dy[n*hw + p] / C. */
kernel void channel_mean_backward(global const float *dy, uint dy_off, global float *dx,
                                  uint dx_off, uint count, uint channels, uint hw)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    uint plane = i / hw, p = i - plane * hw, n = plane / channels;
    dx[dx_off + i] += dy[dy_off + n * hw + p] / (float)channels;
}

/* Channel arg-max at pixel p of image n (first channel wins ties). */
inline uint channel_argmax(global const float *src, uint channels, uint hw, float *best_out)
{
    float best = src[0];
    uint bc = 0;
    for (uint c = 1; c < channels; c++) {
        float v = src[(size_t)c * hw];
        if (dsd_max_later_wins(v, best)) {
            best = v;
            bc = c;
        }
    }
    *best_out = best;
    return bc;
}

/* One work-item per (n, pixel) i = n*hw + p: max over c in order. */
kernel void channel_max_forward(global const float *x, uint x_off, global float *y, uint y_off,
                                uint count, uint channels, uint hw)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    uint n = i / hw, p = i - n * hw;
    float best;
    channel_argmax(x + x_off + (size_t)n * channels * hw + p, channels, hw, &best);
    y[y_off + i] = best;
}

/* One work-item per (n, pixel) i = n*hw + p: recompute the channel arg-max
 * and add dy[i] there; the work-item owns that pixel's column of dx. */
kernel void channel_max_backward(global const float *x, uint x_off, global const float *dy,
                                 uint dy_off, global float *dx, uint dx_off, uint count,
                                 uint channels, uint hw)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    uint n = i / hw, p = i - n * hw;
    size_t base = (size_t)n * channels * hw + p;
    float best;
    uint bc = channel_argmax(x + x_off + base, channels, hw, &best);
    dx[dx_off + base + (size_t)bc * hw] += dy[dy_off + i];
}

/* ------------------------------------------------------------------------ */
/* 2x2 max pool, stride 2 (floor: the last row/column of odd sizes is unused) */

/* Arg-max of the 2x2 window at output (oh, ow) of plane `plane`, row-major
 * order; returns the flat index into x (without offset). */
inline size_t window_argmax(global const float *x, size_t plane_base, uint in_w, uint oh,
                            uint ow, float *best_out)
{
    size_t top = plane_base + (size_t)(2 * oh) * in_w + 2 * ow;
    size_t cand[4] = {top, top + 1, top + in_w, top + in_w + 1};
    float best = x[cand[0]];
    uint bk = 0;
    for (uint k = 1; k < 4; k++) {
        float v = x[cand[k]];
        if (dsd_max_later_wins(v, best)) {
            best = v;
            bk = k;
        }
    }
    *best_out = best;
    return cand[bk];
}

/* One work-item per output element i = ((n*C + c)*out_h + oh)*out_w + ow. */
kernel void maxpool2x2_forward(global const float *x, uint x_off, global float *y, uint y_off,
                               uint count, uint in_h, uint in_w, uint out_h, uint out_w)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    uint t = i / out_w, ow = i - t * out_w, plane = t / out_h, oh = t - plane * out_h;
    float best;
    window_argmax(x + x_off, (size_t)plane * in_h * in_w, in_w, oh, ow, &best);
    y[y_off + i] = best;
}

/* One work-item per output element (as forward): dx[arg-max] += dy[i]. The
 * windows do not overlap, so each work-item owns its four dx elements. */
kernel void maxpool2x2_backward(global const float *x, uint x_off, global const float *dy,
                                uint dy_off, global float *dx, uint dx_off, uint count,
                                uint in_h, uint in_w, uint out_h, uint out_w)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    uint t = i / out_w, ow = i - t * out_w, plane = t / out_h, oh = t - plane * out_h;
    float best;
    size_t at = window_argmax(x + x_off, (size_t)plane * in_h * in_w, in_w, oh, ow, &best);
    dx[dx_off + at] += dy[dy_off + i];
}
