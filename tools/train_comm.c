/*
 * train_comm.c: dsdeblur-train's replicas over MPI (train_comm.h;
 * doc/distributed.md), or one process alone without DSD_HAVE_MPI.
 *
 * The gradient sum is deterministic and bandwidth-optimal: the n floats are
 * cut into size chunks; MPI_Alltoall gives rank k every rank's chunk k (a
 * reduce-scatter without reduction), rank k adds them in rank order, in
 * double, rounded once to float, and MPI_Allgather hands every rank all the
 * summed chunks. Each rank sends and receives 2 (size - 1) / size of the
 * data, as a ring all-reduce does, and the result depends only on the values
 * and the rank order, never on the arrival order (MPI_Allreduce leaves the
 * order to the implementation). tests/test-trainer-dp.c sums the same way.
 */
#include <config.h>

#include "train_comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DSD_HAVE_MPI
#include <limits.h>
#include <mpi.h>

static dsd_status mpi_sum(void *user, float *v, size_t n, dsd_error *err)
{
    train_comm *c = user;
    size_t size = (size_t)c->comm.size, chunk = (n + size - 1) / size;
    if (chunk > INT_MAX) {
        memset(err, 0, sizeof *err);
        err->status = DSD_ERR_INVALID_ARGUMENT;
        snprintf(err->message, sizeof err->message, "gradient exchange: %zu floats per rank "
                 "exceed MPI's int count", chunk);
        return err->status;
    }
    size_t need = 2 * size * chunk + chunk;
    if (c->buf_size < need) {
        float *b = realloc(c->buf, need * sizeof *b);
        if (!b) {
            memset(err, 0, sizeof *err);
            err->status = DSD_ERR_OUT_OF_MEMORY;
            snprintf(err->message, sizeof err->message, "gradient exchange buffer of %zu "
                     "floats", need);
            return err->status;
        }
        c->buf = b;
        c->buf_size = need;
    }
    float *send = c->buf, *recv = send + size * chunk, *part = recv + size * chunk;
    memcpy(send, v, n * sizeof *v);
    memset(send + n, 0, (size * chunk - n) * sizeof *send);
    /* MPI's default error handler aborts the job on a failed call */
    MPI_Alltoall(send, (int)chunk, MPI_FLOAT, recv, (int)chunk, MPI_FLOAT, MPI_COMM_WORLD);
    for (size_t i = 0; i < chunk; i++) {
        double s = 0;
        for (size_t k = 0; k < size; k++)
            s += recv[k * chunk + i];
        part[i] = (float)s;
    }
    MPI_Allgather(part, (int)chunk, MPI_FLOAT, send, (int)chunk, MPI_FLOAT, MPI_COMM_WORLD);
    memcpy(v, send, n * sizeof *v);
    return DSD_OK;
}

/* Whether a process manager (mpirun, srun, mpiexec) started this process:
 * started by hand, the tool runs alone without initializing MPI. */
static int launched_by_mpi(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

int train_comm_init(train_comm *c, int *argc, char ***argv)
{
    memset(c, 0, sizeof *c);
    c->comm.size = 1;
    c->local_size = 1;
    if (!launched_by_mpi())
        return 0;
    int provided;
    /* the loader and PoCL have threads of their own; only the main thread calls MPI */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "dsdeblur-train: error: MPI_Init failed\n");
        return 1;
    }
    c->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->comm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->comm.size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->comm.rank, MPI_INFO_NULL,
                        &local);
    MPI_Comm_rank(local, &c->local_rank);
    MPI_Comm_size(local, &c->local_size);
    MPI_Comm_free(&local);
    c->comm.sum = mpi_sum;
    c->comm.user = c;
    return 0;
}

void train_comm_finalize(train_comm *c)
{
    free(c->buf);
    c->buf = NULL;
    if (c->mpi)
        MPI_Finalize();
    c->mpi = 0;
}

void train_comm_abort(train_comm *c, int code)
{
    if (c->mpi && c->comm.size > 1) {
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
    train_comm_finalize(c);
}

int train_comm_any(train_comm *c, int flag)
{
    if (c->comm.size <= 1)
        return flag != 0;
    int in = flag != 0, out = 0;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return out;
}

int train_comm_first_differing(train_comm *c, uint64_t v)
{
    if (c->comm.size <= 1)
        return -1;
    uint64_t *all = malloc((size_t)c->comm.size * sizeof *all);
    if (!all) {
        fprintf(stderr, "dsdeblur-train: error: out of memory comparing the ranks\n");
        train_comm_abort(c, 1);
        return 0;
    }
    MPI_Allgather(&v, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    int bad = -1;
    for (int k = 1; k < c->comm.size && bad < 0; k++)
        if (all[k] != all[0])
            bad = k;
    free(all);
    return bad;
}

#else /* one process alone */

int train_comm_init(train_comm *c, int *argc, char ***argv)
{
    memset(c, 0, sizeof *c);
    c->comm.size = 1;
    c->local_size = 1;
    return 0;
}

void train_comm_finalize(train_comm *c)
{
    free(c->buf);
    c->buf = NULL;
}

void train_comm_abort(train_comm *c, int code) { train_comm_finalize(c); }

int train_comm_any(train_comm *c, int flag) { return flag != 0; }

int train_comm_first_differing(train_comm *c, uint64_t v) { return -1; }

#endif
