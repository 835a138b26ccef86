/*
 * train_comm.h: the replicas of dsdeblur-train (doc/distributed.md). Built
 * --with-mpi, one process per MPI rank of MPI_COMM_WORLD, started by mpirun;
 * otherwise (or under MPI with one rank) one process alone, and every call
 * here is a no-op. The library never sees MPI: the trainer gets the dsd_comm
 * in `comm` (rank, size, and the deterministic sum of host floats).
 *
 * Every collective call must be made by every rank in the same order. A rank
 * that fails calls train_comm_abort, which ends the whole job (MPI_Abort), so
 * the others never wait for it.
 */
#ifndef DSDEBLUR_TRAIN_COMM_H
#define DSDEBLUR_TRAIN_COMM_H

#include <dsdeblur.h>

typedef struct train_comm {
    dsd_comm comm;           /* for dsd_trainer_init_comm: rank, size, sum */
    int local_rank;          /* the rank among this node's ranks (0 alone) */
    int local_size;
    int mpi;                 /* 1: MPI was initialized here */
    float *buf;              /* the sum's scratch, grown on demand */
    size_t buf_size;         /* floats in buf */
} train_comm;

/* Starts MPI when built with it (MPI_Init; argc, argv as main's); the size-1
 * comm otherwise. 0, or 1 with the reason on stderr. */
int train_comm_init(train_comm *c, int *argc, char ***argv);
/* MPI_Finalize (after a clean run on every rank); frees the scratch. */
void train_comm_finalize(train_comm *c);
/* Ends the job: MPI_Abort(MPI_COMM_WORLD, code) with several ranks, else
 * only frees (the caller returns code). */
void train_comm_abort(train_comm *c, int code);
/* Whether flag is non-zero on any rank (collective). */
int train_comm_any(train_comm *c, int flag);
/* Compares v over the ranks (collective): -1 when all equal, else the first
 * rank whose v differs from rank 0's. */
int train_comm_first_differing(train_comm *c, uint64_t v);

#endif /* DSDEBLUR_TRAIN_COMM_H */
