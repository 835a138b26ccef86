/*
 * gemm.c: the one place the library calls CLBlast's SGEMM (used by the
 * convolutions in conv2d.c). It does not choose what to multiply; it makes
 * each product cost only its multiply-adds where CLBlast allows.
 *
 * Why a wrapper: CLBlast's fast ("indirect") GEMM kernel wants its operands
 * in one memory order, at offset 0, with leading dimensions equal to the
 * matrix sizes rounded to its tiles. Any operand that is not gets copied
 * (padded and/or transposed) into a temporary buffer before the kernel and C
 * copied back after it, and CLBlastSgemm allocates that temporary buffer anew
 * on every call. On PoCL those copies and first touches of fresh memory cost
 * 2-3x the product itself for the network's shapes (doc/tuning.md). So:
 *
 * - Callers state products column-major, in the kernel's own order where
 *   they can: C (m x n) = A (m x k) B^T with B given as n x k, i.e.
 *   transpose A no, transpose B yes (see conv2d.c for each product).
 * - Operands that lie at a non-zero offset of their buffer (the tensors of a
 *   network's arena) are passed as sub-buffers that start at 0, when the
 *   offset meets the device's base-address alignment (the arena's slots are
 *   aligned for this; otherwise the offset is passed and CLBlast copies).
 * - The temporary buffer, when CLBlast still needs one, is leased from the
 *   context's pool for the call (CLBlastSgemmWithTempBuffer) and returned
 *   after the enqueue, so after the first step no buffer is created.
 * - An operand in the other order (A given transposed, or B not) whose sizes
 *   fit CLBlast's tiles, so that turning it is all CLBlast would do with it,
 *   is turned here instead, into a pool buffer, by tensor.cl's
 *   matrix_transpose: CLBlast's own transposing kernel uses local memory
 *   and barriers, which PoCL runs as scalar code; ours moves 8 x 8 blocks
 *   with vector loads and stores. (The weight gradients need this: their
 *   sums run along the pixels, which NCHW stores contiguously, and CLBlast
 *   wants the summed dimension strided.) Whether it pays is read off
 *   CLBlast's own temporary-buffer size with and without the turn.
 *
 * - A depth K that is no multiple of the kernel's tile depth (KWG) makes
 *   CLBlast copy all of A into a K-padded temporary. For a caller that can
 *   append zero rows to A itself (the convolution's column matrix),
 *   dsd_gemm_padded_depth says when to state the product with K rounded up,
 *   and dsd_gemm_turn_padded gives B turned with its zero rows.
 *
 * None of this changes the arithmetic: the copies move values, and each C
 * element is the same dot product in the same order (the padded depth adds
 * products of zeros).
 */
#include "internal.h"

#include <clblast_c.h>

#include <stdint.h>
#include <stdio.h>

static const char *clblast_status_name(int code)
{
    if (code < 0 && code > -1000)
        return dsd_cl_error_name(code);
    switch (code) {
    case CLBlastNotImplemented: return "CLBlastNotImplemented";
    case CLBlastInvalidMatrixA: return "CLBlastInvalidMatrixA";
    case CLBlastInvalidMatrixB: return "CLBlastInvalidMatrixB";
    case CLBlastInvalidMatrixC: return "CLBlastInvalidMatrixC";
    case CLBlastInvalidDimension: return "CLBlastInvalidDimension";
    case CLBlastInvalidLeadDimA: return "CLBlastInvalidLeadDimA";
    case CLBlastInvalidLeadDimB: return "CLBlastInvalidLeadDimB";
    case CLBlastInvalidLeadDimC: return "CLBlastInvalidLeadDimC";
    case CLBlastInsufficientMemoryA: return "CLBlastInsufficientMemoryA";
    case CLBlastInsufficientMemoryB: return "CLBlastInsufficientMemoryB";
    case CLBlastInsufficientMemoryC: return "CLBlastInsufficientMemoryC";
    case CLBlastInsufficientMemoryTemp: return "CLBlastInsufficientMemoryTemp";
    case CLBlastInvalidLocalMemUsage: return "CLBlastInvalidLocalMemUsage";
    default: return "CLBlast error";
    }
}

/* An operand as CLBlast will see it: the caller's buffer and offset, or a
 * sub-buffer starting at the offset (owned here, released after enqueue). */
