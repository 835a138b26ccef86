/* dsdeblur_model.h: the networks (placeholder, being implemented). */
#ifndef DSDEBLUR_MODEL_H
#define DSDEBLUR_MODEL_H
#endif
