/*
 * buffer_pool.c: the context's device buffer pool. Tensors lease buffers here and
 * give them back on free; a training step that allocates the same shapes every
 * iteration therefore calls clCreateBuffer only during its first step.
 *
 * Sizes are rounded up to a coarse class (1/8 of the next power of two) so
 * that slightly different shapes share buffers; a lease takes the smallest
 * free block of at least the requested size and at most twice it. On an
 * allocation failure the free list is released and the allocation retried
 * once before DSD_ERR_OUT_OF_MEMORY is reported with the sizes involved.
 *
 * Reuse is safe without waiting: the queue is in order, so work enqueued
 * after a lease runs after all earlier work on the previous owner.
 */
#include "internal.h"

#include <stdlib.h>

static size_t size_class(size_t bytes)
{
    if (bytes <= 256)
        return 256;
    size_t p = 256;
    while (p < bytes)
        p <<= 1;
    size_t step = p / 16; /* classes between p/2 and p, step p/16 */
    return dsd_round_up(bytes, step);
}

static dsd_status create_buffer(dsd_context *ctx, size_t bytes, cl_mem *out)
{
    cl_int rc;
    *out = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, bytes, NULL, &rc);
    if (rc == CL_SUCCESS)
        return DSD_OK;
    if (ctx->n_free > 0) { /* give cached buffers back and try once more */
        dsd_pool_trim(ctx);
        *out = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, bytes, NULL, &rc);
        if (rc == CL_SUCCESS)
            return DSD_OK;
    }
    return DSD_CL_FAIL(&ctx->error, rc, "clCreateBuffer",
                       "device out of memory: needs %.1f MiB more (%.1f MiB in use); %s allows "
                       "%.1f MiB in all and %.1f MiB per buffer",
                       bytes / 1048576.0, ctx->pool_stats.bytes_in_use / 1048576.0,
                       ctx->device.name, ctx->device.global_mem_bytes / 1048576.0,
                       ctx->device.max_alloc_bytes / 1048576.0);
}

dsd_status dsd_pool_lease(dsd_context *ctx, size_t bytes, cl_mem *out, size_t *capacity)
{
    size_t want = size_class(bytes);
    if (ctx->device.max_alloc_bytes && want > ctx->device.max_alloc_bytes) {
        if (bytes > ctx->device.max_alloc_bytes)
            return DSD_FAIL(&ctx->error, DSD_ERR_OUT_OF_MEMORY,
                            "a %.1f MiB buffer exceeds %s's largest allocation (%.1f MiB)",
                            bytes / 1048576.0, ctx->device.name,
                            ctx->device.max_alloc_bytes / 1048576.0);
        want = bytes;
    }
    size_t best = ctx->n_free;
    for (size_t i = 0; i < ctx->n_free; i++) {
        size_t b = ctx->free_blocks[i].bytes;
        if (b >= want && b <= 2 * want && (best == ctx->n_free || b < ctx->free_blocks[best].bytes))
            best = i;
    }
    if (best < ctx->n_free) {
        *out = ctx->free_blocks[best].mem;
        *capacity = ctx->free_blocks[best].bytes;
        ctx->free_blocks[best] = ctx->free_blocks[--ctx->n_free];
        ctx->pool_stats.bytes_cached -= *capacity;
        ctx->pool_stats.bytes_in_use += *capacity;
        ctx->pool_stats.reuses++;
        return DSD_OK;
    }
    DSD_TRY(create_buffer(ctx, want, out));
    *capacity = want;
    ctx->pool_stats.buffers_created++;
    ctx->pool_stats.bytes_in_use += want;
    uint64_t total = ctx->pool_stats.bytes_in_use + ctx->pool_stats.bytes_cached;
    if (total > ctx->pool_stats.peak_bytes)
        ctx->pool_stats.peak_bytes = total;
    return DSD_OK;
}

void dsd_pool_return(dsd_context *ctx, cl_mem mem, size_t capacity)
{
    ctx->pool_stats.bytes_in_use -= capacity;
    if (ctx->n_free == ctx->cap_free) {
        size_t cap = ctx->cap_free ? ctx->cap_free * 2 : 64;
        dsd_pool_block *grown = realloc(ctx->free_blocks, cap * sizeof *grown);
        if (!grown) { /* cannot cache it: release instead */
            clReleaseMemObject(mem);
            return;
        }
        ctx->free_blocks = grown;
        ctx->cap_free = cap;
    }
    ctx->free_blocks[ctx->n_free].mem = mem;
    ctx->free_blocks[ctx->n_free].bytes = capacity;
    ctx->n_free++;
    ctx->pool_stats.bytes_cached += capacity;
}

void dsd_pool_trim(dsd_context *ctx)
{
    for (size_t i = 0; i < ctx->n_free; i++)
        clReleaseMemObject(ctx->free_blocks[i].mem);
    ctx->n_free = 0;
    ctx->pool_stats.bytes_cached = 0;
}

void dsd_pool_release_all(dsd_context *ctx)
{
    dsd_pool_trim(ctx);
    free(ctx->free_blocks);
    ctx->free_blocks = NULL;
    ctx->cap_free = 0;
}

dsd_pool_stats dsd_pool_get_stats(const dsd_context *ctx)
{
    return ctx->pool_stats;
}

void dsd_pool_reset_peak(dsd_context *ctx)
{
    ctx->pool_stats.peak_bytes = ctx->pool_stats.bytes_in_use + ctx->pool_stats.bytes_cached;
}
