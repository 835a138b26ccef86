/* ref/pixel_shuffle.c: double-precision references (placeholder). */
#include "pixel_shuffle.h"
typedef int dsd_ref_pixel_shuffle_placeholder;
