/*
 * conv2d.c: 2-D convolution, forward and backward, for groups == 1 (kernels
 * in cl/conv2d.cl, double-precision reference in tests/ref/conv2d.c).
 * groups == Cin is handed to the depthwise path (src/ops/depthwise.c).
 *
 * Why GEMM and im2col rather than a direct kernel
 * ------------------------------------------------
 * The generator's and discriminator's convolutions have 32..512 channels, so
 * nearly all the work is multiply-adds that a tuned GEMM does far better than
 * a hand-written direct kernel could on every device we target (CLBlast ships
 * tuned parameters for many NVIDIA, AMD and Intel devices and defaults for the
 * rest). CLBlast's GEMM is also deterministic: no atomics, a fixed summation
 * order. im2col costs an extra write and read of the column matrix, small next
 * to the GEMM's Kc multiply-adds per column entry.
 *
 * - 1x1, stride 1, no padding: a GEMM on the NCHW data as it lies. For each
 *   image n, Y[n] (Cout x HW) = W (Cout x Cin) X[n] (Cin x HW); backward
 *   dW += dY[n] X[n]^T and dX[n] += W^T dY[n] (beta = 1 accumulates).
 * - every other shape: im2col. For image n and a chunk of output rows
 *   [r0, r0 + rows), conv2d_im2col writes the column matrix
 *   col (Kc x rows*OW), Kc = Cin*KH*KW, with the padding (zero or reflection)
 *   applied while gathering; then Y[n][:, rows] = W (Cout x Kc) col. Backward:
 *   dW += dY_chunk col^T, then col is overwritten by W^T dY_chunk (the column
 *   gradient) and conv2d_col2im adds it into dx. col2im gathers: one
 *   work-item per dx element sums, in a fixed order, the column entries that
 *   read that element (for reflection up to three padded preimages per axis),
 *   so it is race-free without atomics. A launch covers only the input rows
 *   the chunk's output rows can read (their padded range, folded back through
 *   the reflection), and adds only that chunk's contributions.
 *
 * Depth padding: where Kc is no multiple of the GEMM tile depth (the head's
 * 3 x 7 x 7 = 147), CLBlast's fast kernel would copy the whole column matrix
 * into a K-padded temporary on every call. The forward instead appends the
 * zero rows itself (written once per call; im2col never touches them) and
 * multiplies by W^T turned and zero-padded to the same depth (gemm.c's
 * dsd_gemm_padded_depth decides, from the device profile). The zeros add
 * nothing to any sum. The column buffer has room for Kc rounded up to 64.
 * A call of several products (row chunks, images) turns W^T once even where
 * K needs no padding: gemm.c would otherwise turn it for every product.
 *
 * Chunk bound: rows is chosen so that the column buffer stays at most
 * CONV_COL_LIMIT_BYTES (8 MiB), or one output row's columns if a single row
 * is larger. The bound is set by the cache, not by memory: the column
 * matrix is the GEMM operand that CLBlast's kernel reads again for every
 * 16 output channels (its work-groups run the pixel tiles first), so a
 * chunk whose columns stay in the last-level cache is read from DRAM once
 * instead of Cout / 16 times. On the 2-core EPYC of doc/tuning.md (32 MiB
 * L3) the same product ran 1.2-1.7x faster in 8 MiB chunks than in one
 * 40-150 MiB matrix (doc/tuning.md, seventh round); 4, 8 and 16 MiB were
 * alike. The whole-image column matrix (7.9 GiB for a 3x3 conv of 256
 * channels at 1280x720) is never materialized. The environment variable
 * DSDEBLUR_CONV_COL_LIMIT (bytes, > 0) overrides the bound; the tests set
 * it to force many chunks. The column buffer is leased from the pool for
 * one call and returned right after the last enqueue (the in-order queue
 * makes that safe, see src/buffer_pool.c); backward reuses the same buffer
 * for the columns and the column gradient.
 *
 * Bias: forward fills y with the bias (conv2d_bias_fill) and the GEMMs
 * accumulate with beta = 1; without a bias the GEMMs use beta = 0 (CLBlast
 * then never reads y). Backward reduces dy per channel with one work-group per
 * channel and a fixed tree.
 *
 * Determinism: every kernel and GEMM sums in a fixed order, so results are
 * bit-identical run to run on one device for one column bound (the bound
 * sets the chunks, and dW and dx add chunk after chunk).
 *
 * Known cost: dW = dY col^T is a GEMM with a long K (the chunk's columns) and
 * a small Cout x Kc output, so it fills few work-groups on a large GPU; a
 * split-K variant (batched GEMMs into partial products, then a fixed-order
 * sum) would raise occupancy if profiling shows it matters.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bound on the im2col column buffer, in bytes (see above). */
#define CONV_COL_LIMIT_BYTES ((size_t)8 << 20)
/* Work-group size of the bias reduction (lowered to what the device allows)
 * and of the element-wise kernels. */
enum { CONV_REDUCE_WG = 256, CONV_ELEM_WG = 64 };

/* Largest element index the kernels handle (they use 32-bit uint). */
#define CONV_INDEX_MAX ((size_t)0xffffffffu)

/* ------------------------------------------------------------------------ */
/* Geometry and validation */

typedef struct conv_geom {
    int n, cin, h, w;   /* x */
    int cout, kh, kw;   /* weight (cout, cin, kh, kw) */
    int stride, pad, reflect;
    int oh, ow;         /* y (n, cout, oh, ow) */
} conv_geom;

static dsd_status check_params(dsd_error *err, const char *op, const dsd_conv2d_params *p)
{
    if (!p)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: params is NULL", op);
    if (p->kernel_h < 1 || p->kernel_w < 1 || p->stride < 1 || p->pad < 0)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: kernel %dx%d, stride "
                        "%d, pad %d (need kernel >= 1, stride >= 1, pad >= 0)", op, p->kernel_h,
                        p->kernel_w, p->stride, p->pad);
    if (p->pad_mode != DSD_PAD_ZERO && p->pad_mode != DSD_PAD_REFLECT)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: unknown padding mode %d",
                        op, (int)p->pad_mode);
    return DSD_OK;
}

