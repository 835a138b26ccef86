/*
 * vgg.c: the frozen VGG-19 feature extractor of the perceptual loss (paper
 * section 2.7): torchvision's vgg19().features up to a chosen index (conv3_3
 * by default), with the ImageNet input normalization, forward with an
 * optional tape and a backward that gives dx only. Both are written once
 * and run in planning mode for the network's plan (dsd_vgg_plan), then for
 * real in one arena laid out by it (src/model/pass.h). dsdeblur_model.h
 * and doc/vgg.md describe the layers, the input mapping and the names.
 *
 * It does not train VGG (no parameter gradients, no gradient arena), does
 * not read files (src/io/vgg_file.c reads the weights, a safetensors file
 * with torchvision's key names that scripts/convert_vgg19.py writes), does not
 * download weights and knows nothing about losses (content_loss.c).
 * Reference network and gradient checks: tests/test-vgg.c.
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* The layer table */

/* torchvision's cfg "E": conv widths, 0 for a max pool. Every conv is
 * followed by a ReLU, so conv k of the list sits at an even index. */
static const int vgg19_cfg[] = {64,  64,  0,   128, 128, 0,   256, 256, 256, 256, 0,
                                512, 512, 512, 512, 0,   512, 512, 512, 512, 0};
enum { VGG19_N_INDEX = 37 }; /* indices 0 .. 36 */

/* Kind and output width of torchvision index i (0 .. 36); conv_no / block
 * give the "convB_K" naming. Returns 0 for an index out of range. */
static int vgg_layer(int index, dsd_vgg_layer_kind *kind, int *width, int *block, int *conv_no)
{
    int i = 0, b = 1, k = 1, c = 3;
    for (size_t j = 0; j < sizeof vgg19_cfg / sizeof vgg19_cfg[0]; j++) {
        if (vgg19_cfg[j] == 0) {
            if (i == index) {
                *kind = DSD_VGG_LAYER_POOL, *width = c, *block = b, *conv_no = 0;
                return 1;
            }
            i++, b++, k = 1;
            continue;
        }
        c = vgg19_cfg[j];
        for (int r = 0; r < 2; r++, i++) {
            if (i == index) {
                *kind = r ? DSD_VGG_LAYER_RELU : DSD_VGG_LAYER_CONV;
                *width = c, *block = b, *conv_no = k;
                return 1;
            }
        }
        k++;
    }
    return 0;
}

const char *dsd_vgg_layer_name(int index)
{
    /* static constant strings: "conv1_1" .. "pool5" */
    static const char *const names[VGG19_N_INDEX] = {
        "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
        "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
        "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4",
        "pool3",
        "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4",
        "pool4",
        "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4",
        "pool5"};
    return index >= 0 && index < VGG19_N_INDEX ? names[index] : "?";
}

dsd_vgg_config dsd_vgg_default_config(void)
{
    dsd_vgg_config c = {.last_layer = 14};
    return c;
}

dsd_status dsd_vgg_config_check(const dsd_vgg_config *cfg, dsd_error *err)
{
    if (!cfg)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "VGG config is NULL");
    dsd_vgg_layer_kind kind;
    int width, block, k;
    if (cfg->last_layer < 0 || cfg->last_layer > DSD_VGG_MAX_INDEX ||
        !vgg_layer(cfg->last_layer, &kind, &width, &block, &k))
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "VGG last_layer %d not in [0, %d] (a "
                        "torchvision vgg19().features index; 14 is conv3_3)", cfg->last_layer,
                        DSD_VGG_MAX_INDEX);
    if (kind == DSD_VGG_LAYER_POOL)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "VGG last_layer %d is %s: the output must "
                        "be a conv or ReLU index (e.g. 14 conv3_3, 15 relu3_3)", cfg->last_layer,
                        dsd_vgg_layer_name(cfg->last_layer));
    return DSD_OK;
}

