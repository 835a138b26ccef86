/*
 * elementwise.c: broadcast add and mul, scale, clamp and channel concat,
 * forward and backward. Kernels in cl/elementwise.cl, double-precision
 * reference in tests/ref/elementwise.c.
 *
 * Broadcasting follows dsdeblur_ops.h: each of b's N, C and (H,W) is a's or
 * 1, which covers channel attention (N,C,1,1), spatial attention (N,1,H,W),
 * per-channel (1,C,1,1), scalars (1,1,1,1) and equal shapes. Forward is one
 * plane kernel; y may be a itself (in place), any other overlap with a or b
 * is refused.
 *
 * Backward for db reduces over the broadcast dimensions without atomics and
 * in a fixed order, so results are bit-identical run to run:
 * - b keeps a's (H,W): one work-item per db element loops over the reduced
 *   planes (coalesced over W);
 * - b's (H,W) is (1,1) (or a's is): work-group tree reductions, one group per
 *   db element, or, when there are few db elements with many summands each,
 *   one group per fixed-size range of a db element's summands followed by a
 *   short pass that adds each element's partials in order (a scratch buffer
 *   leased from the pool for the duration of the call). How the work is cut
 *   depends only on the shapes, never on the device.
 * Gradients must not overlap the tensors a backward reads.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>

/* Work-group size (a power of two, lowered to what the device allows). */
enum { EW_WG = 256 };
/* Splitting a db element's reduction: ranges of at least MIN_CHUNK summands,
 * enough ranges to give about TARGET_GROUPS work-groups in all, at most
 * MAX_CHUNKS ranges per element. */
enum { EW_MIN_CHUNK = 4096, EW_TARGET_GROUPS = 512, EW_MAX_CHUNKS = 1024 };
/* Above this many reduced planes a 1x1-plane reduction goes to work-groups. */
enum { EW_ROWS_MAX_PLANES = 64 };

/* ------------------------------------------------------------------------ */
/* Validation */

/* b (non-NULL) must broadcast against a. */
static dsd_status check_broadcast(dsd_context *ctx, const char *op, const dsd_tensor *a,
                                  const char *a_what, const dsd_tensor *b, const char *b_what)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, b, b_what));
    int ok_n = b->n == a->n || b->n == 1;
    int ok_c = b->c == a->c || b->c == 1;
    int ok_hw = (b->h == a->h && b->w == a->w) || (b->h == 1 && b->w == 1);
    if (!ok_n || !ok_c || !ok_hw)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s %dx%dx%dx%d does not broadcast "
                        "against %s %dx%dx%dx%d (each of N, C and (H,W) must be %s's or 1)",
                        op, b_what, b->n, b->c, b->h, b->w, a_what, a->n, a->c, a->h, a->w,
                        a_what);
    return DSD_OK;
}

/* An output may be an input itself (same floats, same shape: each work-item
 * reads its element before writing it) or disjoint from it. */
static dsd_status check_alias(dsd_context *ctx, const char *op, const dsd_tensor *out,
                              const char *out_what, const dsd_tensor *in, const char *in_what)
{
    if (!dsd_tensor_overlap(out, in))
        return DSD_OK;
    if (out->offset == in->offset && dsd_tensor_same_shape(out, in))
        return DSD_OK;
    return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: %s (offset %u, "
                    "%dx%dx%dx%d) overlaps %s (offset %u, %dx%dx%dx%d) without being it", op,
                    out_what, (unsigned)out->offset, out->n, out->c, out->h, out->w, in_what,
                    (unsigned)in->offset, in->n, in->c, in->h, in->w);
}

/* ------------------------------------------------------------------------ */
/* Launch helpers */

/* One work-item per element. */
static dsd_status run_flat(dsd_context *ctx, const char *kernel, const dsd_karg *args,
                           int nargs, size_t count)
{
    size_t local = dsd_work_group_size(ctx, EW_WG);
    char opts[32];
    snprintf(opts, sizeof opts, "-DWG=%zu", local);
    return dsd_kernel_run(ctx, "elementwise", opts, kernel, args, nargs, 1, &count, &local);
}

/* Work-item (p, plane) over hw x planes; the group spans several planes when
 * a plane is smaller than the work-group (e.g. 1x1 planes). */
