/*
 * pass.c: one network pass, planned or run (pass.h says how a network uses
 * it; src/model/plan.c is the plan itself). While planning (ctx NULL) each
 * take places a slot in the plan's arena and each convolution is recorded
 * with its route and workspace; while running, the same sequence of takes is
 * replayed as views of one arena and every convolution uses one workspace,
 * so a pass leases nothing per layer.
 *
 * It knows no network and launches nothing itself besides the convolutions
 * and the zero fills it is asked for.
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

static dsd_error *pass_err(const dsd_pass *r)
{
    return r->ctx ? dsd_ctx_err(r->ctx) : r->err;
}

dsd_status dsd_pass_take(dsd_pass *r, dsd_tensor *t, int n, int c, int h, int w)
{
    size_t floats = (size_t)n * c * h * w;
    *t = (dsd_tensor){.n = n, .c = c, .h = h, .w = w};
    if (!r->ctx) {
        size_t offset;
        DSD_TRY(dsd_network_plan_take(r->plan, floats, &offset, r->err));
        t->offset = (cl_uint)offset;
        return DSD_OK;
    }
    if (r->next_slot >= r->plan->n_slots || r->plan->slots[r->next_slot].floats != floats)
        return DSD_FAIL(pass_err(r), DSD_ERR_INVALID_ARGUMENT, "%s: the pass departs from its "
                        "plan at slot %zu (a %dx%dx%dx%d tensor)", r->net, r->next_slot, n, c,
                        h, w);
    const dsd_plan_slot *slot = &r->plan->slots[r->next_slot++];
    t->buf = r->arena->buf;
    t->offset = r->arena->offset + (cl_uint)slot->offset;
    return DSD_OK;
}

dsd_status dsd_pass_take_zero(dsd_pass *r, dsd_tensor *t, int n, int c, int h, int w)
{
    DSD_TRY(dsd_pass_take(r, t, n, c, h, w));
    return r->ctx ? dsd_tensor_fill(r->ctx, t, 0.0f) : DSD_OK;
}

void dsd_pass_give(dsd_pass *r, dsd_tensor *t)
{
    if (!r->ctx && t->n > 0)
        dsd_network_plan_give(r->plan, t->offset);
    memset(t, 0, sizeof *t);
}

dsd_status dsd_pass_conv_forward(dsd_pass *r, const char *name, const dsd_conv2d_params *p,
                                 const dsd_tensor *x, const dsd_conv_weights *cw, dsd_tensor *y)
{
    if (r->ctx) {
        dsd_profile_scope_begin(r->ctx, "%s %s", r->net, name);
        dsd_status st = dsd_conv2d_forward_ws(r->ctx, p, x, &cw->weight, &cw->bias, y,
                                              r->workspace);
        dsd_profile_scope_end(r->ctx);
        return st;
    }
    dsd_conv2d_plan cp;
    DSD_TRY(dsd_conv2d_plan_make(p, x->n, x->c, x->h, x->w, y->c, &cp, r->err));
    dsd_network_plan_need_workspace(r->plan, cp.forward_workspace);
    return dsd_network_plan_add_layer(r->plan, name, r->stage, &cp, r->err);
}

dsd_status dsd_pass_conv_backward(dsd_pass *r, const char *name, const dsd_conv2d_params *p,
                                  const dsd_tensor *x, const dsd_tensor *weight,
                                  const dsd_tensor *dy, dsd_tensor *dx, dsd_tensor *dweight,
                                  dsd_tensor *dbias)
{
    if (r->ctx) {
        dsd_profile_scope_begin(r->ctx, "%s %s backward", r->net, name);
        dsd_status st = dsd_conv2d_backward_ws(r->ctx, p, x, weight, dy, dx, dweight, dbias,
                                               r->workspace);
        dsd_profile_scope_end(r->ctx);
        return st;
    }
    dsd_conv2d_plan cp;
    DSD_TRY(dsd_conv2d_plan_make(p, x->n, x->c, x->h, x->w, dy->c, &cp, r->err));
    dsd_network_plan_need_workspace(r->plan, cp.backward_workspace);
    return DSD_OK;
}

void dsd_pass_plan_done(dsd_network_plan *plan)
{
    free(plan->live);
    plan->live = NULL;
    plan->n_live = plan->cap_live = 0;
}

/* A flat float tensor of at least floats elements, shaped (1, 1, rows, 64)
 * so that sizes past 2^31 floats stay representable. */
static dsd_status flat_init(dsd_context *ctx, const char *net, dsd_tensor *t, size_t floats)
{
    size_t rows = (floats + 63) / 64;
    if (rows < 1)
        rows = 1;
    if (rows > 0x7fffffff)
        return DSD_FAIL(dsd_ctx_err(ctx), DSD_ERR_OUT_OF_MEMORY, "%s: an arena of %.1f GiB",
                        net, floats * 4.0 / (1 << 30));
    return dsd_tensor_init(ctx, t, 1, 1, (int)rows, 64);
}

dsd_status dsd_pass_memory_alloc(dsd_context *ctx, const char *net, const dsd_network_plan *plan,
                                 dsd_tensor *arena, dsd_tensor *workspace)
{
    memset(arena, 0, sizeof *arena);
    memset(workspace, 0, sizeof *workspace);
    dsd_status st = flat_init(ctx, net, arena, plan->arena_floats);
    if (st == DSD_OK && plan->workspace_bytes)
        st = flat_init(ctx, net, workspace, plan->workspace_bytes / sizeof(float));
    if (st != DSD_OK) {
        dsd_tensor_free(ctx, workspace);
        dsd_tensor_free(ctx, arena);
    }
    return st;
}

void dsd_pass_memory_free(dsd_context *ctx, dsd_network_plan *plan, dsd_tensor *arena,
                          dsd_tensor *workspace)
{
    dsd_tensor_free(ctx, workspace);
    dsd_tensor_free(ctx, arena);
    dsd_network_plan_free(plan);
}

dsd_pass dsd_pass_running(dsd_context *ctx, const char *net, dsd_network_plan *plan,
                          const dsd_tensor *arena, const dsd_tensor *workspace,
                          size_t next_slot)
{
    return (dsd_pass){.ctx = ctx, .plan = plan, .next_slot = next_slot, .arena = arena,
                      .workspace = plan->workspace_bytes ? workspace : NULL, .net = net};
}