static dsd_status vgg_layout(const dsd_vgg_config *cfg, dsd_params *p, dsd_error *err)
{
    int cin = 3;
    for (int i = 0; i <= cfg->last_layer; i++) {
        dsd_vgg_layer_kind kind;
        int width, block, k;
        vgg_layer(i, &kind, &width, &block, &k);
        if (kind != DSD_VGG_LAYER_CONV)
            continue;
        int wshape[4] = {width, cin, 3, 3}, bshape[1] = {width};
        DSD_TRY(dsd_params_add(p, err, 4, wshape, DSD_PARAM_INIT_FAN_IN, cin * 9,
                               "features.%d.weight", i));
        DSD_TRY(dsd_params_add(p, err, 1, bshape, DSD_PARAM_INIT_FAN_IN, cin * 9,
                               "features.%d.bias", i));
        cin = width;
    }
    return DSD_OK;
}

size_t dsd_vgg_param_count(const dsd_vgg_config *cfg)
{
    if (dsd_vgg_config_check(cfg, NULL) != DSD_OK)
        return 0;
    dsd_params p;
    memset(&p, 0, sizeof p);
    size_t count = vgg_layout(cfg, &p, NULL) == DSD_OK ? p.count : 0;
    free(p.info);
    return count;
}

dsd_status dsd_vgg_output_shape(const dsd_vgg_config *cfg, int h, int w, int *out_c,
                                int *out_h, int *out_w, dsd_error *err)
{
    DSD_TRY(dsd_vgg_config_check(cfg, err));
    if (h < 1 || w < 1)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "VGG input %dx%d is empty", h, w);
    int c = 3, oh = h, ow = w;
    for (int i = 0; i <= cfg->last_layer; i++) {
        dsd_vgg_layer_kind kind;
        int block, k;
        vgg_layer(i, &kind, &c, &block, &k);
        if (kind != DSD_VGG_LAYER_POOL)
            continue;
        if (oh < 2 || ow < 2)
            return DSD_FAIL(err, DSD_ERR_SHAPE, "VGG input %dx%d is too small for layer %d "
                            "(%s): it would pool a %dx%d map", h, w, cfg->last_layer,
                            dsd_vgg_layer_name(cfg->last_layer), oh, ow);
        oh /= 2;
        ow /= 2;
    }
    *out_c = c;
    *out_h = oh;
    *out_w = ow;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Init / free / weights */

/* ImageNet statistics of torchvision's pretrained weights (images in [0, 1]). */
static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

/* The layer table of a checked config: cfg, n_layers, kind, width. */
static void vgg_shape(const dsd_vgg_config *cfg, dsd_vgg *vgg)
{
    vgg->cfg = *cfg;
    vgg->n_layers = cfg->last_layer + 1;
    for (int i = 0; i < vgg->n_layers; i++) {
        int block, k;
        vgg_layer(i, &vgg->kind[i], &vgg->width[i], &block, &k);
    }
}

