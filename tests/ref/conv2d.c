/* ref/conv2d.c: double-precision references (placeholder). */
#include "conv2d.h"
typedef int dsd_ref_conv2d_placeholder;
