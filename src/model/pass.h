/*
 * pass.h: running a network's code in planning mode or for real, the part
 * every network shares (src/model/pass.c). A network writes its forward and
 * backward once, taking every activation and temporary with dsd_pass_take
 * and running every convolution through dsd_pass_conv_*: with ctx NULL the
 * code only records a dsd_network_plan (slots placed first-fit, layers,
 * workspace; src/model/plan.c), with a context the same calls become views
 * of one arena at the planned offsets and convolutions that use the planned
 * workspace. Used by the discriminator and VGG (src/model/discriminator.c,
 * vgg.c) and the generator (generator.c's gen_pass wraps one).
 *
 * Not installed; no network knowledge here.
 */
#ifndef DSDEBLUR_MODEL_PASS_H
#define DSDEBLUR_MODEL_PASS_H

#include "internal.h"

typedef struct dsd_pass {
    dsd_context *ctx;             /* NULL while planning */
    dsd_network_plan *plan;       /* planning: filled; running: replayed */
    size_t next_slot;             /* running: the next of plan->slots */
    const dsd_tensor *arena;      /* running: where the slots live */
    const dsd_tensor *workspace;  /* running: the column buffer (NULL: none needed) */
    const char *net;              /* "G", "D", "VGG": for messages and profile scopes */
    int stage;                    /* recorded with each layer (the generator's stages) */
    dsd_error *err;               /* where a planning error goes */
} dsd_pass;

/* Runs an op's call only when the pass runs (not while planning). */
#define DSD_PASS_RUN(pass, expr)   \
    do {                           \
        if ((pass)->ctx)           \
            DSD_TRY(expr);         \
    } while (0)

/* *t = the next slot, n x c x h x w floats (contents undefined). Running: a
 * view of the arena; a slot of another size than planned is reported as
 * the bug it is ("departs from its plan"). */
dsd_status dsd_pass_take(dsd_pass *r, dsd_tensor *t, int n, int c, int h, int w);
/* dsd_pass_take, filled with zeros (the op backwards accumulate). */
dsd_status dsd_pass_take_zero(dsd_pass *r, dsd_tensor *t, int n, int c, int h, int w);
/* Gives a slot back (its place may be taken again) and zeroes *t; safe on
 * zeroed tensors. Never pass a caller's tensor. */
void dsd_pass_give(dsd_pass *r, dsd_tensor *t);

/* y = conv(x); planning records the layer under `name` (its parameters'
 * prefix) and the forward's workspace; running opens the layer-profile
 * scope "<net> <name>" around it. */
dsd_status dsd_pass_conv_forward(dsd_pass *r, const char *name, const dsd_conv2d_params *p,
                                 const dsd_tensor *x, const dsd_conv_weights *cw, dsd_tensor *y);
/* dsd_conv2d_backward with the planned workspace; planning records the
 * backward's workspace; running opens the scope "<net> <name> backward".
 * dx, dweight, dbias may be NULL as for the op. */
dsd_status dsd_pass_conv_backward(dsd_pass *r, const char *name, const dsd_conv2d_params *p,
                                  const dsd_tensor *x,
                                  const dsd_tensor *weight, const dsd_tensor *dy, dsd_tensor *dx,
                                  dsd_tensor *dweight, dsd_tensor *dbias);

/* Drops the planning allocator's state once a plan is complete (it is not
 * part of the result). */
void dsd_pass_plan_done(dsd_network_plan *plan);

/* The memory a plan asks for: an arena of plan->arena_floats and, when the
 * plan has one, a workspace of plan->workspace_bytes (else *workspace stays
 * zeroed). On failure both are given back. */
dsd_status dsd_pass_memory_alloc(dsd_context *ctx, const char *net, const dsd_network_plan *plan,
                                 dsd_tensor *arena, dsd_tensor *workspace);
/* Gives back arena and workspace and frees the plan; safe on zeroed ones. */
void dsd_pass_memory_free(dsd_context *ctx, dsd_network_plan *plan, dsd_tensor *arena,
                          dsd_tensor *workspace);
/* A pass that runs plan in arena and workspace (from dsd_pass_memory_alloc),
 * continuing at slot next_slot (0: a forward; the forward's end: its
 * backward). */
dsd_pass dsd_pass_running(dsd_context *ctx, const char *net, dsd_network_plan *plan,
                          const dsd_tensor *arena, const dsd_tensor *workspace,
                          size_t next_slot);

#endif /* DSDEBLUR_MODEL_PASS_H */