/* Output size of p on an in_h x in_w input (p already checked). */
static dsd_status out_size(dsd_error *err, const char *op, const dsd_conv2d_params *p,
                           int in_h, int in_w, int *out_h, int *out_w)
{
    if (in_h < 1 || in_w < 1)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "%s: input %dx%d is empty", op, in_h,
                        in_w);
    if (p->pad_mode == DSD_PAD_REFLECT && (p->pad >= in_h || p->pad >= in_w))
        return DSD_FAIL(err, DSD_ERR_SHAPE, "%s: reflection pad %d needs an input "
                        "larger than %dx%d (pad < H and pad < W)", op, p->pad, in_h, in_w);
    long long ph = (long long)in_h + 2LL * p->pad, pw = (long long)in_w + 2LL * p->pad;
    if (ph < p->kernel_h || pw < p->kernel_w)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "%s: kernel %dx%d is larger than the "
                        "padded input %lldx%lld (%dx%d, pad %d)", op, p->kernel_h, p->kernel_w,
                        ph, pw, in_h, in_w, p->pad);
    long long oh = (ph - p->kernel_h) / p->stride + 1, ow = (pw - p->kernel_w) / p->stride + 1;
    if (oh > 0x7fffffff || ow > 0x7fffffff)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "%s: output %lldx%lld is too large", op,
                        oh, ow);
    *out_h = (int)oh;
    *out_w = (int)ow;
    return DSD_OK;
}

dsd_status dsd_conv2d_output_size(dsd_context *ctx, const dsd_conv2d_params *p, int in_h,
                                  int in_w, int *out_h, int *out_w)
{
    const char *op = "conv2d_output_size";
    DSD_TRY(check_params(dsd_ctx_err(ctx), op, p));
    if (!out_h || !out_w)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: output pointer is NULL",
                        op);
    return out_size(dsd_ctx_err(ctx), op, p, in_h, in_w, out_h, out_w);
}

/* Fills g for a groups == 1 convolution of an (n, cin, h, w) input into cout
 * channels (p already checked). */
static dsd_status geom_make(dsd_error *err, const char *op, const dsd_conv2d_params *p, int n,
                            int cin, int h, int w, int cout, conv_geom *g)
{
    *g = (conv_geom){.n = n, .cin = cin, .h = h, .w = w, .cout = cout, .kh = p->kernel_h,
                     .kw = p->kernel_w, .stride = p->stride, .pad = p->pad,
                     .reflect = p->pad_mode == DSD_PAD_REFLECT};
    DSD_TRY(out_size(err, op, p, h, w, &g->oh, &g->ow));
    /* The kernels index a chunk's columns with 32-bit unsigned integers, and
     * a chunk holds at least one output row. */
    if ((double)g->cin * g->kh * g->kw * g->ow > (double)CONV_INDEX_MAX)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "%s: %dx%d kernel over %d channels on a %d-wide "
                        "output is too large", op, g->kh, g->kw, g->cin, g->ow);
    return DSD_OK;
}

/* Checks x and weight for the groups == 1 path and fills g. */
static dsd_status conv_setup(dsd_context *ctx, const char *op, const dsd_conv2d_params *p,
                             const dsd_tensor *x, const dsd_tensor *weight, conv_geom *g)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, x, "x"));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, weight, "weight"));
    if (weight->c != x->c || weight->h != p->kernel_h || weight->w != p->kernel_w)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: weight is %dx%dx%dx%d but x "
                        "%dx%dx%dx%d with a %dx%d kernel needs %dx%dx%dx%d (Cout x Cin x KH x KW)",
                        op, weight->n, weight->c, weight->h, weight->w, x->n, x->c, x->h, x->w,
                        p->kernel_h, p->kernel_w, weight->n, x->c, p->kernel_h, p->kernel_w);
    return geom_make(dsd_ctx_err(ctx), op, p, x->n, x->c, x->h, x->w, weight->n, g);
}

/* groups: 1 -> this file's path (returns 0); Cin -> depthwise (returns 1). */
static dsd_status conv_route(dsd_context *ctx, const char *op, const dsd_conv2d_params *p,
                             const dsd_tensor *x, int *depthwise)
{
    DSD_TRY(check_params(dsd_ctx_err(ctx), op, p));
    DSD_TRY(DSD_TENSOR_CHECK(ctx, op, x, "x"));
    if (p->groups == 1) {
        *depthwise = 0;
        return DSD_OK;
    }
    if (p->groups == x->c) {
        *depthwise = 1;
        return DSD_OK;
    }
    return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: groups %d with %d input "
                    "channels (groups must be 1 or Cin)", op, p->groups, x->c);
}

/* ------------------------------------------------------------------------ */
/* Kernels and chunking */

static void kernel_options(const dsd_context *ctx, char *buf, size_t size, size_t *wg)
{
    size_t w = dsd_work_group_size(ctx, CONV_REDUCE_WG);
    *wg = w;
    snprintf(buf, size, "-DWG=%zu", w);
}

static dsd_status run_elementwise(dsd_context *ctx, const char *kernel, const dsd_karg *args,
                                  int nargs, size_t count)
{
    char opts[32];
    size_t wg;
    kernel_options(ctx, opts, sizeof opts, &wg);
    size_t ew = dsd_profile_work_group(ctx, CONV_ELEM_WG); /* device profile's choice */
    size_t local = wg < ew ? wg : ew;
    return dsd_kernel_run(ctx, "conv2d", opts, kernel, args, nargs, 1, &count, &local);
}

/* A 2D range of `cols` x `rows` work-items for the kernels that map
 * dimension 0 to an image row: work-groups one row tall and up to the device
 * profile's work-group size wide, no wider than the row needs (rounded to a
 * power of two). */
static dsd_status run_rows_k(dsd_context *ctx, const char *kernel, const dsd_karg *args,
                             int nargs, size_t cols, size_t rows, int few_k)
{
    char opts[48];
    size_t wg;
    kernel_options(ctx, opts, sizeof opts, &wg);
    if (few_k > 0) /* the register-tiled kernels' tap count is fixed at build time */
        snprintf(opts + strlen(opts), sizeof opts - strlen(opts), " -DFEW_K=%d", few_k);
    size_t width = 1, ew = dsd_profile_work_group(ctx, CONV_ELEM_WG);
    while (width < cols && width < ew && width < wg)
        width *= 2;
    size_t global[2] = {cols, rows}, local[2] = {width, 1};
    return dsd_kernel_run(ctx, "conv2d", opts, kernel, args, nargs, 2, global, local);
}

/* A 3D range cols x rows x planes, work-groups as run_rows_k's. */
static dsd_status run_rows3(dsd_context *ctx, const char *kernel, const dsd_karg *args,
                            int nargs, size_t cols, size_t rows, size_t planes)
{
    char opts[32];
    size_t wg;
    kernel_options(ctx, opts, sizeof opts, &wg);
    size_t width = 1, ew = dsd_profile_work_group(ctx, CONV_ELEM_WG);
    while (width < cols && width < ew && width < wg)
        width *= 2;
    size_t global[3] = {cols, rows, planes}, local[3] = {width, 1, 1};
    return dsd_kernel_run(ctx, "conv2d", opts, kernel, args, nargs, 3, global, local);
}

