/*
 * plan.c: network plans (dsdeblur_model.h, "Network plans"). A plan is what a
 * network's pass will do at one input shape, decided before anything runs:
 * its convolutions in forward order with each one's route and chunking
 * (dsd_conv2d_plan_make), and every activation and temporary the pass takes,
 * placed in one arena by a first-fit allocator simulated on the host.
 *
 * How it is built: the network's own forward and backward code runs once in
 * planning mode (no context, shape-only tensors) and reports each slot it
 * takes and gives back and each convolution it would run (src/model/
 * generator.c). The real pass then replays the same sequence of takes, each
 * becoming a view of the arena at the planned offset. Because the plan is
 * recorded from the code that runs, the two cannot disagree about the
 * network; a replay that asks for another size than planned is a bug and is
 * reported as one.
 *
 * It does not allocate device memory, launch anything or know any network.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Slots start on 256-float (1 KiB) boundaries: aligned for vector loads and
 * GEMM tiles, and a multiple of every device's base-address alignment we know
 * (128 B on PoCL, 512 B on NVIDIA), so src/ops/gemm.c can hand a slot to
 * CLBlast as a sub-buffer at offset 0 rather than have it copied. */
enum { SLOT_ALIGN_FLOATS = 256 };

static int grow(void **ptr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 1;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *p = realloc(*ptr, n * elem);
    if (!p)
        return 0;
    *ptr = p;
    *cap = n;
    return 1;
}

void dsd_network_plan_free(dsd_network_plan *p)
{
    if (!p)
        return;
    free(p->layers);
    free(p->slots);
    free(p->live);
    memset(p, 0, sizeof *p);
}

void dsd_network_plan_reset(dsd_network_plan *p)
{
    p->n_layers = p->n_slots = p->n_live = 0;
    p->arena_floats = 0;
    p->workspace_bytes = 0;
}

dsd_status dsd_network_plan_add_layer(dsd_network_plan *p, const char *name, int stage,
                                      const dsd_conv2d_plan *conv, dsd_error *err)
{
    if (!grow((void **)&p->layers, &p->cap_layers, p->n_layers + 1, sizeof *p->layers))
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "network plan: out of host memory");
    dsd_plan_layer *l = &p->layers[p->n_layers++];
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->stage = stage;
    l->conv = *conv;
    return DSD_OK;
}

void dsd_network_plan_need_workspace(dsd_network_plan *p, size_t bytes)
{
    if (bytes > p->workspace_bytes)
        p->workspace_bytes = bytes;
}

/* First fit over the live slots, which are kept sorted by offset. */
dsd_status dsd_network_plan_take(dsd_network_plan *p, size_t floats, size_t *offset,
                                 dsd_error *err)
{
    size_t size = dsd_round_up(floats ? floats : 1, SLOT_ALIGN_FLOATS), at = 0, i = 0;
    for (; i < p->n_live; i++) {
        if (p->live[i].offset >= at + size)
            break;
        at = p->live[i].offset + dsd_round_up(p->live[i].floats, SLOT_ALIGN_FLOATS);
    }
    if (!grow((void **)&p->live, &p->cap_live, p->n_live + 1, sizeof *p->live) ||
        !grow((void **)&p->slots, &p->cap_slots, p->n_slots + 1, sizeof *p->slots))
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "network plan: out of host memory");
    memmove(&p->live[i + 1], &p->live[i], (p->n_live - i) * sizeof *p->live);
    p->live[i] = (dsd_plan_slot){.offset = at, .floats = floats};
    p->n_live++;
    p->slots[p->n_slots++] = (dsd_plan_slot){.offset = at, .floats = floats};
    if (at + size > p->arena_floats)
        p->arena_floats = at + size;
    *offset = at;
    return DSD_OK;
}

void dsd_network_plan_give(dsd_network_plan *p, size_t offset)
{
    for (size_t i = 0; i < p->n_live; i++)
        if (p->live[i].offset == offset) {
            memmove(&p->live[i], &p->live[i + 1], (p->n_live - i - 1) * sizeof *p->live);
            p->n_live--;
            return;
        }
}

uint64_t dsd_network_plan_bytes(const dsd_network_plan *p)
{
    return (uint64_t)p->arena_floats * sizeof(float) + p->workspace_bytes;
}

double dsd_network_plan_macs(const dsd_network_plan *p)
{
    double macs = 0;
    for (size_t i = 0; i < p->n_layers; i++)
        macs += p->layers[i].conv.macs;
    return macs;
}