dsd_status dsd_vgg_init(dsd_context *ctx, dsd_vgg *vgg, const dsd_vgg_config *cfg)
{
    memset(vgg, 0, sizeof *vgg);
    dsd_vgg_config c = cfg ? *cfg : dsd_vgg_default_config();
    DSD_TRY(dsd_vgg_config_check(&c, dsd_ctx_err(ctx)));
    vgg_shape(&c, vgg);
    dsd_params *p = &vgg->params;
    dsd_status st = vgg_layout(&c, p, dsd_ctx_err(ctx));
    if (st == DSD_OK) {
        /* values only: the network is frozen, so no gradient arena (which
         * is why this is not dsd_params_alloc) */
        const dsd_device_info *dev = dsd_context_device(ctx);
        uint64_t bytes = (uint64_t)p->count * sizeof(float);
        if (bytes > dev->max_alloc_bytes)
            st = DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "VGG-19 parameters need "
                          "%.1f MiB; the device allows %.1f MiB per buffer", bytes / 1048576.0,
                          dev->max_alloc_bytes / 1048576.0);
    }
    if (st == DSD_OK)
        st = dsd_tensor_init_zero(ctx, &p->values, 1, 1, 1, (int)p->count);
    char name[DSD_PARAM_NAME_MAX];
    for (int i = 0; i < vgg->n_layers && st == DSD_OK; i++) {
        if (vgg->kind[i] != DSD_VGG_LAYER_CONV)
            continue;
        snprintf(name, sizeof name, "features.%d.weight", i);
        const dsd_param_info *e = dsd_params_find(p, name);
        snprintf(name, sizeof name, "features.%d.bias", i);
        const dsd_param_info *b = dsd_params_find(p, name);
        if (!e || !b)
            st = DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "VGG table lacks "
                          "features.%d", i);
        if (st == DSD_OK)
            st = dsd_params_view(ctx, &p->values, e, &vgg->w[i].weight);
        if (st == DSD_OK)
            st = dsd_params_view(ctx, &p->values, b, &vgg->w[i].bias);
    }
    /* x in [-1, 1]: ((x + 1) / 2 - mean) / std = x * (0.5 / std) + (0.5 - mean) / std */
    float scale[3], shift[3];
    for (int k = 0; k < 3; k++) {
        scale[k] = 0.5f / imagenet_std[k];
        shift[k] = (0.5f - imagenet_mean[k]) / imagenet_std[k];
    }
    if (st == DSD_OK)
        st = dsd_tensor_init(ctx, &vgg->scale, 1, 3, 1, 1);
    if (st == DSD_OK)
        st = dsd_tensor_upload(ctx, &vgg->scale, scale, 3);
    if (st == DSD_OK)
        st = dsd_tensor_init(ctx, &vgg->shift, 1, 3, 1, 1);
    if (st == DSD_OK)
        st = dsd_tensor_upload(ctx, &vgg->shift, shift, 3);
    if (st != DSD_OK) {
        dsd_vgg_free(ctx, vgg);
        return st;
    }
    vgg->arena_bytes = p->count * sizeof(float);
    return DSD_OK;
}

void dsd_vgg_free(dsd_context *ctx, dsd_vgg *vgg)
{
    if (!vgg)
        return;
    dsd_params_free(ctx, &vgg->params); /* grads is a zeroed struct: a no-op */
    dsd_tensor_free(ctx, &vgg->scale);
    dsd_tensor_free(ctx, &vgg->shift);
    memset(vgg, 0, sizeof *vgg);
}