static dsd_status run_rows(dsd_context *ctx, const char *kernel, const dsd_karg *args, int nargs,
                           size_t cols, size_t rows)
{
    return run_rows_k(ctx, kernel, args, nargs, cols, rows, 0);
}

/* The tiles of the register-tiled few-channel kernels (the same names in
 * cl/conv2d.cl): output rows and channels per work-item, the dW work-group. */
enum { FEW_ROWS = 4, FEW_CB = 4, FEW_DW_WG = 64, FEW_MAX_K = 7 };

/* Whether the few-channel forward takes the register-tiled kernel: stride 1
 * and a square kernel of at most FEW_MAX_K taps a side (one build per size). */
static int few_rows_kernel(const conv_geom *g)
{
    return g->stride == 1 && g->kh == g->kw && g->kh <= FEW_MAX_K;
}

/* Output channels per work-item of the register-tiled kernels, and how many
 * such blocks a convolution has. */
enum { FEW_OUT = 4 };
static size_t out_blocks(const conv_geom *g)
{
    return ((size_t)g->cout + FEW_OUT - 1) / FEW_OUT;
}

/* The tiled backward also needs FEW_DW_WG work-items per group. */
static int few_rows_backward(const dsd_context *ctx, const conv_geom *g)
{
    return few_rows_kernel(g) && dsd_work_group_size(ctx, FEW_DW_WG) >= FEW_DW_WG;
}

size_t dsd_conv2d_col_limit(void)
{
    const char *s = getenv("DSDEBLUR_CONV_COL_LIMIT");
    if (s && *s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*end == '\0' && v > 0)
            return (size_t)v;
    }
    return CONV_COL_LIMIT_BYTES;
}

static size_t col_rows(const conv_geom *g)
{
    return (size_t)g->cin * g->kh * g->kw;
}

/* The column buffer holds Kc rounded up to COL_DEPTH_GRANULE rows: room for
 * the zero rows the forward adds where CLBlast's fast kernel would otherwise
 * copy the whole column matrix to pad K to its tile depth (KWG, which
 * divides 64 in every profile we ship). */
enum { COL_DEPTH_GRANULE = 64 };

static size_t col_rows_capacity(const conv_geom *g)
{
    return (col_rows(g) + COL_DEPTH_GRANULE - 1) / COL_DEPTH_GRANULE * COL_DEPTH_GRANULE;
}

/* Output rows per chunk: as many as fit the bound (and 32-bit indexing), at
 * least 1, at most OH. */
static int chunk_rows(const conv_geom *g)
{
    size_t row_floats = col_rows_capacity(g) * (size_t)g->ow;
    size_t rows = dsd_conv2d_col_limit() / (row_floats * sizeof(float));
    if (rows > CONV_INDEX_MAX / row_floats)
        rows = CONV_INDEX_MAX / row_floats;
    if (rows < 1)
        rows = 1;
    if (rows > (size_t)g->oh)
        rows = (size_t)g->oh;
    return (int)rows;
}

static int is_pointwise(const conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->stride == 1 && g->pad == 0;
}

/* A 1x1 convolution is one GEMM per image on the NCHW planes as they lie,
 * unless an image's input, the GEMM's streamed operand, exceeds the column
 * bound (the blocks at 1280x720: 256 x 180 x 320 floats, 59 MB): then it
 * takes row chunks like any other kernel size (its im2col a copy of the
 * chunk's rows), so that what CLBlast reads once per 16 output channels
 * stays in the cache. */
static int pointwise_whole(const conv_geom *g)
{
    return is_pointwise(g) &&
           (size_t)g->cin * g->h * g->w * sizeof(float) <= dsd_conv2d_col_limit();
}

/* Convolutions with at most this many output channels run their forward in
 * one direct kernel instead of im2col + GEMM: with M = cout the GEMM's tiles
 * are mostly empty (bench-ops measured the tail 7x7 64->3 at 0.5 GFLOP/s). */
enum { DIRECT_MAX_COUT = 4 };

/* So do those with at most this many input channels and fewer output
 * channels than CLBlast's 64-wide tiles, where the register-tiled kernels
 * apply (the generator's head 7x7 3 -> B at B = 24 and 32): their GEMMs
 * have K = 3 x 49 = 147, far from the 64-deep tiles, N = B mostly padding,
 * and a column matrix 49 times the input. Layer profile (dsdeblur-bench
 * --profile layers), GEMM -> direct: a training step of
 * data/default-model-v1.yaml (B 24, 96 x 96, batch 2), head 37.6 -> 6.2 ms
 * forward and 48.6 -> 6.8 ms backward. At B = 64 (the paper) the GEMM
 * wastes nothing in N: the direct kernels won a little in its training step
 * (107 -> 85 ms forward + backward) but lost at 1280 x 720 inference (528 ->
 * 665 ms), so B = 64 keeps the GEMM. */
enum { DIRECT_MAX_CIN = 4, DIRECT_FEW_IN_MAX_COUT = 63 };

static int few_channels(const conv_geom *g)
{
    if (g->cout <= DIRECT_MAX_COUT)
        return 1;
    return g->cin <= DIRECT_MAX_CIN && g->cout <= DIRECT_FEW_IN_MAX_COUT && few_rows_kernel(g);
}

/* The route and chunking of a checked groups == 1 geometry: every decision
 * of how a convolution runs is taken here and nowhere else. */
static dsd_conv2d_plan plan_of(const dsd_conv2d_params *p, const conv_geom *g)
{
    dsd_conv2d_plan pl = {
        .params = *p, .n = g->n, .cin = g->cin, .h = g->h, .w = g->w,
        .cout = g->cout, .oh = g->oh, .ow = g->ow,
        .macs = (double)g->n * g->cout * g->oh * g->ow * (double)g->cin * g->kh * g->kw,
    };
    if (pointwise_whole(g)) {
        pl.forward = pl.backward = DSD_CONV2D_ROUTE_POINTWISE;
        return pl;
    }
    const int few = !is_pointwise(g) && few_channels(g);
    pl.forward = few ? DSD_CONV2D_ROUTE_DIRECT_FEW : DSD_CONV2D_ROUTE_IM2COL;
    pl.backward = few && g->stride == 1 ? DSD_CONV2D_ROUTE_DIRECT_FEW : DSD_CONV2D_ROUTE_IM2COL;
    if (pl.forward == DSD_CONV2D_ROUTE_DIRECT_FEW && pl.backward == DSD_CONV2D_ROUTE_DIRECT_FEW) {
        /* no column buffer; the tiled backward's padded-input gradient */
        if (few_rows_kernel(g))
            pl.backward_workspace = (size_t)g->n * g->cin * (size_t)(g->h + 2 * g->pad) *
                                    (size_t)(g->w + 2 * g->pad) * sizeof(float);
        return pl;
    }
    pl.chunk_rows = chunk_rows(g);
    pl.chunks = (g->oh + pl.chunk_rows - 1) / pl.chunk_rows;
    size_t col = col_rows_capacity(g) * (size_t)pl.chunk_rows * (size_t)g->ow * sizeof(float);
    pl.forward_workspace = pl.forward == DSD_CONV2D_ROUTE_IM2COL ? col : 0;
    pl.backward_workspace = pl.backward == DSD_CONV2D_ROUTE_IM2COL ? col : 0;
    return pl;
}

