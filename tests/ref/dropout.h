/* ref/dropout.h: double-precision references (placeholder). */
#ifndef DSDEBLUR_REF_DROPOUT_H
#define DSDEBLUR_REF_DROPOUT_H
#endif