dsd_status dsd_vgg_init_weights(dsd_context *ctx, dsd_vgg *vgg, uint64_t seed)
{
    DSD_TRY(dsd_params_init_weights(ctx, &vgg->params, seed));
    vgg->has_weights = 1;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* A pass: planned, then run
 *
 * The forward and backward below are the network's one description. Run
 * with a planning pass (ctx NULL, shape-only tensors, a dsd_vgg that holds
 * only its layer table) they record the plan; run for real, every
 * activation and gradient temporary is a view of one arena at its planned
 * offset and every conv uses the planned workspace (src/model/pass.h). */

#define RUN(expr) DSD_PASS_RUN(r, expr)

static const dsd_conv2d_params vgg_conv = {.kernel_h = 3, .kernel_w = 3, .stride = 1, .pad = 1,
                                           .pad_mode = DSD_PAD_ZERO, .groups = 1};

/* Runs the layers into t (training: everything kept; inference: each input
 * given back once consumed). The last conv writes y directly, unless a ReLU
 * follows it as the last layer (that ReLU's backward needs its output, so
 * the tape keeps a copy of its own). */
static dsd_status vgg_forward_pass(dsd_pass *r, const dsd_vgg *vgg, const dsd_tensor *x,
                                   dsd_tensor *y, int training, dsd_vgg_tape *t)
{
    const int last = vgg->cfg.last_layer, n = x->n;
    char name[DSD_PARAM_NAME_MAX];
    DSD_TRY(dsd_pass_take(r, &t->xn, n, 3, x->h, x->w));
    RUN(dsd_mul_forward(r->ctx, x, &vgg->scale, &t->xn));
    RUN(dsd_add_forward(r->ctx, &t->xn, &vgg->shift, 1.0f, &t->xn));
    dsd_tensor *cur = &t->xn; /* the current activation (a slot of the pass) */
    for (int i = 0; i <= last; i++) {
        dsd_tensor *out = &t->a[i];
        switch (vgg->kind[i]) {
        case DSD_VGG_LAYER_CONV:
            snprintf(name, sizeof name, "features.%d", i);
            if (i == last) {
                DSD_TRY(dsd_pass_conv_forward(r, name, &vgg_conv, cur, &vgg->w[i], y));
                out = NULL;
            } else {
                DSD_TRY(dsd_pass_take(r, out, n, vgg->width[i], cur->h, cur->w));
                DSD_TRY(dsd_pass_conv_forward(r, name, &vgg_conv, cur, &vgg->w[i], out));
            }
            break;
        case DSD_VGG_LAYER_RELU:
            RUN(dsd_activation_forward(r->ctx, DSD_ACT_RELU, 0.0f, cur, cur));
            if (i == last)
                RUN(dsd_tensor_copy(r->ctx, y, cur));
            continue; /* in place: cur stays */
        case DSD_VGG_LAYER_POOL:
            DSD_TRY(dsd_pass_take(r, out, n, vgg->width[i], cur->h / 2, cur->w / 2));
            RUN(dsd_maxpool2x2_forward(r->ctx, cur, out));
            break;
        }
        if (!training)
            dsd_pass_give(r, cur);
        cur = out;
    }
    return DSD_OK;
}

/* The output of layer i in the tape: a ReLU's is its conv's (in place). */
static const dsd_tensor *tape_out(const dsd_vgg *vgg, const dsd_vgg_tape *t, int i)
{
    if (i < 0)
        return &t->xn;
    return vgg->kind[i] == DSD_VGG_LAYER_RELU ? &t->a[i - 1] : &t->a[i];
}

/* dx += dL/dx for dy = dL/dy of the forward that filled t (mirrored order;
 * every gradient is a zeroed slot, the op backwards accumulate). Each
 * activation is given back after its last reader. */
static dsd_status vgg_backward_pass(dsd_pass *r, const dsd_vgg *vgg, dsd_vgg_tape *t,
                                    const dsd_tensor *x, const dsd_tensor *dy, dsd_tensor *dx)
{
    dsd_tensor g = {0}, din;     /* dL/d(output of layer i), dL/d(its input) */
    const dsd_tensor *grad = dy; /* g or the caller's dy */
    for (int i = vgg->cfg.last_layer; i >= 0; i--) {
        const dsd_tensor *in = tape_out(vgg, t, i - 1);
        DSD_TRY(dsd_pass_take_zero(r, &din, in->n, in->c, in->h, in->w));
        switch (vgg->kind[i]) {
        case DSD_VGG_LAYER_CONV: {
            char name[32];
            snprintf(name, sizeof name, "features.%d", i);
            DSD_TRY(dsd_pass_conv_backward(r, name, &vgg_conv, in, &vgg->w[i].weight, grad,
                                           &din, NULL, NULL));
            break;
        }
        case DSD_VGG_LAYER_RELU: /* in == out: the output has the input's sign */
            RUN(dsd_activation_backward(r->ctx, DSD_ACT_RELU, 0.0f, in, in, grad, &din));
            break;
        case DSD_VGG_LAYER_POOL:
            RUN(dsd_maxpool2x2_backward(r->ctx, in, grad, &din));
            break;
        }
        /* every reader of a[i] has an index > i: done with it */
        dsd_pass_give(r, &t->a[i]);
        dsd_pass_give(r, &g);
        g = din;
        grad = &g;
    }
    /* xn = x * scale + shift: dx += dxn * scale */
    RUN(dsd_mul_backward(r->ctx, x, &vgg->scale, grad, dx, NULL));
    dsd_pass_give(r, &g);
    dsd_pass_give(r, &t->xn);
    return DSD_OK;
}

#undef RUN

static dsd_tensor shape_of(const dsd_tensor *t)
{
    return (dsd_tensor){.n = t->n, .c = t->c, .h = t->h, .w = t->w};
}

/* Plans a pass on x into y (their shapes only; training: the backward too)
 * into *plan. */
static dsd_status plan_pass(const dsd_vgg_config *cfg, const dsd_tensor *x, const dsd_tensor *y,
                            int training, dsd_network_plan *plan, dsd_error *err)
{
    dsd_network_plan_reset(plan);
    dsd_vgg *shape = calloc(1, sizeof *shape);
    dsd_vgg_tape *t = calloc(1, sizeof *t);
    dsd_status st = DSD_OK;
    if (!shape || !t) {
        st = DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "VGG plan: out of host memory");
    } else {
        vgg_shape(cfg, shape);
        dsd_pass r = {.plan = plan, .net = "VGG plan", .err = err};
        dsd_tensor sx = shape_of(x), sy = shape_of(y);
        st = vgg_forward_pass(&r, shape, &sx, &sy, training, t);
        if (st == DSD_OK && training)
            st = vgg_backward_pass(&r, shape, t, &sx, &sy, &sx);
    }
    free(shape);
    free(t);
    dsd_pass_plan_done(plan);
    return st;
}