static dsd_status im2col(dsd_context *ctx, const conv_geom *g, const dsd_tensor *x, int img,
                         const dsd_tensor *col, int r0, int rows)
{
    cl_uint x_off = x->offset + (cl_uint)((size_t)img * g->cin * g->h * g->w);
    cl_uint cin = (cl_uint)g->cin, h = (cl_uint)g->h, w = (cl_uint)g->w, kh = (cl_uint)g->kh,
            kw = (cl_uint)g->kw, stride = (cl_uint)g->stride, reflect = (cl_uint)g->reflect,
            ow = (cl_uint)g->ow, ur0 = (cl_uint)r0, urows = (cl_uint)rows;
    cl_int pad = g->pad;
    dsd_karg args[] = {DSD_KARG(x->buf), DSD_KARG(x_off), DSD_KARG_TENSOR(col), DSD_KARG(cin),
                       DSD_KARG(h), DSD_KARG(w), DSD_KARG(kh), DSD_KARG(kw), DSD_KARG(stride),
                       DSD_KARG(pad), DSD_KARG(reflect), DSD_KARG(ow), DSD_KARG(ur0),
                       DSD_KARG(urows)};
    return run_rows3(ctx, "conv2d_im2col", args, DSD_NARGS(args), ((size_t)g->ow + 7) / 8,
                     (size_t)rows, (size_t)g->cin);
}

/* The input rows [*lo, *hi] that output rows [r0, r0 + rows) read. */
static void input_row_range(const conv_geom *g, int r0, int rows, int *lo, int *hi)
{
    int pa = r0 * g->stride - g->pad;                       /* first padded row read */
    int pb = (r0 + rows - 1) * g->stride - g->pad + g->kh - 1; /* last */
    int l = pa < 0 ? 0 : pa, u = pb > g->h - 1 ? g->h - 1 : pb;
    if (g->reflect) {
        if (pa < 0) /* padded rows pa..-1 reflect to 1..-pa */
            u = u > -pa ? u : -pa;
        if (pb > g->h - 1) /* padded rows h..pb reflect to 2h-2-pb..h-2 */
            l = l < 2 * g->h - 2 - pb ? l : 2 * g->h - 2 - pb;
    }
    if (l < 0)
        l = 0;
    if (u > g->h - 1)
        u = g->h - 1;
    *lo = l;
    *hi = u;
}

static dsd_status col2im(dsd_context *ctx, const conv_geom *g, const dsd_tensor *dcol,
                         dsd_tensor *dx, int img, int r0, int rows)
{
    int lo, hi;
    input_row_range(g, r0, rows, &lo, &hi);
    if (hi < lo)
        return DSD_OK; /* the chunk reads only zero padding */
    cl_uint dx_off = dx->offset + (cl_uint)((size_t)img * g->cin * g->h * g->w);
    cl_uint cin = (cl_uint)g->cin, h = (cl_uint)g->h, w = (cl_uint)g->w, kh = (cl_uint)g->kh,
            kw = (cl_uint)g->kw, stride = (cl_uint)g->stride, reflect = (cl_uint)g->reflect,
            ow = (cl_uint)g->ow, ur0 = (cl_uint)r0, urows = (cl_uint)rows, ih0 = (cl_uint)lo,
            nih = (cl_uint)(hi - lo + 1);
    cl_int pad = g->pad;
    cl_uint shift = 32; /* log2(stride) for powers of two; 32: divide */
    for (cl_uint b = 0; b < 31; b++)
        if (((cl_uint)1 << b) == stride)
            shift = b;
    dsd_karg args[] = {DSD_KARG_TENSOR(dcol), DSD_KARG(dx->buf), DSD_KARG(dx_off), DSD_KARG(cin),
                       DSD_KARG(h), DSD_KARG(w), DSD_KARG(kh), DSD_KARG(kw), DSD_KARG(stride),
                       DSD_KARG(shift), DSD_KARG(pad), DSD_KARG(reflect), DSD_KARG(ow),
                       DSD_KARG(ur0), DSD_KARG(urows), DSD_KARG(ih0), DSD_KARG(nih)};
    return run_rows3(ctx, "conv2d_col2im", args, DSD_NARGS(args), ((size_t)g->w + 7) / 8, nih,
                     (size_t)g->cin);
}

/* ------------------------------------------------------------------------ */
/* Forward */

/* The forward's weights turned for the GEMM (W^T as Kp x Cout) once per
 * call: padded in depth (dsd_gemm_padded_depth; rows Kc.. zero) or, for a
 * call of several products, with Kp = Kc; buf NULL where each product takes
 * the weights as they are. *zero_cols is the column count for which the
 * column buffer's rows Kc..Kp-1 hold zeros (im2col writes only rows
 * 0..Kc-1, so they stay zero across chunks and images of one call). */
typedef struct turned_weights {
    cl_mem buf;
    size_t capacity, depth;
    size_t zero_cols;
} turned_weights;

/* Stores a row chunk's product (Cout x cols, contiguous) into y's planes
 * from element y_at on, adding the bias. */
static dsd_status chunk_store(dsd_context *ctx, const conv_geom *g, const dsd_tensor *chunk,
                              size_t cols, const dsd_tensor *bias, dsd_tensor *y, size_t y_at)
{
    cl_uint ucols = (cl_uint)cols, has_bias = bias ? 1u : 0u, y_off = (cl_uint)y_at,
            plane = (cl_uint)((size_t)g->oh * g->ow), cout = (cl_uint)g->cout;
    const dsd_tensor *b = bias ? bias : chunk; /* bound but unread without a bias */
    dsd_karg args[] = {DSD_KARG_TENSOR(chunk), DSD_KARG(ucols),  DSD_KARG_TENSOR(b),
                       DSD_KARG(has_bias),     DSD_KARG(y->buf), DSD_KARG(y_off),
                       DSD_KARG(plane),        DSD_KARG(cout)};
    return run_rows(ctx, "conv2d_chunk_store", args, DSD_NARGS(args), cols, (size_t)g->cout);
}

