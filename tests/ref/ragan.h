/*
 * ref/ragan.h: double-precision reference of the relativistic average GAN
 * loss (src/model/ragan_loss.c; formulas in dsdeblur_model.h). Written from
 * the paper's equations directly, not from the ops the library composes:
 * loss = mean BCE(real_i - mean(fake), t_r) + mean BCE(fake_i - mean(real), t_f)
 * with (t_r, t_f) = (1, 0) for the discriminator and (0, 1) for the generator.
 */
#ifndef DSDEBLUR_REF_RAGAN_H
#define DSDEBLUR_REF_RAGAN_H

#include <stddef.h>

/* side: 0 discriminator, 1 generator (dsd_ragan_side). */
double ref_ragan_loss_forward(int side, const double *real, const double *fake, size_t count);
/* dreal += scale dL/dreal, dfake += scale dL/dfake (either may be NULL). */
void ref_ragan_loss_backward(int side, double scale, const double *real, const double *fake,
                             size_t count, double *dreal, double *dfake);

#endif
