/*
 * fft_loss.cl: the element-wise and reduction kernels around clFFT's
 * transforms for the frequency loss (host side: src/ops/fft_loss.c,
 * reference: tests/ref/fft.c). The transforms themselves are clFFT's.
 *
 * The spectrum buffer holds N*C planes of H x W complex values, interleaved
 * (re, im), plane after plane, which is also the real tensor's element order:
 * complex element i belongs to real element i.
 *
 * Forward:  fft_loss_pack (d = a - b as complex), clFFT forward in place,
 *           fft_loss_abs_partial (G fixed partial sums), fft_loss_abs_final
 *           (one group adds the G partials in order and divides), so the loss
 *           is the same bit for bit run to run on a device.
 * Backward: fft_loss_pack, clFFT forward, fft_loss_sign (S = sign(Re) +
 *           i sign(Im), sign(0) = 0), clFFT backward with scale 1,
 *           fft_loss_accumulate (da += coef Re, db -= coef Re).
 */

#ifndef WG
#define WG 256
#endif
#if (WG & (WG - 1)) != 0
#error "WG must be a power of two"
#endif

/* One work-item per element i: spec[i] = (a[i] - b[i], 0). */
kernel void fft_loss_pack(global const float *a, uint a_off, global const float *b, uint b_off,
                          global float *spec, uint spec_off, uint count)
{
    uint i = get_global_id(0);
    if (i < count)
        vstore2((float2)(a[a_off + i] - b[b_off + i], 0.0f), i, spec + spec_off);
}

/* Local tree over WG values in part[]; the caller has stored its own value.
 * Returns the sum in work-item 0. Every work-item of the group must call it. */
inline float fft_loss_tree(local float *part, uint lid)
{
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (lid < s)
            part[lid] += part[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return part[0];
}

/* Group g of G: work-item l adds |re| + |im| of complex elements g*WG + l,
 * then steps by G*WG (consecutive work-items read consecutive pairs); a local
 * tree gives partial[g]. */
kernel void fft_loss_abs_partial(global const float *spec, uint spec_off, uint count,
                                 global float *partial, uint partial_off)
{
    local float part[WG];
    uint lid = get_local_id(0), g = get_group_id(0), groups = get_num_groups(0);
    float s = 0.0f;
    for (uint i = g * WG + lid; i < count; i += groups * WG) {
        float2 v = vload2(i, spec + spec_off);
        s += fabs(v.x) + fabs(v.y);
    }
    part[lid] = s;
    s = fft_loss_tree(part, lid);
    if (lid == 0)
        partial[partial_off + g] = s;
}

/* One group of WG: work-item l adds partials l, l + WG, ... in order, a local
 * tree sums them, work-item 0 writes loss = sum * inv_count. */
kernel void fft_loss_abs_final(global const float *partial, uint partial_off, uint groups,
                               global float *loss, uint loss_off, float inv_count)
{
    local float part[WG];
    uint lid = get_local_id(0);
    float s = 0.0f;
    for (uint i = lid; i < groups; i += WG)
        s += partial[partial_off + i];
    part[lid] = s;
    s = fft_loss_tree(part, lid);
    if (lid == 0)
        loss[loss_off] = s * inv_count;
}

/* One work-item per float of the spectrum (2 per complex element): x = sign(x),
 * sign(+-0) = 0 (the subgradient of |x| at 0 that torch uses). */
kernel void fft_loss_sign(global float *spec, uint spec_off, uint count)
{
    uint i = get_global_id(0);
    if (i < count)
        spec[spec_off + i] = sign(spec[spec_off + i]);
}

/* One work-item per element i: g = coef * Re spec[i]; da[i] += g (when
 * has_da), db[i] -= g (when has_db). A missing gradient's buffer argument is
 * any valid buffer and is not touched. */
kernel void fft_loss_accumulate(global const float *spec, uint spec_off, global float *da,
                                uint da_off, global float *db, uint db_off, uint count,
                                float coef, uint has_da, uint has_db)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    float g = coef * spec[spec_off + 2 * (size_t)i];
    if (has_da)
        da[da_off + i] += g;
    if (has_db)
        db[db_off + i] -= g;
}