/* Y[img] rows [r0, r0 + rows) = W col (+ y when beta = 1). With a chunk
 * buffer (the image takes several row chunks) each chunk's product goes
 * there first (beta 0) and chunk_store puts it into y with the bias: y's
 * planes are strided for a chunk, and CLBlast would copy such a C into a
 * temporary and back around every product. */
static dsd_status forward_image(dsd_context *ctx, const conv_geom *g, const dsd_tensor *x,
                                const dsd_tensor *weight, turned_weights *wp, float beta,
                                const dsd_tensor *chunk, const dsd_tensor *bias, dsd_tensor *y,
                                dsd_tensor *col, int img, int rows)
{
    size_t plane = (size_t)g->oh * g->ow, kc = col_rows(g), cout = (size_t)g->cout;
    size_t y_img = y->offset + (size_t)img * g->cout * plane;
    for (int r0 = 0; r0 < g->oh; r0 += rows) {
        int nr = g->oh - r0 < rows ? g->oh - r0 : rows;
        size_t cols = (size_t)nr * g->ow, y_at = y_img + (size_t)r0 * g->ow;
        DSD_TRY(im2col(ctx, g, x, img, col, r0, nr));
        dsd_gemm_operand a = {col->buf, col->offset, cols};
        dsd_gemm_operand c = {y->buf, y_at, plane};
        if (chunk) {
            c = (dsd_gemm_operand){chunk->buf, chunk->offset, cols};
            beta = 0.0f;
        }
        if (wp->buf && dsd_gemm_padded_depth(ctx, cols, cout, kc, wp->depth) == wp->depth) {
            if (wp->depth > kc && wp->zero_cols != cols) {
                dsd_tensor zeros = {.n = 1, .c = 1, .h = 1, .w = (int)((wp->depth - kc) * cols),
                                    .buf = col->buf, .offset = col->offset + (cl_uint)(kc * cols)};
                DSD_TRY(dsd_tensor_fill(ctx, &zeros, 0.0f));
                wp->zero_cols = cols;
            }
            /* Y_chunk^T (cols x Cout) = col^T (cols x Kp) Wp (Kp x Cout), column-major */
            dsd_gemm_operand b = {wp->buf, 0, cout};
            DSD_TRY(dsd_gemm(ctx, "forward W x col", 0, 1, cols, cout, wp->depth, &a, &b, beta,
                             &c));
        } else {
            /* Y_chunk^T (cols x Cout) = col^T (cols x Kc) W^T (Kc x Cout), column-major */
            dsd_gemm_operand b = {weight->buf, weight->offset, kc};
            DSD_TRY(dsd_gemm(ctx, "forward W x col", 0, 0, cols, cout, kc, &a, &b, beta, &c));
        }
        if (chunk)
            DSD_TRY(chunk_store(ctx, g, chunk, cols, bias, y, y_at));
    }
    return DSD_OK;
}

static dsd_status forward_direct_few(dsd_context *ctx, const conv_geom *g, const dsd_tensor *x,
                                     const dsd_tensor *weight, const dsd_tensor *bias,
                                     dsd_tensor *y)
{
    cl_uint n = (cl_uint)g->n, cin = (cl_uint)g->cin, h = (cl_uint)g->h, w = (cl_uint)g->w,
            cout = (cl_uint)g->cout, kh = (cl_uint)g->kh, kw = (cl_uint)g->kw,
            stride = (cl_uint)g->stride, reflect = (cl_uint)g->reflect, oh = (cl_uint)g->oh,
            ow = (cl_uint)g->ow, has_bias = bias ? 1u : 0u;
    cl_int pad = g->pad;
    const dsd_tensor *b = bias ? bias : weight; /* bound but unread without a bias */
    dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(weight), DSD_KARG_TENSOR(b),
                       DSD_KARG(has_bias), DSD_KARG_TENSOR(y), DSD_KARG(n), DSD_KARG(cin),
                       DSD_KARG(h), DSD_KARG(w), DSD_KARG(cout), DSD_KARG(kh), DSD_KARG(kw),
                       DSD_KARG(stride), DSD_KARG(pad), DSD_KARG(reflect), DSD_KARG(oh),
                       DSD_KARG(ow)};
    if (few_rows_kernel(g)) {
        dsd_karg rows_args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(weight), DSD_KARG_TENSOR(b),
                                DSD_KARG(has_bias), DSD_KARG_TENSOR(y), DSD_KARG(n),
                                DSD_KARG(cin), DSD_KARG(h), DSD_KARG(w), DSD_KARG(cout),
                                DSD_KARG(pad), DSD_KARG(reflect), DSD_KARG(oh), DSD_KARG(ow)};
        size_t blocks = (size_t)g->n * out_blocks(g) * ((g->oh + FEW_ROWS - 1) / FEW_ROWS);
        return run_rows_k(ctx, "conv2d_direct_few_rows", rows_args, DSD_NARGS(rows_args),
                          (size_t)(g->ow + 7) / 8, blocks, g->kh); /* 8-column strips */
    }
    return run_elementwise(ctx, "conv2d_direct_few", args, DSD_NARGS(args),
                           (size_t)g->n * g->oh * g->ow);
}

/* The padded-input gradient buffer of the tiled few-channel backward: a
 * view of the caller's workspace, or leased for this call (*leased set). */
static dsd_status padded_grad_buffer(dsd_context *ctx, const conv_geom *g,
                                     const dsd_tensor *workspace, dsd_tensor *gp, int *leased)
{
    int ph = g->h + 2 * g->pad, pw = g->w + 2 * g->pad;
    size_t floats = (size_t)g->n * g->cin * ph * pw;
    *leased = 0;
    if (!workspace) {
        *leased = 1;
        return dsd_tensor_init(ctx, gp, g->n, g->cin, ph, pw);
    }
    if (!workspace->buf || dsd_tensor_numel(workspace) < floats)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "conv2d_backward: workspace of %zu "
                        "floats, the padded input gradient needs %zu",
                        dsd_tensor_numel(workspace), floats);
    *gp = *workspace;
    gp->capacity = 0;
    gp->n = g->n;
    gp->c = g->cin;
    gp->h = ph;
    gp->w = pw;
    return DSD_OK;
}

/* The tiled backward (few_rows_kernel): dx through the padded-input gradient
 * and a fold, dW by one work-group per (c, kh) (cl/conv2d.cl). */
