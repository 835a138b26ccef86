/* ref/norm.c: double-precision references (placeholder). */
#include "norm.h"
typedef int dsd_ref_norm_placeholder;