static dsd_status run_planes(dsd_context *ctx, const char *kernel, const dsd_karg *args,
                             int nargs, size_t hw, size_t planes)
{
    size_t wg = dsd_work_group_size(ctx, EW_WG);
    char opts[32];
    snprintf(opts, sizeof opts, "-DWG=%zu", wg);
    size_t local[2] = {1, 0};
    while (local[0] < hw && local[0] < wg)
        local[0] *= 2;
    local[1] = wg / local[0];
    size_t global[2] = {hw, planes};
    return dsd_kernel_run(ctx, "elementwise", opts, kernel, args, nargs, 2, global, local);
}

/* Work-item (p, c, n) over hw x channels x images, groups as run_planes'. */
static dsd_status run_planes3(dsd_context *ctx, const char *kernel, const dsd_karg *args,
                              int nargs, size_t hw, size_t channels, size_t images)
{
    size_t wg = dsd_work_group_size(ctx, EW_WG);
    char opts[32];
    snprintf(opts, sizeof opts, "-DWG=%zu", wg);
    size_t local[3] = {1, 1, 1};
    while (local[0] < hw && local[0] < wg)
        local[0] *= 2;
    while (local[0] * local[1] * 2 <= wg && local[1] < channels)
        local[1] *= 2;
    size_t global[3] = {hw, channels, images};
    return dsd_kernel_run(ctx, "elementwise", opts, kernel, args, nargs, 3, global, local);
}

/* b's strides as seen from a's (n, c, p); 0 along broadcast dimensions. */
static void broadcast_strides(const dsd_tensor *a, const dsd_tensor *b, cl_uint s[3])
{
    cl_uint bhw = (cl_uint)dsd_tensor_plane(b);
    s[0] = b->n == 1 && a->n > 1 ? 0 : (cl_uint)b->c * bhw;
    s[1] = b->c == 1 && a->c > 1 ? 0 : bhw;
    s[2] = bhw == 1 ? 0 : 1;
}

/* db (like b) += alpha * sum over the broadcast dimensions of dy (or of
 * dy * a when a is given); dy (and a) have a's shape `full`. */
static dsd_status reduce_broadcast(dsd_context *ctx, const dsd_tensor *full,
                                   const dsd_tensor *dy, const dsd_tensor *a, dsd_tensor *db,
                                   float alpha)
{
    size_t wg = dsd_work_group_size(ctx, EW_WG);
    char opts[32];
    snprintf(opts, sizeof opts, "-DWG=%zu", wg);
    cl_int use_a = a != NULL;
    if (!a)
        a = dy; /* a valid buffer the kernel does not read */
    cl_uint channels = (cl_uint)full->c, b_channels = (cl_uint)db->c;
    cl_uint hw = (cl_uint)dsd_tensor_plane(full);
    /* reduced planes of one db element: base + q*qstride, q < rq */
    cl_uint rq = (cl_uint)(db->n == 1 ? full->n : 1) * (cl_uint)(db->c == 1 ? full->c : 1);
    cl_uint qstride = db->c == 1 ? 1 : channels;
    int keeps_hw = db->h == full->h && db->w == full->w;

    if (keeps_hw && (hw > 1 || rq <= EW_ROWS_MAX_PLANES)) {
        cl_uint rows = (cl_uint)db->n * (cl_uint)db->c;
        dsd_karg args[] = {DSD_KARG_TENSOR(dy),     DSD_KARG_TENSOR(a), DSD_KARG(use_a),
                           DSD_KARG_TENSOR(db),     DSD_KARG(alpha),    DSD_KARG(hw),
                           DSD_KARG(rows),          DSD_KARG(rq),       DSD_KARG(qstride),
                           DSD_KARG(b_channels),    DSD_KARG(channels)};
        return run_planes(ctx, "broadcast_reduce_rows", args, DSD_NARGS(args), hw, rows);
    }

    /* Work-group reductions over r = q*hw + p (hw == 1 when b keeps a's 1x1). */
    size_t count = (size_t)db->n * (size_t)db->c;
    size_t red = (size_t)rq * hw;
    size_t chunks = (red + EW_MIN_CHUNK - 1) / EW_MIN_CHUNK;
    size_t want = (EW_TARGET_GROUPS + count - 1) / count;
    if (chunks > want)
        chunks = want;
    if (chunks > EW_MAX_CHUNKS)
        chunks = EW_MAX_CHUNKS;
    if (chunks < 1)
        chunks = 1;
    size_t chunk = (red + chunks - 1) / chunks;
    cl_uint red_u = (cl_uint)red, chunks_u = (cl_uint)chunks, chunk_u = (cl_uint)chunk;
    cl_uint groups = (cl_uint)(count * chunks);
    size_t global = (size_t)groups * wg;
    if (chunks == 1) {
        cl_int to_partial = 0;
        dsd_karg args[] = {DSD_KARG_TENSOR(dy),  DSD_KARG_TENSOR(a),  DSD_KARG(use_a),
                           DSD_KARG_TENSOR(db),  DSD_KARG(alpha),     DSD_KARG(hw),
                           DSD_KARG(qstride),    DSD_KARG(b_channels), DSD_KARG(channels),
                           DSD_KARG(red_u),      DSD_KARG(chunks_u),  DSD_KARG(chunk_u),
                           DSD_KARG(groups),     DSD_KARG(to_partial)};
        return dsd_kernel_run(ctx, "elementwise", opts, "broadcast_reduce_groups", args,
                              DSD_NARGS(args), 1, &global, &wg);
    }

    dsd_tensor part;
    DSD_TRY(dsd_tensor_init(ctx, &part, 1, 1, 1, (int)groups));
    cl_int to_partial = 1;
    dsd_karg args[] = {DSD_KARG_TENSOR(dy),  DSD_KARG_TENSOR(a),   DSD_KARG(use_a),
                       DSD_KARG_TENSOR(&part), DSD_KARG(alpha),    DSD_KARG(hw),
                       DSD_KARG(qstride),    DSD_KARG(b_channels), DSD_KARG(channels),
                       DSD_KARG(red_u),      DSD_KARG(chunks_u),   DSD_KARG(chunk_u),
                       DSD_KARG(groups),     DSD_KARG(to_partial)};
    dsd_status st = dsd_kernel_run(ctx, "elementwise", opts, "broadcast_reduce_groups", args,
                                   DSD_NARGS(args), 1, &global, &wg);
    if (st == DSD_OK) {
        cl_uint count_u = (cl_uint)count;
        dsd_karg fargs[] = {DSD_KARG_TENSOR(&part), DSD_KARG_TENSOR(db), DSD_KARG(alpha),
                            DSD_KARG(count_u), DSD_KARG(chunks_u)};
        st = run_flat(ctx, "broadcast_reduce_finish", fargs, DSD_NARGS(fargs), count);
    }
    /* The in-order queue runs both kernels before any later user of the
     * buffer, so it can go back to the pool now. */
    dsd_tensor_free(ctx, &part);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Add and mul */

static dsd_status check_binary_forward(dsd_context *ctx, const char *op, const dsd_tensor *a,
                                       const dsd_tensor *b, const dsd_tensor *y)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, a, "a"));
    DSD_TRY(check_broadcast(ctx, op, a, "a", b, "b"));
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, y, "y", a, "a"));
    DSD_TRY(check_alias(ctx, op, y, "y", a, "a"));
    return check_alias(ctx, op, y, "y", b, "b");
}

