/* ref/fft.h: placeholder. */
#ifndef DSDEBLUR_REF_FFT_H
#define DSDEBLUR_REF_FFT_H
#endif
