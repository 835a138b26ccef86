/* ref/fft.c: placeholder. */
#include "fft.h"
typedef int dsd_ref_fft_placeholder;
