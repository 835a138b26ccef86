/*
 * loader.c: a host thread that runs dsd_batcher_make for steps first,
 * first + 1, ... into a bounded queue, so decoding and cropping overlap the
 * device's work (dsdeblur_data.h). The batches are the same ones a
 * synchronous caller would make: which sample and crop a step gets depends
 * only on (seed, step), not on this thread.
 *
 * The thread owns its batcher; the queue is a ring of `depth` slots under
 * one mutex with two condition variables. An error inside the thread is
 * stored in the slot of the step that failed and the thread stops; the
 * consumer receives it from dsd_loader_next.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    dsd_batch batch;
    dsd_status status;
    dsd_error err;
} slot;

struct dsd_loader {
    dsd_batcher batcher;
    uint64_t next_step;      /* the step the thread makes next */
    slot *ring;
    int depth, head, count;  /* head: the oldest filled slot */
    int stop, failed;
    pthread_mutex_t mu;
    pthread_cond_t not_full, not_empty;
    pthread_t thread;
    int thread_started;
};

static void *run(void *arg)
{
    dsd_loader *l = arg;
    for (;;) {
        pthread_mutex_lock(&l->mu);
        while (!l->stop && l->count == l->depth)
            pthread_cond_wait(&l->not_full, &l->mu);
        if (l->stop) {
            pthread_mutex_unlock(&l->mu);
            return NULL;
        }
        uint64_t step = l->next_step++;
        pthread_mutex_unlock(&l->mu);

        slot s;
        memset(&s, 0, sizeof s);
        s.status = dsd_batcher_make(&l->batcher, step, &s.batch, &s.err);

        pthread_mutex_lock(&l->mu);
        l->ring[(l->head + l->count) % l->depth] = s;
        l->count++;
        int failed = s.status != DSD_OK;
        l->failed = failed;
        pthread_cond_signal(&l->not_empty);
        pthread_mutex_unlock(&l->mu);
        if (failed)
            return NULL;
    }
}

dsd_status dsd_loader_start(dsd_loader **out, const dsd_dataset *ds, const dsd_batch_spec *spec,
                            uint64_t first, int depth, dsd_error *err)
{
    *out = NULL;
    if (depth < 1)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "loader queue depth %d", depth);
    dsd_loader *l = calloc(1, sizeof *l);
    if (!l)
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "loader");
    l->ring = calloc((size_t)depth, sizeof *l->ring);
    if (!l->ring) {
        free(l);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "loader queue of %d", depth);
    }
    dsd_status st = dsd_batcher_init(&l->batcher, ds, spec, err);
    if (st != DSD_OK) {
        free(l->ring);
        free(l);
        return st;
    }
    l->depth = depth;
    l->next_step = first;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->not_full, NULL);
    pthread_cond_init(&l->not_empty, NULL);
    if (pthread_create(&l->thread, NULL, run, l) != 0) {
        dsd_loader_stop(l);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "cannot start the loader thread");
    }
    l->thread_started = 1;
    *out = l;
    return DSD_OK;
}

dsd_status dsd_loader_next(dsd_loader *l, dsd_batch *out, dsd_error *err)
{
    pthread_mutex_lock(&l->mu);
    while (l->count == 0)
        pthread_cond_wait(&l->not_empty, &l->mu);
    slot s = l->ring[l->head];
    memset(&l->ring[l->head], 0, sizeof l->ring[l->head]);
    l->head = (l->head + 1) % l->depth;
    l->count--;
    pthread_cond_signal(&l->not_full);
    pthread_mutex_unlock(&l->mu);
    if (s.status != DSD_OK) {
        *err = s.err;
        dsd_batch_free(&s.batch);
        /* leave the failure in place for later calls */
        pthread_mutex_lock(&l->mu);
        if (l->count < l->depth) {
            int at = (l->head + l->count) % l->depth;
            l->ring[at].status = s.status;
            l->ring[at].err = s.err;
            l->count++;
        }
        pthread_mutex_unlock(&l->mu);
        return s.status;
    }
    *out = s.batch;
    return DSD_OK;
}

void dsd_loader_stop(dsd_loader *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->not_full);
    pthread_mutex_unlock(&l->mu);
    if (l->thread_started)
        pthread_join(l->thread, NULL);
    for (int i = 0; i < l->depth; i++)
        dsd_batch_free(&l->ring[i].batch);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->not_full);
    pthread_cond_destroy(&l->not_empty);
    dsd_batcher_free(&l->batcher);
    free(l->ring);
    free(l);
}
