/*
 * tensor.c: float32 NCHW device tensors. Storage is leased from the
 * context's pool; views share their parent's buffer through an element offset.
 * Uploads and downloads are the only calls here that wait for the device.
 * The tensor checks every op runs before it enqueues anything (NULL, empty,
 * wrong shape; DSD_TENSOR_CHECK and friends in internal.h) live here too.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static dsd_status check_dims(dsd_context *ctx, int n, int c, int h, int w)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
        return DSD_FAIL(&ctx->error, DSD_ERR_SHAPE, "tensor shape %dx%dx%dx%d has a "
                        "non-positive dimension", n, c, h, w);
    double count = (double)n * c * h * w;
    if (count * sizeof(float) > 1e15 || count > 4294967295.0)
        return DSD_FAIL(&ctx->error, DSD_ERR_SHAPE, "tensor shape %dx%dx%dx%d is too large",
                        n, c, h, w);
    return DSD_OK;
}

dsd_status dsd_tensor_init(dsd_context *ctx, dsd_tensor *t, int n, int c, int h, int w)
{
    memset(t, 0, sizeof *t);
    DSD_TRY(check_dims(ctx, n, c, h, w));
    size_t bytes = (size_t)n * c * h * w * sizeof(float);
    DSD_TRY(dsd_pool_lease(ctx, bytes, &t->buf, &t->capacity));
    t->n = n;
    t->c = c;
    t->h = h;
    t->w = w;
    t->offset = 0;
    return DSD_OK;
}

dsd_status dsd_tensor_init_zero(dsd_context *ctx, dsd_tensor *t, int n, int c, int h, int w)
{
    DSD_TRY(dsd_tensor_init(ctx, t, n, c, h, w));
    dsd_status st = dsd_tensor_fill(ctx, t, 0.0f);
    if (st != DSD_OK)
        dsd_tensor_free(ctx, t);
    return st;
}

void dsd_tensor_free(dsd_context *ctx, dsd_tensor *t)
{
    if (!t)
        return;
    if (t->buf && t->capacity > 0)
        dsd_pool_return(ctx, t->buf, t->capacity);
    memset(t, 0, sizeof *t);
}

int dsd_tensor_overlap(const dsd_tensor *a, const dsd_tensor *b)
{
    if (a->buf != b->buf)
        return 0;
    size_t as = a->offset, bs = b->offset;
    return as < bs + dsd_tensor_numel(b) && bs < as + dsd_tensor_numel(a);
}

int dsd_tensor_same_shape(const dsd_tensor *a, const dsd_tensor *b)
{
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w;
}

dsd_tensor dsd_tensor_view_batch(const dsd_tensor *t, int n0, int count)
{
    dsd_tensor v = *t;
    v.capacity = 0;
    if (n0 < 0 || count <= 0 || n0 + count > t->n) {
        v.n = 0; /* an empty view: ops reject it as a shape error */
        return v;
    }
    v.n = count;
    v.offset = t->offset + (cl_uint)((size_t)n0 * t->c * t->h * t->w);
    return v;
}

dsd_status dsd_tensor_view_reshape(dsd_context *ctx, const dsd_tensor *t, int n, int c, int h,
                                   int w, dsd_tensor *out)
{
    DSD_TRY(check_dims(ctx, n, c, h, w));
    if ((size_t)n * c * h * w != dsd_tensor_numel(t))
        return DSD_FAIL(&ctx->error, DSD_ERR_SHAPE, "cannot view %dx%dx%dx%d as %dx%dx%dx%d",
                        t->n, t->c, t->h, t->w, n, c, h, w);
    *out = *t;
    out->capacity = 0;
    out->n = n;
    out->c = c;
    out->h = h;
    out->w = w;
    return DSD_OK;
}

static dsd_status check_count(dsd_context *ctx, const dsd_tensor *t, size_t count, const char *what)
{
    if (!t->buf || t->n <= 0)
        return DSD_FAIL(&ctx->error, DSD_ERR_INVALID_ARGUMENT, "%s of an unallocated tensor", what);
    if (count != dsd_tensor_numel(t))
        return DSD_FAIL(&ctx->error, DSD_ERR_SHAPE, "%s of %zu floats into a %dx%dx%dx%d tensor "
                        "(%zu floats)", what, count, t->n, t->c, t->h, t->w, dsd_tensor_numel(t));
    return DSD_OK;
}

dsd_status dsd_tensor_upload(dsd_context *ctx, dsd_tensor *t, const float *host, size_t count)
{
    DSD_TRY(check_count(ctx, t, count, "upload"));
    DSD_CL_TRY(&ctx->error,
               clEnqueueWriteBuffer(ctx->queue, t->buf, CL_TRUE, (size_t)t->offset * sizeof(float),
                                    count * sizeof(float), host, 0, NULL, NULL),
               "uploading %zu floats", count);
    return DSD_OK;
}

