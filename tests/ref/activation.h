/* ref/activation.h: double-precision references (placeholder). */
#ifndef DSDEBLUR_REF_ACTIVATION_H
#define DSDEBLUR_REF_ACTIVATION_H
#endif
