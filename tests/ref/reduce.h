/* ref/reduce.h: double-precision references (placeholder). */
#ifndef DSDEBLUR_REF_REDUCE_H
#define DSDEBLUR_REF_REDUCE_H
#endif