dsd_status dsd_add_forward(dsd_context *ctx, const dsd_tensor *a, const dsd_tensor *b,
                           float alpha, dsd_tensor *y)
{
    DSD_TRY(check_binary_forward(ctx, "add_forward", a, b, y));
    cl_uint s[3], hw = (cl_uint)dsd_tensor_plane(a), channels = (cl_uint)a->c;
    cl_uint images = (cl_uint)a->n;
    broadcast_strides(a, b, s);
    dsd_karg args[] = {DSD_KARG_TENSOR(a), DSD_KARG_TENSOR(b), DSD_KARG_TENSOR(y),
                       DSD_KARG(alpha),    DSD_KARG(hw),       DSD_KARG(channels),
                       DSD_KARG(images),   DSD_KARG(s[0]),     DSD_KARG(s[1]),
                       DSD_KARG(s[2])};
    return run_planes3(ctx, "add_forward", args, DSD_NARGS(args), hw, channels, images);
}

dsd_status dsd_add_backward(dsd_context *ctx, float alpha, const dsd_tensor *dy, dsd_tensor *da,
                            dsd_tensor *db)
{
    const char *op = "add_backward";
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, dy, "dy"));
    if (da)
        DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, da, "da", dy, "dy"));
    if (db)
        DSD_TRY(check_broadcast(ctx, op, dy, "dy", db, "db"));
    if (da) {
        cl_uint count = (cl_uint)dsd_tensor_numel(dy);
        float one = 1.0f;
        dsd_karg args[] = {DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(da), DSD_KARG(count),
                           DSD_KARG(one)};
        DSD_TRY(run_flat(ctx, "axpy_accumulate", args, DSD_NARGS(args), count));
    }
    if (db)
        DSD_TRY(reduce_broadcast(ctx, dy, dy, NULL, db, alpha));
    return DSD_OK;
}