dsd_status dsd_vgg_plan(const dsd_vgg_config *cfg, int n, int h, int w, int training,
                        dsd_network_plan *plan, dsd_error *err)
{
    int oc, oh, ow;
    DSD_TRY(dsd_vgg_output_shape(cfg, h, w, &oc, &oh, &ow, err));
    if (n < 1)
        return DSD_FAIL(err, DSD_ERR_SHAPE, "VGG plan: %d images", n);
    dsd_tensor x = {.n = n, .c = 3, .h = h, .w = w}, y = {.n = n, .c = oc, .h = oh, .w = ow};
    return plan_pass(cfg, &x, &y, training, plan, err);
}

/* An inference forward in an arena (and workspace) leased for the call. */
static dsd_status run_inference(dsd_context *ctx, const dsd_vgg *vgg, const dsd_tensor *x,
                                dsd_tensor *y)
{
    dsd_network_plan plan = {0};
    dsd_tensor arena = {0}, workspace = {0};
    dsd_vgg_tape *scratch = calloc(1, sizeof *scratch);
    dsd_status st = scratch ? DSD_OK : DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY,
                                                "VGG: out of host memory");
    if (st == DSD_OK)
        st = plan_pass(&vgg->cfg, x, y, 0, &plan, dsd_ctx_err(ctx));
    if (st == DSD_OK)
        st = dsd_pass_memory_alloc(ctx, "VGG", &plan, &arena, &workspace);
    if (st == DSD_OK) {
        dsd_pass r = dsd_pass_running(ctx, "VGG", &plan, &arena, &workspace, 0);
        st = vgg_forward_pass(&r, vgg, x, y, 0, scratch);
    }
    dsd_pass_memory_free(ctx, &plan, &arena, &workspace);
    free(scratch);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Tapes */

void dsd_vgg_tape_free(dsd_context *ctx, dsd_vgg_tape *tape)
{
    if (!tape)
        return;
    dsd_pass_memory_free(ctx, &tape->plan, &tape->arena, &tape->workspace);
    memset(tape, 0, sizeof *tape); /* x and the activations are views: forgotten */
}

/* Makes tape ready for a training forward of vgg on x (plans and allocates
 * only when the shape or last_layer changed since its last one: a stale
 * plan with same-size slots would silently alias memory). */
static dsd_status tape_prepare(dsd_context *ctx, const dsd_vgg *vgg, dsd_vgg_tape *tape,
                               const dsd_tensor *x, const dsd_tensor *y)
{
    int fresh = tape->arena.buf && tape->cfg.last_layer == vgg->cfg.last_layer &&
                tape->n == x->n && tape->h == x->h && tape->w == x->w;
    if (!fresh) {
        dsd_vgg_tape_free(ctx, tape);
        dsd_status st = plan_pass(&vgg->cfg, x, y, 1, &tape->plan, dsd_ctx_err(ctx));
        if (st == DSD_OK)
            st = dsd_pass_memory_alloc(ctx, "VGG", &tape->plan, &tape->arena, &tape->workspace);
        if (st != DSD_OK) {
            dsd_vgg_tape_free(ctx, tape);
            return st;
        }
        tape->cfg = vgg->cfg;
        tape->n = x->n;
        tape->h = x->h;
        tape->w = x->w;
    }
    /* the previous pass's views are stale: start from empty ones */
    memset(&tape->x, 0, sizeof tape->x);
    memset(&tape->xn, 0, sizeof tape->xn);
    memset(tape->a, 0, sizeof tape->a);
    tape->next_slot = 0;
    return DSD_OK;
}

