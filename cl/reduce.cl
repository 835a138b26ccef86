/*
 * reduce.cl: whole-tensor sums in two passes with a fixed order, and the
 * broadcast backward of sum / mean. Host side: src/ops/reduce.c.
 *
 * Pass 1 runs G = min(128, ceil(count / WG)) work-groups of WG work-items:
 * 128 (DSD_REDUCE_GROUPS) on every device, fewer only for tensors too small
 * to fill them; the host chooses G. Work-item l of group g adds, in increasing
 * order, the terms of elements g*WG + l + k*G*WG (a grid stride: every
 * iteration of a work-group reads WG consecutive floats), then the group
 * folds its WG sums with a binary tree in local memory into partials[g].
 * Pass 2 is one work-group that folds the G partials the same way and scales
 * the result. The order of every addition depends only on the element count
 * and WG, so results are bit-identical run to run on a device; the tree keeps
 * float rounding error near log2(WG) + count / (G*WG) ulps of the sum of
 * |terms|.
 *
 * The summed term is a compile-time choice (TERM), so the losses fuse their
 * elementwise function into pass 1 instead of writing a temporary:
 *   0 x   1 x^2   2 (x - y)^2   3 |x - y|   4 BCE with logits of x, target t.
 *
 * WG must be a power of two.
 */
#ifndef WG
#define WG 256
#endif
#ifndef TERM
#define TERM 0
#endif

/* The next grid-stride index, or count when there is none (no uint overflow
 * for counts near 2^32). */
inline uint reduce_next(uint i, uint stride, uint count)
{
    return count - i > stride ? i + stride : count;
}

inline float reduce_term(global const float *a, global const float *b, uint i, float target)
{
#if TERM == 0
    return a[i];
#elif TERM == 1
    float x = a[i];
    return x * x;
#elif TERM == 2
    float d = a[i] - b[i];
    return d * d;
#elif TERM == 3
    return fabs(a[i] - b[i]);
#elif TERM == 4
    /* log(1 + exp(z)) - z*t written so that no exp overflows: exact to float
     * rounding for any |z| (exp(-|z|) underflows harmlessly to 0). */
    float z = a[i];
    return fmax(z, 0.0f) - z * target + log1p(exp(-fabs(z)));
#else
#error "unknown TERM"
#endif
}

/* Folds loc[0..WG) into loc[0] (binary tree, fixed order). Every work-item of
 * the group calls it after storing its own value; ends with a barrier. */
inline void reduce_tree(local float *loc, uint l)
{
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (l < s)
            loc[l] += loc[l + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* Pass 1: G groups of WG; group g writes partials[g] (see the top). b is read
 * only by the difference terms. */
kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void reduce_partials(global const float *a, uint a_off, global const float *b, uint b_off,
                     uint count, float target, global float *partials, uint partials_off)
{
    local float loc[WG];
    uint l = get_local_id(0), g = get_group_id(0), stride = get_num_groups(0) * WG;
    global const float *pa = a + a_off, *pb = b + b_off;
    float acc = 0.0f;
    for (uint i = g * WG + l; i < count; i = reduce_next(i, stride, count))
        acc += reduce_term(pa, pb, i, target);
    loc[l] = acc;
    reduce_tree(loc, l);
    if (l == 0)
        partials[partials_off + g] = loc[0];
}

/* Pass 2: one group of WG; work-item l adds partials l, l + WG, ... < groups
 * in order, then the tree; y[0] = scale * total. */
kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void reduce_final(global const float *partials, uint partials_off, uint groups, float scale,
                  global float *y, uint y_off)
{
    local float loc[WG];
    uint l = get_local_id(0);
    float acc = 0.0f;
    for (uint j = l; j < groups; j += WG)
        acc += partials[partials_off + j];
    loc[l] = acc;
    reduce_tree(loc, l);
    if (l == 0)
        y[y_off] = loc[0] * scale;
}

/* Backward of sum / mean: one work-item per element, dx[i] += dy[0] * scale
 * (scale 1 for sum, 1/n for mean); dy stays on the device. */
kernel void reduce_broadcast_backward(global const float *dy, uint dy_off, float scale,
                                      global float *dx, uint dx_off, uint count)
{
    uint i = get_global_id(0);
    if (i < count)
        dx[dx_off + i] += dy[dy_off] * scale;
}