dsd_status dsd_mul_forward(dsd_context *ctx, const dsd_tensor *a, const dsd_tensor *b,
                           dsd_tensor *y)
{
    DSD_TRY(check_binary_forward(ctx, "mul_forward", a, b, y));
    cl_uint s[3], hw = (cl_uint)dsd_tensor_plane(a), channels = (cl_uint)a->c;
    cl_uint images = (cl_uint)a->n;
    broadcast_strides(a, b, s);
    dsd_karg args[] = {DSD_KARG_TENSOR(a), DSD_KARG_TENSOR(b), DSD_KARG_TENSOR(y),
                       DSD_KARG(hw),       DSD_KARG(channels), DSD_KARG(images),
                       DSD_KARG(s[0]),     DSD_KARG(s[1]),     DSD_KARG(s[2])};
    return run_planes3(ctx, "mul_forward", args, DSD_NARGS(args), hw, channels, images);
}

dsd_status dsd_mul_backward(dsd_context *ctx, const dsd_tensor *a, const dsd_tensor *b,
                            const dsd_tensor *dy, dsd_tensor *da, dsd_tensor *db)
{
    const char *op = "mul_backward";
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, a, "a"));
    DSD_TRY(check_broadcast(ctx, op, a, "a", b, "b"));
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, dy, "dy", a, "a"));
    if (da)
        DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, da, "da", a, "a"));
    if (db)
        DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, db, "db", b, "b"));
    if (da) {
        cl_uint s[3], hw = (cl_uint)dsd_tensor_plane(a), channels = (cl_uint)a->c;
        cl_uint images = (cl_uint)a->n;
        broadcast_strides(a, b, s);
        dsd_karg args[] = {DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(b), DSD_KARG_TENSOR(da),
                           DSD_KARG(hw),        DSD_KARG(channels), DSD_KARG(images),
                           DSD_KARG(s[0]),      DSD_KARG(s[1]),     DSD_KARG(s[2])};
        DSD_TRY(run_planes3(ctx, "mul_backward_a", args, DSD_NARGS(args), hw, channels, images));
    }
    if (db)
        DSD_TRY(reduce_broadcast(ctx, a, dy, a, db, 1.0f));
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Scale and clamp */

dsd_status dsd_scale_forward(dsd_context *ctx, float alpha, const dsd_tensor *x, dsd_tensor *y)
{
    const char *op = "scale_forward";
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, x, "x"));
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, y, "y", x, "x"));
    DSD_TRY(check_alias(ctx, op, y, "y", x, "x"));
    cl_uint count = (cl_uint)dsd_tensor_numel(x);
    dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(y), DSD_KARG(count), DSD_KARG(alpha)};
    return run_flat(ctx, "scale_forward", args, DSD_NARGS(args), count);
}

dsd_status dsd_scale_backward(dsd_context *ctx, float alpha, const dsd_tensor *dy, dsd_tensor *dx)
{
    const char *op = "scale_backward";
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, dy, "dy"));
    if (!dx)
        return DSD_OK;
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, dx, "dx", dy, "dy"));
    cl_uint count = (cl_uint)dsd_tensor_numel(dy);
    dsd_karg args[] = {DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(dx), DSD_KARG(count),
                       DSD_KARG(alpha)};
    return run_flat(ctx, "axpy_accumulate", args, DSD_NARGS(args), count);
}

static dsd_status check_bounds(dsd_context *ctx, const char *op, float lo, float hi)
{
    if (isnan(lo) || isnan(hi) || lo > hi)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: bounds [%g, %g] are "
                        "not an interval", op, (double)lo, (double)hi);
    return DSD_OK;
}

dsd_status dsd_clamp_forward(dsd_context *ctx, float lo, float hi, const dsd_tensor *x,
                             dsd_tensor *y)
{
    const char *op = "clamp_forward";
    DSD_TRY(check_bounds(ctx, op, lo, hi));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, x, "x"));
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, y, "y", x, "x"));
    DSD_TRY(check_alias(ctx, op, y, "y", x, "x"));
    cl_uint count = (cl_uint)dsd_tensor_numel(x);
    dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(y), DSD_KARG(count), DSD_KARG(lo),
                       DSD_KARG(hi)};
    return run_flat(ctx, "clamp_forward", args, DSD_NARGS(args), count);
}

