/*
 * depthwise.c: depthwise 2-D convolution (groups == C == Cout), forward and
 * backward, zero or reflection padding. Kernels in cl/depthwise.cl (which
 * explains the tiling), double-precision reference in tests/ref/depthwise.c.
 * dsd_conv2d_forward/backward (src/ops/conv2d.c) dispatch here when
 * groups == Cin.
 *
 * Two sets of kernels, chosen by the device profile's `depthwise`
 * (dsd_device_profile, doc/tuning.md) for stride 1 and kernels up to 9 wide
 * (else always the tiles):
 * - tile: local-memory tiles with halos, one work-item per pixel (GPUs);
 * - strip: one work-item per 8 consecutive pixels of a row as float8 vectors,
 *   no local memory (CPUs: PoCL runs the tiled kernels as scalar code but
 *   turns float8 arithmetic into vector FMAs).
 * Both builds define the same kernel names and arguments; only the launch
 * shapes differ.
 *
 * Each function validates every tensor and parameter before it enqueues
 * anything. The kernel size, stride, padding mode, route and tile size are
 * build options, so each layer configuration gets its own program (built
 * once per context, then cached). Forward is one launch; backward is one
 * launch for dx and two for dweight/dbias (partial sums over a fixed split
 * of the output, then an in-order sum), with the partials in a temporary
 * tensor from the pool.
 */
#include "internal.h"

#include <stdio.h>

/* Default output tile per work-group: 32 x 8 = 256 work-items. 32 columns keep
 * a row of reads 128 bytes wide on GPUs; both are powers of two (the weight
 * reduction is a tree over the group). Halved (rows first) when the device
 * allows fewer work-items or less local memory. */
enum { DW_TILE_W = 32, DW_TILE_H = 8, DW_RED_CHUNK_MAX = 10 };

/* Output tiles (columns x rows) each weight-gradient work-group walks per
 * image: enough work to amortize its final reduction, few enough that the
 * body's 180 x 320 planes give 30 groups per channel. The split depends on
 * the shape only, so the summation order is fixed. */
enum { DW_GROUP_TILES_W = 2, DW_GROUP_TILES_H = 4 };

/* Strip kernels: pixels per work-item (VEC in cl/depthwise.cl); at most
 * DW_STRIP_GROUP strips of a row per work-group (PoCL runs a group as one
 * task: a whole row of 40 strips per group ran faster than 4 or 8, and than
 * PoCL's own choice); and the weight-gradient split, at most DW_STRIP_PARTS
 * work-items per channel, each walking one block of consecutive output
 * rows: 8 x C work-items keep 2-16 threads busy with few partials. */
enum { DW_VEC = 8, DW_STRIP_GROUP = 64, DW_STRIP_PARTS = 8, DW_STRIP_MAX_KW = DW_VEC + 1 };

/* ------------------------------------------------------------------------ */
/* Validation */

/* t must be (n, c, h, w), a shape implied by x and the parameters. */
static dsd_status expect_shape(dsd_context *ctx, const dsd_tensor *t, const char *what, int n,
                               int c, int h, int w, const dsd_tensor *x,
                               const dsd_conv2d_params *p)
{
    DSD_TRY(DSD_TENSOR_CHECK(ctx, "depthwise conv", t, what));
    char op[96];
    snprintf(op, sizeof op, "depthwise conv %dx%d stride %d pad %d", p->kernel_h, p->kernel_w,
             p->stride, p->pad);
    return DSD_TENSOR_EXPECT_SHAPE(ctx, op, t, what, n, c, h, w, "x", x);
}

