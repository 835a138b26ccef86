/*
 * elementwise.cl: broadcast add / mul, scale, clamp and channel concat,
 * forward and backward (host side: src/ops/elementwise.c, reference:
 * tests/ref/elementwise.c).
 *
 * Broadcasting. a is (N,C,H,W); each of b's N, C and (H,W) is a's or 1. The
 * host passes b's strides as seen from a: sbn (per image), sbc (per channel),
 * sbp (per pixel: 1, or 0 when b's (H,W) is (1,1)), 0 along a broadcast
 * dimension, so b's element for a's (n, c, p) is n*sbn + c*sbc + p*sbp. The
 * kernels branch on sbp (uniform) rather than multiply by it, so a
 * vectorizing compiler (PoCL) sees one b per plane instead of a gather.
 *
 * Thread mappings. Flat kernels: one work-item per element. Plane kernels: a
 * 2-D range, dimension 0 the pixel p of an H*W plane (consecutive work-items
 * on consecutive floats), dimension 1 the plane n*C + c; the broadcast
 * kernels a 3-D range (p, c, n), so no work-item divides (PoCL computes
 * divisions lane by lane).
 *
 * Reductions for db (backward over the broadcast dimensions) use no atomics
 * and a fixed order:
 * - b keeps a's (H,W) (e.g. (N,1,H,W)): one work-item per db element loops
 *   over the reduced planes in order (broadcast_reduce_rows);
 * - otherwise (e.g. (N,C,1,1), (1,C,1,1), (1,1,1,1)): the elements reduced
 *   into one db element are numbered r = q*HW + p (q the reduced plane, p
 *   the pixel) and cut into `chunks` ranges of `chunk` elements; one
 *   work-group of WG work-items per (db element, range) adds elements
 *   r = start + lid, start + lid + WG, ... then combines its WG partial sums
 *   with a fixed local tree (broadcast_reduce_groups). With one range the
 *   group adds into db directly; with several it writes a partial and
 *   broadcast_reduce_finish adds each db element's partials in order.
 * The reduced planes of db element j (j = jn*bC + jc) are a's planes
 * base + q*qstride, base = jn*C + jc, q < rq.
 */

#ifndef WG
#define WG 256
#endif
#if (WG & (WG - 1)) != 0
#error "WG must be a power of two"
#endif

/* ------------------------------------------------------------------------ */
/* Forward: plane kernels over a's (hw, N*C) */

/* Work-item (p, c, n): y = a + alpha * b[broadcast]. */
kernel void add_forward(global const float *a, uint a_off, global const float *b, uint b_off,
                        global float *y, uint y_off, float alpha, uint hw, uint channels,
                        uint images, uint sbn, uint sbc, uint sbp)
{
    uint p = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
    if (p >= hw || c >= channels || n >= images)
        return;
    uint plane = n * channels + c;
    uint i = plane * hw + p, bi = b_off + n * sbn + c * sbc;
    float bv = sbp ? b[bi + p] : b[bi]; /* uniform branch: one b per plane or per pixel */
    y[y_off + i] = a[a_off + i] + alpha * bv;
}

/* Work-item (p, c, n): y = a * b[broadcast]. */
kernel void mul_forward(global const float *a, uint a_off, global const float *b, uint b_off,
                        global float *y, uint y_off, uint hw, uint channels, uint images,
                        uint sbn, uint sbc, uint sbp)
{
    uint p = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
    if (p >= hw || c >= channels || n >= images)
        return;
    uint plane = n * channels + c;
    uint i = plane * hw + p, bi = b_off + n * sbn + c * sbc;
    float bv = sbp ? b[bi + p] : b[bi];
    y[y_off + i] = a[a_off + i] * bv;
}

/* Work-item (p, c, n): da += dy * b[broadcast] (mul backward for a). */
kernel void mul_backward_a(global const float *dy, uint dy_off, global const float *b,
                           uint b_off, global float *da, uint da_off, uint hw, uint channels,
                           uint images, uint sbn, uint sbc, uint sbp)
{
    uint p = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
    if (p >= hw || c >= channels || n >= images)
        return;
    uint plane = n * channels + c;
    uint i = plane * hw + p, bi = b_off + n * sbn + c * sbc;
    float bv = sbp ? b[bi + p] : b[bi];
    da[da_off + i] += dy[dy_off + i] * bv;
}

/* ------------------------------------------------------------------------ */
/* Backward reductions for db (see the file comment). The summand is dy (add)
 * or dy * a (mul, use_a != 0; a is dy itself when unused). */

/* Work-item (p, row), row = jn*bC + jc < rows: db[row*hw + p] += alpha *
 * sum over q < rq, in order, of the summand at plane base + q*qstride. */
kernel void broadcast_reduce_rows(global const float *dy, uint dy_off, global const float *a,
                                  uint a_off, int use_a, global float *db, uint db_off,
                                  float alpha, uint hw, uint rows, uint rq, uint qstride,
                                  uint b_channels, uint channels)
{
    uint p = get_global_id(0), row = get_global_id(1);
    if (p >= hw || row >= rows)
        return;
    uint jn = row / b_channels, jc = row - jn * b_channels;
    uint base = jn * channels + jc;
    float acc = 0.0f;
    for (uint q = 0; q < rq; q++) {
        uint i = (base + q * qstride) * hw + p;
        float v = dy[dy_off + i];
        if (use_a)
            v *= a[a_off + i];
        acc += v;
    }
    db[db_off + row * hw + p] += alpha * acc;
}

