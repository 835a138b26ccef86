/* ref/depthwise.h: double-precision references (placeholder). */
#ifndef DSDEBLUR_REF_DEPTHWISE_H
#define DSDEBLUR_REF_DEPTHWISE_H
#endif