static dsd_status backward_direct_few_rows(dsd_context *ctx, const conv_geom *g,
                                           const dsd_tensor *x, const dsd_tensor *weight,
                                           const dsd_tensor *dy, dsd_tensor *dx,
                                           dsd_tensor *dweight, const dsd_tensor *workspace)
{
    cl_uint n = (cl_uint)g->n, cin = (cl_uint)g->cin, h = (cl_uint)g->h, w = (cl_uint)g->w,
            cout = (cl_uint)g->cout, reflect = (cl_uint)g->reflect, oh = (cl_uint)g->oh,
            ow = (cl_uint)g->ow, ph = (cl_uint)(g->h + 2 * g->pad),
            pw = (cl_uint)(g->w + 2 * g->pad);
    cl_int pad = g->pad;
    if (dx) {
        dsd_tensor gp;
        int leased;
        DSD_TRY(padded_grad_buffer(ctx, g, workspace, &gp, &leased));
        dsd_karg args[] = {DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(weight), DSD_KARG_TENSOR(&gp),
                           DSD_KARG(n), DSD_KARG(cin), DSD_KARG(cout), DSD_KARG(oh),
                           DSD_KARG(ow), DSD_KARG(ph), DSD_KARG(pw)};
        size_t blocks = (size_t)g->n * ((g->cin + FEW_CB - 1) / FEW_CB) *
                        ((ph + FEW_ROWS - 1) / FEW_ROWS);
        dsd_status st = run_rows_k(ctx, "conv2d_direct_few_dxpad", args, DSD_NARGS(args),
                                   (size_t)(pw + 7) / 8, blocks, g->kh); /* 8-column strips */
        cl_uint planes = n * cin;
        dsd_karg fold[] = {DSD_KARG_TENSOR(&gp), DSD_KARG_TENSOR(dx), DSD_KARG(planes),
                           DSD_KARG(h), DSD_KARG(w), DSD_KARG(pad), DSD_KARG(reflect), DSD_KARG(ph),
                           DSD_KARG(pw)};
        if (st == DSD_OK)
            st = run_rows(ctx, "conv2d_fold_padded_grad", fold, DSD_NARGS(fold), (size_t)g->w,
                          (size_t)planes * g->h);
        if (leased)
            dsd_tensor_free(ctx, &gp);
        DSD_TRY(st);
    }
    if (dweight) {
        char opts[48];
        size_t wg;
        kernel_options(ctx, opts, sizeof opts, &wg);
        snprintf(opts + strlen(opts), sizeof opts - strlen(opts), " -DFEW_K=%d", g->kh);
        dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(dweight),
                           DSD_KARG(n), DSD_KARG(cin), DSD_KARG(h), DSD_KARG(w), DSD_KARG(cout),
                           DSD_KARG(pad), DSD_KARG(reflect), DSD_KARG(oh), DSD_KARG(ow)};
        size_t local = FEW_DW_WG, global = out_blocks(g) * g->cin * g->kh * local;
        DSD_TRY(dsd_kernel_run(ctx, "conv2d", opts, "conv2d_direct_few_dw_rows", args,
                               DSD_NARGS(args), 1, &global, &local));
    }
    return DSD_OK;
}

/* The backward of a stride-1 convolution with few output channels: dx by a
 * gather over the taps, dW by one work-group per weight tap (cl/conv2d.cl). */
static dsd_status backward_direct_few(dsd_context *ctx, const conv_geom *g, const dsd_tensor *x,
                                      const dsd_tensor *weight, const dsd_tensor *dy,
                                      dsd_tensor *dx, dsd_tensor *dweight)
{
    cl_uint n = (cl_uint)g->n, cin = (cl_uint)g->cin, h = (cl_uint)g->h, w = (cl_uint)g->w,
            cout = (cl_uint)g->cout, kh = (cl_uint)g->kh, kw = (cl_uint)g->kw,
            reflect = (cl_uint)g->reflect, oh = (cl_uint)g->oh, ow = (cl_uint)g->ow;
    cl_int pad = g->pad;
    if (dx) {
        dsd_karg args[] = {DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(weight), DSD_KARG_TENSOR(dx),
                           DSD_KARG(n), DSD_KARG(cin), DSD_KARG(h), DSD_KARG(w), DSD_KARG(cout),
                           DSD_KARG(kh), DSD_KARG(kw), DSD_KARG(pad), DSD_KARG(reflect),
                           DSD_KARG(oh), DSD_KARG(ow)};
        DSD_TRY(run_elementwise(ctx, "conv2d_direct_few_dx", args, DSD_NARGS(args),
                                (size_t)g->n * g->cin * g->h * g->w));
    }
    if (dweight) {
        char opts[32];
        size_t wg;
        kernel_options(ctx, opts, sizeof opts, &wg);
        dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(dweight),
                           DSD_KARG(n), DSD_KARG(cin), DSD_KARG(h), DSD_KARG(w), DSD_KARG(cout),
                           DSD_KARG(kh), DSD_KARG(kw), DSD_KARG(pad), DSD_KARG(reflect),
                           DSD_KARG(oh), DSD_KARG(ow)};
        size_t global = col_rows(g) * wg;
        DSD_TRY(dsd_kernel_run(ctx, "conv2d", opts, "conv2d_direct_few_dw", args,
                               DSD_NARGS(args), 1, &global, &wg));
    }
    return DSD_OK;
}

/* The column buffer of a chunked pass: a view of the caller's workspace, or
 * leased from the pool for this call (*leased set). */
static dsd_status column_buffer(dsd_context *ctx, const char *op, const conv_geom *g, int rows,
                                const dsd_tensor *workspace, dsd_tensor *col, int *leased)
{
    size_t floats = col_rows_capacity(g) * (size_t)rows * (size_t)g->ow;
    *leased = 0;
    if (!workspace) {
        *leased = 1;
        return dsd_tensor_init(ctx, col, 1, (int)col_rows_capacity(g), rows, g->ow);
    }
    if (!workspace->buf || dsd_tensor_numel(workspace) < floats)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: workspace of %zu floats, the "
                        "column buffer needs %zu", op, dsd_tensor_numel(workspace), floats);
    *col = *workspace;
    col->capacity = 0;
    col->n = 1;
    col->c = (int)col_rows_capacity(g);
    col->h = rows;
    col->w = g->ow;
    return DSD_OK;
}

