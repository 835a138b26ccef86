/* ref/reduce.c: double-precision references (placeholder). */
#include "reduce.h"
typedef int dsd_ref_reduce_placeholder;