typedef struct gemm_view {
    cl_mem buf;
    size_t offset;
    cl_mem owned; /* the sub-buffer, or NULL */
} gemm_view;

static dsd_status view_at_zero(dsd_context *ctx, const dsd_gemm_operand *op, gemm_view *v)
{
    v->buf = op->buf;
    v->offset = op->offset;
    v->owned = NULL;
    size_t align = ctx->device.base_align_bytes;
    size_t origin = op->offset * sizeof(float);
    if (op->offset == 0 || align == 0 || origin % align != 0)
        return DSD_OK;
    size_t size = 0;
    cl_int rc = clGetMemObjectInfo(op->buf, CL_MEM_SIZE, sizeof size, &size, NULL);
    if (rc != CL_SUCCESS)
        return DSD_CL_FAIL(&ctx->error, rc, "clGetMemObjectInfo", "CL_MEM_SIZE of a GEMM operand");
    if (origin >= size)
        return DSD_FAIL(&ctx->error, DSD_ERR_INVALID_ARGUMENT, "GEMM operand offset %zu floats "
                        "is past its %zu-byte buffer", op->offset, size);
    cl_buffer_region region = {.origin = origin, .size = size - origin};
    cl_mem sub = clCreateSubBuffer(op->buf, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION,
                                   &region, &rc);
    if (rc != CL_SUCCESS)
        return DSD_CL_FAIL(&ctx->error, rc, "clCreateSubBuffer", "GEMM operand at byte %zu of "
                           "%zu", origin, size);
    v->buf = v->owned = sub;
    v->offset = 0;
    return DSD_OK;
}

static dsd_status clblast_fail(dsd_context *ctx, const char *call, const char *what, size_t m,
                               size_t n, size_t k, CLBlastStatusCode st)
{
    return dsd_error_set(dsd_ctx_err(ctx), DSD_ERR_CLBLAST, (int)st, call, __FILE__, __LINE__,
                         "%s (m %zu, n %zu, k %zu) failed: %s (%d)", what, m, n, k,
                         clblast_status_name((int)st), (int)st);
}

/* A product as CLBlast is asked for it (column-major): after any turn, the
 * operands' views, leading dimensions and transposes. */
typedef struct gemm_call {
    CLBlastTranspose ta, tb;
    size_t m, n, k;
    gemm_view a, b, c;
    size_t lda, ldb, ldc;
} gemm_call;

/* CLBlast's temporary-buffer size for a product. */
static dsd_status temp_size(dsd_context *ctx, const char *what, const gemm_call *g,
                            size_t *bytes)
{
    CLBlastStatusCode rc = CLBlastSGemmTempBufferSize(
        CLBlastLayoutColMajor, g->ta, g->tb, g->m, g->n, g->k, g->a.offset, g->lda, g->b.offset,
        g->ldb, g->c.offset, g->ldc, &ctx->queue, bytes);
    if (rc != CLBlastSuccess)
        return clblast_fail(ctx, "CLBlastSGemmTempBufferSize", what, g->m, g->n, g->k, rc);
    return DSD_OK;
}

/* An operand turned into a pool buffer (owned until the product is enqueued). */
typedef struct gemm_turned {
    cl_mem buf;
    size_t capacity;
} gemm_turned;

/* out = the `rows` x `cols` row-major matrix at (buf, off, ld) transposed,
 * `cols` rows of `rows` floats, followed by `zero_rows` rows of zeros;
 * out->buf stays NULL (nothing done) where the sizes do not fit the
 * kernels' 32-bit indices. */