dsd_status dsd_conv2d_plan_make(const dsd_conv2d_params *p, int n, int cin, int h, int w,
                                int cout, dsd_conv2d_plan *out, dsd_error *err)
{
    const char *op = "conv2d_plan";
    DSD_TRY(check_params(err, op, p));
    if (n < 1 || cin < 1 || cout < 1)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "%s: %d images, %d input and %d output channels",
                        op, n, cin, cout);
    if (p->groups != 1 && p->groups == cin) {
        int oh, ow;
        DSD_TRY(out_size(err, op, p, h, w, &oh, &ow));
        *out = (dsd_conv2d_plan){
            .params = *p, .n = n, .cin = cin, .h = h, .w = w, .cout = cout, .oh = oh, .ow = ow,
            .forward = DSD_CONV2D_ROUTE_DEPTHWISE, .backward = DSD_CONV2D_ROUTE_DEPTHWISE,
            .macs = (double)n * cout * oh * ow * (double)p->kernel_h * p->kernel_w};
        return DSD_OK;
    }
    if (p->groups != 1)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "%s: groups %d with %d input channels "
                        "(groups must be 1 or Cin)", op, p->groups, cin);
    conv_geom g;
    DSD_TRY(geom_make(err, op, p, n, cin, h, w, cout, &g));
    *out = plan_of(p, &g);
    return DSD_OK;
}

dsd_status dsd_conv2d_forward_ws(dsd_context *ctx, const dsd_conv2d_params *p,
                                 const dsd_tensor *x, const dsd_tensor *weight,
                                 const dsd_tensor *bias, dsd_tensor *y,
                                 const dsd_tensor *workspace)
{
    const char *op = "conv2d_forward";
    int depthwise;
    DSD_TRY(conv_route(ctx, op, p, x, &depthwise));
    if (depthwise)
        return dsd_depthwise_conv2d_forward(ctx, p, x, weight, bias, y);

    conv_geom g;
    DSD_TRY(conv_setup(ctx, op, p, x, weight, &g));
    if (bias)
        DSD_TRY(DSD_TENSOR_EXPECT_SHAPE(ctx, op, bias, "bias", 1, g.cout, 1, 1,
                                        "a weight with that many output channels", NULL));
    DSD_TRY(DSD_TENSOR_EXPECT_SHAPE(ctx, op, y, "y", g.n, g.cout, g.oh, g.ow,
                                    "the convolution of x", NULL));

    const dsd_conv2d_plan plan = plan_of(p, &g);
    if (plan.forward == DSD_CONV2D_ROUTE_DIRECT_FEW)
        return forward_direct_few(ctx, &g, x, weight, bias, y);

    /* An image in several row chunks: each chunk's product is stored with
     * the bias by chunk_store (forward_image), no bias fill first. */
    const int chunked = plan.forward == DSD_CONV2D_ROUTE_IM2COL && plan.chunks > 1;
    float beta = 0.0f;
    if (bias && !chunked) {
        cl_uint planes = (cl_uint)(g.n * g.cout), cout = (cl_uint)g.cout,
                plane = (cl_uint)((size_t)g.oh * g.ow);
        dsd_karg args[] = {DSD_KARG_TENSOR(bias), DSD_KARG_TENSOR(y), DSD_KARG(planes),
                           DSD_KARG(cout), DSD_KARG(plane)};
        DSD_TRY(run_rows(ctx, "conv2d_bias_fill", args, DSD_NARGS(args), plane, planes));
        beta = 1.0f;
    }

    size_t plane = (size_t)g.h * g.w;
    if (plan.forward == DSD_CONV2D_ROUTE_POINTWISE) {
        for (int img = 0; img < g.n; img++) { /* Y[n]^T (HW x Cout) = X[n]^T W^T */
            dsd_gemm_operand a = {x->buf, x->offset + (size_t)img * g.cin * plane, plane};
            dsd_gemm_operand b = {weight->buf, weight->offset, (size_t)g.cin};
            dsd_gemm_operand c = {y->buf, y->offset + (size_t)img * g.cout * plane, plane};
            DSD_TRY(dsd_gemm(ctx, "forward W x X", 0, 0, plane, (size_t)g.cout, (size_t)g.cin,
                             &a, &b, beta, &c));
        }
        return DSD_OK;
    }

    dsd_tensor col;
    int leased;
    DSD_TRY(column_buffer(ctx, op, &g, plan.chunk_rows, workspace, &col, &leased));
    turned_weights wp = {0};
    size_t kc = col_rows(&g), chunk_cols = (size_t)plan.chunk_rows * g.ow;
    size_t kp = dsd_gemm_padded_depth(ctx, chunk_cols, (size_t)g.cout, kc, col_rows_capacity(&g));
    dsd_status st = DSD_OK;
    /* W^T turned once per call: padded in depth where that pays, and also
     * as it is when there are several products (row chunks, images), which
     * gemm.c would otherwise turn again for every one of them */
    if (kp != kc || plan.chunks * g.n > 1) {
        st = dsd_gemm_turn_padded(ctx, weight->buf, weight->offset, (size_t)g.cout, kc, kp,
                                  &wp.buf, &wp.capacity);
        wp.depth = kp;
    }
    dsd_tensor chunk = {0};
    if (chunked && st == DSD_OK)
        st = dsd_tensor_init(ctx, &chunk, 1, g.cout, plan.chunk_rows, g.ow);
    for (int img = 0; img < g.n && st == DSD_OK; img++)
        st = forward_image(ctx, &g, x, weight, &wp, beta, chunked ? &chunk : NULL, bias, y, &col,
                           img, plan.chunk_rows);
    dsd_tensor_free(ctx, &chunk);
    if (wp.buf)
        dsd_pool_return(ctx, wp.buf, wp.capacity);
    if (leased)
        dsd_tensor_free(ctx, &col);
    return st;
}

dsd_status dsd_conv2d_forward(dsd_context *ctx, const dsd_conv2d_params *p, const dsd_tensor *x,
                              const dsd_tensor *weight, const dsd_tensor *bias, dsd_tensor *y)
{
    return dsd_conv2d_forward_ws(ctx, p, x, weight, bias, y, NULL);
}

/* ------------------------------------------------------------------------ */
/* Backward */

static dsd_status bias_backward(dsd_context *ctx, const conv_geom *g, const dsd_tensor *dy,
                                dsd_tensor *dbias)
{
    char opts[32];
    size_t wg;
    kernel_options(ctx, opts, sizeof opts, &wg);
    cl_uint n = (cl_uint)g->n, cout = (cl_uint)g->cout, plane = (cl_uint)((size_t)g->oh * g->ow);
    dsd_karg args[] = {DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(dbias), DSD_KARG(n), DSD_KARG(cout),
                       DSD_KARG(plane)};
    size_t global = (size_t)g->cout * wg;
    return dsd_kernel_run(ctx, "conv2d", opts, "conv2d_bias_backward", args, DSD_NARGS(args), 1,
                          &global, &wg);
}

