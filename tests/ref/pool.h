/* ref/pool.h: double-precision references (placeholder). */
#ifndef DSDEBLUR_REF_POOL_H
#define DSDEBLUR_REF_POOL_H
#endif