/* Group g = j*chunks + s (WG work-items) reduces elements [s*chunk,
 * min(red, (s+1)*chunk)) of db element j, red = rq*hw. to_partial: out[g] =
 * the sum (a scratch buffer); else out[j] += alpha * the sum (db itself). */
kernel void broadcast_reduce_groups(global const float *dy, uint dy_off, global const float *a,
                                    uint a_off, int use_a, global float *out, uint out_off,
                                    float alpha, uint hw, uint qstride, uint b_channels,
                                    uint channels, uint red, uint chunks, uint chunk,
                                    uint groups, int to_partial)
{
    local float part[WG];
    uint g = get_group_id(0), lid = get_local_id(0);
    /* No early return for g >= groups (the global size is exactly groups *
     * WG anyway): PoCL 3.1 miscompiles a group-uniform return before the
     * barriers of this kernel (every work-item then takes the lid == 0
     * branch). An out-of-range group reduces nothing and writes nothing. */
    uint j = g / chunks, s = g - j * chunks;
    uint jn = j / b_channels, jc = j - jn * b_channels;
    uint base = jn * channels + jc;
    uint start = s * chunk;
    uint len = g < groups && start < red ? min(chunk, red - start) : 0;
    /* element r = start + k as (plane q, pixel p), stepped by WG without division */
    uint r = start + lid, q = r / hw, p = r - q * hw;
    uint dq = WG / hw, dp = WG - dq * hw;
    float acc = 0.0f;
    for (uint k = lid; k < len; k += WG) {
        uint i = (base + q * qstride) * hw + p;
        float v = dy[dy_off + i];
        if (use_a)
            v *= a[a_off + i];
        acc += v;
        q += dq;
        p += dp;
        if (p >= hw) {
            p -= hw;
            q++;
        }
    }
    part[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint k = WG / 2; k > 0; k >>= 1) {
        if (lid < k)
            part[lid] += part[lid + k];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0 && g < groups) {
        if (to_partial)
            out[out_off + g] = part[0];
        else
            out[out_off + j] += alpha * part[0];
    }
}

/* One work-item per db element j: db[j] += alpha * (partials of j, in order). */
kernel void broadcast_reduce_finish(global const float *part, uint part_off, global float *db,
                                    uint db_off, float alpha, uint count, uint chunks)
{
    uint j = get_global_id(0);
    if (j >= count)
        return;
    global const float *pj = part + part_off + (size_t)j * chunks;
    float acc = 0.0f;
    for (uint s = 0; s < chunks; s++)
        acc += pj[s];
    db[db_off + j] += alpha * acc;
}

/* ------------------------------------------------------------------------ */
/* Flat kernels */

/* One work-item per element: y = alpha * x (y may be x). */
kernel void scale_forward(global const float *x, uint x_off, global float *y, uint y_off,
                          uint count, float alpha)
{
    uint i = get_global_id(0);
    if (i < count)
        y[y_off + i] = alpha * x[x_off + i];
}

/* One work-item per element: dx += alpha * dy (scale backward, add backward for a). */
kernel void axpy_accumulate(global const float *dy, uint dy_off, global float *dx, uint dx_off,
                            uint count, float alpha)
{
    uint i = get_global_id(0);
    if (i < count)
        dx[dx_off + i] += alpha * dy[dy_off + i];
}

/* One work-item per element: y = min(max(x, lo), hi); NaN stays NaN (as PyTorch). */
kernel void clamp_forward(global const float *x, uint x_off, global float *y, uint y_off,
                          uint count, float lo, float hi)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    float v = x[x_off + i];
    y[y_off + i] = v < lo ? lo : (v > hi ? hi : v);
}

/* One work-item per element: dx += dy where lo <= x <= hi (bounds included, as PyTorch). */
kernel void clamp_backward(global const float *x, uint x_off, global const float *dy,
                           uint dy_off, global float *dx, uint dx_off, uint count, float lo,
                           float hi)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    float v = x[x_off + i];
    if (v >= lo && v <= hi)
        dx[dx_off + i] += dy[dy_off + i];
}

/* ------------------------------------------------------------------------ */
/* Channel concat: y (N, Ca+Cb, H, W) = [a; b] */

/* Work-item (p, plane of y): copies from a (c < Ca) or b. */
kernel void concat_forward(global const float *a, uint a_off, global const float *b, uint b_off,
                           global float *y, uint y_off, uint hw, uint ca, uint cb, uint planes)
{
    uint p = get_global_id(0), plane = get_global_id(1);
    if (p >= hw || plane >= planes)
        return;
    uint cy = ca + cb, n = plane / cy, c = plane - n * cy;
    float v = c < ca ? a[a_off + (n * ca + c) * hw + p] : b[b_off + (n * cb + c - ca) * hw + p];
    y[y_off + plane * hw + p] = v;
}

/* Work-item (p, plane of dst): dst[n, c, p] += src[n, c0 + c, p] (concat backward). */
kernel void channel_slice_accumulate(global const float *src, uint src_off, global float *dst,
                                     uint dst_off, uint hw, uint src_channels, uint c0,
                                     uint dst_channels, uint planes)
{
    uint p = get_global_id(0), plane = get_global_id(1);
    if (p >= hw || plane >= planes)
        return;
    uint n = plane / dst_channels, c = plane - n * dst_channels;
    dst[dst_off + plane * hw + p] += src[src_off + (n * src_channels + c0 + c) * hw + p];
}