static dsd_status backward_pointwise(dsd_context *ctx, const conv_geom *g, const dsd_tensor *x,
                                     const dsd_tensor *weight, const dsd_tensor *dy,
                                     dsd_tensor *dx, dsd_tensor *dweight)
{
    size_t plane = (size_t)g->h * g->w, cin = (size_t)g->cin, cout = (size_t)g->cout;
    for (int img = 0; img < g->n; img++) {
        size_t dy_img = dy->offset + (size_t)img * cout * plane;
        size_t x_img = (size_t)img * cin * plane;
        dsd_gemm_operand x_n = {x->buf, x->offset + x_img, plane};
        dsd_gemm_operand dy_n = {dy->buf, dy_img, plane};
        if (dweight) { /* dW^T (Cin x Cout) += X[n] (Cin x HW) dY[n]^T, column-major */
            dsd_gemm_operand c = {dweight->buf, dweight->offset, cin};
            DSD_TRY(dsd_gemm(ctx, "backward dW += dY x X^T", 1, 0, cin, cout, plane, &x_n,
                             &dy_n, 1.0f, &c));
        }
        if (dx) { /* dX[n]^T (HW x Cin) += dY[n]^T W, column-major */
            dsd_gemm_operand w = {weight->buf, weight->offset, cin};
            dsd_gemm_operand c = {dx->buf, dx->offset + x_img, plane};
            DSD_TRY(dsd_gemm(ctx, "backward dX += W^T x dY", 0, 1, plane, cin, cout, &dy_n, &w,
                             1.0f, &c));
        }
    }
    return DSD_OK;
}

static dsd_status backward_image(dsd_context *ctx, const conv_geom *g, const dsd_tensor *x,
                                 const dsd_tensor *weight, const dsd_tensor *dy, dsd_tensor *dx,
                                 dsd_tensor *dweight, dsd_tensor *col, int img, int rows)
{
    size_t plane = (size_t)g->oh * g->ow, kc = col_rows(g), cout = (size_t)g->cout;
    size_t dy_img = dy->offset + (size_t)img * cout * plane;
    for (int r0 = 0; r0 < g->oh; r0 += rows) {
        int nr = g->oh - r0 < rows ? g->oh - r0 : rows;
        size_t cols = (size_t)nr * g->ow, dy_chunk = dy_img + (size_t)r0 * g->ow;
        dsd_gemm_operand colm = {col->buf, col->offset, cols};
        dsd_gemm_operand dyc = {dy->buf, dy_chunk, plane};
        if (dweight) { /* dW^T (Kc x Cout) += col (Kc x cols) dY_chunk^T, column-major */
            DSD_TRY(im2col(ctx, g, x, img, col, r0, nr));
            dsd_gemm_operand c = {dweight->buf, dweight->offset, kc};
            DSD_TRY(dsd_gemm(ctx, "backward dW += dY x col^T", 1, 0, kc, cout, cols, &colm,
                             &dyc, 1.0f, &c));
        }
        if (dx) { /* dcol^T (cols x Kc) = dY_chunk^T W, then dx += col2im(dcol) */
            dsd_gemm_operand w = {weight->buf, weight->offset, kc};
            DSD_TRY(dsd_gemm(ctx, "backward dcol = W^T x dY", 0, 1, cols, kc, cout, &dyc, &w,
                             0.0f, &colm));
            DSD_TRY(col2im(ctx, g, col, dx, img, r0, nr));
        }
    }
    return DSD_OK;
}

dsd_status dsd_conv2d_backward_ws(dsd_context *ctx, const dsd_conv2d_params *p,
                                  const dsd_tensor *x, const dsd_tensor *weight,
                                  const dsd_tensor *dy, dsd_tensor *dx, dsd_tensor *dweight,
                                  dsd_tensor *dbias, const dsd_tensor *workspace)
{
    const char *op = "conv2d_backward";
    int depthwise;
    DSD_TRY(conv_route(ctx, op, p, x, &depthwise));
    if (depthwise)
        return dsd_depthwise_conv2d_backward(ctx, p, x, weight, dy, dx, dweight, dbias);

    conv_geom g;
    DSD_TRY(conv_setup(ctx, op, p, x, weight, &g));
    DSD_TRY(DSD_TENSOR_EXPECT_SHAPE(ctx, op, dy, "dy", g.n, g.cout, g.oh, g.ow,
                                    "the convolution of x", NULL));
    if (dx)
        DSD_TRY(DSD_TENSOR_EXPECT_SHAPE(ctx, op, dx, "dx", g.n, g.cin, g.h, g.w, "x", NULL));
    if (dweight)
        DSD_TRY(DSD_TENSOR_EXPECT_SHAPE(ctx, op, dweight, "dweight", weight->n, weight->c,
                                        weight->h, weight->w, "weight", NULL));
    if (dbias)
        DSD_TRY(DSD_TENSOR_EXPECT_SHAPE(ctx, op, dbias, "dbias", 1, g.cout, 1, 1,
                                        "a weight with that many output channels", NULL));

    if (dbias)
        DSD_TRY(bias_backward(ctx, &g, dy, dbias));
    if (!dx && !dweight)
        return DSD_OK;
    const dsd_conv2d_plan plan = plan_of(p, &g);
    if (plan.backward == DSD_CONV2D_ROUTE_POINTWISE)
        return backward_pointwise(ctx, &g, x, weight, dy, dx, dweight);
    if (plan.backward == DSD_CONV2D_ROUTE_DIRECT_FEW && few_rows_backward(ctx, &g))
        return backward_direct_few_rows(ctx, &g, x, weight, dy, dx, dweight, workspace);
    if (plan.backward == DSD_CONV2D_ROUTE_DIRECT_FEW && g.cout <= DIRECT_MAX_COUT)
        return backward_direct_few(ctx, &g, x, weight, dy, dx, dweight);

    /* im2col + GEMM; also the few-input route on a device whose work-groups
     * cannot hold FEW_DW_WG items (its workspace is no column buffer) */
    int rows = plan.chunk_rows, fallback = plan.backward == DSD_CONV2D_ROUTE_DIRECT_FEW;
    if (fallback)
        rows = chunk_rows(&g);
    dsd_tensor col;
    int leased;
    DSD_TRY(column_buffer(ctx, op, &g, rows, fallback ? NULL : workspace, &col, &leased));
    dsd_status st = DSD_OK;
    for (int img = 0; img < g.n && st == DSD_OK; img++)
        st = backward_image(ctx, &g, x, weight, dy, dx, dweight, &col, img, rows);
    if (leased)
        dsd_tensor_free(ctx, &col);
    return st;
}

dsd_status dsd_conv2d_backward(dsd_context *ctx, const dsd_conv2d_params *p, const dsd_tensor *x,
                               const dsd_tensor *weight, const dsd_tensor *dy, dsd_tensor *dx,
                               dsd_tensor *dweight, dsd_tensor *dbias)
{
    return dsd_conv2d_backward_ws(ctx, p, x, weight, dy, dx, dweight, dbias, NULL);
}
