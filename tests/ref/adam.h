/* ref/adam.h: placeholder. */
#ifndef DSDEBLUR_REF_ADAM_H
#define DSDEBLUR_REF_ADAM_H
#endif
