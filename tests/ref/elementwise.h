/* ref/elementwise.h: double-precision references (placeholder). */
#ifndef DSDEBLUR_REF_ELEMENTWISE_H
#define DSDEBLUR_REF_ELEMENTWISE_H
#endif