/* ------------------------------------------------------------------------ */
/* Entry points */

static dsd_status check_input(dsd_context *ctx, const char *op, const dsd_vgg *vgg,
                              const dsd_tensor *x, const char *x_what, const dsd_tensor *y,
                              const char *y_what)
{
    if (x->c != 3)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s is %dx%dx%dx%d but VGG-19 "
                        "takes 3 channels", op, x_what, x->n, x->c, x->h, x->w);
    int oc, oh, ow;
    DSD_TRY(dsd_vgg_output_shape(&vgg->cfg, x->h, x->w, &oc, &oh, &ow, dsd_ctx_err(ctx)));
    if (y->n != x->n || y->c != oc || y->h != oh || y->w != ow)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: %s is %dx%dx%dx%d but %s "
                        "%dx%dx%dx%d gives %dx%dx%dx%d at %s", op, y_what, y->n, y->c, y->h,
                        y->w, x_what, x->n, x->c, x->h, x->w, x->n, oc, oh, ow,
                        dsd_vgg_layer_name(vgg->cfg.last_layer));
    return DSD_OK;
}

dsd_status dsd_vgg_forward(dsd_context *ctx, dsd_vgg *vgg, const dsd_tensor *x, dsd_tensor *y,
                           dsd_vgg_tape *tape)
{
    const char *op = "vgg_forward";
    if (!vgg || !vgg->params.values.buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: VGG not initialized",
                        op);
    if (!vgg->has_weights)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: VGG-19 has no weights: "
                        "load them with dsd_vgg_load (dsdeblur cannot download them; see "
                        "doc/vgg.md)", op);
    if (!x || !x->buf || !y || !y->buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: x or y is NULL or "
                        "unallocated", op);
    if (tape && tape->pending)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: the tape holds a "
                        "forward not yet backpropagated (free it or use another)", op);
    DSD_TRY(check_input(ctx, op, vgg, x, "x", y, "y"));
    if (dsd_tensor_overlap(x, y))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: y overlaps x", op);
    if (!tape)
        return run_inference(ctx, vgg, x, y);

    DSD_TRY(tape_prepare(ctx, vgg, tape, x, y));
    dsd_pass r = dsd_pass_running(ctx, "VGG", &tape->plan, &tape->arena, &tape->workspace, 0);
    DSD_TRY(vgg_forward_pass(&r, vgg, x, y, 1, tape));
    tape->next_slot = r.next_slot;
    tape->x = *x;
    tape->x.capacity = 0;
    tape->pending = 1;
    return DSD_OK;
}

dsd_status dsd_vgg_backward(dsd_context *ctx, dsd_vgg *vgg, dsd_vgg_tape *tape,
                            const dsd_tensor *dy, dsd_tensor *dx)
{
    const char *op = "vgg_backward";
    if (!vgg || !vgg->params.values.buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: VGG not initialized",
                        op);
    if (!tape || !tape->pending)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: the tape holds no "
                        "forward", op);
    const dsd_tensor *x = &tape->x;
    if (!dy || !dy->buf)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_INVALID_ARGUMENT, "%s: dy is NULL", op);
    DSD_TRY(check_input(ctx, op, vgg, x, "the forward's x", dy, "dy"));
    if (dx && !dsd_tensor_same_shape(dx, x))
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_SHAPE, "%s: dx is %dx%dx%dx%d but x was "
                        "%dx%dx%dx%d", op, dx->n, dx->c, dx->h, dx->w, x->n, x->c, x->h, x->w);

    tape->pending = 0;
    if (!dx)
        return DSD_OK; /* nothing asked for (the network has no parameter gradients) */
    dsd_pass r = dsd_pass_running(ctx, "VGG", &tape->plan, &tape->arena, &tape->workspace,
                                  tape->next_slot);
    return vgg_backward_pass(&r, vgg, tape, x, dy, dx);
}