/* Checks the parameters and x, weight and bias (may be NULL); sets the output size. */
static dsd_status check_common(dsd_context *ctx, const dsd_conv2d_params *p, const dsd_tensor *x,
                               const dsd_tensor *weight, const dsd_tensor *bias, int *out_h,
                               int *out_w)
{
    if (!p)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT,
                        "depthwise conv: params is NULL");
    if (p->kernel_h < 1 || p->kernel_w < 1 || p->stride < 1 || p->pad < 0 ||
        (p->pad_mode != DSD_PAD_ZERO && p->pad_mode != DSD_PAD_REFLECT))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "depthwise conv: invalid "
                        "parameters (kernel %dx%d, stride %d, pad %d, pad mode %d)", p->kernel_h,
                        p->kernel_w, p->stride, p->pad, (int)p->pad_mode);
    DSD_TRY(DSD_TENSOR_CHECK(ctx, "depthwise conv", x, "x"));
    if (p->groups != x->c)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "depthwise conv: groups %d "
                        "!= channels %d of x %dx%dx%dx%d", p->groups, x->c, x->n, x->c, x->h,
                        x->w);
    if (p->pad_mode == DSD_PAD_REFLECT && (p->pad >= x->h || p->pad >= x->w))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "depthwise conv: reflection pad %d "
                        "needs pad < H and pad < W, x is %dx%dx%dx%d", p->pad, x->n, x->c, x->h,
                        x->w);
    long ph = (long)x->h + 2L * p->pad, pw = (long)x->w + 2L * p->pad;
    if (ph < p->kernel_h || pw < p->kernel_w || ph > 1L << 30 || pw > 1L << 30)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "depthwise conv: kernel %dx%d does not "
                        "fit x %dx%dx%dx%d padded by %d", p->kernel_h, p->kernel_w, x->n, x->c,
                        x->h, x->w, p->pad);
    *out_h = (int)((ph - p->kernel_h) / p->stride + 1);
    *out_w = (int)((pw - p->kernel_w) / p->stride + 1);
    DSD_TRY(expect_shape(ctx, weight, "weight", x->c, 1, p->kernel_h, p->kernel_w, x, p));
    if (bias)
        DSD_TRY(expect_shape(ctx, bias, "bias", 1, x->c, 1, 1, x, p));
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Program configuration */

typedef struct dw_config {
    int strip; /* the strip kernels (else the tiles) */
    int tile_w, tile_h;
    char options[160];
} dw_config;

/* The strip kernels when the context's profile asks for them (or, without a
 * choice, on a CPU device), the stride is 1 and the kernel at most
 * DW_STRIP_MAX_KW wide (a border strip's window is two float8). */
static int use_strips(dsd_context *ctx, const dsd_conv2d_params *p)
{
    if (p->stride != 1 || p->kernel_w > DW_STRIP_MAX_KW)
        return 0;
    int route = dsd_context_profile(ctx)->depthwise;
    if (route == DSD_DEPTHWISE_AUTO)
        route = dsd_context_device(ctx)->is_cpu ? DSD_DEPTHWISE_STRIP : DSD_DEPTHWISE_TILE;
    return route == DSD_DEPTHWISE_STRIP;
}

/* Local floats the largest kernel of the program needs (forward's input tile,
 * or the weight gradient's input tile plus its reduction buffer). */
static size_t dw_local_bytes(const dsd_conv2d_params *p, int tile_w, int tile_h)
{
    size_t in_th = (size_t)(tile_h - 1) * p->stride + p->kernel_h;
    size_t in_tw = (size_t)(tile_w - 1) * p->stride + p->kernel_w;
    size_t taps1 = (size_t)p->kernel_h * p->kernel_w + 1;
    size_t chunk = taps1 < DW_RED_CHUNK_MAX ? taps1 : DW_RED_CHUNK_MAX;
    return (in_th * in_tw + chunk * (size_t)tile_w * tile_h) * sizeof(float);
}

/* Picks the route, the tile size for this device and layer, and the build options. */
static dsd_status dw_configure(dsd_context *ctx, const dsd_conv2d_params *p, dw_config *cfg)
{
    const dsd_device_info *dev = dsd_context_device(ctx);
    cfg->strip = use_strips(ctx, p);
    if (cfg->strip) {
        cfg->tile_w = cfg->tile_h = 0;
        snprintf(cfg->options, sizeof cfg->options, "-DKH=%d -DKW=%d -DSTRIDE=1 -DREFLECT=%d "
                 "-DSTRIP=1", p->kernel_h, p->kernel_w, p->pad_mode == DSD_PAD_REFLECT ? 1 : 0);
        return DSD_OK;
    }
    int tw = DW_TILE_W, th = DW_TILE_H;
    /* some headroom below the device's local memory for the implementation */
    size_t local_max = dev->local_mem_bytes > 1024 ? dev->local_mem_bytes - 1024 : 0;
    while ((size_t)tw * th > dev->max_work_group_size || dw_local_bytes(p, tw, th) > local_max) {
        if (th > 1)
            th /= 2;
        else if (tw > 1)
            tw /= 2;
        else
            return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "depthwise conv: kernel "
                            "%dx%d stride %d needs more local memory than the device has "
                            "(%llu bytes)", p->kernel_h, p->kernel_w, p->stride,
                            (unsigned long long)dev->local_mem_bytes);
    }
    cfg->tile_w = tw;
    cfg->tile_h = th;
    snprintf(cfg->options, sizeof cfg->options,
             "-DKH=%d -DKW=%d -DSTRIDE=%d -DREFLECT=%d -DTILE_W=%d -DTILE_H=%d", p->kernel_h,
             p->kernel_w, p->stride, p->pad_mode == DSD_PAD_REFLECT ? 1 : 0, tw, th);
    return DSD_OK;
}