static dsd_status turn_operand(dsd_context *ctx, cl_mem buf, size_t off, size_t ld, size_t rows,
                               size_t cols, size_t zero_rows, gemm_turned *out)
{
    out->buf = NULL;
    out->capacity = 0;
    if (rows == 0 || cols == 0 || off + rows * ld > UINT32_MAX ||
        rows * (cols + zero_rows) > UINT32_MAX)
        return DSD_OK;
    DSD_TRY(dsd_pool_lease(ctx, rows * (cols + zero_rows) * sizeof(float), &out->buf,
                           &out->capacity));
    dsd_status st = DSD_OK;
    if (zero_rows > 0) {
        cl_uint tail_off = (cl_uint)(rows * cols), tail = (cl_uint)(rows * zero_rows);
        float zero = 0.0f;
        dsd_karg fill[] = {DSD_KARG(out->buf), DSD_KARG(tail_off), DSD_KARG(tail),
                           DSD_KARG(zero)};
        size_t global = tail;
        st = dsd_kernel_run(ctx, "tensor", NULL, "tensor_fill", fill, DSD_NARGS(fill), 1,
                            &global, NULL);
    }
    if (st == DSD_OK) {
        cl_uint src_off = (cl_uint)off, ld_src = (cl_uint)ld, dst_off = 0,
                ld_dst = (cl_uint)rows, r = (cl_uint)rows, c = (cl_uint)cols;
        dsd_karg args[] = {DSD_KARG(buf),     DSD_KARG(src_off), DSD_KARG(ld_src),
                           DSD_KARG(out->buf), DSD_KARG(dst_off), DSD_KARG(ld_dst),
                           DSD_KARG(r),       DSD_KARG(c)};
        size_t global[2] = {(cols + 7) / 8, (rows + 7) / 8};
        st = dsd_kernel_run(ctx, "tensor", NULL, "matrix_transpose", args, DSD_NARGS(args), 2,
                            global, NULL);
    }
    if (st != DSD_OK) {
        dsd_pool_return(ctx, out->buf, out->capacity);
        out->buf = NULL;
    }
    return st;
}

/* Operand A (side_b 0) or B (side_b 1) of g as CLBlast's kernel wants it:
 * A as m x k, B as n x k, at offset 0 with leading dimension m or n. */
static void want_order(gemm_call *g, int side_b, cl_mem buf)
{
    gemm_view *v = side_b ? &g->b : &g->a;
    v->buf = buf;
    v->offset = 0;
    if (side_b) {
        g->ldb = g->n;
        g->tb = CLBlastTransposeYes;
    } else {
        g->lda = g->m;
        g->ta = CLBlastTransposeNo;
    }
}

/* Turns operand A or B of g (given in the other order) into a pool buffer
 * when that spares CLBlast's copy of it entirely, and updates g and
 * *temp_bytes; out->buf stays NULL otherwise. CLBlast is asked for the
 * turned product's temporary size only where its temporary could hold
 * such a copy at all: each query costs a call into CLBlast. */
static dsd_status turn_if_spared(dsd_context *ctx, const char *what, gemm_call *g, int side_b,
                                 size_t *temp_bytes, gemm_turned *out)
{
    out->buf = NULL;
    out->capacity = 0;
    const int other_order = side_b ? g->tb == CLBlastTransposeNo : g->ta == CLBlastTransposeYes;
    const size_t rows = side_b ? g->n : g->m, bytes = rows * g->k * sizeof(float);
    if (!other_order || *temp_bytes < bytes)
        return DSD_OK;
    gemm_call turned = *g;
    const gemm_view *v = side_b ? &g->b : &g->a;
    want_order(&turned, side_b, v->buf);
    size_t turned_bytes;
    DSD_TRY(temp_size(ctx, what, &turned, &turned_bytes));
    if (turned_bytes + bytes > *temp_bytes)
        return DSD_OK;
    DSD_TRY(turn_operand(ctx, v->buf, v->offset, side_b ? g->ldb : g->lda, rows, g->k, 0, out));
    if (out->buf) {
        want_order(g, side_b, out->buf);
        *temp_bytes = turned_bytes;
    }
    return DSD_OK;
}

