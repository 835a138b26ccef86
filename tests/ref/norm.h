/* ref/norm.h: double-precision references (placeholder). */
#ifndef DSDEBLUR_REF_NORM_H
#define DSDEBLUR_REF_NORM_H
#endif