dsd_status dsd_clamp_backward(dsd_context *ctx, float lo, float hi, const dsd_tensor *x,
                              const dsd_tensor *dy, dsd_tensor *dx)
{
    const char *op = "clamp_backward";
    DSD_TRY(check_bounds(ctx, op, lo, hi));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, x, "x"));
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, dy, "dy", x, "x"));
    if (!dx)
        return DSD_OK;
    DSD_TRY(DSD_TENSOR_CHECK_LIKE(ctx, op, dx, "dx", x, "x"));
    cl_uint count = (cl_uint)dsd_tensor_numel(x);
    dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(dx),
                       DSD_KARG(count),    DSD_KARG(lo),        DSD_KARG(hi)};
    return run_flat(ctx, "clamp_backward", args, DSD_NARGS(args), count);
}

/* ------------------------------------------------------------------------ */
/* Channel concat */

static dsd_status concat_fail(dsd_context *ctx, const char *op, const dsd_tensor *y,
                              const char *y_what, const dsd_tensor *a, const dsd_tensor *b)
{
    char sa[48] = "NULL", sb[48] = "NULL";
    if (a)
        snprintf(sa, sizeof sa, "%dx%dx%dx%d", a->n, a->c, a->h, a->w);
    if (b)
        snprintf(sb, sizeof sb, "%dx%dx%dx%d", b->n, b->c, b->h, b->w);
    return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s %dx%dx%dx%d is not the channel "
                    "concatenation of %s and %s", op, y_what, y->n, y->c, y->h, y->w, sa, sb);
}

/* part (a or b) must match whole (y or dy) in N, H, W. */
static int same_nhw(const dsd_tensor *part, const dsd_tensor *whole)
{
    return part->n == whole->n && part->h == whole->h && part->w == whole->w;
}

dsd_status dsd_concat_forward(dsd_context *ctx, const dsd_tensor *a, const dsd_tensor *b,
                              dsd_tensor *y)
{
    const char *op = "concat_forward";
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, a, "a"));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, b, "b"));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, y, "y"));
    if (!same_nhw(a, y) || !same_nhw(b, y) || (long)a->c + b->c != y->c)
        return concat_fail(ctx, op, y, "y", a, b);
    if (dsd_tensor_overlap(y, a) || dsd_tensor_overlap(y, b))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: y overlaps an input",
                        op);
    cl_uint hw = (cl_uint)dsd_tensor_plane(y), ca = (cl_uint)a->c, cb = (cl_uint)b->c;
    cl_uint planes = (cl_uint)y->n * (cl_uint)y->c;
    dsd_karg args[] = {DSD_KARG_TENSOR(a), DSD_KARG_TENSOR(b), DSD_KARG_TENSOR(y),
                       DSD_KARG(hw),       DSD_KARG(ca),       DSD_KARG(cb),
                       DSD_KARG(planes)};
    return run_planes(ctx, "concat_forward", args, DSD_NARGS(args), hw, planes);
}

/* dst += channels [c0, c0 + dst->c) of src. */
static dsd_status slice_accumulate(dsd_context *ctx, const dsd_tensor *src, cl_uint c0,
                                   dsd_tensor *dst)
{
    cl_uint hw = (cl_uint)dsd_tensor_plane(src), src_c = (cl_uint)src->c,
            dst_c = (cl_uint)dst->c, planes = (cl_uint)dst->n * dst_c;
    dsd_karg args[] = {DSD_KARG_TENSOR(src), DSD_KARG_TENSOR(dst), DSD_KARG(hw),
                       DSD_KARG(src_c),      DSD_KARG(c0),         DSD_KARG(dst_c),
                       DSD_KARG(planes)};
    return run_planes(ctx, "channel_slice_accumulate", args, DSD_NARGS(args), hw, planes);
}

dsd_status dsd_concat_backward(dsd_context *ctx, const dsd_tensor *dy, dsd_tensor *da,
                               dsd_tensor *db)
{
    const char *op = "concat_backward";
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, dy, "dy"));
    if (da)
        DSD_TRY(DSD_TENSOR_CHECK(ctx, op, da, "da"));
    if (db)
        DSD_TRY(DSD_TENSOR_CHECK(ctx, op, db, "db"));
    /* With one gradient NULL the other is still placed: da takes the first
     * da->c channels of dy, db the last db->c. */
    int ok = (!da || (same_nhw(da, dy) && da->c < dy->c)) &&
             (!db || (same_nhw(db, dy) && db->c < dy->c)) &&
             (!da || !db || (long)da->c + db->c == dy->c);
    if (!ok)
        return concat_fail(ctx, op, dy, "dy", da, db);
    if (da)
        DSD_TRY(slice_accumulate(ctx, dy, 0, da));
    if (db)
        DSD_TRY(slice_accumulate(ctx, dy, (cl_uint)(dy->c - db->c), db));
    return DSD_OK;
}