dsd_status dsd_tensor_download(dsd_context *ctx, const dsd_tensor *t, float *host, size_t count)
{
    DSD_TRY(check_count(ctx, t, count, "download"));
    DSD_CL_TRY(&ctx->error,
               clEnqueueReadBuffer(ctx->queue, t->buf, CL_TRUE, (size_t)t->offset * sizeof(float),
                                   count * sizeof(float), host, 0, NULL, NULL),
               "downloading %zu floats", count);
    return DSD_OK;
}

dsd_status dsd_tensor_fill(dsd_context *ctx, dsd_tensor *t, float value)
{
    DSD_TRY(check_count(ctx, t, dsd_tensor_numel(t), "fill"));
    cl_uint count = (cl_uint)dsd_tensor_numel(t);
    dsd_karg args[] = {DSD_KARG_TENSOR(t), DSD_KARG(count), DSD_KARG(value)};
    size_t global = count;
    return dsd_kernel_run(ctx, "tensor", NULL, "tensor_fill", args, DSD_NARGS(args), 1, &global,
                          NULL);
}

dsd_status dsd_tensor_copy(dsd_context *ctx, dsd_tensor *dst, const dsd_tensor *src)
{
    if (!dsd_tensor_same_shape(dst, src))
        return DSD_FAIL(&ctx->error, DSD_ERR_SHAPE, "copy from %dx%dx%dx%d into %dx%dx%dx%d",
                        src->n, src->c, src->h, src->w, dst->n, dst->c, dst->h, dst->w);
    size_t bytes = dsd_tensor_numel(src) * sizeof(float);
    cl_event ev = NULL;
    DSD_CL_TRY(&ctx->error,
               clEnqueueCopyBuffer(ctx->queue, src->buf, dst->buf, (size_t)src->offset * 4,
                                   (size_t)dst->offset * 4, bytes, 0, NULL,
                                   dsd_profile_enabled(ctx) ? &ev : NULL),
               "copying %zu bytes", bytes);
    dsd_profile_record(ctx, "copy_buffer", ev);
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Argument checks shared by the ops (macros in internal.h) */

dsd_status dsd_tensor_check_at(dsd_context *ctx, const char *file, int line, const char *op,
                               const dsd_tensor *t, const char *what)
{
    const char *sep = op ? ": " : "";
    op = op ? op : "";
    if (!t)
        return dsd_error_set(&ctx->error, DSD_ERR_INVALID_ARGUMENT, 0, "", file, line,
                             "%s%s%s is NULL", op, sep, what);
    if (!t->buf || t->n <= 0 || t->c <= 0 || t->h <= 0 || t->w <= 0)
        return dsd_error_set(&ctx->error, DSD_ERR_SHAPE, 0, "", file, line,
                             "%s%s%s (%dx%dx%dx%d) is empty or unallocated", op, sep, what, t->n,
                             t->c, t->h, t->w);
    return DSD_OK;
}

dsd_status dsd_tensor_check_like_at(dsd_context *ctx, const char *file, int line, const char *op,
                                    const dsd_tensor *t, const char *what, const dsd_tensor *ref,
                                    const char *ref_what)
{
    DSD_TRY(dsd_tensor_check_at(ctx, file, line, op, t, what));
    if (dsd_tensor_same_shape(t, ref))
        return DSD_OK;
    return dsd_error_set(&ctx->error, DSD_ERR_SHAPE, 0, "", file, line,
                         "%s%s%s is %dx%dx%dx%d but %s is %dx%dx%dx%d", op ? op : "",
                         op ? ": " : "", what, t->n, t->c, t->h, t->w, ref_what, ref->n, ref->c,
                         ref->h, ref->w);
}

dsd_status dsd_tensor_expect_shape_at(dsd_context *ctx, const char *file, int line,
                                      const char *op, const dsd_tensor *t, const char *what,
                                      int n, int c, int h, int w, const char *why,
                                      const dsd_tensor *ref)
{
    DSD_TRY(dsd_tensor_check_at(ctx, file, line, op, t, what));
    if (t->n == n && t->c == c && t->h == h && t->w == w)
        return DSD_OK;
    char ref_shape[64] = "";
    if (ref)
        snprintf(ref_shape, sizeof ref_shape, " %dx%dx%dx%d", ref->n, ref->c, ref->h, ref->w);
    return dsd_error_set(&ctx->error, DSD_ERR_SHAPE, 0, "", file, line,
                         "%s%s%s is %dx%dx%dx%d but %s%s needs %dx%dx%dx%d", op ? op : "",
                         op ? ": " : "", what, t->n, t->c, t->h, t->w, why, ref_shape, n, c, h,
                         w);
}
