/* ref/conv2d.h: double-precision references (placeholder). */
#ifndef DSDEBLUR_REF_CONV2D_H
#define DSDEBLUR_REF_CONV2D_H
#endif
