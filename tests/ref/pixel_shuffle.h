/* ref/pixel_shuffle.h: double-precision references (placeholder). */
#ifndef DSDEBLUR_REF_PIXEL_SHUFFLE_H
#define DSDEBLUR_REF_PIXEL_SHUFFLE_H
#endif