static size_t tiles(int extent, int tile)
{
    return ((size_t)extent + (size_t)tile - 1) / (size_t)tile;
}

/* The launch shape of forward (over y) or backward dx (over dx): per (n, c)
 * plane of w x h pixels, tiles of the configured size, or strips of DW_VEC,
 * a row's strips in as few equal work-groups of at most DW_STRIP_GROUP (and
 * what the device allows) as will hold them. */
static void pixel_launch(dsd_context *ctx, const dw_config *cfg, int planes, int h, int w,
                         size_t global[3], size_t local[3])
{
    if (cfg->strip) {
        size_t strips = tiles(w, DW_VEC);
        size_t most = dsd_work_group_size(ctx, DW_STRIP_GROUP);
        size_t groups = (strips + most - 1) / most;
        local[0] = (strips + groups - 1) / groups;
        local[1] = local[2] = 1;
        global[0] = strips;
    } else {
        local[0] = (size_t)cfg->tile_w;
        local[1] = (size_t)cfg->tile_h;
        local[2] = 1;
        global[0] = tiles(w, cfg->tile_w) * local[0];
    }
    global[1] = cfg->strip ? (size_t)h : tiles(h, cfg->tile_h) * local[1];
    global[2] = (size_t)planes;
}

/* ------------------------------------------------------------------------ */
/* Forward */

dsd_status dsd_depthwise_conv2d_forward(dsd_context *ctx, const dsd_conv2d_params *p,
                                        const dsd_tensor *x, const dsd_tensor *weight,
                                        const dsd_tensor *bias, dsd_tensor *y)
{
    int out_h, out_w;
    DSD_TRY(check_common(ctx, p, x, weight, bias, &out_h, &out_w));
    DSD_TRY(expect_shape(ctx, y, "y", x->n, x->c, out_h, out_w, x, p));
    dw_config cfg;
    DSD_TRY(dw_configure(ctx, p, &cfg));

    cl_uint has_bias = bias != NULL;
    const dsd_tensor *b = bias ? bias : weight; /* any valid buffer; not read */
    cl_int c = x->c, h = x->h, w = x->w, oh = out_h, ow = out_w, pad = p->pad;
    dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(weight), DSD_KARG_TENSOR(b),
                       DSD_KARG(has_bias), DSD_KARG_TENSOR(y), DSD_KARG(c), DSD_KARG(h),
                       DSD_KARG(w), DSD_KARG(oh), DSD_KARG(ow), DSD_KARG(pad)};
    size_t global[3], local[3];
    pixel_launch(ctx, &cfg, x->n * x->c, out_h, out_w, global, local);
    return dsd_kernel_run(ctx, "depthwise", cfg.options, "depthwise_forward", args,
                          DSD_NARGS(args), 3, global, local);
}

/* ------------------------------------------------------------------------ */
/* Backward */

static dsd_status backward_dx(dsd_context *ctx, const dsd_conv2d_params *p, const dw_config *cfg,
                              const dsd_tensor *weight, const dsd_tensor *dy, dsd_tensor *dx)
{
    cl_int c = dx->c, h = dx->h, w = dx->w, oh = dy->h, ow = dy->w, pad = p->pad;
    dsd_karg args[] = {DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(weight), DSD_KARG_TENSOR(dx),
                       DSD_KARG(c), DSD_KARG(h), DSD_KARG(w), DSD_KARG(oh), DSD_KARG(ow),
                       DSD_KARG(pad)};
    size_t global[3], local[3];
    pixel_launch(ctx, cfg, dx->n * dx->c, h, w, global, local);
    return dsd_kernel_run(ctx, "depthwise", cfg->options, "depthwise_backward_dx", args,
                          DSD_NARGS(args), 3, global, local);
}