dsd_status dsd_gemm(dsd_context *ctx, const char *what, int trans_a, int trans_b, size_t m,
                    size_t n, size_t k, const dsd_gemm_operand *a, const dsd_gemm_operand *b,
                    float beta, const dsd_gemm_operand *c)
{
    gemm_call g = {
        .ta = trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
        .tb = trans_b ? CLBlastTransposeYes : CLBlastTransposeNo,
        .m = m, .n = n, .k = k, .lda = a->ld, .ldb = b->ld, .ldc = c->ld,
    };
    gemm_turned turned_a = {0}, turned_b = {0};
    cl_mem temp = NULL;
    size_t temp_capacity = 0;
    dsd_status st = view_at_zero(ctx, a, &g.a);
    if (st == DSD_OK)
        st = view_at_zero(ctx, b, &g.b);
    if (st == DSD_OK)
        st = view_at_zero(ctx, c, &g.c);

    size_t temp_bytes = 0;
    if (st == DSD_OK)
        st = temp_size(ctx, what, &g, &temp_bytes);
    /* A given transposed (k x m), then B given as k x n: turned here when
     * that spares CLBlast's copy of them. */
    if (st == DSD_OK)
        st = turn_if_spared(ctx, what, &g, 0, &temp_bytes, &turned_a);
    if (st == DSD_OK)
        st = turn_if_spared(ctx, what, &g, 1, &temp_bytes, &turned_b);

    /* A temporary larger than one allocation can only come from operands
     * that claim more than their buffers hold: CLBlast's own checks report
     * those, so the call goes ahead without a leased buffer. */
    if (st == DSD_OK && temp_bytes > 0 && temp_bytes <= ctx->device.max_alloc_bytes)
        st = dsd_pool_lease(ctx, temp_bytes, &temp, &temp_capacity);
    if (st == DSD_OK) {
        const CLBlastLayout layout = CLBlastLayoutColMajor;
        cl_event ev = NULL, *evp = dsd_profile_enabled(ctx) ? &ev : NULL;
        CLBlastStatusCode rc;
        if (temp)
            rc = CLBlastSgemmWithTempBuffer(layout, g.ta, g.tb, m, n, k, 1.0f, g.a.buf,
                                            g.a.offset, g.lda, g.b.buf, g.b.offset, g.ldb, beta,
                                            g.c.buf, g.c.offset, g.ldc, &ctx->queue, evp, temp);
        else
            rc = CLBlastSgemm(layout, g.ta, g.tb, m, n, k, 1.0f, g.a.buf, g.a.offset, g.lda,
                              g.b.buf, g.b.offset, g.ldb, beta, g.c.buf, g.c.offset, g.ldc,
                              &ctx->queue, evp);
        if (rc != CLBlastSuccess)
            st = clblast_fail(ctx, "CLBlastSgemm", what, m, n, k, rc);
        else
            dsd_profile_record(ctx, "clblast_sgemm", ev);
    }
    /* Enqueued work keeps its own references: releasing now is safe, and the
     * in-order queue makes the temporary buffer's next lease run after it. */
    if (temp)
        dsd_pool_return(ctx, temp, temp_capacity);
    if (turned_a.buf)
        dsd_pool_return(ctx, turned_a.buf, turned_a.capacity);
    if (turned_b.buf)
        dsd_pool_return(ctx, turned_b.buf, turned_b.capacity);
    if (g.a.owned)
        clReleaseMemObject(g.a.owned);
    if (g.b.owned)
        clReleaseMemObject(g.b.owned);
    if (g.c.owned)
        clReleaseMemObject(g.c.owned);
    return st;
}

size_t dsd_gemm_padded_depth(const dsd_context *ctx, size_t m, size_t n, size_t k, size_t max_k)
{
    const dsd_device_profile *p = &ctx->profile;
    size_t kwg = dsd_device_profile_get(p, "Xgemm", "KWG", 0);
    size_t mwg = dsd_device_profile_get(p, "Xgemm", "MWG", 0);
    size_t min_indirect = dsd_device_profile_get(p, "GemmRoutine", "XGEMM_MIN_INDIRECT_SIZE", 0);
    if (kwg == 0 || mwg == 0 || min_indirect == 0 || k % kwg == 0 || m % mwg != 0)
        return k;
    /* CLBlast takes its direct kernel, which needs no padding, below this */
    if ((double)m * n * k < (double)min_indirect * min_indirect * min_indirect)
        return k;
    size_t padded = (k + kwg - 1) / kwg * kwg;
    return padded <= max_k ? padded : k;
}

dsd_status dsd_gemm_turn_padded(dsd_context *ctx, cl_mem buf, size_t off, size_t rows,
                                size_t cols, size_t cols_padded, cl_mem *out, size_t *capacity)
{
    *out = NULL;
    *capacity = 0;
    gemm_turned t = {0};
    if (cols_padded >= cols)
        DSD_TRY(turn_operand(ctx, buf, off, cols, rows, cols, cols_padded - cols, &t));
    if (!t.buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "padded turn of a %zu x %zu "
                        "matrix to %zu rows", rows, cols, cols_padded);
    *out = t.buf;
    *capacity = t.capacity;
    return DSD_OK;
}
