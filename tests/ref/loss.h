/* ref/loss.h: double-precision references (placeholder). */
#ifndef DSDEBLUR_REF_LOSS_H
#define DSDEBLUR_REF_LOSS_H
#endif