static dsd_status backward_dw(dsd_context *ctx, const dsd_conv2d_params *p, const dw_config *cfg,
                              const dsd_tensor *x, const dsd_tensor *dy, dsd_tensor *dweight,
                              dsd_tensor *dbias)
{
    /* Tiles: PW x PH groups per channel, each walking about DW_GROUP_TILES_W
     * x DW_GROUP_TILES_H output tiles per image. Strips: P work-items per
     * channel, each walking a block of output rows, one per group (a long
     * task each). */
    size_t parts_w, parts_h, lanes = 1;
    if (cfg->strip) {
        parts_w = dy->h < DW_STRIP_PARTS ? (size_t)dy->h : DW_STRIP_PARTS;
        parts_h = 1;
        lanes = DW_VEC; /* each work-item leaves one partial per vector lane */
    } else {
        parts_w = tiles(tiles(dy->w, cfg->tile_w), DW_GROUP_TILES_W);
        parts_h = tiles(tiles(dy->h, cfg->tile_h), DW_GROUP_TILES_H);
    }
    size_t parts = parts_w * parts_h * lanes;
    int taps1 = p->kernel_h * p->kernel_w + 1;

    /* The partials: (C, P, KH*KW + 1), P counting a strip work-item's lanes
     * apart. Given back to the pool right after the
     * launches: the queue is in order, so any later user of the buffer runs
     * after these kernels. */
    dsd_tensor partial;
    DSD_TRY(dsd_tensor_init(ctx, &partial, 1, dy->c, (int)parts, taps1));

    cl_int n = x->n, c = x->c, h = x->h, w = x->w, oh = dy->h, ow = dy->w, pad = p->pad;
    dsd_karg args[] = {DSD_KARG_TENSOR(x), DSD_KARG_TENSOR(dy), DSD_KARG_TENSOR(&partial),
                       DSD_KARG(n), DSD_KARG(c), DSD_KARG(h), DSD_KARG(w), DSD_KARG(oh),
                       DSD_KARG(ow), DSD_KARG(pad)};
    size_t local[3] = {1, 1, 1}, global[3] = {parts_w, (size_t)x->c, 1};
    cl_uint dims = 2;
    if (!cfg->strip) {
        local[0] = (size_t)cfg->tile_w;
        local[1] = (size_t)cfg->tile_h;
        global[0] = parts_w * local[0];
        global[1] = parts_h * local[1];
        global[2] = (size_t)x->c;
        dims = 3;
    }
    dsd_status st = dsd_kernel_run(ctx, "depthwise", cfg->options,
                                   "depthwise_backward_dw_partial", args,
                                   DSD_NARGS(args), dims, global, local);
    if (st == DSD_OK) {
        cl_uint has_dw = dweight != NULL, has_db = dbias != NULL;
        const dsd_tensor *dw = dweight ? dweight : &partial; /* any valid buffer; not written */
        const dsd_tensor *db = dbias ? dbias : &partial;
        cl_int np = (cl_int)parts;
        dsd_karg fargs[] = {DSD_KARG_TENSOR(&partial), DSD_KARG_TENSOR(dw), DSD_KARG(has_dw),
                            DSD_KARG_TENSOR(db), DSD_KARG(has_db), DSD_KARG(c), DSD_KARG(np)};
        size_t fglobal[2] = {(size_t)taps1, (size_t)x->c};
        st = dsd_kernel_run(ctx, "depthwise", cfg->options, "depthwise_backward_dw_final", fargs,
                            DSD_NARGS(fargs), 2, fglobal, NULL);
    }
    dsd_tensor_free(ctx, &partial);
    return st;
}

dsd_status dsd_depthwise_conv2d_backward(dsd_context *ctx, const dsd_conv2d_params *p,
                                         const dsd_tensor *x, const dsd_tensor *weight,
                                         const dsd_tensor *dy, dsd_tensor *dx,
                                         dsd_tensor *dweight, dsd_tensor *dbias)
{
    int out_h, out_w;
    DSD_TRY(check_common(ctx, p, x, weight, NULL, &out_h, &out_w));
    DSD_TRY(expect_shape(ctx, dy, "dy", x->n, x->c, out_h, out_w, x, p));
    if (dx)
        DSD_TRY(expect_shape(ctx, dx, "dx", x->n, x->c, x->h, x->w, x, p));
    if (dweight)
        DSD_TRY(expect_shape(ctx, dweight, "dweight", x->c, 1, p->kernel_h, p->kernel_w, x, p));
    if (dbias)
        DSD_TRY(expect_shape(ctx, dbias, "dbias", 1, x->c, 1, 1, x, p));
    dw_config cfg;
    DSD_TRY(dw_configure(ctx, p, &cfg));

    if (dx)
        DSD_TRY(backward_dx(ctx, p, &cfg, weight, dy, dx));
    if (dweight || dbias)
        DSD_TRY(backward_dw(ctx, p, &cfg, x, dy, dweight, dbias));
    return DSD_OK;
}
